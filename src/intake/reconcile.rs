//! Reconciliation: for EHRs that drop notifications, poll the watched resource types
//! by `_lastUpdated` and queue every patient whose data changed. The watermark is
//! saved only after those patients are durably queued, so a crash never skips a
//! change. With a broker it lives in the broker (a one-message queue every replica
//! reads), so any replica continues where the last poll ended; without one (a single
//! process) in a file. Polls run on one work shard, one at a time across replicas.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ehr::is_own_resource;
use crate::fhir::client::{FhirClient, FhirError};
use crate::fhir::mapping::patient_of;
use crate::fhir::read::Relevance;
use crate::queue::{QueueError, WorkQueue};
use crate::work::WorkItem;

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
    /// The watermark's file when there is no broker.
    pub state_file: PathBuf,
    /// Where to start when there is no watermark yet.
    pub initial_look_back_days: i64,
    /// A scheduled poll this soon after the last one is skipped: every replica queues
    /// a tick each interval, and one poll per interval is enough.
    pub min_spacing: Duration,
    /// The codes the engine reads: Observations and Procedures are asked for by code,
    /// and a changed resource the engine would not read queues no one.
    pub relevance: Relevance,
}

/// What one poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// Queued this many patients.
    Polled(usize),
    /// A scheduled tick right after another poll: nothing asked of the EHR.
    Skipped,
}

impl PollOutcome {
    pub fn label(self) -> &'static str {
        match self {
            PollOutcome::Polled(_) => "polled",
            PollOutcome::Skipped => "skipped",
        }
    }
}

/// Where the last poll ended, and when it ran.
///
/// `since` is the EHR's own time (the newest `meta.lastUpdated` a poll saw; it never
/// moves backwards), so a replica whose clock is off cannot skip changes. `polled_at`
/// is the polling replica's clock and only spaces scheduled polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    pub since: OffsetDateTime,
    pub polled_at: OffsetDateTime,
}

impl Watermark {
    /// `{"since": ..., "polled_at": ...}`; a bare RFC 3339 time (what earlier versions
    /// saved) is read as both.
    fn parse(text: &str) -> Result<Self, String> {
        let time = |t: &str| OffsetDateTime::parse(t.trim(), &Rfc3339).map_err(|e| e.to_string());
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => {
                let field = |name: &str| {
                    fields
                        .get(name)
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("no {name}"))
                        .and_then(time)
                };
                Ok(Watermark {
                    since: field("since")?,
                    polled_at: field("polled_at")?,
                })
            }
            _ => time(text).map(|t| Watermark {
                since: t,
                polled_at: t,
            }),
        }
    }

    fn render(&self) -> Result<String, String> {
        let time = |t: OffsetDateTime| t.format(&Rfc3339).map_err(|e| e.to_string());
        Ok(
            serde_json::json!({ "since": time(self.since)?, "polled_at": time(self.polled_at)? })
                .to_string(),
        )
    }
}

