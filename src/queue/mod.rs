//! The durable work queue. With a broker: RabbitMQ via lapin, publisher confirms on
//! every publish, work sharded by patient over quorum queues with
//! single-active-consumer (one patient, one consumer at a time, across replicas) and
//! spread over the replicas ([`shards`]), delayed retries through TTL queues, dead
//! letters with the reason in headers.
//! Without one: an in-process queue for a single `serve` on one machine (not
//! durable: said clearly at start).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::AmqpSettings;
use crate::work::WorkItem;

mod delivery;
mod local;
mod rabbit;
pub mod shards;

pub use local::LocalQueue;
pub use rabbit::Rabbit;

/// The AMQP header by which a sender declares an intake Bundle a complete record
/// (for senders that cannot tag the Bundle itself).
pub const COMPLETE_RECORD_HEADER: &str = "x-trd-complete-record";

#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub intake: String,
    pub work: String,
    pub dead: String,
    pub events: String,
    pub shards: u16,
    pub prefetch: u16,
    pub max_attempts: u32,
    pub retry_delay_ms: u64,
    /// The broker's backstop: a work message delivered this many times (the process
    /// died while holding it each time) is dead-lettered by RabbitMQ itself.
    pub delivery_limit: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self::from(&AmqpSettings::default())
    }
}

