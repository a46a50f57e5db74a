//! A trial's verdict and response in the few words the picture, the trials table and
//! the population index print.

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
