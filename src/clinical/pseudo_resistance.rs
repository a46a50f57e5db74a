//! The pseudo-resistance checklist: what makes a depression look resistant when it
//! may not be (inadequate trials, non-adherence, a different diagnosis, a medical
//! mimic) and what changes the plan — each a finding with its evidence.

use time::Date;

use super::dates::minus_months;

use super::adequacy::ReasonCode;
use super::conditions;
use super::finding::{codes, Finding, Severity};
use super::knowledge::{Knowledge, LabCheck};
use super::numbers::fmt;
use super::record::{ObservedValue, PatientRecord, SourceRef};
use super::score::ScoreSeries;
use super::status::{JudgedTrial, TrdStatus};
use super::supply::IgnoredMedication;

pub struct ChecklistInput<'a> {
    pub record: &'a PatientRecord,
    pub judged: &'a [JudgedTrial<'a>],
    pub scores: &'a ScoreSeries,
    pub ignored: &'a [IgnoredMedication],
    pub status: TrdStatus,
    pub as_of: Date,
}

pub fn check(input: &ChecklistInput<'_>, knowledge: &Knowledge) -> Vec<Finding> {
    let mut findings = Vec::new();
    trial_findings(input, &mut findings);
    diagnosis_findings(input, knowledge, &mut findings);
    mood_stabiliser_findings(input, knowledge, &mut findings);
    lab_findings(input, knowledge, &mut findings);
    score_findings(input, knowledge, &mut findings);
    merge_same_code(findings)
}

fn trial_findings(input: &ChecklistInput<'_>, findings: &mut Vec<Finding>) {
    for j in input.judged {
        for reason in &j.verdict.reasons {
            let code = match reason.code {
                ReasonCode::DoseBelowMinimum => codes::SUBTHERAPEUTIC_DOSE,
                ReasonCode::TooShort | ReasonCode::StoppedBeforeWeek4 => codes::TOO_SHORT_TRIAL,
                ReasonCode::LowAdherence | ReasonCode::ReportedNotTaken => codes::NON_ADHERENCE,
                _ => continue,
            };
            let mut evidence = j.trial.evidence.clone();
            evidence.extend(reason.evidence.iter().cloned());
            let text = format!(
                "{} ({} to {}): {}",
                j.trial.id, j.trial.start, j.trial.end, reason.text
            );
            findings.push(Finding::new(code, Severity::Warning, text, evidence));
        }
    }
}

fn diagnosis_findings(
    input: &ChecklistInput<'_>,
    knowledge: &Knowledge,
    findings: &mut Vec<Finding>,
) {
    for check in &knowledge.checklist.diagnosis {
        let matches = conditions::matching(
            input.record,
            knowledge,
            &check.value_set,
            check.any_status,
            input.as_of,
        );
        if matches.is_empty() {
            continue;
        }
        let evidence: Vec<SourceRef> = matches.iter().map(|c| c.source.clone()).collect();
        findings.push(Finding::new(
            check.code.as_str(),
            check.severity,
            check.text.as_str(),
            evidence,
        ));
    }
}

/// A mood stabiliser that is not an antidepressant augmentation agent (lithium is one)
/// suggests a bipolar spectrum when ordered.
fn mood_stabiliser_findings(
    input: &ChecklistInput<'_>,
    knowledge: &Knowledge,
    findings: &mut Vec<Finding>,
) {
    let names: Vec<&str> = knowledge
        .safety
        .bipolar_cover
        .mood_stabilisers
        .iter()
        .map(|d| d.name.as_str())
        .filter(|name| {
            knowledge
                .drugs
                .by_name(name)
                .and_then(|d| knowledge.drugs.augmentation_agent(d))
                .is_none()
        })
        .collect();
    let ordered: Vec<&IgnoredMedication> = input
        .ignored
        .iter()
        .filter(|m| {
            let label = m.medication.to_lowercase();
            names.iter().any(|name| label.contains(name))
        })
        .collect();
    if let Some(first) = ordered.first() {
        let text = format!(
            "mood stabiliser ordered ({}): possible bipolar spectrum; review the diagnosis",
            first.readable
        );
        let evidence = ordered.iter().map(|m| m.source.clone()).collect();
        findings.push(Finding::new(
            codes::MOOD_STABILISER,
            Severity::High,
            text,
            evidence,
        ));
    }
}

