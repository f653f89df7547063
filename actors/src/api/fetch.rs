//! Fetch: read whole batches from each requested partition; when there is
//! less than `min_bytes`, wait for the partitions' offset watches to change
//! (a produce) or for `max_wait_ms`, whichever comes first. No polling loop.
//!
//! Fetch sessions (KIP-227) are not kept: every response carries session id
//! 0, which tells clients to send full requests.

use crate::broker::Broker;
use crate::partition::replication::ReplicaRead;
use crate::partition::{LogOffsets, PartitionHandle};
use crate::partition::{Read, ReadFailure, Records};
use crate::protocol::{message_set, READ_COMMITTED};
use crate::security::{Access, Operation};
use crate::topic::Topic;
use bytes::Bytes;
use futures_util::future::{join_all, select_all};
use futures_util::FutureExt;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};
use uuid::Uuid;

/// Before this version the records go out as message sets (v0-v1 in magic
/// 0, v2-v3 in magic 1).
const RECORD_BATCH_VERSION: i16 = 4;

/// From this version on topics are named by id.
const TOPIC_IDS_VERSION: i16 = 13;

/// From this version on a follower names itself in `replica_state`, with
/// its broker epoch.
const REPLICA_STATE_VERSION: i16 = 15;

/// One requested partition.
struct Wanted {
    partition: i32,
    offset: i64,
    max_bytes: usize,
    committed: bool,
    current_leader_epoch: i32,
    /// Set when a follower fetches.
    replica: Option<ReplicaRead>,
    target: Result<PartitionHandle, ResponseError>,
}

struct WantedTopic {
    /// The topic's name, also when the request named it by id.
    label: String,
    name: TopicName,
    id: Uuid,
    partitions: Vec<Wanted>,
}

pub async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    version: i16,
    req: FetchRequest,
) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let committed = req.isolation_level == READ_COMMITTED;
    let (replica_id, replica_epoch) = if version >= REPLICA_STATE_VERSION {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    // A replica fetch needs CLUSTER_ACTION (without it every partition is
    // TOPIC_AUTHORIZATION_FAILED, as Kafka answers), and from a broker the
    // controller does not count as alive (fenced, or with an older broker
    // epoch) it is refused whole.
    let refused = (replica_id >= 0)
        .then(|| {
            access
                .cluster(Operation::ClusterAction)
                .map_err(|_| ResponseError::TopicAuthorizationFailed)
                .and_then(|()| broker.check_replica(replica_id, replica_epoch))
                .err()
        })
        .flatten();
    let topics: Vec<WantedTopic> = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = if version >= TOPIC_IDS_VERSION {
                broker.topic_by_id(t.topic_id)
            } else {
                broker.topic(&t.topic)
            };
            let missing = if version >= TOPIC_IDS_VERSION {
                ResponseError::UnknownTopicId
            } else {
                ResponseError::UnknownTopicOrPartition
            };
            let label = topic
                .as_ref()
                .map_or_else(|| t.topic.to_string(), |t| t.name.to_string());
            // A consumer reads with READ on the topic; an unknown topic id
            // stays unknown, as it names nothing to authorize.
            let denied = (replica_id < 0 && (topic.is_some() || version < TOPIC_IDS_VERSION))
                .then(|| access.topic(Operation::Read, &label).err())
                .flatten();
            WantedTopic {
                label,
                name: t.topic,
                id: t.topic_id,
                partitions: t
                    .partitions
                    .into_iter()
                    .map(|p| Wanted {
                        partition: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                        committed,
                        current_leader_epoch: p.current_leader_epoch,
                        replica: (replica_id >= 0).then_some(ReplicaRead {
                            replica: replica_id,
                            last_fetched_epoch: p.last_fetched_epoch,
                        }),
                        target: match refused.or(denied) {
                            Some(error) => Err(error),
                            None => target(topic.as_deref(), p.partition, missing),
                        },
                    })
                    .collect(),
            }
        })
        .collect();
    let max_bytes = req.max_bytes.max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as usize;
    loop {
        let mut watches: Vec<_> = topics
            .iter()
            .flat_map(|t| &t.partitions)
            .filter_map(|w| w.target.as_ref().ok())
            .map(|h| {
                let mut rx = h.offsets.clone();
                rx.mark_unchanged();
                rx
            })
            .collect();
        let results = read_all(&topics, max_bytes).await;
        let (bytes, errors) =
            results
                .iter()
                .flatten()
                .fold((0, false), |(bytes, errors), r| match r {
                    // A diverging follower must truncate before it can use
                    // any data: answer it at once.
                    Ok(records) if records.diverging.is_some() => (bytes, true),
                    Ok(records) => (bytes + records.records.len(), errors),
                    Err(_) => (bytes, true),
                });
        let satisfied = bytes >= min_bytes.max(1) || errors || watches.is_empty();
        if satisfied || Instant::now() >= deadline {
            return respond(broker, version, topics, results);
        }
        let changed = select_all(watches.iter_mut().map(|rx| rx.changed().boxed()));
        if timeout_at(deadline, changed).await.is_err() {
            return respond(broker, version, topics, results);
        }
    }
}

