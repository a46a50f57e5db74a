//! `trd-sentinel export`: a whole health system from the EHR itself. A Bulk Data
//! export ([`crate::fhir::bulk`]) downloaded resumably into a directory
//! ([`download`]), then handed on: kept for `evaluate`, assessed here, written back
//! here, or queued as one complete record per patient for every replica of the
//! service ([`patients`]). `--since last` ([`mark`]) makes the nightly sweep
//! incremental; a delta names patients, whose records are then gathered whole.

pub mod command;
pub mod download;
pub mod mark;
pub mod patients;

use std::collections::BTreeSet;
use std::path::PathBuf;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use time::Date;

use crate::batch::BatchError;
use crate::ehr::{Ehr, EhrError};
use crate::fhir::bulk::BulkError;
use crate::fhir::client::FhirError;
use crate::fhir::mapping::patient_of;
use crate::fhir::read::ResourcePool;
use crate::queue::QueueError;
use crate::queue::Rabbit;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Bulk(#[from] BulkError),
    #[error(transparent)]
    Batch(BatchError),
    #[error("{} holds an unfinished export of another request ({request}); `--restart` cancels it and starts this one, or use another --out", dir.display())]
    OtherJob { dir: PathBuf, request: String },
    #[error("--since last: no earlier export is recorded ({0}); run a full export first")]
    NoEarlierExport(String),
    #[error("the export mark: {0}")]
    Mark(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Ehr(#[from] EhrError),
    #[error(transparent)]
    Evaluate(#[from] crate::report::run::RunError),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("--queue needs the broker: set amqp.url (TRD_AMQP_URL)")]
    NoBroker,
    #[error("export cancelled")]
    Cancelled,
    #[error("{failed} of {patients} patients could not be written back (logged by id)")]
    NotWritten { failed: usize, patients: usize },
}

impl From<FhirError> for ExportError {
    fn from(e: FhirError) -> Self {
        ExportError::Bulk(BulkError::Fhir(e))
    }
}

/// Publishes each patient's complete record to the intake queue (with the
/// complete-record header): every replica assesses and writes back its share.
pub async fn queue_complete_records(
    rabbit: &Rabbit,
    records: patients::CompleteRecords,
) -> Result<usize, ExportError> {
    let mut published = 0usize;
    for record in records {
        let (_, bundle) = record?;
        let body = serde_json::to_vec(&bundle).map_err(QueueError::from)?;
        rabbit.publish_intake(&body, true).await?;
        published += 1;
    }
    Ok(published)
}

/// Publishes an id-only item per patient: the service gathers each record whole (a
/// delta is a hint, never a record: it must not retire what the rest supports).
pub async fn queue_patients(
    rabbit: &Rabbit,
    patients: &BTreeSet<String>,
) -> Result<usize, ExportError> {
    for patient in patients {
        let body = serde_json::to_vec(&json!({ "patient": patient })).map_err(QueueError::from)?;
        rabbit.publish_intake(&body, false).await?;
    }
    Ok(patients.len())
}

/// What `--write` did.
#[derive(Debug, Default)]
pub struct Written {
    pub patients: usize,
    pub written: usize,
    pub retired: usize,
    pub failed: usize,
}

/// Assesses each complete record here and writes it back (idempotent, as the service
/// does), a few patients at a time.
pub async fn write_complete_records(
    ehr: &Ehr,
    records: patients::CompleteRecords,
    as_of: Date,
) -> Result<Written, ExportError> {
    Ok(write_each(ehr, records, |record| async move {
        let (patient, bundle) = record.map_err(|e| e.to_string())?;
        let mut pool = ResourcePool::new(ehr.engine.relevance.clone());
        pool.add_value(&bundle, &patient);
        let record = pool.record_for(&patient);
        ehr.assess_and_write(&record, None, as_of)
            .await
            .map_err(|e| format!("{patient}: {e}"))
    })
    .await)
}

/// Gathers each patient whole from the EHR, assesses and writes back (`--since`).
pub async fn write_patients(ehr: &Ehr, patients: &BTreeSet<String>, as_of: Date) -> Written {
    write_each(ehr, patients, |patient| async move {
        ehr.run_patient(patient, as_of)
            .await
            .map_err(|e| format!("{patient}: {e}"))
    })
    .await
}

/// Runs `write` for each item, `fhir.max_concurrency` at a time, and counts what was
/// written and retired and who failed.
async fn write_each<I, F, Fut>(ehr: &Ehr, items: I, write: F) -> Written
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<crate::ehr::PatientRun, String>>,
{
    let results: Vec<Result<(usize, usize), String>> = stream::iter(items)
        .map(|item| {
            let run = write(item);
            async move {
                let run = run.await?;
                Ok((run.write.plan.written.len(), run.write.plan.retired.len()))
            }
        })
        .buffer_unordered(ehr.client.concurrency())
        .collect()
        .await;
    tally(results)
}

fn tally(results: Vec<Result<(usize, usize), String>>) -> Written {
    let mut out = Written::default();
    for result in results {
        out.patients += 1;
        match result {
            Ok((written, retired)) => {
                out.written += written;
                out.retired += retired;
            }
            Err(e) => {
                // Ids and the error's kind only: FHIR errors carry no body text.
                tracing::error!(error = %e, "export: a patient could not be written back");
                out.failed += 1;
            }
        }
    }
    out
}

/// The patients of resources deleted since `_since`: a deleted order can end a trial
/// or retire a Flag, so its patient is assessed again. The deleted resource is gone;
/// its history names its patient (one request each). Returns the patients found and
/// how many deletions named none.
pub async fn patients_of_deleted(ehr: &Ehr, deleted: &[String]) -> (BTreeSet<String>, usize) {
    let mut patients = BTreeSet::new();
    let mut unknown = 0usize;
    for reference in deleted {
        if reference.starts_with("Patient/") {
            // The patient is gone: nothing to assess.
            continue;
        }
        let history = ehr
            .client
            .send(
                reqwest::Method::GET,
                &format!("{reference}/_history?_count=5"),
                None,
                crate::fhir::client::Idempotency::Idempotent,
            )
            .await;
        let found = history.ok().and_then(|bundle| {
            bundle
                .get("entry")
                .and_then(Value::as_array)?
                .iter()
                .filter_map(|e| e.get("resource"))
                .find_map(patient_of)
        });
        match found {
            Some(patient) => {
                patients.insert(patient);
            }
            None => unknown += 1,
        }
    }
    (patients, unknown)
}
