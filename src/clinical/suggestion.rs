//! Suggestions for the clinician, each with a code (SNOMED CT where one exists, else
//! the project's CodeSystem) and the evidence that triggered it.

use serde::Serialize;

use super::adequacy::ReasonCode;
use super::conditions::{TreatmentEvent, TREATMENTS};
use super::episode::Episode;
use super::finding::{codes, Finding};
use super::numbers::fmt;
use super::record::SourceRef;
use super::response::ResponseClass;
use super::status::{JudgedTrial, StatusVerdict, TrdStatus};

pub const SNOMED: &str = "http://snomed.info/sct";
pub const SUGGESTION_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-suggestion";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuggestionCode {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
}

/// Every suggestion the engine can make (the CodeSystem lists the project's ones).
pub mod kinds {
    use super::{SuggestionCode, SNOMED, SUGGESTION_SYSTEM};

    const fn own(code: &'static str, display: &'static str) -> SuggestionCode {
        SuggestionCode {
            system: SUGGESTION_SYSTEM,
            code,
            display,
        }
    }

    pub const PSYCHIATRY_REFERRAL: SuggestionCode = SuggestionCode {
        system: SNOMED,
        code: "183524004",
        display: "Referral to psychiatry service",
    };
    pub const OPTIMISE_DOSE: SuggestionCode = own("optimise-dose", "Optimise antidepressant dose");
    pub const CHECK_ADHERENCE: SuggestionCode = own("check-adherence", "Check adherence");
    pub const THYROID_WORK_UP: SuggestionCode = own("thyroid-work-up", "Thyroid function tests");
    pub const VITAMIN_D_WORK_UP: SuggestionCode = own("vitamin-d-work-up", "25-OH vitamin D test");
    pub const SLEEP_STUDY: SuggestionCode =
        own("sleep-study", "Sleep study / OSA treatment review");
    pub const AUGMENT_OR_SWITCH: SuggestionCode =
        own("augment-or-switch", "Consider augmentation versus switch");
    pub const PHARMACOGENETIC_TESTING: SuggestionCode =
        own("pharmacogenetic-testing", "Pharmacogenetic testing");
    pub const NEUROMODULATION_EVALUATION: SuggestionCode = own(
        "neuromodulation-esketamine-evaluation",
        "Evaluation for ECT, TMS or esketamine",
    );
    pub const PSYCHOTHERAPY_REVIEW: SuggestionCode =
        own("psychotherapy-review", "Psychotherapy review");
    pub const MEASUREMENT_BASED_CARE: SuggestionCode =
        own("measurement-based-care", "Measurement-based care");
    pub const DIAGNOSIS_REVIEW: SuggestionCode =
        own("diagnosis-review", "Review the depression diagnosis");
    pub const SUICIDE_RISK_ASSESSMENT: SuggestionCode = own(
        "suicide-risk-assessment",
        "Suicide risk assessment and safety plan",
    );
    pub const LITHIUM_LEVEL: SuggestionCode = own("lithium-level", "Serum lithium level");
    pub const DBT: SuggestionCode = SuggestionCode {
        system: SNOMED,
        code: "405780009",
        display: "Dialectical behavior therapy",
    };
    pub const ACT_OR_DBT: SuggestionCode = own(
        "act-or-dbt",
        "Consider ACT or DBT after CBT without response",
    );

