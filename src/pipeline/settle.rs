//! Settling a work message, in one place: ack after the work is done, a delayed retry
//! for a transient failure (up to `amqp.max_attempts`, counted in a header that every
//! re-publish carries, so it never resets), a dead letter with the reason after the
//! last attempt or for a permanent failure. Every message of a coalesced group is
//! settled on its own, with its own attempt count.

use crate::metrics::Metrics;
use crate::queue::{now_ms, Job, QueueError, WorkQueue};

/// Why an item failed: decides retry or dead letter. The reason goes to logs and
/// dead-letter headers, so it names resources and statuses, never record content.
#[derive(Debug)]
pub enum Failure {
    /// Worth trying again later; `kind` labels the metric.
    Transient {
        kind: &'static str,
        reason: String,
    },
    Permanent(String),
}

impl Failure {
    pub fn transient(kind: &'static str, reason: impl Into<String>) -> Self {
        Failure::Transient {
            kind,
            reason: reason.into(),
        }
    }
}

impl From<crate::ehr::EhrError> for Failure {
    fn from(e: crate::ehr::EhrError) -> Self {
        match &e {
            crate::ehr::EhrError::Fhir(f) if f.is_transient() => {
                Failure::transient(f.kind(), e.to_string())
            }
            _ => Failure::Permanent(e.to_string()),
        }
    }
}

impl From<QueueError> for Failure {
    fn from(e: QueueError) -> Self {
        Failure::transient("broker", e.to_string())
    }
}

/// Settles each message of a finished group with the group's result.
pub async fn settle_all(
    queue: &WorkQueue,
    metrics: &Metrics,
    jobs: Vec<Job>,
    result: &Result<(), Failure>,
) {
    if let Err(Failure::Transient { kind, .. }) = result {
        metrics.transient_failures.with_label_values(&[kind]).inc();
    }
    let first_queued = jobs.iter().filter_map(|j| j.enqueued_ms).min();
    for job in jobs {
        settle_one(queue, metrics, job, result).await;
    }
    if let (Ok(()), Some(first)) = (result, first_queued) {
        metrics
            .end_to_end_seconds
            .observe(now_ms().saturating_sub(first) as f64 / 1000.0);
    }
}

async fn settle_one(queue: &WorkQueue, metrics: &Metrics, job: Job, result: &Result<(), Failure>) {
    let attempts = job.attempts.saturating_add(1);
    let parked = match result {
        Ok(()) => Ok(()),
        Err(Failure::Transient { reason, .. }) if attempts < queue.max_attempts() => {
            metrics.retries.inc();
            tracing::warn!(key = %job.item.key(), attempts, reason = %reason, "retrying later");
            queue.retry_later(&job).await
        }
        Err(Failure::Transient { reason, .. }) => {
            dead_letter(
                queue,
                metrics,
                &job,
                &format!("gave up after {attempts} attempts: {reason}"),
                attempts,
            )
            .await
        }
        Err(Failure::Permanent(reason)) => {
            dead_letter(queue, metrics, &job, reason, attempts).await
        }
    };
    let settled = match parked {
        Ok(()) => job.ack().await,
        // Could not park it safely: leave the message for redelivery.
        Err(e) => {
            tracing::warn!(error = %e, "could not retry or dead-letter; the message goes back to the queue");
            job.requeue().await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "could not settle a message; the broker redelivers it");
    }
}

async fn dead_letter(
    queue: &WorkQueue,
    metrics: &Metrics,
    job: &Job,
    reason: &str,
    attempts: u32,
) -> Result<(), QueueError> {
    metrics.dead_letters.inc();
    tracing::error!(key = %job.item.key(), kind = job.item.kind(), reason, "dead-lettered");
    let body = serde_json::to_vec(&job.item)?;
    queue.dead_letter(&body, reason, attempts, "work").await
}