/// The newest `meta.lastUpdated` of a resource, if it has a readable one.
fn last_updated(resource: &Value) -> Option<OffsetDateTime> {
    resource
        .pointer("/meta/lastUpdated")
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// How often an empty watermark queue is asked again before it counts as empty: a
/// replica reading it at that moment holds the one message for a round trip.
const EMPTY_READS: u32 = 3;

impl Reconciler {
    /// The last poll's watermark: from the broker when there is one (or, the first
    /// time, the file an earlier version kept), else the file.
    pub async fn watermark(&self, queue: &WorkQueue) -> Result<Option<Watermark>, ReconcileError> {
        let text = match queue {
            WorkQueue::Rabbit(rabbit) => {
                let mut found = None;
                for attempt in 0..EMPTY_READS {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    found = rabbit.watermark().await?;
                    if found.is_some() {
                        break;
                    }
                }
                match found {
                    Some(body) => Some(String::from_utf8_lossy(&body).into_owned()),
                    None => self.read_file()?,
                }
            }
            WorkQueue::Local(_) => self.read_file()?,
        };
        text.map(|t| {
            Watermark::parse(&t).map_err(|detail| ReconcileError::State {
                path: self.state_place(queue),
                detail,
            })
        })
        .transpose()
    }

    fn state_place(&self, queue: &WorkQueue) -> String {
        match queue {
            WorkQueue::Rabbit(rabbit) => format!("queue {}", rabbit.watermark_queue()),
            WorkQueue::Local(_) => self.state_file.display().to_string(),
        }
    }

    fn read_file(&self) -> Result<Option<String>, ReconcileError> {
        match std::fs::read_to_string(&self.state_file) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ReconcileError::State {
                path: self.state_file.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }

    async fn save(&self, queue: &WorkQueue, mark: Watermark) -> Result<(), ReconcileError> {
        let text = mark.render().map_err(|detail| ReconcileError::State {
            path: self.state_place(queue),
            detail,
        })?;
        match queue {
            WorkQueue::Rabbit(rabbit) => Ok(rabbit.save_watermark(text.as_bytes()).await?),
            WorkQueue::Local(_) => self.save_file(&text),
        }
    }

    fn save_file(&self, text: &str) -> Result<(), ReconcileError> {
        let state = |e: std::io::Error| ReconcileError::State {
            path: self.state_file.display().to_string(),
            detail: e.to_string(),
        };
        if let Some(dir) = self.state_file.parent() {
            std::fs::create_dir_all(dir).map_err(state)?;
        }
        let temporary = self.state_file.with_extension("tmp");
        std::fs::write(&temporary, text).map_err(state)?;
        std::fs::rename(&temporary, &self.state_file).map_err(state)
    }

    /// One poll: queue the patients changed since the watermark. A `scheduled` tick
    /// less than [`Reconciler::min_spacing`] after the last poll is skipped.
    pub async fn poll_once(
        &self,
        client: &FhirClient,
        queue: &WorkQueue,
        scheduled: bool,
    ) -> Result<PollOutcome, ReconcileError> {
        let now = OffsetDateTime::now_utc();
        let mark = self.watermark(queue).await?;
        if scheduled && mark.is_some_and(|m| now - m.polled_at < self.min_spacing) {
            return Ok(PollOutcome::Skipped);
        }
        let since = mark.map_or_else(
            || now - time::Duration::days(self.initial_look_back_days),
            |m| m.since,
        );
        // A minute of overlap absorbs writes committed out of order; duplicates are
        // harmless (write-back is idempotent).
        let from = (since - time::Duration::minutes(1))
            .format(&Rfc3339)
            .unwrap_or_default();
        let mut patients = BTreeSet::new();
        let mut newest = since;
        let mut irrelevant = 0usize;
        for kind in crate::resource_types::watched() {
            let mut params = vec![("_lastUpdated", format!("ge{from}"))];
            params.extend(self.relevance.code_search(kind));
            client
                .search_pages(kind, &params, |page| {
                    let entries = page.get("entry").and_then(Value::as_array);
                    for resource in entries
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.get("resource"))
                    {
                        if let Some(updated) = last_updated(resource) {
                            newest = newest.max(updated);
                        }
                        if is_own_resource(resource) {
                            continue;
                        }
                        if self.relevance.matters(resource) {
                            patients.extend(patient_of(resource));
                        } else {
                            irrelevant += 1;
                        }
                    }
                    Ok(())
                })
                .await?;
        }
        for patient in &patients {
            queue
                .enqueue(&WorkItem::Patient {
                    patient: patient.clone(),
                })
                .await?;
        }
        self.save(
            queue,
            Watermark {
                since: newest,
                polled_at: now,
            },
        )
        .await?;
        tracing::info!(patients = patients.len(), irrelevant, since = %from, "reconciliation poll");
        Ok(PollOutcome::Polled(patients.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watermark_reads_back_and_earlier_bare_times_still_read() {
        let mark = Watermark {
            since: time::macros::datetime!(2026-11-30 10:00:00 UTC),
            polled_at: time::macros::datetime!(2026-12-01 08:00:00 UTC),
        };
        let text = mark.render().expect("renders");
        assert_eq!(Watermark::parse(&text), Ok(mark));
        let bare = Watermark::parse("2026-11-30T10:00:00Z").expect("bare time");
        assert_eq!(bare.since, mark.since);
        assert_eq!(bare.polled_at, mark.since);
        assert!(Watermark::parse("{\"since\": \"yesterday\"}").is_err());
        assert!(Watermark::parse("not a time").is_err());
    }
}
