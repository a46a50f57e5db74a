//! The treatment summary for primary care and referral: what the product's clinical
//! approach says such a letter holds (docs/clinical-rules.md section 9, "Communication"): the
//! reason for referral with the stagnation facts (specific symptoms, how long the
//! current approach has run, adherence, functional impact), the complete treatment
//! history with each trial's verdict and response, the problems, the standardised
//! measures with their series, current functional limitations, suspected medical
//! factors and mimics, and the plan. Safety signals come first.
//!
//! Pure: built from the assessment alone. The sections follow the C-CDA Referral
//! Note / IPS section structure (research/clinical-whole-person.md section 3); the FHIR
//! document that carries them is `fhir::document`.

use serde::Serialize;

use super::adequacy::Adequacy;
use super::assessment::{Assessment, TrialAssessment};
use super::finding::{codes, Severity};
use super::knowledge::InstrumentPurpose;
use super::numbers::{count, fmt, percent, tenths, weeks};
use super::record::SourceRef;
use super::score::MeasureSeries;

/// The sections of the summary, in reading order. Their LOINC codes are the FHIR
/// document's concern (`fhir::document::section_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SectionKind {
    ReasonForReferral,
    Medications,
    Psychotherapy,
    Problems,
    MentalStatus,
    FunctionalStatus,
    MedicalFactors,
    Plan,
}

impl SectionKind {
    pub fn title(self) -> &'static str {
        match self {
            Self::ReasonForReferral => "Reason for referral",
            Self::Medications => "Medication history: antidepressant trials",
            Self::Psychotherapy => "Psychotherapy and other treatments",
            Self::Problems => "Problems",
            Self::MentalStatus => "Standardised measures",
            Self::FunctionalStatus => "Functional status",
            Self::MedicalFactors => "Suspected medical factors, mimics and pseudo-resistance",
            Self::Plan => "Plan: suggestions for the treating team",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummarySection {
    pub kind: SectionKind,
    pub title: &'static str,
    /// One fact per line; never empty (a section with nothing to say says so).
    pub lines: Vec<String>,
    /// The record's resources behind the lines.
    pub evidence: Vec<SourceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreatmentSummary {
    pub patient: String,
    pub title: String,
    /// Safety signals, before everything else.
    pub safety: Vec<String>,
    pub sections: Vec<SummarySection>,
}

/// How many scores of one instrument the measures section lists (the latest).
const SERIES_SHOWN: usize = 12;

pub fn summarise(a: &Assessment) -> TreatmentSummary {
    let safety = a
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Safety)
        .map(|f| f.text.clone())
        .collect();
    let sections = vec![
        reason_for_referral(a),
        medications(a),
        psychotherapy(a),
        problems(a),
        measures(a),
        functional_status(a),
        medical_factors(a),
        plan(a),
    ];
    TreatmentSummary {
        patient: a.patient.clone(),
        title: "Treatment summary: depression and antidepressant trials".into(),
        safety,
        sections,
    }
}

impl TreatmentSummary {
    /// The summary as plain text (what EHRs that take only `text/plain` notes show).
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.title);
        if !self.safety.is_empty() {
            out.push_str("\nSAFETY:\n");
            for line in &self.safety {
                out.push_str(&format!("- {line}\n"));
            }
        }
        for section in &self.sections {
            out.push_str(&format!("\n{}:\n", section.title));
            for line in &section.lines {
                out.push_str(&format!("- {line}\n"));
            }
        }
        out
    }
}

fn section(kind: SectionKind, mut lines: Vec<String>, evidence: Vec<SourceRef>) -> SummarySection {
    if lines.is_empty() {
        lines.push("none recorded".into());
    }
    let mut evidence = evidence;
    evidence.sort();
    evidence.dedup();
    SummarySection {
        kind,
        title: kind.title(),
        lines,
        evidence,
    }
}

fn dose(t: &TrialAssessment) -> String {
    t.daily_dose_mg
        .map(|d| format!("{} mg/day", fmt(d)))
        .unwrap_or_else(|| "dose unknown".into())
}

/// The response in the engine's words: class, scores and dates.
fn response(t: &TrialAssessment) -> String {
    t.response.explanation.clone()
}

fn adherence(t: &TrialAssessment) -> String {
    match t.verdict.pdc {
        Some(pdc) => format!(
            "{} of days covered ({})",
            percent(pdc),
            t.verdict.adherence_basis
        ),
        None => format!("adherence unknown ({})", t.verdict.adherence_basis),
    }
}

