//! The in-process queue, for a single `serve` without a broker: bounded, not durable.

use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use super::{Job, QueueError, QueueSettings, Settle};
use crate::work::WorkItem;

/// For `serve` without a broker: a bounded channel (full: the intake answers 503 and
/// the EHR retries). Not durable.
pub struct LocalQueue {
    pub(super) sender: mpsc::Sender<Job>,
    pub(super) receiver: Mutex<Option<mpsc::Receiver<Job>>>,
    pub retry_delay: Duration,
    pub max_attempts: u32,
    pub dead: Mutex<Vec<(String, String)>>,
}

impl LocalQueue {
    /// Items it holds at most before refusing more.
    pub const CAPACITY: usize = 10_000;

    pub fn new(retry_delay: Duration) -> Self {
        Self::with_capacity(retry_delay, Self::CAPACITY)
    }

    pub fn with_capacity(retry_delay: Duration, capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
            retry_delay,
            max_attempts: QueueSettings::default().max_attempts,
            dead: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn send(
        &self,
        item: WorkItem,
        attempts: u32,
        enqueued_ms: u64,
    ) -> Result<(), QueueError> {
        self.sender
            .try_send(Job {
                item,
                attempts,
                redelivered: attempts > 0,
                enqueued_ms: Some(enqueued_ms),
                settle: Settle::Local,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => QueueError::Full,
                mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
            })
    }
}
