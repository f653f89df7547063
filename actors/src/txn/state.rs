//! One transactional id's state, as the transaction coordinator keeps it,
//! and the transitions Kafka's clients drive: InitProducerId, adding
//! partitions and offsets, and ending the transaction in two steps (prepare,
//! which is made durable before any marker is written, then complete).

use crate::store::offsets::PartitionOffset;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl Status {
    /// The state names Kafka's tools print.
    pub fn name(self) -> &'static str {
        match self {
            Status::Empty => "Empty",
            Status::Ongoing => "Ongoing",
            Status::PrepareCommit => "PrepareCommit",
            Status::PrepareAbort => "PrepareAbort",
            Status::CompleteCommit => "CompleteCommit",
            Status::CompleteAbort => "CompleteAbort",
        }
    }
}

/// What ending a transaction must do: a marker in each partition, and (on
/// commit) the offsets to store.
#[derive(Debug, Clone, PartialEq)]
pub struct EndPlan {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
    /// The groups whose offsets it commits (AddOffsetsToTxn).
    pub groups: Vec<String>,
    /// Group and offset, for a commit.
    pub offsets: Vec<(String, PartitionOffset)>,
}

/// The outcome of [`Txn::bump_epoch`].
#[derive(Debug, PartialEq)]
pub enum Bump {
    Done,
    /// The open transaction must be aborted first.
    Abort(EndPlan),
    /// No epoch left: the id needs a new producer id.
    Exhausted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub status: Status,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    pub pending_offsets: Vec<(String, PartitionOffset)>,
    /// When the current transaction started (ms since the epoch).
    pub started_ms: i64,
}

impl Txn {
    pub fn new(producer_id: i64, timeout_ms: i32) -> Txn {
        Txn {
            producer_id,
            epoch: 0,
            timeout_ms,
            status: Status::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            pending_offsets: Vec::new(),
            started_ms: -1,
        }
    }