/// The reason, then what has stagnated: the current approach, its length, adherence,
/// the latest symptoms and function.
fn reason_for_referral(a: &Assessment) -> SummarySection {
    let mut lines = vec![format!(
        "{}: {} (rule: {})",
        status_words(a),
        a.status.explanation,
        a.status.rule
    )];
    if let Some(start) = a.episode.start {
        lines.push(format!(
            "Current episode since {start} ({}{})",
            count(a.episode.months.unwrap_or(0), "month"),
            if a.episode.chronic { ", chronic" } else { "" }
        ));
    }
    let mut staging = format!("Staging: Thase-Rush {}", a.thase_rush_stage.roman);
    if let Some(msm) = &a.msm {
        staging.push_str(&format!("; Maudsley {} ({})", msm.score, msm.band));
    }
    staging.push_str(&format!("; MGH-S {}", fmt(a.mgh_s.score)));
    lines.push(staging);
    let mut evidence = a.episode.evidence.clone();
    if let Some(current) = a.trials.iter().max_by_key(|t| (t.ongoing, t.start)) {
        lines.push(format!(
            "{}: {} {} from {}{} ({} weeks); {}",
            if current.ongoing {
                "Current approach"
            } else {
                "Last trial"
            },
            current.ingredient,
            dose(current),
            current.start,
            if current.ongoing {
                String::new()
            } else {
                format!(" to {}", current.end)
            },
            weeks(current.verdict.weeks_total),
            adherence(current)
        ));
        lines.push(format!("Response on it: {}", response(current)));
        evidence.extend(current.evidence.iter().cloned());
    }
    if let Some(latest) = latest_of(a, InstrumentPurpose::Depression) {
        let point = latest.points.last();
        if let Some(p) = point {
            lines.push(format!(
                "Latest symptoms: {} {} on {}",
                latest.name,
                fmt(p.value),
                p.date
            ));
            evidence.push(p.source.clone());
        }
    }
    if let Some(function) = latest_of(a, InstrumentPurpose::Function) {
        if let Some(p) = function.points.last() {
            lines.push(format!(
                "Functional impact: {} {} on {}",
                function.name,
                fmt(p.value),
                p.date
            ));
            evidence.push(p.source.clone());
        }
    }
    section(SectionKind::ReasonForReferral, lines, evidence)
}

/// The status in words a referral letter uses.
pub fn status_words(a: &Assessment) -> &'static str {
    use super::status::TrdStatus as S;
    match a.trd_status {
        S::Trd => "Treatment-resistant depression",
        S::OneFailedTrial => "At risk of treatment resistance (one failed adequate trial)",
        S::PartialResponseDepression => "Partial response to adequate trials",
        S::InadequatelyTreated => "No adequate trial yet (possible pseudo-resistance)",
        S::InsufficientData => "Not decidable from the record",
        S::NotTreated => "Not on an antidepressant in this episode",
        S::Responding => "Responding",
        S::Remission => "In remission",
        S::ExcludedBipolarSpectrum => "Bipolar spectrum disorder on an antidepressant",
        S::NoDepressionEvidence => "No depression recorded",
    }
}

/// The instrument of a purpose with the most recent score.
fn latest_of(a: &Assessment, purpose: InstrumentPurpose) -> Option<&MeasureSeries> {
    a.measures
        .iter()
        .filter(|m| m.measures == purpose)
        .max_by_key(|m| m.points.last().map(|p| p.date))
}

/// Every trial with its verdict, oldest first; then what is not a trial.
fn medications(a: &Assessment) -> SummarySection {
    let mut lines = Vec::new();
    let mut evidence = Vec::new();
    for (t, counted) in a.trials.iter().zip(&a.status.trials) {
        let verdict = match t.adequacy {
            Adequacy::Adequate => "adequate trial".to_string(),
            Adequacy::Inadequate => {
                let reasons: Vec<&str> =
                    t.verdict.reasons.iter().map(|r| r.text.as_str()).collect();
                format!("not an adequate trial: {}", reasons.join("; "))
            }
            Adequacy::Indeterminate => {
                let reasons: Vec<&str> =
                    t.verdict.reasons.iter().map(|r| r.text.as_str()).collect();
                format!("adequacy undecided: {}", reasons.join("; "))
            }
        };
        let mut line = format!(
            "{} {} ({}), {} to {}{}: {} (minimum adequate {} mg/day), {} weeks, {} at or above the minimum; {}. {verdict}. Response: {}. {}.",
            t.id,
            t.ingredient,
            t.class,
            t.start,
            t.end,
            if t.ongoing { " (ongoing)" } else { "" },
            dose(t),
            fmt(t.verdict.min_daily_mg),
            weeks(t.verdict.weeks_total),
            weeks(t.verdict.weeks_at_adequate_dose),
            adherence(t),
            response(t),
            if counted.counted {
                "Counted as a failed adequate trial".to_string()
            } else {
                format!("Not counted: {}", counted.why)
            }
        );
        for aug in &t.augmented_by {
            line.push_str(&format!(
                " Augmented with {} {} to {}.",
                aug.agent, aug.start, aug.end
            ));
            evidence.extend(aug.evidence.iter().cloned());
        }
        lines.push(line);
        evidence.extend(t.evidence.iter().cloned());
    }
    for n in &a.non_trials {
        lines.push(format!(
            "{} {} to {}: {}",
            n.ingredient, n.start, n.end, n.text
        ));
        evidence.extend(n.evidence.iter().cloned());
    }
    section(SectionKind::Medications, lines, evidence)
}

