//! Work items: what the queue carries. Every intake (notification, RabbitMQ intake
//! message, reconciliation poll, bulk file) becomes one of these.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::notification::Target;
use crate::fhir::mapping::normalise_reference;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WorkItem {
    /// Gather, assess and write back this patient.
    Patient { patient: String },
    /// This resource changed; read it to find its patient.
    Resource { reference: String },
    /// Re-query what changed (a notification that named nothing, or a gap).
    Requery { subscription: Option<String> },
    /// A Bundle holding a whole record: assessed as it is, then written back.
    Bundle { bundle: Value },
}

impl WorkItem {
    /// Items with the same key go to the same shard, so one patient is assessed by
    /// one consumer at a time.
    pub fn key(&self) -> String {
        match self {
            WorkItem::Patient { patient } => patient.clone(),
            WorkItem::Resource { reference } => reference.clone(),
            WorkItem::Requery { subscription } => {
                format!("requery:{}", subscription.as_deref().unwrap_or(""))
            }
            WorkItem::Bundle { bundle } => {
                bundle_patient(bundle).unwrap_or_else(|| "bundle".into())
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            WorkItem::Patient { .. } => "patient",
            WorkItem::Resource { .. } => "resource",
            WorkItem::Requery { .. } => "requery",
            WorkItem::Bundle { .. } => "bundle",
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

fn bundle_patient(bundle: &Value) -> Option<String> {
    bundle.get("entry")?.as_array()?.iter().find_map(|e| {
        let r = e.get("resource")?;
        (r.get("resourceType")?.as_str()? == "Patient").then(|| {
            format!(
                "Patient/{}",
                r.get("id").and_then(Value::as_str).unwrap_or("")
            )
        })
    })
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IntakeError {
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("message is neither a FHIR resource, a Bundle nor {{\"patient\": \"Patient/...\"}}")]
    Unrecognised,
    #[error("`patient` must be a Patient reference, got `{0}`")]
    BadPatient(String),
}

/// An intake-queue message from an integration engine: a FHIR resource, a Bundle,
/// or `{"patient": "Patient/123"}`.
pub fn from_intake_message(body: &[u8]) -> Result<Vec<WorkItem>, IntakeError> {
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
        // A record bundle (it holds its Patient): assessed as it is.
        Some("Bundle") if bundle_patient(&value).is_some() => {
            Ok(vec![WorkItem::Bundle { bundle: value }])
        }
        Some(_) => {
            let reduced =
                super::notification::reduce(body, None).map_err(|_| IntakeError::Unrecognised)?;
            Ok(reduced.targets.into_iter().map(WorkItem::from).collect())
        }
        None => Err(IntakeError::Unrecognised),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_messages_of_each_kind() {
        assert_eq!(
            from_intake_message(br#"{"patient": "Patient/123"}"#),
            Ok(vec![WorkItem::Patient {
                patient: "Patient/123".into()
            }])
        );
        let order = br#"{"resourceType": "MedicationRequest", "id": "1", "subject": {"reference": "Patient/9"}}"#;
        assert_eq!(
            from_intake_message(order),
            Ok(vec![WorkItem::Patient {
                patient: "Patient/9".into()
            }])
        );
        let record = br#"{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "r"}}]}"#;
        let items = from_intake_message(record).expect("bundle");
        assert_eq!(items[0].kind(), "bundle");
        assert_eq!(items[0].key(), "Patient/r");
    }

    #[test]
    fn malformed_intake_messages_are_rejected_with_a_reason() {
        assert!(matches!(
            from_intake_message(b"nope"),
            Err(IntakeError::NotJson(_))
        ));
        assert_eq!(
            from_intake_message(br#"{"hello": 1}"#),
            Err(IntakeError::Unrecognised)
        );
        assert_eq!(
            from_intake_message(br#"{"patient": "Practitioner/1"}"#),
            Err(IntakeError::BadPatient("Practitioner/1".into()))
        );
        assert_eq!(
            from_intake_message(br#"{"patient": "Patient/"}"#),
            Err(IntakeError::BadPatient("Patient/".into()))
        );
    }
}
