//! Which work shards this replica consumes, so that replicas share the assessments.
//!
//! Every shard queue has a single active consumer, and RabbitMQ makes the first one to
//! register the active one: were every replica to consume every shard, the first
//! replica would do all the work. Instead replicas announce themselves on a fanout
//! exchange every [`HEARTBEAT`], and each shard belongs to the live replica with the
//! highest rendezvous hash of (replica, shard): shards spread over the replicas and
//! move only when one comes or goes. A replica consumes only the shards it owns;
//! single-active-consumer still guarantees one consumer per shard while one moves.
//! A replica that dies is forgotten after [`EXPIRY`] and its shards are taken over;
//! their messages wait in the queue meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Consumer};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::delivery::decode_job;
use super::{Incoming, QueueError};

pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A replica not heard from for this long is gone.
pub const EXPIRY: Duration = Duration::from_secs(7);

/// The quorum queue that holds one shard of the work.
pub(super) fn shard_queue_name(work: &str, shard: u16) -> String {
    format!("{work}.{shard}")
}

/// The replicas heard from recently, this one included.
pub struct Membership {
    me: String,
    last_seen: HashMap<String, Instant>,
}

impl Membership {
    pub fn new(me: impl Into<String>) -> Self {
        Self {
            me: me.into(),
            last_seen: HashMap::new(),
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn heard(&mut self, member: &str, at: Instant) {
        if member != self.me {
            self.last_seen.insert(member.to_string(), at);
        }
    }

    /// Live members (sorted), forgetting those not heard from within [`EXPIRY`].
    pub fn live(&mut self, now: Instant) -> Vec<String> {
        self.last_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < EXPIRY);
        let mut members: Vec<String> = self.last_seen.keys().cloned().collect();
        members.push(self.me.clone());
        members.sort();
        members
    }
}

fn weight(member: &str, shard: u16) -> u64 {
    let digest = Sha256::digest(format!("{member}/{shard}").as_bytes());
    u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ])
}

/// The shards `me` owns among `members` (rendezvous hashing).
pub fn owned(me: &str, shards: u16, members: &[String]) -> BTreeSet<u16> {
    (0..shards)
        .filter(|&shard| {
            members
                .iter()
                .max_by_key(|m| (weight(m, shard), m.as_str()))
                .is_some_and(|owner| owner == me)
        })
        .collect()
}

/// Keeps this replica's consumers on the shards it owns: announces the replica,
/// hears the others, and consumes or cancels shards as ownership moves.
pub(super) struct ShardManager {
    pub channel: Channel,
    pub work_queue: String,
    pub members_exchange: String,
    pub shards: u16,
    pub tag: String,
    pub membership: Membership,
    /// Consumer tags by shard.
    pub consumers: BTreeMap<u16, String>,
    pub owned: Arc<AtomicUsize>,
    pub work: mpsc::UnboundedSender<Result<Incoming, QueueError>>,
}

impl ShardManager {
    /// Joins the replicas and keeps the shards in step from then on, in the background.
    pub async fn start(self) -> Result<(), QueueError> {
        let heartbeats = self.hear_members().await?;
        tokio::spawn(self.run(heartbeats));
        Ok(())
    }

