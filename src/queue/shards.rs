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

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A replica not heard from for this long is gone.
pub const EXPIRY: Duration = Duration::from_secs(7);

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