    /// Is this request from the current producer of the id?
    pub fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        match epoch.cmp(&self.epoch) {
            std::cmp::Ordering::Less => Err(ResponseError::ProducerFenced),
            std::cmp::Ordering::Greater => Err(ResponseError::InvalidProducerEpoch),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Whether an end is in progress (markers being written).
    pub fn is_preparing(&self) -> bool {
        matches!(self.status, Status::PrepareCommit | Status::PrepareAbort)
    }

    fn begin(&mut self, now_ms: i64) -> Result<(), ResponseError> {
        if self.is_preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if self.status != Status::Ongoing {
            self.status = Status::Ongoing;
            self.started_ms = now_ms;
        }
        Ok(())
    }

    pub fn add_partitions(
        &mut self,
        producer_id: i64,
        epoch: i16,
        partitions: impl IntoIterator<Item = (String, i32)>,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        self.check_producer(producer_id, epoch)?;
        self.begin(now_ms)?;
        self.partitions.extend(partitions);
        Ok(())
    }

    pub fn add_group(
        &mut self,
        producer_id: i64,
        epoch: i16,
        group: String,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        self.check_producer(producer_id, epoch)?;
        self.begin(now_ms)?;
        self.groups.insert(group);
        Ok(())
    }

    /// TxnOffsetCommit: offsets that become visible only if the transaction commits.
    pub fn add_offsets(
        &mut self,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<PartitionOffset>,
    ) -> Result<(), ResponseError> {
        self.check_producer(producer_id, epoch)?;
        if self.status != Status::Ongoing || !self.groups.contains(group) {
            return Err(ResponseError::InvalidTxnState);
        }
        for offset in offsets {
            self.pending_offsets.retain(|(g, o)| {
                !(g == group && o.topic == offset.topic && o.partition == offset.partition)
            });
            self.pending_offsets.push((group.to_string(), offset));
        }
        Ok(())
    }

    /// First step of EndTxn. `Ok(None)`: nothing to do (a retried end that
    /// already completed).
    pub fn prepare_end(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<Option<EndPlan>, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        match (self.status, commit) {
            (Status::Ongoing, _) => Ok(Some(self.prepare(commit))),
            (Status::CompleteCommit, true) | (Status::CompleteAbort, false) => Ok(None),
            (Status::PrepareCommit, true) | (Status::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Moves to the prepare state and says what to write.
    fn prepare(&mut self, commit: bool) -> EndPlan {
        self.status = if commit {
            Status::PrepareCommit
        } else {
            Status::PrepareAbort
        };
        self.plan()
    }

    /// The end in progress (after a restart, to finish it).
    pub fn plan(&self) -> EndPlan {
        let commit = self.status == Status::PrepareCommit;
        EndPlan {
            producer_id: self.producer_id,
            producer_epoch: self.epoch,
            commit,
            partitions: self.partitions.iter().cloned().collect(),
            groups: self.groups.iter().cloned().collect(),
            offsets: if commit {
                self.pending_offsets.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Second step: the markers are written.
    pub fn complete(&mut self) {
        self.status = match self.status {
            Status::PrepareCommit => Status::CompleteCommit,
            Status::PrepareAbort => Status::CompleteAbort,
            other => other,
        };
        self.partitions.clear();
        self.groups.clear();
        self.pending_offsets.clear();
    }

    /// InitProducerId for an id with a producer: the next epoch fences the
    /// old producer. An open transaction is aborted under the new epoch (so
    /// its markers fence the old producer in every partition).
    pub fn bump_epoch(&mut self, timeout_ms: i32) -> Bump {
        if self.epoch >= i16::MAX - 1 {
            return Bump::Exhausted;
        }
        self.epoch += 1;
        self.timeout_ms = timeout_ms;
        match self.status {
            Status::Ongoing => Bump::Abort(self.prepare(false)),
            _ => Bump::Done,
        }
    }

    /// Whether an open transaction has outlived its timeout.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.status == Status::Ongoing && now_ms > self.started_ms + i64::from(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::offsets::tests::offset;

    #[test]
    fn commit_flow() {
        let mut txn = Txn::new(5, 60_000);
        txn.add_partitions(5, 0, [("t".into(), 0), ("t".into(), 1)], 100)
            .unwrap();
        assert_eq!(txn.status, Status::Ongoing);
        txn.add_group(5, 0, "g".into(), 100).unwrap();
        txn.add_offsets(5, 0, "g", vec![offset("in", 0, 7)])
            .unwrap();
        txn.add_offsets(5, 0, "g", vec![offset("in", 0, 9)])
            .unwrap();
        let plan = txn.prepare_end(5, 0, true).unwrap().unwrap();
        assert!(plan.commit);
        assert_eq!(plan.partitions.len(), 2);
        assert_eq!(plan.offsets, vec![("g".to_string(), offset("in", 0, 9))]);
        assert_eq!(
            txn.prepare_end(5, 0, true),
            Err(ResponseError::ConcurrentTransactions)
        );
        txn.complete();
        assert_eq!(txn.status, Status::CompleteCommit);
        // A retried commit is fine; an abort now is not.
        assert_eq!(txn.prepare_end(5, 0, true), Ok(None));
        assert_eq!(
            txn.prepare_end(5, 0, false),
            Err(ResponseError::InvalidTxnState)
        );
    }

    #[test]
    fn a_new_epoch_fences_and_aborts() {
        let mut txn = Txn::new(5, 60_000);
        txn.add_partitions(5, 0, [("t".into(), 0)], 0).unwrap();
        let Bump::Abort(abort) = txn.bump_epoch(1_000) else {
            panic!("an open transaction must be aborted");
        };
        assert!(!abort.commit);
        assert_eq!(abort.producer_epoch, 1);
        assert_eq!(txn.status, Status::PrepareAbort);
        txn.complete();
        assert_eq!(
            txn.add_partitions(5, 0, [("t".into(), 0)], 0),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            txn.prepare_end(5, 0, true),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            txn.add_partitions(6, 1, [], 0),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert!(txn.add_partitions(5, 1, [("t".into(), 0)], 0).is_ok());
    }

    #[test]
    fn expiry_and_invalid_states() {
        let mut txn = Txn::new(5, 1_000);
        assert_eq!(
            txn.prepare_end(5, 0, true),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            txn.add_offsets(5, 0, "g", vec![]),
            Err(ResponseError::InvalidTxnState)
        );
        txn.add_partitions(5, 0, [("t".into(), 0)], 100).unwrap();
        assert!(!txn.expired(1_100));
        assert!(txn.expired(1_101));
    }
}
