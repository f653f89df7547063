//! Offsets committed inside transactions, at the group's coordinator in a
//! cluster: pending from TxnOffsetCommit until the transaction's marker
//! arrives, then committed or dropped, as Kafka's group coordinator keeps
//! them.

use crate::store::offsets::PartitionOffset;
use kafka_protocol::ResponseError;
use std::collections::HashMap;

/// One partition of the offsets topic's pending transactional commits, by
/// producer id.
#[derive(Debug, Default, Clone)]
pub struct PendingOffsets {
    by_producer: HashMap<i64, Pending>,
}

#[derive(Debug, Clone)]
struct Pending {
    /// The producer epoch that committed them.
    epoch: i16,
    /// Group and offset, in commit order.
    offsets: Vec<(String, PartitionOffset)>,
}

impl PendingOffsets {
    /// Notes offsets a producer committed in its transaction. A newer epoch
    /// replaces what an older one left (its transaction was aborted when
    /// the epoch was bumped); an older epoch is fenced.
    pub fn add(
        &mut self,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<PartitionOffset>,
    ) -> Result<(), ResponseError> {
        let pending = self.by_producer.entry(producer_id).or_insert(Pending {
            epoch,
            offsets: Vec::new(),
        });
        if epoch < pending.epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if epoch > pending.epoch {
            *pending = Pending {
                epoch,
                offsets: Vec::new(),
            };
        }
        pending
            .offsets
            .extend(offsets.into_iter().map(|o| (group.to_string(), o)));
        Ok(())
    }

    /// Whether a producer's check of `epoch` would be fenced here.
    pub fn check(&self, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
        match self.by_producer.get(&producer_id) {
            Some(pending) if epoch < pending.epoch => Err(ResponseError::ProducerFenced),
            _ => Ok(()),
        }
    }

    /// The producer's pending offsets, removed, if its marker of
    /// `marker_epoch` ends them (a marker of an older epoch does not end a
    /// newer transaction).
    pub fn take(&mut self, producer_id: i64, marker_epoch: i16) -> Vec<(String, PartitionOffset)> {
        match self.by_producer.get(&producer_id) {
            Some(pending) if pending.epoch <= marker_epoch => self
                .by_producer
                .remove(&producer_id)
                .map_or_else(Vec::new, |p| p.offsets),
            _ => Vec::new(),
        }
    }

    /// Puts offsets taken by [`PendingOffsets::take`] back, when settling
    /// them failed and the marker will come again.
    pub fn restore(
        &mut self,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<(String, PartitionOffset)>,
    ) {
        let pending = self.by_producer.entry(producer_id).or_insert(Pending {
            epoch,
            offsets: Vec::new(),
        });
        let later = std::mem::replace(&mut pending.offsets, offsets);
        pending.offsets.extend(later);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::offsets::CommittedOffset;

    fn at(offset: i64) -> PartitionOffset {
        PartitionOffset {
            topic: "t".into(),
            partition: 0,
            committed: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp_ms: 0,
            },
        }
    }

    #[test]
    fn a_marker_takes_what_its_epoch_committed() {
        let mut pending = PendingOffsets::default();
        pending.add(7, 0, "g", vec![at(1)]).unwrap();
        pending.add(7, 0, "g", vec![at(2)]).unwrap();
        let taken = pending.take(7, 0);
        assert_eq!(
            taken
                .iter()
                .map(|(_, o)| o.committed.offset)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(pending.take(7, 0).is_empty());
    }

    #[test]
    fn newer_epochs_replace_and_older_ones_are_fenced() {
        let mut pending = PendingOffsets::default();
        pending.add(7, 1, "g", vec![at(1)]).unwrap();
        assert_eq!(
            pending.add(7, 0, "g", vec![at(9)]),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(pending.check(7, 0), Err(ResponseError::ProducerFenced));
        // A late marker of the older epoch does not end the newer transaction.
        assert!(pending.take(7, 0).is_empty());
        pending.add(7, 2, "g", vec![at(3)]).unwrap();
        assert_eq!(pending.take(7, 2).len(), 1);
    }

    #[test]
    fn restored_offsets_come_before_later_ones() {
        let mut pending = PendingOffsets::default();
        pending.add(7, 0, "g", vec![at(1)]).unwrap();
        let taken = pending.take(7, 0);
        pending.add(7, 0, "g", vec![at(2)]).unwrap();
        pending.restore(7, 0, taken);
        let order: Vec<i64> = pending
            .take(7, 0)
            .iter()
            .map(|(_, o)| o.committed.offset)
            .collect();
        assert_eq!(order, [1, 2]);
    }
}