fn target(
    topic: Option<&Topic>,
    partition: i32,
    missing: ResponseError,
) -> Result<PartitionHandle, ResponseError> {
    let topic = topic.ok_or(missing)?;
    topic.replica(partition).cloned()
}

type ReadResult = Result<Records, ReadFailure>;

/// Reads every partition concurrently, then trims to the response budget:
/// the first data always goes in whole (so a batch larger than `max_bytes`
/// still makes progress); later partitions only if they fit.
async fn read_all(topics: &[WantedTopic], max_bytes: usize) -> Vec<Vec<ReadResult>> {
    let reads = topics
        .iter()
        .map(|t| join_all(t.partitions.iter().map(read_one)));
    let mut results = join_all(reads).await;
    let mut total = 0usize;
    for records in results.iter_mut().flatten().flatten() {
        if total > 0 && total + records.records.len() > max_bytes {
            records.records = Bytes::new();
        }
        total += records.records.len();
    }
    results
}

async fn read_one(wanted: &Wanted) -> ReadResult {
    let handle = match &wanted.target {
        Ok(handle) => handle,
        Err(error) => {
            return Err(ReadFailure {
                error: *error,
                offsets: LogOffsets::UNKNOWN,
            })
        }
    };
    let offsets = *handle.offsets.borrow();
    let readable_end = if wanted.committed {
        offsets.last_stable
    } else {
        offsets.high_watermark
    };
    // A caught-up consumer of a partition led here with no epoch to check:
    // nothing to read, no need to bother the actor. Followers always ask,
    // since their fetch offset is what moves the high watermark.
    if wanted.offset == readable_end
        && wanted.replica.is_none()
        && offsets.leading
        && wanted.current_leader_epoch < 0
    {
        return Ok(Records {
            records: Bytes::new(),
            offsets,
            aborted: Vec::new(),
            diverging: None,
        });
    }
    let read = Read {
        offset: wanted.offset,
        max_bytes: wanted.max_bytes,
        committed: wanted.committed,
        current_leader_epoch: wanted.current_leader_epoch,
        replica: wanted.replica,
    };
    match handle.addr.send(read).await {
        Ok(result) => result,
        Err(_) => Err(ReadFailure {
            error: ResponseError::UnknownTopicOrPartition,
            offsets,
        }),
    }
}

fn respond(
    broker: &Broker,
    version: i16,
    topics: Vec<WantedTopic>,
    results: Vec<Vec<ReadResult>>,
) -> FetchResponse {
    let responses = topics
        .into_iter()
        .zip(results)
        .map(|(topic, results)| {
            let bytes = results
                .iter()
                .flatten()
                .map(|r| r.records.len())
                .sum::<usize>();
            if bytes > 0 {
                broker.metrics().fetched(&topic.label, bytes);
            }
            let partitions = topic
                .partitions
                .iter()
                .zip(results)
                .map(|(wanted, result)| {
                    let mut data = partition_data(wanted.partition, wanted.committed, result);
                    if version < RECORD_BATCH_VERSION {
                        let magic = if version < 2 { 0 } else { 1 };
                        data.records = data
                            .records
                            .map(|r| message_set::from_batches(r, magic, wanted.offset));
                    }
                    data
                })
                .collect();
            let mut response = FetchableTopicResponse::default().with_partitions(partitions);
            if version >= TOPIC_IDS_VERSION {
                response.topic_id = topic.id;
            } else {
                response.topic = topic.name;
            }
            response
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

fn partition_data(partition: i32, committed: bool, result: ReadResult) -> PartitionData {
    let (error, offsets, records, aborted, diverging) = match result {
        Ok(Records {
            records,
            offsets,
            aborted,
            diverging,
        }) => (0, offsets, records, aborted, diverging),
        Err(ReadFailure { error, offsets }) => {
            (error.code(), offsets, Bytes::new(), Vec::new(), None)
        }
    };
    let (epoch, end_offset) = diverging.unwrap_or((-1, -1));
    let aborted = committed.then(|| {
        aborted
            .into_iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset)
            })
            .collect()
    });
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error)
        .with_high_watermark(offsets.high_watermark)
        .with_last_stable_offset(offsets.last_stable)
        .with_aborted_transactions(aborted)
        .with_log_start_offset(offsets.log_start)
        .with_preferred_read_replica(BrokerId(-1))
        .with_diverging_epoch(
            EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset),
        )
        .with_records(Some(records))
}
