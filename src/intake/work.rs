//! Work items: what the queue carries. Every intake (notification, RabbitMQ intake
//! message, reconciliation poll, bulk file) becomes one of these.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::notification::Target;
use crate::fhir::mapping::normalise_reference;
use crate::fhir::writeback::OWN_TAG_SYSTEM;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WorkItem {
    /// Gather, assess and write back this patient.
    Patient { patient: String },
    /// This resource changed; read it to find its patient.
    Resource { reference: String },
    /// Re-query what changed (a notification that named nothing, or a gap).
    Requery { subscription: Option<String> },
    /// The reconciliation schedule's tick: every replica queues one each interval,
    /// and a tick that finds the shared watermark younger than nine tenths of an interval
    /// is skipped, so one poll runs per interval however many replicas there are.
    ScheduledPoll,
    /// A subscription's event counter as a notification reported it. Keyed by the
    /// subscription, so one consumer (across replicas) sees every count and decides
    /// whether events were missed.
    EventCount {
        subscription: String,
        /// The notification's `events-since-subscription-start`, when it sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        events_since_start: Option<u64>,
        /// The notification's events' own numbers (`eventNumber`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        event_numbers: Vec<u64>,
    },
    /// A Bundle its sender declared one patient's complete record: assessed as it
    /// is, then written back.
    Bundle { bundle: Value },
}

impl WorkItem {
    /// Items with the same key go to the same shard, so one patient is assessed by
    /// one consumer at a time.
    pub fn key(&self) -> String {
        match self {
            WorkItem::Patient { patient } => patient.clone(),
            WorkItem::Resource { reference } => reference.clone(),
            // Every poll on one shard: polls never overlap, across replicas, and
            // each reads the watermark the one before saved.
            WorkItem::Requery { .. } | WorkItem::ScheduledPoll => "requery".into(),
            WorkItem::Bundle { bundle } => {
                bundle_patient(bundle).unwrap_or_else(|| "bundle".into())
            }
            WorkItem::EventCount { subscription, .. } => format!("events:{subscription}"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            WorkItem::Patient { .. } => "patient",
            WorkItem::Resource { .. } => "resource",
            WorkItem::Requery { .. } => "requery",
            WorkItem::ScheduledPoll => "scheduled-poll",
            WorkItem::Bundle { .. } => "bundle",
            WorkItem::EventCount { .. } => "event-count",
        }
    }
}

impl From<Target> for WorkItem {
    fn from(target: Target) -> Self {
        match target {
            Target::Patient { patient } => WorkItem::Patient { patient },
            Target::Resource { reference } => WorkItem::Resource { reference },
            Target::Requery { subscription } => WorkItem::Requery { subscription },
        }
    }
}

/// The one patient a complete-record Bundle is about (checked at intake).
fn bundle_patient(bundle: &Value) -> Option<String> {
    bundle_patients(bundle).into_iter().next()
}

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

/// The AMQP header by which a sender declares an intake Bundle a complete record
/// (for senders that cannot tag the Bundle itself).
pub const COMPLETE_RECORD_HEADER: &str = "x-trd-complete-record";

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
/// complete (`declared_complete`, from the [`COMPLETE_RECORD_HEADER`], or the
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

/// The Patient resources a Bundle holds.
fn bundle_patients(bundle: &Value) -> Vec<String> {
    let mut patients: Vec<String> = bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let r = e.get("resource")?;
            (r.get("resourceType")?.as_str()? == "Patient").then(|| {
                format!(
                    "Patient/{}",
                    r.get("id").and_then(Value::as_str).unwrap_or("")
                )
            })
        })
        .collect();
    patients.sort();
    patients.dedup();
    patients
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
