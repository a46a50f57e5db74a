//! A trial's verdict and response in the few words the picture, the trials table and
//! the population index print.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::clinical::adequacy::{Adequacy, ReasonCode};
use crate::clinical::assessment::TrialAssessment;
use crate::clinical::response::ResponseClass;

/// A trial's verdict in a few words.
pub fn verdict_label(t: &TrialAssessment) -> String {
    match t.adequacy {
        Adequacy::Adequate => format!("adequate · {}", response_label(t.response.class)),
        _ => t
            .reasons
            .first()
            .map(|r| reason_label(*r))
            .unwrap_or("not adequate")
            .to_string(),
    }
}

pub fn response_label(class: ResponseClass) -> &'static str {
    match class {
        ResponseClass::NonResponse => "non-response",
        ResponseClass::Partial => "partial response",
        ResponseClass::Response => "response",
        ResponseClass::Remission => "remission",
        ResponseClass::Unknown => "response unknown",
    }
}

fn reason_label(code: ReasonCode) -> &'static str {
    match code {
        ReasonCode::DoseUnknown => "dose unknown",
        ReasonCode::DoseBelowMinimum => "dose below minimum",
        ReasonCode::Titrating => "titrating",
        ReasonCode::AsNeededDosing => "as needed",
        ReasonCode::StoppedBeforeWeek4 => "stopped before week 4",
        ReasonCode::TooShort => "too short",
        ReasonCode::OngoingTooEarly => "ongoing, too early to tell",
        ReasonCode::LowAdherence => "low adherence",
        ReasonCode::ReportedNotTaken => "reported not taken",
    }
}

/// A project CodeSystem's displays by code.
fn displays(json: &str) -> HashMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Concept {
        code: String,
        display: String,
    }
    #[derive(serde::Deserialize)]
    struct CodeSystem {
        concept: Vec<Concept>,
    }
    serde_json::from_str::<CodeSystem>(json)
        .map(|cs| {
            cs.concept
                .into_iter()
                .map(|c| (c.code, c.display))
                .collect()
        })
        .unwrap_or_default()
}

static FINDINGS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    displays(include_str!(
        "../../profiles/codesystems/CodeSystem-trd-finding.json"
    ))
});
static STATUSES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    displays(include_str!(
        "../../profiles/codesystems/CodeSystem-trd-status.json"
    ))
});
static REASONS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    displays(include_str!(
        "../../profiles/codesystems/CodeSystem-trd-adequacy-reason.json"
    ))
});

fn label_in(table: &HashMap<String, String>, code: &str) -> String {
    table.get(code).cloned().unwrap_or_else(|| code.to_string())
}

/// A finding code as its CodeSystem displays it ("Dose below minimum").
pub fn finding_label(code: &str) -> String {
    label_in(&FINDINGS, code)
}

/// A TRD status code in words ("Treatment-resistant depression").
pub fn status_label(code: &str) -> String {
    label_in(&STATUSES, code)
}

/// An adequacy reason code in words.
pub fn adequacy_reason_label(code: &str) -> String {
    label_in(&REASONS, code)
}
