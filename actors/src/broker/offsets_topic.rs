//! The internal `__consumer_offsets` topic of a cluster: where group
//! commits are replicated so they survive the loss of their coordinator.
//!
//! As in Kafka, a group belongs to one partition of the topic (the Java
//! hash of its id, modulo the partition count), and the leader of that
//! partition is the group's coordinator. A commit is appended there as
//! records keyed by group, topic and partition, acknowledged once the high
//! watermark passes them (replicated to the ISR, like any acks=all record),
//! and only then written to the coordinator's sled store, which stays what
//! OffsetFetch reads. A broker that becomes the partition's leader replays
//! the partition into sled before it coordinates those groups.
//!
//! Transactions live here too (Kafka keeps them in a second topic,
//! `__transaction_state`; one topic is one less to create and place): a
//! transactional id belongs to the partition its id hashes to, whose leader
//! is its transaction coordinator and appends the id's state there before
//! answering. A group's coordinator appends the offsets a transaction
//! commits (TxnOffsetCommit) as pending entries, and settles them when the
//! transaction's marker reaches it.
//!
//! The record layout is this broker's own (bincode keys and values), not
//! Kafka's: only actorlog brokers read the topic.

use super::Broker;
use crate::group::CommitLog;
use crate::partition::batch;
use crate::partition::replication::ReadLocal;
use crate::partition::Append;
use crate::replication::txn_offsets::PendingOffsets;
use crate::store::offsets::{OffsetStore, PartitionOffset};
use crate::topic::PartitionHandle;
use crate::txn::state::Txn;
use crate::txn::TxnLog;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::sync::Weak;
use std::time::Duration;

/// How long a commit waits for its replication before the client is told
/// to retry (REQUEST_TIMED_OUT): an ISR member that stopped leaves the ISR
/// only after `replica_lag_time_max_ms`.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read per step when a new coordinator replays its partition.
const LOAD_CHUNK: usize = 1 << 20;

/// The topic's name, as Kafka's.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The partition of the offsets topic that holds `group`: Kafka's
/// `Utils.abs(groupId.hashCode) % partitions`, so clients and tools that
/// compute it agree.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    (hash & 0x7fff_ffff) % partitions.max(1)
}

/// A record's key. Keys are what compaction keeps the latest of, so each
/// names the state its value replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Key {
    /// A group's committed offset of one partition.
    Commit {
        group: String,
        topic: String,
        partition: i32,
    },
    /// An offset committed inside a producer's transaction, pending until
    /// the transaction ends (TxnOffsetCommit).
    TxnCommit {
        producer_id: i64,
        group: String,
        topic: String,
        partition: i32,
    },
    /// A producer's transaction ended: its pending offsets written before
    /// this are settled (the committed ones were written as `Commit`s).
    TxnEnded { producer_id: i64 },
    /// A transactional id's state at its coordinator.
    Txn { id: String },
}

/// What one record of the offsets topic says.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A group's commit of one partition's offset.
    Commit(String, PartitionOffset),
    /// A group's committed offset of one partition deleted (DeleteGroups,
    /// OffsetDelete, expiry): the commit's key with no value, a tombstone
    /// compaction removes with the commit.
    Deleted {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A transactional commit, visible once its transaction commits.
    TxnCommit {
        producer_id: i64,
        producer_epoch: i16,
        group: String,
        offset: PartitionOffset,
    },
    /// The end of a producer's transaction (its marker reached the group's
    /// coordinator).
    TxnEnded { producer_id: i64 },
    /// A transactional id's coordinator state.
    Txn(String, Txn),
}

fn serialize(value: &impl Serialize) -> io::Result<Bytes> {
    bincode::serialize(value)
        .map(Bytes::from)
        .map_err(io::Error::other)
}

