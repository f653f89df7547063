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
//! The record layout is this broker's own (bincode of the committed offset),
//! not Kafka's: only actorlog brokers read the topic.

use crate::broker::Broker;
use crate::group::CommitLog;
use crate::partition::batch;
use crate::partition::replication::ReadLocal;
use crate::partition::Append;
use crate::store::offsets::{CommittedOffset, OffsetStore, PartitionOffset};
use crate::topic::PartitionHandle;
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

/// A record's key: which group's offset for which partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CommitKey {
    group: String,
    topic: String,
    partition: i32,
}

/// One group's commit as a record batch to append.
pub fn encode_commit(group: &str, offsets: &[PartitionOffset], now_ms: i64) -> io::Result<Bytes> {
    let records = offsets
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let key = CommitKey {
                group: group.to_string(),
                topic: o.topic.clone(),
                partition: o.partition,
            };
            let key = bincode::serialize(&key).map_err(io::Error::other)?;
            let value = bincode::serialize(&o.committed).map_err(io::Error::other)?;
            Ok(batch::record(
                i as i64,
                now_ms,
                Some(Bytes::from(key)),
                Some(Bytes::from(value)),
            ))
        })
        .collect::<io::Result<Vec<_>>>()?;
    batch::encode_records(&records, Compression::None).map_err(io::Error::other)
}

/// The commits in `records` (whole batches read from the partition), in
/// log order: `(group, offset)`.
pub fn decode_commits(mut records: Bytes) -> io::Result<Vec<(String, PartitionOffset)>> {
    let mut commits = Vec::new();
    while !records.is_empty() {
        let set = RecordBatchDecoder::decode(&mut records).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("offsets topic: {e}"))
        })?;
        for record in set.records.into_iter().filter(|r| !r.control) {
            let (Some(key), Some(value)) = (record.key, record.value) else {
                continue;
            };
            let key: CommitKey = bincode::deserialize(&key).map_err(io::Error::other)?;
            let committed: CommittedOffset =
                bincode::deserialize(&value).map_err(io::Error::other)?;
            commits.push((
                key.group,
                PartitionOffset {
                    topic: key.topic,
                    partition: key.partition,
                    committed,
                },
            ));
        }
    }
    Ok(commits)
}

/// Replicates commits through the group's partition of the offsets topic,
/// which this broker must lead.
pub struct OffsetsTopicLog {
    pub broker: Weak<Broker>,
}

impl CommitLog for OffsetsTopicLog {
    fn append(
        &self,
        group: &str,
        offsets: &[PartitionOffset],
    ) -> BoxFuture<'static, Result<(), ResponseError>> {
        let broker = self.broker.upgrade();
        let handle = broker
            .as_ref()
            .ok_or(ResponseError::CoordinatorNotAvailable)
            .and_then(|b| b.offsets_partition_of(group));
        let batch = encode_commit(group, offsets, crate::clock::now_ms());
        Box::pin(async move {
            let batch = batch.map_err(|e| {
                log::error!("encoding a commit: {e}");
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
                Ok(Ok(Err(ResponseError::NotLeaderOrFollower))) => {
                    Err(ResponseError::NotCoordinator)
                }
                Ok(Ok(Err(ResponseError::NotEnoughReplicas))) => {
                    Err(ResponseError::CoordinatorNotAvailable)
                }
                Ok(Ok(Err(e))) => Err(e),
            }
        })
    }
}

/// Replays a partition of the offsets topic this broker now leads (in
/// `leader_epoch`) into the offset store, so the groups it holds read
/// every acknowledged commit. Returns how many commits it applied.
pub async fn load(
    handle: &PartitionHandle,
    leader_epoch: i32,
    store: &OffsetStore,
) -> Result<usize, String> {
    let mut offset = handle.offsets.borrow().log_start;
    let mut applied = 0;
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
            return Ok(applied);
        };
        let mut by_group: BTreeMap<String, Vec<PartitionOffset>> = BTreeMap::new();
        for (group, commit) in decode_commits(records).map_err(|e| e.to_string())? {
            by_group.entry(group).or_default().push(commit);
        }
        for (group, offsets) in by_group {
            applied += offsets.len();
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
        let decoded = decode_commits(Bytes::from(both)).unwrap();
        let groups: Vec<&str> = decoded.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(groups, ["g", "g", "h"]);
        assert_eq!(decoded[1].1, offsets[1]);
    }
}