    /// A queue of this replica's own that hears every replica's heartbeat; it goes
    /// with the connection.
    async fn hear_members(&self) -> Result<Consumer, QueueError> {
        let queue = format!("{}.{}", self.members_exchange, self.membership.me());
        self.channel
            .queue_declare(
                &queue,
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        self.channel
            .queue_bind(
                &queue,
                &self.members_exchange,
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(self
            .channel
            .basic_consume(
                &queue,
                &queue,
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?)
    }

    async fn run(mut self, mut heartbeats: Consumer) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        let mut rounds = 0u32;
        let failure = loop {
            tokio::select! {
                _ = self.work.closed() => break None,
                _ = tick.tick() => {
                    rounds += 1;
                    if let Err(e) = self.announce().await {
                        break Some(e);
                    }
                    // Hear the others for a round before claiming shards.
                    if rounds > 1 {
                        if let Err(e) = self.rebalance().await {
                            break Some(e);
                        }
                    }
                }
                heard = heartbeats.next() => match heard {
                    Some(Ok(delivery)) => {
                        if let Ok(member) = std::str::from_utf8(&delivery.data) {
                            self.membership.heard(member, Instant::now());
                        }
                    }
                    Some(Err(e)) => break Some(e.into()),
                    None => break Some(QueueError::ConsumerEnded),
                },
            }
        };
        self.owned.store(0, Ordering::SeqCst);
        if let Some(e) = failure {
            let _ = self.work.send(Err(e));
        }
    }

    async fn announce(&self) -> Result<(), QueueError> {
        // Heartbeats are fire-and-forget: a lost one only delays a rebalance.
        self.channel
            .basic_publish(
                &self.members_exchange,
                "",
                BasicPublishOptions::default(),
                self.membership.me().as_bytes(),
                BasicProperties::default()
                    .with_expiration(ShortString::from(EXPIRY.as_millis().to_string())),
            )
            .await?;
        Ok(())
    }

    async fn rebalance(&mut self) -> Result<(), QueueError> {
        let members = self.membership.live(Instant::now());
        let wanted = owned(self.membership.me(), self.shards, &members);
        let lost: Vec<u16> = self
            .consumers
            .keys()
            .copied()
            .filter(|shard| !wanted.contains(shard))
            .collect();
        let gained: Vec<u16> = wanted
            .iter()
            .copied()
            .filter(|shard| !self.consumers.contains_key(shard))
            .collect();
        for shard in &lost {
            if let Some(tag) = self.consumers.remove(shard) {
                // In-flight messages stay ours until settled; new ones go to the new owner.
                self.channel
                    .basic_cancel(&tag, BasicCancelOptions::default())
                    .await?;
            }
        }
        for &shard in &gained {
            let tag = format!("{}-{shard}", self.tag);
            let consumer = self
                .channel
                .basic_consume(
                    &shard_queue_name(&self.work_queue, shard),
                    &tag,
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            self.consumers.insert(shard, tag);
            let work = self.work.clone();
            tokio::spawn(async move {
                let mut consumer = consumer;
                while let Some(delivery) = consumer.next().await {
                    let incoming = delivery.map_err(QueueError::from).and_then(decode_job);
                    let failed = incoming.is_err();
                    if work.send(incoming).is_err() || failed {
                        break;
                    }
                }
            });
        }
        self.owned.store(self.consumers.len(), Ordering::SeqCst);
        if !lost.is_empty() || !gained.is_empty() {
            tracing::info!(
                member = self.membership.me(),
                replicas = members.len(),
                shards = ?self.consumers.keys().collect::<Vec<_>>(),
                "work shards rebalanced"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("pod-{i}")).collect()
    }

    #[test]
    fn alone_a_replica_owns_every_shard() {
        assert_eq!(owned("pod-0", 16, &names(1)), (0..16).collect());
    }

    #[test]
    fn every_shard_has_exactly_one_owner_and_all_get_some() {
        let members = names(4);
        let mut seen = BTreeSet::new();
        for m in &members {
            let mine = owned(m, 64, &members);
            assert!(!mine.is_empty(), "{m} owns nothing");
            assert!(seen.is_disjoint(&mine), "a shard with two owners");
            seen.extend(mine);
        }
        assert_eq!(seen, (0..64).collect());
    }

    #[test]
    fn a_new_replica_takes_shards_only_for_itself() {
        let before = names(3);
        let after = names(4);
        for m in &before {
            let kept = owned(m, 64, &after);
            assert!(
                kept.is_subset(&owned(m, 64, &before)),
                "{m} gained a shard when another replica came"
            );
        }
    }

    #[test]
    fn silent_replicas_are_forgotten() {
        let start = Instant::now();
        let mut membership = Membership::new("pod-0");
        membership.heard("pod-1", start);
        membership.heard("pod-0", start); // its own heartbeat comes back too
        assert_eq!(membership.live(start + HEARTBEAT), names(2));
        assert_eq!(membership.live(start + EXPIRY), names(1));
    }
}
