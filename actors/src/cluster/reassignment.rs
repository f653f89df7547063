//! Partition reassignment, as Kafka's KIP-455 runs it in the controller.
//!
//! A reassignment never copies data itself: it widens the replica set to
//! the target plus the current replicas, so the new replicas start as
//! followers and fetch the log from the leader like any lagging follower.
//! The leader proposes each into the ISR once it caught up (an ordinary
//! AlterPartition), and the AlterPartition that completes the set of target
//! replicas in sync also finishes the reassignment: the replica set shrinks
//! to the target, the removed replicas leave the ISR (and delete their copy
//! when they see the image), and if the leader was one of them a target
//! replica in the ISR takes over in a new leader epoch. Until then nothing a
//! client acknowledged depends on the new replicas, and a cancellation
//! (a `None` target) simply drops them again.
//!
//! Everything here runs inside [`ClusterImage::apply`]: pure and
//! deterministic, so every broker reaches the same replica sets.

use super::image::{
    elect, partition_mut, Applied, ClusterImage, CommandResult, MetadataError, PartitionImage,
};
use std::collections::BTreeSet;

impl PartitionImage {
    /// Whether a reassignment is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replica set before the reassignment in progress (the current one
    /// if none is).
    fn original_replicas(&self) -> Vec<i32> {
        without(&self.replicas, &self.adding)
    }

    /// The replica set the reassignment in progress moves to.
    fn target_replicas(&self) -> Vec<i32> {
        without(&self.replicas, &self.removing)
    }

    /// Completes the reassignment in progress if every target replica is in
    /// the ISR: the replica set becomes the target, and a leader outside it
    /// hands over to the first target replica in sync.
    pub(super) fn finish_reassignment(&mut self, live: &BTreeSet<i32>) {
        if !self.reassigning() {
            return;
        }
        let target = self.target_replicas();
        if !target.iter().all(|r| self.isr.contains(r)) {
            return;
        }
        self.replicas = target;
        self.isr.retain(|r| self.replicas.contains(r));
        self.adding.clear();
        self.removing.clear();
        self.partition_epoch += 1;
        if !self.replicas.contains(&self.leader) {
            // The old leader is leaving; every target replica is in sync, so
            // the first live one takes over cleanly.
            elect(self, live, false);
        }
    }
}

impl ClusterImage {
    /// Starts, replaces or (with `None`) cancels a partition's reassignment.
    pub(super) fn reassign(
        &mut self,
        topic: &str,
        partition: u32,
        target: Option<Vec<i32>>,
        allow_replication_factor_change: bool,
    ) -> CommandResult {
        if let Some(target) = &target {
            self.check_target(target)?;
        }
        let live = self.live_set();
        let p = partition_mut(&mut self.topics, topic, partition)?;
        let original = p.original_replicas();
        let target = match target {
            Some(target) => target,
            None if p.reassigning() => original.clone(),
            None => return Err(MetadataError::NoReassignmentInProgress),
        };
        if !allow_replication_factor_change && target.len() != original.len() {
            return Err(MetadataError::InvalidReplicationFactor);
        }
        // The target first (its first replica is the new preferred leader),
        // then the replicas being removed, which keep serving until the end.
        let removing = without(&original, &target);
        let replicas: Vec<i32> = target
            .iter()
            .copied()
            .chain(removing.iter().copied())
            .collect();
        // A cancelled addition may already have joined the ISR; if only such
        // replicas are in sync, dropping them would leave no clean leader.
        let isr: Vec<i32> = p
            .isr
            .iter()
            .copied()
            .filter(|r| replicas.contains(r))
            .collect();
        if isr.is_empty() {
            return Err(MetadataError::InvalidReplicaAssignment);
        }
        p.adding = without(&target, &original);
        p.removing = removing;
        p.replicas = replicas;
        p.isr = isr;
        p.partition_epoch += 1;
        if !p.replicas.contains(&p.leader) {
            elect(p, &live, false);
        }
        p.finish_reassignment(&live);
        Ok(Applied::Partition(p.clone()))
    }

    /// A target replica set names registered brokers, each once.
    fn check_target(&self, target: &[i32]) -> Result<(), MetadataError> {
        let distinct: BTreeSet<i32> = target.iter().copied().collect();
        if target.is_empty()
            || distinct.len() != target.len()
            || target.iter().any(|r| !self.brokers.contains_key(r))
        {
            return Err(MetadataError::InvalidReplicaAssignment);
        }
        Ok(())
    }

    /// Every partition being reassigned: `(topic, partition, image)`.
    pub fn reassignments(&self) -> impl Iterator<Item = (&str, u32, &PartitionImage)> + '_ {
        self.topics.iter().flat_map(|(name, topic)| {
            topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.reassigning())
                .map(move |(index, p)| (name.as_str(), index as u32, p))
        })
    }
}

/// `from` without the members of `gone`, in `from`'s order.
fn without(from: &[i32], gone: &[i32]) -> Vec<i32> {
    from.iter().copied().filter(|r| !gone.contains(r)).collect()
}
