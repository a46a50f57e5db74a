//! Lost notifications: a subscription numbers its events (events-since-subscription-
//! start), so a number that never arrives is a notification lost on the way, and what
//! changed must be re-queried. Notifications overtake each other (an EHR sends several
//! at once, two replicas receive them), so a missing number is only a gap once it has
//! stayed missing for [`GRACE`]; the check runs whenever a count arrives (heartbeats
//! carry one too).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long a missing event number may be late before it counts as lost.
pub const GRACE: Duration = Duration::from_secs(10);

/// More missing numbers than this at once are one gap straight away (the EHR restarted
/// its numbering, or many were lost): no point tracking each.
const TRACK_AT_MOST: u64 = 10_000;

/// One subscription's event numbers, as seen by the one consumer of its shard.
#[derive(Debug, Default)]
pub struct EventCounter {
    highest: Option<u64>,
    /// Numbers not seen yet, with when they were first missed.
    missing: BTreeSet<(Instant, u64)>,
}

impl EventCounter {
    /// Records event number `n` seen at `now`; true when a gap is found (numbers
    /// missing for longer than the grace, or a jump too large to track).
    pub fn observe(&mut self, n: u64, now: Instant) -> bool {
        self.missing.retain(|(_, m)| *m != n);
        let mut gap = false;
        if let Some(highest) = self.highest {
            if n > highest.saturating_add(1) {
                let span = n - highest - 1;
                if span > TRACK_AT_MOST {
                    gap = true;
                } else {
                    self.missing
                        .extend((highest.saturating_add(1)..n).map(|m| (now, m)));
                }
            }
        }
        self.highest = Some(self.highest.map_or(n, |h| h.max(n)));
        let tracked = self.missing.len();
        self.missing
            .retain(|(since, _)| now.saturating_duration_since(*since) < GRACE);
        if self.missing.len() < tracked {
            gap = true;
        }
        gap
    }

    /// Records every number a notification reported: its events' own numbers, then
    /// its count since the subscription started; true when any reveals a gap.
    pub fn observe_all(&mut self, numbers: &[u64], now: Instant) -> bool {
        // Every number is recorded, even after one has shown a gap.
        let mut gap = false;
        for n in numbers {
            gap |= self.observe(*n, now);
        }
        gap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_order_are_no_gap() {
        let t = Instant::now();
        let mut c = EventCounter::default();
        for n in [1, 3, 2, 5, 4, 6] {
            assert!(!c.observe(n, t));
        }
        assert!(!c.observe(7, t + GRACE * 2), "nothing stayed missing");
    }

    #[test]
    fn a_number_missing_past_the_grace_is_one_gap() {
        let t = Instant::now();
        let mut c = EventCounter::default();
        assert!(!c.observe(1, t));
        assert!(!c.observe(4, t), "2 and 3 may still come");
        assert!(!c.observe(5, t + GRACE / 2));
        assert!(c.observe(6, t + GRACE), "2 and 3 never came");
        assert!(!c.observe(7, t + GRACE * 3), "reported once");
    }

    /// Backport IG: a notification may carry several events; their `eventNumber`s
    /// are what was delivered, the count since start is only their last.
    #[test]
    fn a_notification_of_several_events_leaves_no_gap() {
        let t = Instant::now();
        let mut c = EventCounter::default();
        assert!(!c.observe_all(&[1, 1], t));
        assert!(
            !c.observe_all(&[2, 3, 4, 4], t),
            "events 2, 3 and 4 in one notification"
        );
        assert!(!c.observe_all(&[5, 5], t + GRACE * 2), "nothing missing");
    }

    /// `events-since-subscription-start` is optional; the event numbers alone still
    /// show a lost notification.
    #[test]
    fn event_numbers_alone_find_a_lost_notification() {
        let t = Instant::now();
        let mut c = EventCounter::default();
        assert!(!c.observe_all(&[1], t));
        assert!(!c.observe_all(&[3], t), "2 may still come");
        assert!(c.observe_all(&[4], t + GRACE), "2 never came");
    }

    #[test]
    fn the_first_count_seen_and_a_huge_jump() {
        let t = Instant::now();
        let mut c = EventCounter::default();
        assert!(
            !c.observe(500, t),
            "a consumer that just took over starts counting"
        );
        assert!(c.observe(500 + TRACK_AT_MOST + 2, t));
    }
}