impl Entry {
    fn key_and_value(&self) -> io::Result<(Bytes, Option<Bytes>)> {
        let (key, value) = match self {
            Entry::Commit(group, o) => (
                Key::Commit {
                    group: group.clone(),
                    topic: o.topic.clone(),
                    partition: o.partition,
                },
                serialize(&o.committed)?,
            ),
            Entry::Deleted {
                group,
                topic,
                partition,
            } => {
                let key = Key::Commit {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                return Ok((serialize(&key)?, None));
            }
            Entry::TxnCommit {
                producer_id,
                producer_epoch,
                group,
                offset,
            } => (
                Key::TxnCommit {
                    producer_id: *producer_id,
                    group: group.clone(),
                    topic: offset.topic.clone(),
                    partition: offset.partition,
                },
                serialize(&(producer_epoch, &offset.committed))?,
            ),
            Entry::TxnEnded { producer_id } => (
                Key::TxnEnded {
                    producer_id: *producer_id,
                },
                Bytes::new(),
            ),
            Entry::Txn(id, txn) => (Key::Txn { id: id.clone() }, serialize(txn)?),
        };
        Ok((serialize(&key)?, Some(value)))
    }

    /// The entry of a record; `None` for a tombstone of anything but a
    /// commit.
    fn decode(key: &[u8], value: Option<&[u8]>) -> io::Result<Option<Entry>> {
        let value_of = |e| io::Error::new(io::ErrorKind::InvalidData, e);
        let key: Key = bincode::deserialize(key).map_err(value_of)?;
        let Some(value) = value else {
            return Ok(match key {
                Key::Commit {
                    group,
                    topic,
                    partition,
                } => Some(Entry::Deleted {
                    group,
                    topic,
                    partition,
                }),
                _ => None,
            });
        };
        Ok(Some(match key {
            Key::Commit {
                group,
                topic,
                partition,
            } => Entry::Commit(
                group,
                PartitionOffset {
                    topic,
                    partition,
                    committed: bincode::deserialize(value).map_err(value_of)?,
                },
            ),
            Key::TxnCommit {
                producer_id,
                group,
                topic,
                partition,
            } => {
                let (producer_epoch, committed) = bincode::deserialize(value).map_err(value_of)?;
                Entry::TxnCommit {
                    producer_id,
                    producer_epoch,
                    group,
                    offset: PartitionOffset {
                        topic,
                        partition,
                        committed,
                    },
                }
            }
            Key::TxnEnded { producer_id } => Entry::TxnEnded { producer_id },
            Key::Txn { id } => Entry::Txn(id, bincode::deserialize(value).map_err(value_of)?),
        }))
    }
}

/// Entries as one record batch to append.
pub fn encode(entries: &[Entry], now_ms: i64) -> io::Result<Bytes> {
    let records = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let (key, value) = entry.key_and_value()?;
            Ok(batch::record(i as i64, now_ms, Some(key), value))
        })
        .collect::<io::Result<Vec<_>>>()?;
    batch::encode_records(&records, Compression::None).map_err(io::Error::other)
}

/// One group's commit as a record batch to append.
pub fn encode_commit(group: &str, offsets: &[PartitionOffset], now_ms: i64) -> io::Result<Bytes> {
    let entries: Vec<Entry> = offsets
        .iter()
        .map(|o| Entry::Commit(group.to_string(), o.clone()))
        .collect();
    encode(&entries, now_ms)
}

/// The entries in `records` (whole batches read from the partition), in
/// log order.
pub fn decode(mut records: Bytes) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    while !records.is_empty() {
        let set = RecordBatchDecoder::decode(&mut records).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("offsets topic: {e}"))
        })?;
        for record in set.records.into_iter().filter(|r| !r.control) {
            let Some(key) = record.key else {
                continue;
            };
            entries.extend(Entry::decode(&key, record.value.as_deref())?);
        }
    }
    Ok(entries)
}

/// Appends a batch of entries to a partition of the offsets topic that this
/// broker leads; resolves once it is replicated to the ISR, or with the
/// error a coordinator's client gets.
pub fn append(
    handle: Result<PartitionHandle, ResponseError>,
    batch: io::Result<Bytes>,
) -> BoxFuture<'static, Result<(), ResponseError>> {
    Box::pin(async move {
        let batch = batch.map_err(|e| {
            log::error!("encoding an offsets topic record: {e}");
            ResponseError::UnknownServerError
        })?;
        let append = handle?.addr.send(Append {
            batches: vec![batch],
            durable: true,
        });
        match tokio::time::timeout(COMMIT_TIMEOUT, append).await {
            Err(_) => Err(ResponseError::RequestTimedOut),
            Ok(Err(_)) => Err(ResponseError::CoordinatorNotAvailable),
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(ResponseError::NotLeaderOrFollower))) => Err(ResponseError::NotCoordinator),
            Ok(Ok(Err(ResponseError::NotEnoughReplicas))) => {
                Err(ResponseError::CoordinatorNotAvailable)
            }
            Ok(Ok(Err(e))) => Err(e),
        }
    })
}

/// Replicates commits through the group's partition of the offsets topic,
/// which this broker must lead.
pub struct OffsetsTopicLog {
    pub broker: Weak<Broker>,
}

impl OffsetsTopicLog {
    fn partition_of(&self, key: &str) -> Result<PartitionHandle, ResponseError> {
        self.broker
            .upgrade()
            .ok_or(ResponseError::CoordinatorNotAvailable)
            .and_then(|b| b.offsets_partition_of(key))
    }
}

