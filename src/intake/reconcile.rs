//! Reconciliation: for EHRs that drop notifications, poll the watched resource types
//! by `_lastUpdated` and queue every patient whose data changed. The watermark is
//! saved (atomically) only after those patients are durably queued, so it survives
//! restarts and a crash never skips a change.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::work::WorkItem;
use crate::ehr::is_own_resource;
use crate::fhir::client::{FhirClient, FhirError};
use crate::fhir::mapping::patient_of;
use crate::queue::{QueueError, WorkQueue};

pub const WATCHED_TYPES: &[&str] = &[
    "MedicationRequest",
    "MedicationDispense",
    "MedicationStatement",
    "Observation",
    "Condition",
    "Procedure",
];

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("watermark file {path}: {detail}")]
    State { path: String, detail: String },
}

pub struct Reconciler {
    pub state_file: PathBuf,
    /// Where to start when there is no watermark yet.
    pub initial_look_back_days: i64,
}

impl Reconciler {
    pub fn watermark(&self) -> Result<Option<OffsetDateTime>, ReconcileError> {
        match std::fs::read_to_string(&self.state_file) {
            Ok(text) => OffsetDateTime::parse(text.trim(), &Rfc3339)
                .map(Some)
                .map_err(|e| ReconcileError::State {
                    path: self.state_file.display().to_string(),
                    detail: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ReconcileError::State {
                path: self.state_file.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    fn save(&self, mark: OffsetDateTime) -> Result<(), ReconcileError> {
        let state = |e: std::io::Error| ReconcileError::State {
            path: self.state_file.display().to_string(),
            detail: e.to_string(),
        };
        if let Some(dir) = self.state_file.parent() {
            std::fs::create_dir_all(dir).map_err(state)?;
        }
        let text = mark.format(&Rfc3339).map_err(|e| ReconcileError::State {
            path: self.state_file.display().to_string(),
            detail: e.to_string(),
        })?;
        let temporary = self.state_file.with_extension("tmp");
        std::fs::write(&temporary, text).map_err(state)?;
        std::fs::rename(&temporary, &self.state_file).map_err(state)
    }

    /// One poll: queue the patients changed since the watermark; returns how many.
    pub async fn poll_once(
        &self,
        client: &FhirClient,
        queue: &WorkQueue,
    ) -> Result<usize, ReconcileError> {
        let now = OffsetDateTime::now_utc();
        let since = self
            .watermark()?
            .unwrap_or(now - time::Duration::days(self.initial_look_back_days));
        // A minute of overlap absorbs clock skew; duplicates are harmless (idempotent).
        let from = (since - time::Duration::minutes(1))
            .format(&Rfc3339)
            .unwrap_or_default();
        let mut patients = BTreeSet::new();
        for kind in WATCHED_TYPES {
            for page in client
                .search(kind, &[("_lastUpdated", format!("ge{from}"))])
                .await?
            {
                for entry in page
                    .get("entry")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(resource) = entry.get("resource") else {
                        continue;
                    };
                    if is_own_resource(resource) {
                        continue;
                    }
                    let patient = patient_of(resource);
                    if let Some(p) = patient {
                        patients.insert(p);
                    }
                }
            }
        }
        for patient in &patients {
            queue
                .enqueue(&WorkItem::Patient {
                    patient: patient.clone(),
                })
                .await?;
        }
        self.save(now)?;
        tracing::info!(patients = patients.len(), since = %from, "reconciliation poll");
        Ok(patients.len())
    }
}