    pub const ALL: &[SuggestionCode] = &[
        PSYCHIATRY_REFERRAL,
        OPTIMISE_DOSE,
        CHECK_ADHERENCE,
        THYROID_WORK_UP,
        VITAMIN_D_WORK_UP,
        SLEEP_STUDY,
        AUGMENT_OR_SWITCH,
        PHARMACOGENETIC_TESTING,
        NEUROMODULATION_EVALUATION,
        PSYCHOTHERAPY_REVIEW,
        MEASUREMENT_BASED_CARE,
        DIAGNOSIS_REVIEW,
        SUICIDE_RISK_ASSESSMENT,
        LITHIUM_LEVEL,
        DBT,
        ACT_OR_DBT,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub code: SuggestionCode,
    pub text: String,
    /// Why: the status or finding codes that triggered it.
    pub because: Vec<String>,
    pub evidence: Vec<SourceRef>,
}

fn suggest(
    code: SuggestionCode,
    text: impl Into<String>,
    because: Vec<String>,
    evidence: Vec<SourceRef>,
) -> Suggestion {
    Suggestion {
        code,
        text: text.into(),
        because,
        evidence,
    }
}

/// "evaluate for ECT, TMS or esketamine", or, after some of them, what was received
/// (with its dates and sessions) and what is left: repeating "evaluate for ECT" to a
/// patient who has had ECT reads as if the history was not looked at.
fn neuromodulation_text(treatments: &[TreatmentEvent]) -> String {
    let kinds = || TREATMENTS.iter().map(|(kind, _)| *kind);
    let received: Vec<String> = kinds()
        .filter_map(|kind| {
            let sessions: Vec<&TreatmentEvent> =
                treatments.iter().filter(|t| t.kind == *kind).collect();
            let (first, last) = (sessions.first()?, sessions.last()?);
            Some(match sessions.len() {
                1 => format!("{kind} on {}", first.date),
                n => format!("{kind} {} to {} ({n} sessions)", first.date, last.date),
            })
        })
        .collect();
    let left: Vec<&str> = kinds()
        .filter(|kind| !treatments.iter().any(|t| t.kind == *kind))
        .collect();
    let or_list = |items: &[&str]| match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    match (received.is_empty(), left.is_empty()) {
        (true, _) => format!("evaluate for {}", or_list(&left)),
        (false, false) => format!(
            "received {}; evaluate for {}",
            received.join(", "),
            or_list(&left)
        ),
        (false, true) => format!(
            "received {}; review at a specialist treatment-resistant depression service",
            received.join(", ")
        ),
    }
}

/// What the safety findings ask for, whatever the TRD status: a suicide risk
/// assessment after a positive screen, a serum lithium level when one is due.
/// `suicide_codes`: the suicide-risk finding codes of the safety rules.
pub fn safety_suggestions(findings: &[Finding], suicide_codes: &[String]) -> Vec<Suggestion> {
    let mut out = Vec::new();
    let suicide: Vec<&Finding> = findings
        .iter()
        .filter(|f| suicide_codes.contains(&f.code))
        .collect();
    if !suicide.is_empty() {
        let mut because: Vec<String> = suicide.iter().map(|f| f.code.clone()).collect();
        because.dedup();
        out.push(suggest(
            kinds::SUICIDE_RISK_ASSESSMENT,
            "assess suicide risk now (full C-SSRS or clinical interview) and agree a safety plan",
            because,
            suicide.iter().flat_map(|f| f.evidence.clone()).collect(),
        ));
    }
    if let Some(f) = findings
        .iter()
        .find(|f| f.code == codes::LITHIUM_LEVEL_MISSING)
    {
        out.push(suggest(
            kinds::LITHIUM_LEVEL,
            "order a serum lithium level (trough, about 12 hours after the last dose), with creatinine and TSH",
            vec![f.code.clone()],
            f.evidence.clone(),
        ));
    }
    out
}

pub fn suggest_all(
    status: &StatusVerdict,
    judged: &[JudgedTrial<'_>],
    episode: &Episode,
    findings: &[Finding],
    treatments: &[TreatmentEvent],
) -> Vec<Suggestion> {
    let mut out = Vec::new();
    let evidence_of = |code: &str| -> Vec<SourceRef> {
        findings
            .iter()
            .filter(|f| f.code == code)
            .flat_map(|f| f.evidence.clone())
            .collect()
    };
    let has = |code: &str| findings.iter().any(|f| f.code == code);
    let counted: Vec<SourceRef> = judged
        .iter()
        .filter(|j| {
            status
                .trials
                .iter()
                .any(|c| c.counted && c.trial == j.trial.id)
        })
        .flat_map(|j| j.trial.evidence.clone())
        .collect();
    let status_code = status.status.code().to_string();

    if status.status == TrdStatus::ExcludedBipolarSpectrum || has(codes::MOOD_STABILISER) {
        let text = "review the depression diagnosis: bipolar spectrum signs recorded";
        out.push(suggest(
            kinds::DIAGNOSIS_REVIEW,
            text,
            vec![codes::MOOD_STABILISER.into()],
            evidence_of(codes::MOOD_STABILISER),
        ));
    }
    if matches!(
        status.status,
        TrdStatus::Trd | TrdStatus::ExcludedBipolarSpectrum
    ) {
        let text = format!("refer to psychiatry: {}", status.explanation);
        out.push(suggest(
            kinds::PSYCHIATRY_REFERRAL,
            text,
            vec![status_code.clone()],
            counted.clone(),
        ));
    }
    // Optimise the dose of a trial still going on below the minimum: a dose can only
    // be raised on a drug the patient still takes (an ended trial's low dose is a
    // finding about the past, not a proposal for now).
    if let Some(j) = judged
        .iter()
        .filter(|j| {
            j.verdict
                .reasons
                .iter()
                .any(|r| r.code == ReasonCode::DoseBelowMinimum)
        })
        .max_by_key(|j| j.trial.start)
    {
        if j.trial.ongoing {
            let current = j
                .verdict
                .daily_dose_mg
                .map(fmt)
                .unwrap_or_else(|| "?".into());
            let text = format!(
                "optimise {}: {current} mg/day now, minimum adequate {} mg/day",
                j.ingredient,
                fmt(j.verdict.min_daily_mg)
            );
            out.push(suggest(
                kinds::OPTIMISE_DOSE,
                text,
                vec![codes::SUBTHERAPEUTIC_DOSE.into()],
                j.trial.evidence.clone(),
            ));
        }
    }
    // Checks and work-ups: suggested when any of their findings is present, citing those.
    let when_found = |code: SuggestionCode, text: &str, triggers: &[&str]| {
        let because: Vec<String> = triggers
            .iter()
            .filter(|c| has(c))
            .map(|c| c.to_string())
            .collect();
        let evidence = because.iter().flat_map(|c| evidence_of(c)).collect();
        (!because.is_empty()).then(|| suggest(code, text, because, evidence))
    };
    out.extend(when_found(
        kinds::CHECK_ADHERENCE,
        "check adherence: supply gaps or a statement of not taking",
        &[codes::NON_ADHERENCE],
    ));
    out.extend(when_found(
        kinds::THYROID_WORK_UP,
        "check thyroid function (TSH, free T4)",
        &["no-recent-tsh", "high-tsh", "hypothyroidism"],
    ));
    out.extend(when_found(
        kinds::VITAMIN_D_WORK_UP,
        "check 25-OH vitamin D",
        &["no-recent-vitamin-d", "low-vitamin-d"],
    ));
    out.extend(when_found(
        kinds::DBT,
        "refer for dialectical behaviour therapy: borderline personality disorder, no DBT course",
        &[codes::BORDERLINE_WITHOUT_DBT],
    ));
    out.extend(when_found(
        kinds::ACT_OR_DBT,
        "consider ACT or DBT: an adequate CBT course brought no response",
        &[codes::CBT_WITHOUT_RESPONSE],
    ));
    out.extend(when_found(
        kinds::SLEEP_STUDY,
        "sleep study or review of OSA treatment: untreated OSA mimics depression",
        &["sleep-apnea"],
    ));
    if status.status.at_risk_or_trd() {
        // Augmenting needs a drug still taken: with none supplied any more, the next
        // step is a new trial (a switch, or a restart with augmentation).
        let last_supplied = judged.iter().map(|j| j.trial.end).max();
        let text = match last_supplied {
            Some(end) if !judged.iter().any(|j| j.trial.ongoing) => format!(
                "no antidepressant supplied since {end}: confirm whether it was stopped; for the next trial consider switching, or restarting with augmentation (aripiprazole, bupropion, lithium, T3)"
            ),
            _ => "consider augmentation (aripiprazole, bupropion, lithium, T3) versus switching; VAST-D: aripiprazole augmentation modestly ahead of a switch to bupropion".to_string(),
        };
        out.push(suggest(
            kinds::AUGMENT_OR_SWITCH,
            text,
            vec![status_code.clone()],
            counted.clone(),
        ));
        let trauma = has("ptsd");
        let text = if trauma {
            "psychotherapy review: trauma-focused therapy (PTSD recorded)"
        } else if has(codes::NO_PSYCHOTHERAPY) {
            "psychotherapy: none recorded in this episode; behavioural activation as a core component (CBT; ACT or DBT when CBT has not helped)"
        } else {
            "psychotherapy review (CBT; ACT or DBT when CBT has not helped)"
        };
        let mut because = vec![status_code.clone()];
        if trauma {
            because.push("ptsd".into());
        }
        out.push(suggest(
            kinds::PSYCHOTHERAPY_REVIEW,
            text,
            because,
            evidence_of("ptsd"),
        ));
    }
    // Not for a bipolar spectrum: the TRD pathway does not apply there.
    if status.failed_adequate_trials >= 2 && status.status != TrdStatus::ExcludedBipolarSpectrum {
        let text = format!(
            "consider pharmacogenetic testing after {} failed adequate trials",
            status.failed_adequate_trials
        );
        out.push(suggest(
            kinds::PHARMACOGENETIC_TESTING,
            text,
            vec![status_code.clone()],
            counted.clone(),
        ));
    }
    if status.status == TrdStatus::Trd {
        let mut evidence = counted;
        evidence.extend(treatments.iter().map(|t| t.source.clone()));
        out.push(suggest(
            kinds::NEUROMODULATION_EVALUATION,
            neuromodulation_text(treatments),
            vec![status_code.clone()],
            evidence,
        ));
    }
    // Only this episode's trials: an unmeasured trial years ago asks for nothing now.
    let unmeasured: Vec<&JudgedTrial<'_>> = judged
        .iter()
        .filter(|j| j.response.class == ResponseClass::Unknown)
        .filter(|j| episode.trials.contains(&j.trial.id))
        .collect();
    if !unmeasured.is_empty() {
        let first = unmeasured[0];
        let text = format!(
            "measurement-based care: PHQ-9 at every visit ({})",
            first.response.explanation
        );
        let evidence = unmeasured
            .iter()
            .flat_map(|j| j.trial.evidence.clone())
            .collect();
        out.push(suggest(
            kinds::MEASUREMENT_BASED_CARE,
            text,
            vec!["response-unknown".into()],
            evidence,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn event(kind: &str, date: time::Date, id: &str) -> TreatmentEvent {
        TreatmentEvent {
            kind: kind.into(),
            date,
            source: format!("Procedure/{id}"),
        }
    }

    #[test]
    fn neuromodulation_names_what_was_received_and_what_is_left() {
        assert_eq!(
            neuromodulation_text(&[]),
            "evaluate for ECT, TMS or esketamine"
        );
        let ect = [
            event("ECT", date!(2024 - 06 - 03), "e1"),
            event("ECT", date!(2024 - 06 - 28), "e2"),
        ];
        assert_eq!(
            neuromodulation_text(&ect),
            "received ECT 2024-06-03 to 2024-06-28 (2 sessions); evaluate for TMS or esketamine"
        );
        let all = [
            event("ECT", date!(2024 - 06 - 03), "e1"),
            event("TMS", date!(2024 - 08 - 01), "t1"),
            event("esketamine", date!(2024 - 09 - 02), "k1"),
        ];
        assert_eq!(
            neuromodulation_text(&all),
            "received ECT on 2024-06-03, TMS on 2024-08-01, esketamine on 2024-09-02; review at a specialist treatment-resistant depression service"
        );
    }
}
