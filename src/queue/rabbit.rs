//! RabbitMQ via lapin: the topology (intake, work shards with single-active-consumer
//! and a delivery limit, delayed-retry TTL queues, dead letters, events, the
//! replicas' membership exchange), publisher confirms on every publish, and the
//! consumers of the intake queue and of the shards this replica owns ([`super::shards`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::stream::{select_all, BoxStream, StreamExt};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{mpsc, Mutex};

use super::delivery::declared_complete;
use super::shards::{shard_queue_name, Membership, ShardManager};
use super::{
    now_ms, shard_of, Incoming, IntakeSettle, Job, QueueError, QueueSettings, HEADER_ATTEMPTS,
    HEADER_ENQUEUED_MS, HEADER_REASON, HEADER_SOURCE,
};
use crate::work::WorkItem;

pub struct Rabbit {
    url: String,
    pub settings: QueueSettings,
    link: Mutex<Option<(Connection, Channel)>>,
    connected: AtomicBool,
    /// Whether the watermark queue was declared on the current link: it is declared
    /// when first used, not with the topology, so a broker node hosting it being down
    /// stops polls only, never intake or work.
    watermark_declared: AtomicBool,
    /// This replica's name among those sharing the work shards.
    member: String,
    /// How many work shards it consumes now.
    owned: Arc<AtomicUsize>,
    /// Only publishes to the intake queue (`export --queue`): declares that queue
    /// alone, so it never disagrees with the service's shard or retry settings.
    intake_only: bool,
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

    /// Holds the reconciliation watermark: one message at most (a new one drops the
    /// old), read by every replica. A classic queue: reading puts the message back,
    /// and a quorum queue would count those returns against its delivery limit.
    pub fn watermark_queue(&self) -> String {
        format!("{}.reconcile-watermark", self.settings.work)
    }

    fn retry_queue(&self, shard: u16) -> String {
        format!("{}.{shard}.retry", self.settings.work)
    }

    /// Connects and declares the topology (idempotent: same names, same arguments).
    pub async fn connect(url: &str, settings: QueueSettings) -> Result<Self, QueueError> {
        let rabbit = Self::lazy(url, settings);
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
            watermark_declared: AtomicBool::new(false),
            member: member_name(),
            owned: Default::default(),
            intake_only: false,
        }
    }

    /// Connects to publish to the intake queue only (declaring that queue alone).
    pub async fn connect_intake_publisher(
        url: &str,
        settings: QueueSettings,
    ) -> Result<Self, QueueError> {
        let rabbit = Self {
            intake_only: true,
            ..Self::lazy(url, settings)
        };
        rabbit.channel().await?;
        Ok(rabbit)
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
        self.watermark_declared.store(false, Ordering::SeqCst);
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
        if self.intake_only {
            return Ok(());
        }
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

    /// Where `export --since last` keeps the previous export's `transactionTime`,
    /// so the nightly run can go to any pod.
    pub fn export_mark_queue(&self) -> String {
        format!("{}.export-since", self.settings.work)
    }

    /// The channel, with a one-message queue (the newest message drops the old)
    /// declared on it. Classic: reading puts the message back, and a quorum queue
    /// would count those returns against its delivery limit.
    async fn one_message_channel(&self, queue: &str) -> Result<Channel, QueueError> {
        let channel = self.channel().await?;
        let declared =
            queue == self.watermark_queue() && self.watermark_declared.load(Ordering::SeqCst);
        if !declared {
            let one_message = args(&[
                ("x-queue-type", text("classic")),
                ("x-max-length", AMQPValue::LongLongInt(1)),
                ("x-overflow", text("drop-head")),
            ]);
            channel.queue_declare(queue, durable(), one_message).await?;
            if queue == self.watermark_queue() {
                self.watermark_declared.store(true, Ordering::SeqCst);
            }
        }
        Ok(channel)
    }

    /// The message a one-message queue holds (read, and left in place).
    async fn read_one(&self, queue: &str) -> Result<Option<Vec<u8>>, QueueError> {
        let channel = self.one_message_channel(queue).await?;
        let Some(message) = channel
            .basic_get(queue, BasicGetOptions { no_ack: false })
            .await?
        else {
            return Ok(None);
        };
        let body = message.delivery.data.clone();
        message
            .delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await?;
        Ok(Some(body))
    }

    /// Replaces the message of a one-message queue (confirmed).
    async fn save_one(&self, queue: &str, body: &[u8]) -> Result<(), QueueError> {
        self.one_message_channel(queue).await?;
        self.publish("", queue, body, FieldTable::default(), None)
            .await
    }

    /// The reconciliation watermark the last poll saved (read, and left in place).
    pub async fn watermark(&self) -> Result<Option<Vec<u8>>, QueueError> {
        self.read_one(&self.watermark_queue()).await
    }

    /// Saves the watermark (confirmed); the queue keeps only the newest.
    pub async fn save_watermark(&self, body: &[u8]) -> Result<(), QueueError> {
        self.save_one(&self.watermark_queue(), body).await
    }

    /// The previous export's `transactionTime`, as `export` saved it.
    pub async fn export_mark(&self) -> Result<Option<Vec<u8>>, QueueError> {
        self.read_one(&self.export_mark_queue()).await
    }

    pub async fn save_export_mark(&self, body: &[u8]) -> Result<(), QueueError> {
        self.save_one(&self.export_mark_queue(), body).await
    }

    /// Intake messages from integration engines (and `export --queue`) go straight to
    /// the intake queue; `complete_record` sets the [`super::COMPLETE_RECORD_HEADER`].
    pub async fn publish_intake(
        &self,
        body: &[u8],
        complete_record: bool,
    ) -> Result<(), QueueError> {
        let headers = if complete_record {
            args(&[(super::COMPLETE_RECORD_HEADER, AMQPValue::Boolean(true))])
        } else {
            FieldTable::default()
        };
        self.publish("", &self.settings.intake, body, headers, None)
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
