//! The durable work queue. With a broker: RabbitMQ via lapin, publisher confirms on
//! every publish, work sharded by patient over quorum queues with
//! single-active-consumer (one patient, one consumer at a time, across replicas) and
//! spread over the replicas ([`shards`]), delayed retries through TTL queues, dead
//! letters with the reason in headers.
//! Without one: an in-process queue for a single `serve` on one machine (not
//! durable: said clearly at start).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{select_all, BoxStream, StreamExt};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Mutex};

use crate::config::AmqpSettings;
use crate::intake::work::WorkItem;

pub mod shards;
use shards::{Membership, ShardManager};

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
        /// ([`crate::intake::work::COMPLETE_RECORD_HEADER`]).
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

fn shard_of(key: &str, shards: u16) -> u16 {
    let digest = Sha256::digest(key.as_bytes());
    (u16::from_be_bytes([digest[0], digest[1]])) % shards.max(1)
}

// ------------------------------------------------------------------ RabbitMQ

pub struct Rabbit {
    url: String,
    pub settings: QueueSettings,
    link: Mutex<Option<(Connection, Channel)>>,
    connected: AtomicBool,
    /// This replica's name among those sharing the work shards.
    member: String,
    /// How many work shards it consumes now.
    owned: Arc<AtomicUsize>,
}

/// A replica's name: the pod (host) name, the process and a random part.
fn member_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// A channel's receiving end as a stream.
pub(crate) fn stream_of<T: Send + 'static>(
    mut receiver: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

fn shard_queue_name(work: &str, shard: u16) -> String {
    format!("{work}.{shard}")
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in pairs {
        table.insert(ShortString::from(k.to_string()), v.clone());
    }
    table
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_string()))
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), QueueError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(name, kind, durable, FieldTable::default())
        .await?;
    Ok(())
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

impl Rabbit {
    pub fn shard_queue(&self, shard: u16) -> String {
        shard_queue_name(&self.settings.work, shard)
    }

    /// The fanout exchange replicas announce themselves on (see [`shards`]).
    fn members_exchange(&self) -> String {
        format!("{}.members", self.settings.work)
    }

    fn retry_queue(&self, shard: u16) -> String {
        format!("{}.{shard}.retry", self.settings.work)
    }

    /// Connects and declares the topology (idempotent: same names, same arguments).
    pub async fn connect(url: &str, settings: QueueSettings) -> Result<Self, QueueError> {
        let rabbit = Self {
            url: url.to_string(),
            settings,
            link: Mutex::new(None),
            connected: AtomicBool::new(false),
            member: member_name(),
            owned: Default::default(),
        };
        rabbit.channel().await?;
        Ok(rabbit)
    }

    /// A handle that connects on first use (publishing fails until the broker answers).
    pub fn lazy(url: &str, settings: QueueSettings) -> Self {
        Self {
            url: url.to_string(),
            settings,
            link: Mutex::new(None),
            connected: AtomicBool::new(false),
            member: member_name(),
            owned: Default::default(),
        }
    }

    /// The publishing channel, reconnecting (and re-declaring) after a failure.
    async fn channel(&self) -> Result<Channel, QueueError> {
        let mut link = self.link.lock().await;
        if let Some((connection, channel)) = link.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        self.connected.store(false, Ordering::SeqCst);
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.declare(&channel).await?;
        *link = Some((connection, channel.clone()));
        self.connected.store(true, Ordering::SeqCst);
        tracing::info!(intake = %self.settings.intake, shards = self.settings.shards, "connected to RabbitMQ; topology declared");
        Ok(channel)
    }

