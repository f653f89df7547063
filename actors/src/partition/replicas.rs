//! What the leader of a replicated partition knows of its followers: how far
//! each has fetched, which are in sync, and from that the high watermark.
//!
//! Pure code, no actors and no clock of its own (times come in as
//! arguments), so the rules are tested directly:
//!
//! - A follower's log end is the offset of its last fetch: followers fetch
//!   only once what they fetched before is durable, so that offset is what
//!   they hold on disk.
//! - The high watermark is the smallest log end over the in-sync replicas
//!   (the leader included), and moves only forward, and only while the ISR
//!   has at least `min.insync.replicas` members (KIP-966's strict rule): a
//!   record below it is on every ISR member, so any of them can lead next.
//! - A follower is caught up when it fetches at (or past) the leader's log
//!   end, or at least as far as the log end was at its previous fetch
//!   (Kafka's `lastCaughtUpTime` rule, which keeps a follower of a busy
//!   partition in sync although it never sees the very end). One that has
//!   not been caught up for `replica.lag.time.max.ms` leaves the ISR; one
//!   that reaches the high watermark joins it again.
//! - ISR changes are proposed to the controller one at a time. While one is
//!   pending, the high watermark counts the larger of the two sets (the
//!   "maximal ISR"), so a shrink takes effect only once committed and an
//!   expansion holds the watermark back at once.

use std::collections::BTreeMap;

/// A follower's progress as seen by the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Follower {
    /// Offset of its last fetch; -1 before the first one in this epoch.
    log_end: i64,
    /// When it was last known to be caught up.
    caught_up_ms: i64,
    /// When it last fetched, and the leader's log end then.
    last_fetch_ms: i64,
    leader_end_at_last_fetch: i64,
}

/// The leader's view of one partition's replicas, for one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderState {
    local_id: i32,
    pub leader_epoch: i32,
    /// The controller's version of this partition's state; AlterPartition
    /// must name it.
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The ISR as the controller committed it.
    pub isr: Vec<i32>,
    /// An ISR change sent to the controller and not answered yet.
    pending_isr: Option<Vec<i32>>,
    followers: BTreeMap<i32, Follower>,
    min_isr: usize,
    high_watermark: i64,
}

impl LeaderState {
    /// The state of a broker that just became leader. Followers start
    /// unknown but caught up now: they get `lag_ms` to show up before they
    /// leave the ISR. The high watermark starts where this replica had it.
    pub fn new(
        local_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        high_watermark: i64,
        now_ms: i64,
    ) -> LeaderState {
        let mut state = LeaderState {
            local_id,
            leader_epoch,
            partition_epoch,
            replicas: Vec::new(),
            isr,
            pending_isr: None,
            followers: BTreeMap::new(),
            min_isr: 1,
            high_watermark,
        };
        state.set_replicas(replicas, now_ms);
        state
    }

    /// The replica set changed within the epoch (a reassignment added or
    /// removed replicas). A new follower starts unknown but caught up now,
    /// so it gets `replica.lag.time.max.ms` to show up, as at election.
    pub fn set_replicas(&mut self, replicas: Vec<i32>, now_ms: i64) {
        self.followers
            .retain(|id, _| replicas.contains(id) && *id != self.local_id);
        for &r in &replicas {
            if r != self.local_id {
                self.followers.entry(r).or_insert(Follower {
                    log_end: -1,
                    caught_up_ms: now_ms,
                    last_fetch_ms: -1,
                    leader_end_at_last_fetch: -1,
                });
            }
        }
        self.replicas = replicas;
    }