fn psychotherapy(a: &Assessment) -> SummarySection {
    let mut evidence = Vec::new();
    let lines = a
        .psychotherapy
        .iter()
        .map(|c| {
            evidence.extend(c.evidence.iter().cloned());
            let mut line = format!(
                "{} {} to {}: {} sessions over {} weeks ({})",
                c.name,
                c.start,
                c.end,
                c.sessions,
                weeks(c.weeks),
                if c.adequate {
                    "adequate length"
                } else {
                    "shorter than the configured adequate course"
                }
            );
            if let Some(s) = &c.symptoms {
                line.push_str(&format!(
                    "; {} {} -> {} at best ({}% reduction)",
                    s.instrument,
                    fmt(s.baseline.value),
                    fmt(s.best.value),
                    tenths(s.percent_change)
                ));
            }
            line
        })
        .collect();
    section(SectionKind::Psychotherapy, lines, evidence)
}

fn problems(a: &Assessment) -> SummarySection {
    let lines = a
        .problems
        .iter()
        .map(|p| {
            let mut line = p.kind.clone();
            if let Some(display) = p.display.as_deref().filter(|d| *d != p.kind) {
                line.push_str(&format!(": {display}"));
            }
            let when = p.when();
            if !when.is_empty() {
                line.push_str(&format!(", {when}"));
            }
            line
        })
        .collect();
    let evidence = a.problems.iter().map(|p| p.source.clone()).collect();
    section(SectionKind::Problems, lines, evidence)
}

/// Symptom and risk measures with their series (the latest scores of each).
fn measures(a: &Assessment) -> SummarySection {
    series_section(
        a,
        SectionKind::MentalStatus,
        &[
            InstrumentPurpose::Depression,
            InstrumentPurpose::Symptom,
            InstrumentPurpose::Anxiety,
            InstrumentPurpose::Ptsd,
            InstrumentPurpose::SuicideRisk,
            InstrumentPurpose::Global,
        ],
    )
}

fn series_section(
    a: &Assessment,
    kind: SectionKind,
    purposes: &[InstrumentPurpose],
) -> SummarySection {
    let mut lines = Vec::new();
    let mut evidence = Vec::new();
    for m in a.measures.iter().filter(|m| purposes.contains(&m.measures)) {
        let skipped = m.points.len().saturating_sub(SERIES_SHOWN);
        let shown: Vec<String> = m
            .points
            .iter()
            .skip(skipped)
            .map(|p| {
                evidence.push(p.source.clone());
                format!("{} ({})", fmt(p.value), p.date)
            })
            .collect();
        let earlier = if skipped > 0 {
            format!(" [{skipped} earlier scores not shown]")
        } else {
            String::new()
        };
        lines.push(format!("{}: {}{earlier}", m.name, shown.join(", ")));
    }
    section(kind, lines, evidence)
}

/// Current functional limitations: the function series, each trial's functional
/// change beside its symptom response, and the function findings.
fn functional_status(a: &Assessment) -> SummarySection {
    let mut out = series_section(
        a,
        SectionKind::FunctionalStatus,
        &[InstrumentPurpose::Function],
    );
    if out.lines == ["none recorded"] {
        out.lines.clear();
    }
    for t in &a.trials {
        if let Some(change) = &t.function {
            out.lines
                .push(format!("{} {}: {}", t.id, t.ingredient, change.describe()));
        }
    }
    for f in a.findings.iter().filter(|f| {
        f.code == codes::FUNCTION_STILL_IMPAIRED || f.code == codes::NO_FUNCTIONAL_MEASURE
    }) {
        out.lines.push(f.text.clone());
        out.evidence.extend(f.evidence.iter().cloned());
    }
    section(SectionKind::FunctionalStatus, out.lines, out.evidence)
}

/// The clinical findings that are not safety signals or function: medical mimics,
/// comorbidities and pseudo-resistance (dose, duration, adherence), highest first.
fn medical_factors(a: &Assessment) -> SummarySection {
    let mut findings: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.is_clinical() && f.severity != Severity::Safety)
        .filter(|f| {
            f.code != codes::FUNCTION_STILL_IMPAIRED && f.code != codes::NO_FUNCTIONAL_MEASURE
        })
        .collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let lines = findings.iter().map(|f| f.text.clone()).collect();
    let evidence = findings
        .iter()
        .flat_map(|f| f.evidence.iter().cloned())
        .collect();
    section(SectionKind::MedicalFactors, lines, evidence)
}

fn plan(a: &Assessment) -> SummarySection {
    let lines = a.suggestions.iter().map(|s| s.text.clone()).collect();
    let evidence = a
        .suggestions
        .iter()
        .flat_map(|s| s.evidence.iter().cloned())
        .collect();
    section(SectionKind::Plan, lines, evidence)
}
