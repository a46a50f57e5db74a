//! QuestionnaireResponse -> [`ObservationFact`]: a filled-in form read as a panel.
//! The form is named by its questionnaire canonical (a LOINC form code when the
//! canonical ends in one, "http://loinc.org/q/44249-1"); each answered item becomes a
//! component coded by the LOINC code its `linkId` or `definition` carries. The
//! engine then scores it exactly as an Observation panel: the total-score item when
//! present, else the items by the instrument's scoring rules.

use fhir_sdk::r4b::codes::QuestionnaireResponseStatus;
use fhir_sdk::r4b::resources::{
    QuestionnaireResponse, QuestionnaireResponseItem, QuestionnaireResponseItemAnswerValue,
};
use fhir_sdk::r4b::types::{Coding, ExtensionValue};

use super::date_of;
use crate::clinical::record::{
    Code, ObservationFact, ObservedComponent, ObservedValue, SourceRef, LOINC,
    QUESTIONNAIRE_CANONICAL,
};

/// Extensions giving a coded answer's score (R4 `ordinalValue`, R5 `itemWeight`).
const ANSWER_SCORE_EXTENSIONS: &[&str] = &[
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
];

/// Statuses whose answers are used: a form still being filled in, stopped or
/// entered in error is not a score.
pub const QUESTIONNAIRE_STATUSES_USED: &[&str] = &["completed", "amended"];

pub fn questionnaire_status(response: &QuestionnaireResponse) -> &'static str {
    match response.status {
        QuestionnaireResponseStatus::Completed => "completed",
        QuestionnaireResponseStatus::Amended => "amended",
        QuestionnaireResponseStatus::InProgress => "in-progress",
        QuestionnaireResponseStatus::Stopped => "stopped",
        QuestionnaireResponseStatus::EnteredInError => "entered-in-error",
    }
}

pub fn questionnaire_response_of(
    source: SourceRef,
    response: &QuestionnaireResponse,
) -> ObservationFact {
    let mut codes = Vec::new();
    if let Some(canonical) = response.questionnaire.as_deref() {
        codes.push(Code {
            system: QUESTIONNAIRE_CANONICAL.into(),
            code: canonical.to_string(),
            display: None,
        });
        if let Some(form) = loinc_in(canonical.split('|').next().unwrap_or(canonical)) {
            codes.push(loinc(form));
        }
    }
    let mut components = Vec::new();
    collect_items(response.item.iter().flatten(), &mut components);
    ObservationFact {
        source,
        codes,
        effective: response.authored.as_ref().and_then(date_of),
        value: None,
        reference_high: None,
        reference_low: None,
        components,
        members: Vec::new(),
    }
}

/// Every answered item, groups and items nested under answers included.
fn collect_items<'a>(
    items: impl Iterator<Item = &'a QuestionnaireResponseItem>,
    out: &mut Vec<ObservedComponent>,
) {
    for item in items {
        let codes: Vec<Code> = loinc_in(&item.link_id)
            .or_else(|| item.definition.as_deref().and_then(loinc_in))
            .map(loinc)
            .into_iter()
            .collect();
        for answer in item.answer.iter().flatten() {
            if !codes.is_empty() {
                if let Some(value) = answer.value.as_ref().and_then(answer_value) {
                    out.push(ObservedComponent {
                        codes: codes.clone(),
                        value: Some(value),
                    });
                }
            }
            collect_items(answer.item.iter().flatten(), out);
        }
        collect_items(item.item.iter().flatten(), out);
    }
}

fn answer_value(value: &QuestionnaireResponseItemAnswerValue) -> Option<ObservedValue> {
    let number = |value| ObservedValue::Number { value, unit: None };
    match value {
        QuestionnaireResponseItemAnswerValue::Integer(i) => Some(number(f64::from(*i))),
        QuestionnaireResponseItemAnswerValue::Decimal(d) => Some(number(*d)),
        QuestionnaireResponseItemAnswerValue::Quantity(q) => q.value.map(number),
        QuestionnaireResponseItemAnswerValue::Boolean(b) => Some(ObservedValue::Boolean(*b)),
        QuestionnaireResponseItemAnswerValue::String(s) => Some(ObservedValue::Text(s.clone())),
        QuestionnaireResponseItemAnswerValue::Coding(coding) => Some(
            answer_score(coding)
                .map(number)
                .unwrap_or_else(|| ObservedValue::Coded(vec![code_of(coding)])),
        ),
        _ => None,
    }
}

/// A coded answer's own score, when the form carries one.
fn answer_score(coding: &Coding) -> Option<f64> {
    coding
        .extension
        .iter()
        .filter(|e| ANSWER_SCORE_EXTENSIONS.contains(&e.url.as_str()))
        .find_map(|e| match e.value.as_ref()? {
            ExtensionValue::Decimal(d) => Some(*d),
            ExtensionValue::Integer(i) => Some(f64::from(*i)),
            _ => None,
        })
}

fn code_of(coding: &Coding) -> Code {
    Code {
        system: coding.system.clone().unwrap_or_default(),
        code: coding.code.clone().unwrap_or_default(),
        display: coding.display.clone(),
    }
}

fn loinc(code: &str) -> Code {
    Code {
        system: LOINC.into(),
        code: code.to_string(),
        display: None,
    }
}

/// The LOINC code a link id, definition or canonical ends in: "44250-9",
/// "/44249-1/44250-9", "http://loinc.org/q/44249-1", "http://loinc.org/rdf#44250-9".
fn loinc_in(text: &str) -> Option<&str> {
    let last = text.rsplit(['/', '#', ':']).next()?;
    let (digits, check) = last.split_once('-')?;
    let is_loinc = (1..=7).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && check.len() == 1
        && check.bytes().all(|b| b.is_ascii_digit());
    is_loinc.then_some(last)
}

#[cfg(test)]
mod tests {
    use super::loinc_in;

    #[test]
    fn loinc_codes_are_found_where_forms_put_them() {
        for (text, found) in [
            ("44250-9", Some("44250-9")),
            ("/44249-1/44250-9", Some("44250-9")),
            ("http://loinc.org/q/44249-1", Some("44249-1")),
            ("http://loinc.org/rdf#44250-9", Some("44250-9")),
            ("PHQ9_1", None),
            ("1.1", None),
            ("12345678-9", None),
            ("4425-09", None),
            ("", None),
        ] {
            assert_eq!(loinc_in(text), found, "{text}");
        }
    }
}