fn lab_findings(input: &ChecklistInput<'_>, knowledge: &Knowledge, findings: &mut Vec<Finding>) {
    let since = minus_months(input.as_of, knowledge.checklist.work_up.look_back_months);
    for check in &knowledge.checklist.lab {
        let mut results: Vec<_> = input
            .record
            .observations
            .iter()
            .filter(|o| o.effective.is_some_and(|d| d <= input.as_of))
            .filter(|o| {
                o.codes.iter().any(|c| {
                    knowledge
                        .value_sets
                        .contains(&check.value_set, &c.system, &c.code)
                })
            })
            .collect();
        results.sort_by_key(|o| o.effective);
        if let Some(latest) = results.last() {
            if let Some(finding) = judge_lab(check, latest) {
                findings.push(finding);
            }
        }
        let recent = results
            .iter()
            .any(|o| o.effective.is_some_and(|d| d >= since));
        if let (Some(missing_code), false, true) =
            (&check.missing_code, recent, input.status.at_risk_or_trd())
        {
            let text = format!(
                "no {} result in the last {} months",
                check.name, knowledge.checklist.work_up.look_back_months
            );
            findings.push(Finding::new(
                missing_code.as_str(),
                Severity::Warning,
                text,
                vec![],
            ));
        }
    }
}

fn judge_lab(check: &LabCheck, result: &super::record::ObservationFact) -> Option<Finding> {
    let Some(ObservedValue::Number { value, unit }) = &result.value else {
        return None;
    };
    let has_range = result.reference_high.is_some() || result.reference_low.is_some();
    let unit_matches = unit
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(&check.unit));
    if !unit_matches && !has_range {
        let text = format!(
            "{} {} {} is not in {} and has no reference range: not judged",
            check.name,
            fmt(*value),
            unit.as_deref().unwrap_or(""),
            check.unit
        );
        return Some(Finding::new(
            codes::LAB_UNIT_NOT_COMPARABLE,
            Severity::Info,
            text,
            vec![result.source.clone()],
        ));
    }
    let high = result.reference_high.or(check.above);
    let low = result.reference_low.or(check.below);
    let unit_text = unit.as_deref().unwrap_or(&check.unit);
    let date = result.effective.map(|d| d.to_string()).unwrap_or_default();
    let text = match (check.above.and(high), check.below.and(low)) {
        (Some(limit), _) if *value > limit => {
            format!(
                "{} {} {unit_text} on {date}, above {}",
                check.name,
                fmt(*value),
                fmt(limit)
            )
        }
        (_, Some(limit)) if *value < limit => {
            format!(
                "{} {} {unit_text} on {date}, below {}",
                check.name,
                fmt(*value),
                fmt(limit)
            )
        }
        _ => return None,
    };
    Some(Finding::new(
        check.code.as_str(),
        check.severity,
        text,
        vec![result.source.clone()],
    ))
}

fn score_findings(input: &ChecklistInput<'_>, knowledge: &Knowledge, findings: &mut Vec<Finding>) {
    for check in &knowledge.checklist.score {
        let Some(index) = knowledge
            .instruments
            .iter()
            .position(|i| i.id == check.instrument)
        else {
            continue;
        };
        let instrument = &knowledge.instruments[index];
        let Some(threshold) = instrument.flag_at_or_above else {
            continue;
        };
        let Some(latest) = input.scores.by_instrument[index].last() else {
            continue;
        };
        if latest.value >= threshold {
            let text = format!(
                "{}: {} {} on {} (>= {})",
                check.text,
                instrument.name,
                fmt(latest.value),
                latest.date,
                fmt(threshold)
            );
            findings.push(Finding::new(
                check.code.as_str(),
                check.severity,
                text,
                vec![latest.source.clone()],
            ));
        }
    }
}

/// One finding per code for diagnosis-like checks (a PTSD diagnosis and a high
/// PCL-5 are one finding with both as evidence); trial findings stay per trial.
fn merge_same_code(findings: Vec<Finding>) -> Vec<Finding> {
    let per_trial = [
        codes::SUBTHERAPEUTIC_DOSE,
        codes::TOO_SHORT_TRIAL,
        codes::NON_ADHERENCE,
    ];
    let mut merged: Vec<Finding> = Vec::new();
    for finding in findings {
        let existing = merged
            .iter_mut()
            .find(|f| f.code == finding.code && !per_trial.contains(&f.code.as_str()));
        match existing {
            Some(f) => {
                f.text = format!("{}; {}", f.text, finding.text);
                f.severity = f.severity.max(finding.severity);
                f.evidence.extend(finding.evidence);
            }
            None => merged.push(finding),
        }
    }
    merged
}