    async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        let s = &self.settings;
        let quorum = args(&[("x-queue-type", text("quorum"))]);
        channel
            .queue_declare(&s.intake, durable(), quorum.clone())
            .await?;
        declare_exchange(channel, &s.dead, ExchangeKind::Fanout).await?;
        channel
            .queue_declare(&s.dead, durable(), quorum.clone())
            .await?;
        channel
            .queue_bind(
                &s.dead,
                &s.dead,
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        declare_exchange(channel, &s.events, ExchangeKind::Topic).await?;
        declare_exchange(channel, &self.members_exchange(), ExchangeKind::Fanout).await?;
        for shard in 0..s.shards {
            // A message whose holder keeps dying (a crash the pipeline cannot
            // catch) is dead-lettered by the broker after `delivery_limit` deliveries.
            let work = args(&[
                ("x-queue-type", text("quorum")),
                ("x-single-active-consumer", AMQPValue::Boolean(true)),
                (
                    "x-delivery-limit",
                    AMQPValue::LongLongInt(i64::from(s.delivery_limit)),
                ),
                ("x-dead-letter-exchange", text(&s.dead)),
            ]);
            channel
                .queue_declare(&self.shard_queue(shard), durable(), work)
                .await?;
            let retry = args(&[
                (
                    "x-message-ttl",
                    AMQPValue::LongLongInt(s.retry_delay_ms as i64),
                ),
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&self.shard_queue(shard))),
            ]);
            channel
                .queue_declare(&self.retry_queue(shard), durable(), retry)
                .await?;
        }
        Ok(())
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        headers: FieldTable,
        message_id: Option<&str>,
    ) -> Result<(), QueueError> {
        let channel = self.channel().await?;
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from("application/json"))
            .with_headers(headers);
        if let Some(id) = message_id {
            properties = properties.with_message_id(ShortString::from(id.to_string()));
        }
        let confirmation = channel
            .basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await?
            .await?;
        if confirmation.is_nack() {
            return Err(QueueError::Nacked);
        }
        Ok(())
    }

    fn work_headers(attempts: u32, enqueued_ms: u64) -> FieldTable {
        args(&[
            (HEADER_ATTEMPTS, AMQPValue::LongLongInt(i64::from(attempts))),
            (
                HEADER_ENQUEUED_MS,
                AMQPValue::LongLongInt(enqueued_ms as i64),
            ),
        ])
    }

    pub async fn enqueue(&self, item: &WorkItem) -> Result<(), QueueError> {
        let shard = shard_of(&item.key(), self.settings.shards);
        let body = serde_json::to_vec(item)?;
        self.publish(
            "",
            &self.shard_queue(shard),
            &body,
            Self::work_headers(0, now_ms()),
            None,
        )
        .await
    }

    /// Back to the shard after the retry delay (the retry queue's TTL).
    pub async fn retry_later(&self, job: &Job) -> Result<(), QueueError> {
        let shard = shard_of(&job.item.key(), self.settings.shards);
        let body = serde_json::to_vec(&job.item)?;
        let headers = Self::work_headers(job.attempts + 1, job.enqueued_ms.unwrap_or_else(now_ms));
        self.publish("", &self.retry_queue(shard), &body, headers, None)
            .await
    }

    pub async fn dead_letter(
        &self,
        body: &[u8],
        reason: &str,
        attempts: u32,
        source: &str,
    ) -> Result<(), QueueError> {
        let headers = args(&[
            (HEADER_REASON, text(reason)),
            (HEADER_ATTEMPTS, AMQPValue::LongLongInt(i64::from(attempts))),
            (HEADER_SOURCE, text(source)),
        ]);
        self.publish(&self.settings.dead, "", body, headers, None)
            .await
    }

    /// An event, with a message id consumers de-duplicate on (it is sent at least once).
    pub async fn publish_event(
        &self,
        routing_key: &str,
        body: &[u8],
        message_id: &str,
    ) -> Result<(), QueueError> {
        self.publish(
            &self.settings.events,
            routing_key,
            body,
            FieldTable::default(),
            Some(message_id),
        )
        .await
    }

    /// Intake messages from integration engines go straight to the intake queue.
    pub async fn publish_intake(&self, body: &[u8]) -> Result<(), QueueError> {
        self.publish("", &self.settings.intake, body, FieldTable::default(), None)
            .await
    }

    /// Consumes, on a fresh connection, the intake queue and the work shards this
    /// replica owns (which change as replicas come and go: [`shards`]). The stream
    /// fails when the connection does.
    pub async fn consume(
        &self,
        tag: &str,
    ) -> Result<(Connection, BoxStream<'static, Result<Incoming, QueueError>>), QueueError> {
        self.channel().await?; // topology exists
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let intake = channel
            .basic_consume(
                &self.settings.intake,
                &format!("{tag}-intake"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?
            .map(|d| {
                d.map_err(QueueError::from).map(|d| Incoming::Intake {
                    declared_complete: declared_complete(d.properties.headers()),
                    body: d.data,
                    settle: IntakeSettle(d.acker),
                })
            })
            .boxed();
        let (work, received) = mpsc::unbounded_channel();
        let manager = ShardManager {
            channel,
            work_queue: self.settings.work.clone(),
            members_exchange: self.members_exchange(),
            shards: self.settings.shards,
            tag: tag.to_string(),
            membership: Membership::new(self.member.clone()),
            consumers: Default::default(),
            owned: self.owned.clone(),
            work,
        };
        manager.start().await?;
        Ok((
            connection,
            select_all([intake, stream_of(received).boxed()]).boxed(),
        ))
    }

    /// Work shards this replica consumes now.
    pub fn owned_shards(&self) -> usize {
        self.owned.load(Ordering::SeqCst)
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Messages waiting in the work shards and the intake queue.
    pub async fn depth(&self) -> Result<u32, QueueError> {
        let channel = self.channel().await?;
        let mut total = 0;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        for queue in std::iter::once(self.settings.intake.clone())
            .chain((0..self.settings.shards).map(|s| self.shard_queue(s)))
        {
            total += channel
                .queue_declare(&queue, passive, FieldTable::default())
                .await?
                .message_count();
        }
        Ok(total)
    }

    pub async fn close(&self) {
        if let Some((connection, channel)) = self.link.lock().await.take() {
            let _ = channel.close(200, "shutdown").await;
            let _ = connection.close(200, "shutdown").await;
        }
        self.connected.store(false, Ordering::SeqCst);
    }
}

fn header_u64(headers: &Option<FieldTable>, name: &str) -> Option<u64> {
    match headers.as_ref()?.inner().get(name)? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        _ => None,
    }
}

/// Whether the sender set [`crate::intake::work::COMPLETE_RECORD_HEADER`] (a boolean,
/// or the text `true`).
fn declared_complete(headers: &Option<FieldTable>) -> bool {
    let name = crate::intake::work::COMPLETE_RECORD_HEADER;
    match headers.as_ref().and_then(|h| h.inner().get(name)) {
        Some(AMQPValue::Boolean(b)) => *b,
        Some(AMQPValue::LongString(s)) => s.to_string().eq_ignore_ascii_case("true"),
        Some(AMQPValue::ShortString(s)) => s.as_str().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn decode_job(delivery: lapin::message::Delivery) -> Result<Incoming, QueueError> {
    let headers = delivery.properties.headers();
    let attempts = header_u64(headers, HEADER_ATTEMPTS)
        .and_then(|a| u32::try_from(a).ok())
        .unwrap_or(0);
    let enqueued_ms = header_u64(headers, HEADER_ENQUEUED_MS);
    match serde_json::from_slice::<WorkItem>(&delivery.data) {
        Ok(item) => Ok(Incoming::Work(Job {
            item,
            attempts,
            redelivered: delivery.redelivered,
            enqueued_ms,
            settle: Settle::Rabbit(delivery.acker),
        })),
        // Not a work item (someone published to a work queue by hand): treat as intake.
        Err(_) => Ok(Incoming::Intake {
            declared_complete: declared_complete(delivery.properties.headers()),
            body: delivery.data,
            settle: IntakeSettle(delivery.acker),
        }),
    }
}

// ------------------------------------------------------------------ in-process

/// For `serve` without a broker: a bounded channel (full: the intake answers 503 and
/// the EHR retries). Not durable.
pub struct LocalQueue {
    sender: mpsc::Sender<Job>,
    receiver: Mutex<Option<mpsc::Receiver<Job>>>,
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

    fn send(&self, item: WorkItem, attempts: u32, enqueued_ms: u64) -> Result<(), QueueError> {
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

// ------------------------------------------------------------------ either

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