impl From<&AmqpSettings> for QueueSettings {
    fn from(a: &AmqpSettings) -> Self {
        Self {
            intake: a.intake_queue.clone(),
            work: a.work_queue.clone(),
            dead: a.dead_letter.clone(),
            events: a.events_exchange.clone(),
            shards: a.shards,
            prefetch: a.prefetch,
            max_attempts: a.max_attempts,
            retry_delay_ms: a.retry_delay_ms,
            delivery_limit: a.delivery_limit,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker did not confirm the publish (nack)")]
    Nacked,
    #[error("the in-process queue is closed")]
    Closed,
    #[error("work item: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the broker ended a consumer")]
    ConsumerEnded,
    #[error("the in-process queue is full")]
    Full,
}

pub const HEADER_ATTEMPTS: &str = "x-trd-attempts";
pub const HEADER_REASON: &str = "x-trd-reason";
pub const HEADER_ENQUEUED_MS: &str = "x-trd-enqueued-ms";
pub const HEADER_SOURCE: &str = "x-trd-source-queue";

/// A unit of work taken from a queue, with what is needed to settle it.
pub struct Job {
    pub item: WorkItem,
    /// Failed attempts so far: our header, carried through every re-publish, so it
    /// never resets.
    pub attempts: u32,
    /// The broker delivered it before (the holder died or returned it): what it did
    /// may already be in the EHR.
    pub redelivered: bool,
    /// When it was first queued (ms since the epoch), for end-to-end latency.
    pub enqueued_ms: Option<u64>,
    pub(crate) settle: Settle,
}

pub(crate) enum Settle {
    Rabbit(lapin::acker::Acker),
    Local,
}

/// What a consumer receives.
pub enum Incoming {
    Work(Job),
    /// A raw intake-queue message (integration engines), to be turned into work.
    Intake {
        body: Vec<u8>,
        /// The sender declared a Bundle to be a complete record
        /// ([`COMPLETE_RECORD_HEADER`]).
        declared_complete: bool,
        settle: IntakeSettle,
    },
}

pub struct IntakeSettle(pub(crate) lapin::acker::Acker);

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn shard_of(key: &str, shards: u16) -> u16 {
    let digest = Sha256::digest(key.as_bytes());
    (u16::from_be_bytes([digest[0], digest[1]])) % shards.max(1)
}

pub enum WorkQueue {
    Rabbit(Box<Rabbit>),
    Local(Arc<LocalQueue>),
}

impl WorkQueue {
    pub fn describe(&self) -> &'static str {
        match self {
            WorkQueue::Rabbit(_) => "RabbitMQ (durable, publisher confirms)",
            WorkQueue::Local(_) => "in-process queue (no broker configured: NOT durable; accepted work is lost if the process dies)",
        }
    }

    /// Durably queued when this returns Ok (broker confirm), so the EHR may get 200.
    pub async fn enqueue(&self, item: &WorkItem) -> Result<(), QueueError> {
        match self {
            WorkQueue::Rabbit(r) => r.enqueue(item).await,
            WorkQueue::Local(l) => l.send(item.clone(), 0, now_ms()),
        }
    }

    pub async fn retry_later(&self, job: &Job) -> Result<(), QueueError> {
        match self {
            WorkQueue::Rabbit(r) => r.retry_later(job).await,
            WorkQueue::Local(l) => {
                let (queue, item, attempts, enqueued) = (
                    l.clone(),
                    job.item.clone(),
                    job.attempts + 1,
                    job.enqueued_ms.unwrap_or_else(now_ms),
                );
                tokio::spawn(async move {
                    tokio::time::sleep(queue.retry_delay).await;
                    // A retry waits for room rather than being dropped.
                    let job = Job {
                        item,
                        attempts,
                        redelivered: true,
                        enqueued_ms: Some(enqueued),
                        settle: Settle::Local,
                    };
                    if queue.sender.send(job).await.is_err() {
                        tracing::warn!("in-process queue closed: a retry was dropped at shutdown");
                    }
                });
                Ok(())
            }
        }
    }

    pub async fn dead_letter(
        &self,
        body: &[u8],
        reason: &str,
        attempts: u32,
        source: &str,
    ) -> Result<(), QueueError> {
        match self {
            WorkQueue::Rabbit(r) => r.dead_letter(body, reason, attempts, source).await,
            WorkQueue::Local(l) => {
                tracing::error!(reason, attempts, source, "dead letter (in-process queue)");
                l.dead.lock().await.push((
                    String::from_utf8_lossy(body).into_owned(),
                    reason.to_string(),
                ));
                Ok(())
            }
        }
    }

    pub async fn publish_event(
        &self,
        routing_key: &str,
        body: &[u8],
        message_id: &str,
    ) -> Result<(), QueueError> {
        match self {
            WorkQueue::Rabbit(r) => r.publish_event(routing_key, body, message_id).await,
            WorkQueue::Local(_) => {
                tracing::info!(routing_key, message_id, "event (no broker: logged only)");
                Ok(())
            }
        }
    }

    /// Work shards this replica consumes (the in-process queue has no shards).
    pub fn owned_shards(&self) -> Option<usize> {
        match self {
            WorkQueue::Rabbit(r) => Some(r.owned_shards()),
            WorkQueue::Local(_) => None,
        }
    }

    pub fn max_attempts(&self) -> u32 {
        match self {
            WorkQueue::Rabbit(r) => r.settings.max_attempts,
            WorkQueue::Local(l) => l.max_attempts,
        }
    }

    pub fn is_ready(&self) -> bool {
        match self {
            WorkQueue::Rabbit(r) => r.is_connected(),
            WorkQueue::Local(_) => true,
        }
    }

    pub async fn depth(&self) -> Option<u32> {
        match self {
            WorkQueue::Rabbit(r) => r.depth().await.ok(),
            WorkQueue::Local(_) => None,
        }
    }

    pub async fn close(&self) {
        if let WorkQueue::Rabbit(r) = self {
            r.close().await;
        }
    }

    /// The local queue's receiver (taken once, by the pipeline).
    pub async fn take_local_receiver(&self) -> Option<mpsc::Receiver<Job>> {
        match self {
            WorkQueue::Local(l) => l.receiver.lock().await.take(),
            WorkQueue::Rabbit(_) => None,
        }
    }
}

impl Job {
    /// Done: the broker forgets the message.
    pub async fn ack(self) -> Result<(), QueueError> {
        if let Settle::Rabbit(acker) = self.settle {
            acker
                .ack(lapin::options::BasicAckOptions::default())
                .await?;
        }
        Ok(())
    }

    /// Not done and not settled: back to the queue now (graceful shutdown).
    pub async fn requeue(self) -> Result<(), QueueError> {
        if let Settle::Rabbit(acker) = self.settle {
            acker
                .nack(lapin::options::BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }
}

impl IntakeSettle {
    pub async fn ack(self) -> Result<(), QueueError> {
        self.0
            .ack(lapin::options::BasicAckOptions::default())
            .await?;
        Ok(())
    }

    pub async fn requeue(self) -> Result<(), QueueError> {
        self.0
            .nack(lapin::options::BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_patient_always_lands_on_one_shard() {
        let a = shard_of("Patient/1", 8);
        assert!((0..100).all(|_| shard_of("Patient/1", 8) == a));
        let spread: std::collections::BTreeSet<u16> = (0..200)
            .map(|i| shard_of(&format!("Patient/{i}"), 8))
            .collect();
        assert_eq!(spread.len(), 8, "keys spread over every shard");
    }
}