    /// The topic's `min.insync.replicas`.
    pub fn set_min_isr(&mut self, min_isr: usize) {
        self.min_isr = min_isr.max(1);
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn is_replica(&self, id: i32) -> bool {
        self.followers.contains_key(&id)
    }

    /// Whether an acks=all append may go ahead: the committed ISR has at
    /// least `min.insync.replicas` members (else NOT_ENOUGH_REPLICAS).
    pub fn enough_replicas(&self) -> bool {
        self.isr.len() >= self.min_isr
    }

    /// A follower fetched at `fetch_offset` while the leader's log ends at
    /// `leader_end`. Returns the new high watermark if it moved.
    pub fn on_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> Option<i64> {
        let follower = self.followers.get_mut(&replica)?;
        if fetch_offset >= leader_end {
            follower.caught_up_ms = now_ms;
        } else if follower.last_fetch_ms >= 0 && fetch_offset >= follower.leader_end_at_last_fetch {
            follower.caught_up_ms = follower.caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.log_end = fetch_offset.min(leader_end);
        follower.last_fetch_ms = now_ms;
        follower.leader_end_at_last_fetch = leader_end;
        self.update_high_watermark(leader_end)
    }

    /// Recomputes the high watermark after the leader's log end moved or a
    /// follower fetched; returns it if it moved.
    pub fn update_high_watermark(&mut self, leader_end: i64) -> Option<i64> {
        if self.isr.len() < self.min_isr {
            return None;
        }
        let lowest = self
            .maximal_isr()
            .iter()
            .map(|&id| match self.followers.get(&id) {
                Some(f) => f.log_end,
                None if id == self.local_id => leader_end,
                // A member the leader does not know of holds nothing.
                None => -1,
            })
            .min()
            .unwrap_or(leader_end);
        (lowest > self.high_watermark).then(|| {
            self.high_watermark = lowest;
            lowest
        })
    }

    /// The committed ISR together with a pending one.
    fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        for id in self.pending_isr.iter().flatten() {
            if !all.contains(id) {
                all.push(*id);
            }
        }
        all
    }

    /// The ISR change to propose now, if any and none is pending: lagging
    /// members out, caught-up replicas in. `eligible` says whether a replica
    /// may join (the controller refuses fenced brokers).
    pub fn isr_change(
        &self,
        now_ms: i64,
        lag_ms: i64,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<Vec<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let mut isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_none_or(|f| now_ms - f.caught_up_ms <= lag_ms)
            })
            .collect();
        for (&id, follower) in &self.followers {
            if !isr.contains(&id)
                && follower.log_end >= self.high_watermark
                && follower.log_end >= 0
                && now_ms - follower.caught_up_ms <= lag_ms
                && eligible(id)
            {
                isr.push(id);
            }
        }
        // Replica order, so the same set always reads the same.
        isr.sort_by_key(|id| self.replicas.iter().position(|r| r == id));
        (isr != self.isr).then_some(isr)
    }

    /// An ISR change was sent to the controller.
    pub fn propose(&mut self, isr: Vec<i32>) {
        self.pending_isr = Some(isr);
    }

    /// The controller answered: the committed ISR and partition epoch (the
    /// proposed ones, or whatever it holds if it refused).
    pub fn on_committed(&mut self, isr: Vec<i32>, partition_epoch: i32) {
        self.pending_isr = None;
        if partition_epoch >= self.partition_epoch {
            self.isr = isr;
            self.partition_epoch = partition_epoch;
        }
    }

    /// The controller refused or could not be reached: propose again later.
    pub fn on_refused(&mut self) {
        self.pending_isr = None;
    }

    /// Each follower's last fetched offset, for DescribeLogDirs-like views.
    pub fn follower_ends(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.followers.iter().map(|(&id, f)| (id, f.log_end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 1000;

    fn leader() -> LeaderState {
        let mut state = LeaderState::new(1, 3, 7, vec![1, 2, 3], vec![1, 2, 3], 0, 0);
        state.set_min_isr(2);
        state
    }

    #[test]
    fn high_watermark_is_the_lowest_isr_log_end() {
        let mut state = leader();
        assert_eq!(state.update_high_watermark(10), None);
        assert_eq!(state.on_fetch(2, 10, 10, 5), None);
        assert_eq!(state.on_fetch(3, 6, 10, 5), Some(6));
        assert_eq!(state.on_fetch(3, 10, 10, 6), Some(10));
        // It never goes back, even if a follower restarts lower.
        assert_eq!(state.on_fetch(3, 4, 10, 7), None);
        assert_eq!(state.high_watermark(), 10);
        // A fetch past the leader's end counts as the end.
        assert_eq!(state.on_fetch(2, 99, 12, 8), None);
    }

    #[test]
    fn too_small_an_isr_freezes_the_high_watermark() {
        let mut state = leader();
        state.on_committed(vec![1], 8);
        assert!(!state.enough_replicas());
        assert_eq!(state.update_high_watermark(10), None);
        state.on_committed(vec![1, 2], 9);
        assert!(state.enough_replicas());
        assert_eq!(state.on_fetch(2, 10, 10, 1), Some(10));
    }

    #[test]
    fn a_lagging_follower_leaves_and_a_caught_up_one_returns() {
        let mut state = leader();
        state.on_fetch(2, 0, 0, 0);
        state.on_fetch(3, 0, 0, 0);
        // 2 keeps up with a busy log: it fetches what was the end last time.
        let mut end = 0;
        for t in 1..=20 {
            end += 100;
            state.on_fetch(2, end - 100, end, t * 100);
        }
        assert_eq!(state.isr_change(2000, LAG, |_| true), Some(vec![1, 2]));
        state.propose(vec![1, 2]);
        // While pending the maximal ISR still holds 3 back.
        assert_eq!(state.update_high_watermark(end), None);
        assert_eq!(state.isr_change(2000, LAG, |_| true), None);
        state.on_committed(vec![1, 2], 8);
        assert_eq!(state.update_high_watermark(end), Some(end - 100));
        // 3 comes back and reaches the high watermark.
        state.on_fetch(3, end, end, 2100);
        assert_eq!(state.isr_change(2100, LAG, |_| false), None);
        assert_eq!(state.isr_change(2100, LAG, |_| true), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_reassigned_replica_joins_once_caught_up_and_a_removed_one_is_forgotten() {
        let mut state = leader();
        state.on_fetch(2, 10, 10, 1);
        state.on_fetch(3, 10, 10, 1);
        state.set_replicas(vec![1, 2, 3, 4], 100);
        assert!(state.is_replica(4));
        // Unknown yet, it holds nothing and does not join.
        assert_eq!(state.isr_change(100, LAG, |_| true), None);
        state.on_fetch(4, 5, 10, 200);
        assert_eq!(state.isr_change(200, LAG, |_| true), None);
        state.on_fetch(4, 10, 10, 300);
        assert_eq!(state.isr_change(300, LAG, |_| true), Some(vec![1, 2, 3, 4]));
        state.on_committed(vec![1, 2, 4], 9);
        state.set_replicas(vec![1, 2, 4], 400);
        assert!(!state.is_replica(3));
        assert_eq!(
            state.follower_ends().map(|(id, _)| id).collect::<Vec<_>>(),
            [2, 4]
        );
    }

    #[test]
    fn a_refused_change_is_proposed_again() {
        let mut state = leader();
        let change = state.isr_change(5000, LAG, |_| true).unwrap();
        assert_eq!(change, vec![1]);
        state.propose(change);
        state.on_refused();
        assert_eq!(state.isr_change(5000, LAG, |_| true), Some(vec![1]));
        // An answer for an older partition epoch changes nothing.
        state.on_committed(vec![1, 3], 2);
        assert_eq!(state.isr, vec![1, 2, 3]);
    }
}
