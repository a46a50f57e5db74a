//! The unit of work: what the queue carries from every intake (a notification, an
//! intake-queue message, a reconciliation poll, a bulk file) to the pipeline.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The one patient a complete-record Bundle is about (checked at intake).
fn bundle_patient(bundle: &Value) -> Option<String> {
    bundle_patients(bundle).into_iter().next()
}

/// The Patient resources a Bundle holds.
pub(crate) fn bundle_patients(bundle: &Value) -> Vec<String> {
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
