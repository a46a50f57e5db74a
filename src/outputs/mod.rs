//! What an assessment becomes for each channel, in one place: the write-back
//! transaction (the profiled Flag, Observation, DetectedIssues, ServiceRequests and
//! Provenance), the treatment summary as a FHIR document, and the event integration
//! engines receive. Adapters only send what is built here (the EHR client, the broker,
//! `evaluate`'s stdout); the quality measures' MeasureReports are in
//! [`measure_report`], and a new channel's output (an AuditEvent) belongs here too.

pub mod measure_report;

use serde::Serialize;
use serde_json::Value;

use crate::clinical::Assessment;
use crate::config::WritebackSettings;
use crate::ehr::PatientRun;
use crate::fhir::writeback::{desired_resources, plan};

/// The identifier system of documents written without a configuration (`evaluate`).
pub const DOCUMENT_IDENTIFIER_SYSTEM: &str = "https://fhir.trd-sentinel.org/id";

/// The transaction write-back would send for this assessment to an EHR holding none
/// of the service's resources; `None` when there is nothing to report.
pub fn writeback_transaction(
    assessment: &Assessment,
    settings: &WritebackSettings,
) -> Option<Value> {
    let desired = desired_resources(assessment, settings);
    let mut plan = plan(assessment, desired, &[], settings);
    (!plan.entries.is_empty()).then(|| plan.take_transaction())
}

/// The treatment summary as a FHIR document (a `document` Bundle), or nothing for a
/// patient with nothing to report.
pub fn summary_document(assessment: &Assessment) -> Option<Value> {
    if assessment.has_nothing_to_report() {
        return None;
    }
    let summary = crate::clinical::summary::summarise(assessment);
    Some(crate::fhir::document::document_bundle(
        &summary,
        assessment,
        DOCUMENT_IDENTIFIER_SYSTEM,
    ))
}

/// The event published after a patient's run (routing key `assessment.<status>`,
/// message id the content hash, so consumers de-duplicate re-sent events). Carries
/// ids, codes and counts; its one line of text is the narrative's status line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssessmentEvent<'a> {
    pub patient: &'a str,
    pub previous_status: Option<&'a str>,
    pub status: &'static str,
    pub failed_adequate_trials: u32,
    pub summary: &'a str,
    pub written: &'a [String],
    pub retired: &'a [String],
    pub as_of: String,
    pub content_hash: &'a str,
    /// Published although nothing was written (dry-run, or no resources configured).
    pub events_only: bool,
}

impl<'a> AssessmentEvent<'a> {
    pub fn of(run: &'a PatientRun, events_only: bool) -> Self {
        let a = &run.assessment;
        Self {
            patient: &a.patient,
            previous_status: run.write.previous_status.as_deref(),
            status: a.trd_status.code(),
            failed_adequate_trials: a.failed_adequate_trials,
            summary: a.narrative.text.lines().next().unwrap_or_default(),
            written: &run.write.plan.written,
            retired: &run.write.plan.retired,
            as_of: a.as_of.to_string(),
            content_hash: &run.write.content_hash,
            events_only,
        }
    }

    pub fn routing_key(&self) -> String {
        format!("assessment.{}", self.status)
    }
}
