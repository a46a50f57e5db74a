//! An intake-queue message from an integration engine (a FHIR resource, a Bundle, or
//! a patient reference) reduced to [`WorkItem`]s.

use serde_json::Value;

use crate::fhir::mapping::normalise_reference;
use crate::fhir::writeback::OWN_TAG_SYSTEM;
use crate::work::{bundle_patients, WorkItem};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IntakeError {
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("message is neither a FHIR resource, a Bundle nor {{\"patient\": \"Patient/...\"}}")]
    Unrecognised,
    #[error("`patient` must be a Patient reference, got `{0}`")]
    BadPatient(String),
    #[error("a complete-record Bundle must hold exactly one Patient, this one holds {0}")]
    CompleteRecordPatients(usize),
    #[error("the message names no patient and no resource the EHR could be asked about")]
    NamesNoPatient,
}

/// The `meta.tag` code (in the service's trd-meta CodeSystem) by which a sender
/// declares an intake Bundle to be a patient's whole record.
pub const COMPLETE_RECORD_TAG: &str = "complete-record";

/// Whether a Bundle carries the complete-record tag.
fn tagged_complete(bundle: &Value) -> bool {
    bundle
        .pointer("/meta/tag")
        .and_then(Value::as_array)
        .is_some_and(|tags| {
            tags.iter().any(|t| {
                t.get("system").and_then(Value::as_str) == Some(OWN_TAG_SYSTEM)
                    && t.get("code").and_then(Value::as_str) == Some(COMPLETE_RECORD_TAG)
            })
        })
}

/// An intake-queue message from an integration engine: a FHIR resource, a Bundle,
/// or `{"patient": "Patient/123"}`.
///
/// A Bundle is a hint, like any notification: each patient it names is gathered
/// afresh from the EHR, because a sender forwarding "the Patient and one new order"
/// must not retire what the rest of the record supports. Only a Bundle declared
/// complete (`declared_complete`, from the [`crate::queue::COMPLETE_RECORD_HEADER`], or the
/// [`COMPLETE_RECORD_TAG`] on the Bundle) is assessed as it is; it must hold
/// exactly one patient, so it stays one patient's unit of work.
pub fn from_intake_message(
    body: &[u8],
    declared_complete: bool,
) -> Result<Vec<WorkItem>, IntakeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| IntakeError::NotJson(e.to_string()))?;
    if let Some(patient) = value
        .get("patient")
        .and_then(Value::as_str)
        .filter(|_| value.get("resourceType").is_none())
    {
        let patient = normalise_reference(patient);
        if !patient.starts_with("Patient/") || patient.len() <= "Patient/".len() {
            return Err(IntakeError::BadPatient(patient));
        }
        return Ok(vec![WorkItem::Patient { patient }]);
    }
    match value.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") if declared_complete || tagged_complete(&value) => {
            match bundle_patients(&value).len() {
                1 => Ok(vec![WorkItem::Bundle { bundle: value }]),
                n => Err(IntakeError::CompleteRecordPatients(n)),
            }
        }
        Some(_) => {
            let reduced = super::notification::reduce(body, None, None)
                .map_err(|_| IntakeError::Unrecognised)?;
            if reduced.targets.is_empty() && reduced.ignored_own == 0 {
                return Err(IntakeError::NamesNoPatient);
            }
            Ok(reduced.targets.into_iter().map(WorkItem::from).collect())
        }
        None => Err(IntakeError::Unrecognised),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient(p: &str) -> WorkItem {
        WorkItem::Patient { patient: p.into() }
    }

    #[test]
    fn intake_messages_of_each_kind() {
        assert_eq!(
            from_intake_message(br#"{"patient": "Patient/123"}"#, false),
            Ok(vec![patient("Patient/123")])
        );
        let order = br#"{"resourceType": "MedicationRequest", "id": "1", "subject": {"reference": "Patient/9"}}"#;
        assert_eq!(
            from_intake_message(order, false),
            Ok(vec![patient("Patient/9")])
        );
    }

    /// "Patient + one new order" from an integration engine must not be assessed on
    /// its own: it names the patient, whose whole record is gathered from the EHR.
    #[test]
    fn a_bundle_is_a_hint_naming_its_patients() {
        let partial = br#"{"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "r"}},
            {"resource": {"resourceType": "MedicationRequest", "id": "m", "subject": {"reference": "Patient/r"}}},
            {"resource": {"resourceType": "Observation", "id": "o", "subject": {"reference": "Patient/s"}}}]}"#;
        assert_eq!(
            from_intake_message(partial, false),
            Ok(vec![patient("Patient/r"), patient("Patient/s")])
        );
    }

    #[test]
    fn a_bundle_declared_complete_is_assessed_as_it_is() {
        let record = br#"{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "r"}}]}"#;
        let items = from_intake_message(record, true).expect("declared by header");
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].kind(), items[0].key()),
            ("bundle", "Patient/r".into())
        );

        let tagged = br#"{"resourceType": "Bundle", "type": "collection",
            "meta": {"tag": [{"system": "https://fhir.trd-sentinel.org/CodeSystem/trd-meta", "code": "complete-record"}]},
            "entry": [{"resource": {"resourceType": "Patient", "id": "r"}}]}"#;
        let items = from_intake_message(tagged, false).expect("declared by tag");
        assert_eq!(
            (items[0].kind(), items[0].key()),
            ("bundle", "Patient/r".into())
        );

        let two = br#"{"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient", "id": "a"}},
            {"resource": {"resourceType": "Patient", "id": "b"}}]}"#;
        assert_eq!(
            from_intake_message(two, true),
            Err(IntakeError::CompleteRecordPatients(2))
        );
    }

    #[test]
    fn malformed_intake_messages_are_rejected_with_a_reason() {
        assert!(matches!(
            from_intake_message(b"nope", false),
            Err(IntakeError::NotJson(_))
        ));
        assert_eq!(
            from_intake_message(br#"{"hello": 1}"#, false),
            Err(IntakeError::Unrecognised)
        );
        assert_eq!(
            from_intake_message(br#"{"patient": "Practitioner/1"}"#, false),
            Err(IntakeError::BadPatient("Practitioner/1".into()))
        );
        assert_eq!(
            from_intake_message(br#"{"patient": "Patient/"}"#, false),
            Err(IntakeError::BadPatient("Patient/".into()))
        );
        assert_eq!(
            from_intake_message(
                br#"{"resourceType": "Bundle", "type": "collection"}"#,
                false
            ),
            Err(IntakeError::NamesNoPatient)
        );
    }
}