impl CommitLog for OffsetsTopicLog {
    fn append(
        &self,
        group: &str,
        offsets: &[PartitionOffset],
    ) -> BoxFuture<'static, Result<(), ResponseError>> {
        let batch = encode_commit(group, offsets, crate::clock::now_ms());
        append(self.partition_of(group), batch)
    }

    fn delete(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> BoxFuture<'static, Result<(), ResponseError>> {
        let entries: Vec<Entry> = partitions
            .iter()
            .map(|(topic, partition)| Entry::Deleted {
                group: group.to_string(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        append(
            self.partition_of(group),
            encode(&entries, crate::clock::now_ms()),
        )
    }
}

impl TxnLog for OffsetsTopicLog {
    fn append(&self, id: &str, txn: &Txn) -> BoxFuture<'static, Result<(), ResponseError>> {
        let batch = encode(
            &[Entry::Txn(id.to_string(), txn.clone())],
            crate::clock::now_ms(),
        );
        append(self.partition_of(id), batch)
    }
}

/// What replaying a partition of the offsets topic found besides the
/// commits it applied.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Commits applied to the offset store.
    pub commits: usize,
    /// The latest state of each transactional id the partition holds.
    pub txns: BTreeMap<String, Txn>,
    /// Transactional commits whose transaction has not ended yet.
    pub pending: PendingOffsets,
}

/// Replays a partition of the offsets topic this broker now leads (in
/// `leader_epoch`): applies every commit to the offset store, so the groups
/// it holds read every acknowledged commit, and returns the transactional
/// state it holds.
pub async fn load(
    handle: &PartitionHandle,
    leader_epoch: i32,
    store: &OffsetStore,
) -> Result<Replayed, String> {
    let mut offset = handle.offsets.borrow().log_start;
    let mut replayed = Replayed::default();
    loop {
        let read = ReadLocal {
            leader_epoch,
            offset,
            max_bytes: LOAD_CHUNK,
        };
        let records = handle
            .addr
            .send(read)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let Some(last) = batch::last_offset_of(&records) else {
            return Ok(replayed);
        };
        let mut by_group: BTreeMap<String, Vec<PartitionOffset>> = BTreeMap::new();
        for entry in decode(records).map_err(|e| e.to_string())? {
            match entry {
                Entry::Commit(group, commit) => by_group.entry(group).or_default().push(commit),
                Entry::Deleted {
                    group,
                    topic,
                    partition,
                } => {
                    // The group's earlier commits first, then the deletion.
                    if let Some(offsets) = by_group.remove(&group) {
                        replayed.commits += offsets.len();
                        store
                            .commit(&group, &offsets)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    store
                        .delete(&group, Some(&[(topic, partition)]))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Entry::TxnCommit {
                    producer_id,
                    producer_epoch,
                    group,
                    offset,
                } => {
                    // A replayed log was checked when it was written.
                    let _ = replayed
                        .pending
                        .add(producer_id, producer_epoch, &group, vec![offset]);
                }
                Entry::TxnEnded { producer_id } => {
                    replayed.pending.take(producer_id, i16::MAX);
                }
                Entry::Txn(id, txn) => {
                    replayed.txns.insert(id, txn);
                }
            }
        }
        for (group, offsets) in by_group {
            replayed.commits += offsets.len();
            store
                .commit(&group, &offsets)
                .await
                .map_err(|e| e.to_string())?;
        }
        offset = last + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::offsets::CommittedOffset;

    #[test]
    fn partitions_follow_the_java_hash() {
        // Java: "my-group".hashCode() == -1906497762; masked, % 50.
        assert_eq!(
            partition_for("my-group", 50),
            (-1906497762i32 & 0x7fff_ffff) % 50
        );
        // A negative hash is masked, not negated: "polygenelubricants"
        // hashes to Integer.MIN_VALUE in Java.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        assert!((0..7).contains(&partition_for("ünïcödé", 7)));
    }

    #[test]
    fn commits_round_trip_through_a_batch() {
        let offsets = vec![
            PartitionOffset {
                topic: "t".into(),
                partition: 3,
                committed: CommittedOffset {
                    offset: 42,
                    leader_epoch: 1,
                    metadata: Some("m".into()),
                    commit_timestamp_ms: 7,
                },
            },
            PartitionOffset {
                topic: "u".into(),
                partition: 0,
                committed: CommittedOffset {
                    offset: 9,
                    leader_epoch: -1,
                    metadata: None,
                    commit_timestamp_ms: 7,
                },
            },
        ];
        let batch = encode_commit("g", &offsets, 7).unwrap();
        assert!(batch::validate(&batch).is_ok());
        let mut both = batch.to_vec();
        both.extend_from_slice(&encode_commit("h", &offsets[..1], 8).unwrap());
        let decoded = decode(Bytes::from(both)).unwrap();
        let groups: Vec<&str> = decoded
            .iter()
            .map(|e| match e {
                Entry::Commit(g, _) => g.as_str(),
                other => panic!("not a commit: {other:?}"),
            })
            .collect();
        assert_eq!(groups, ["g", "g", "h"]);
        assert_eq!(decoded[1], Entry::Commit("g".into(), offsets[1].clone()));
    }
}
