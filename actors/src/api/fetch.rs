//! Fetch: locate whole batches in each requested partition, within
//! `partition_max_bytes` and then the response's `max_bytes`, before any
//! record byte is read; when there is less than `min_bytes`, wait for the
//! partitions' offset watches to change (a produce) or for `max_wait_ms`,
//! whichever comes first, and locate again only in the partitions that
//! changed. No polling loop.
//!
//! On a plaintext connection, from v4 (record batches), a consumer's answer
//! goes out as [`ResponseParts`]: the fields encoded around the located
//! file regions, which the connection sends with `sendfile(2)`
//! ([`super::fetch_response`]). TLS connections, the message-set versions
//! and followers (whose reads the partition carries out itself) get the
//! records read into memory once, on the reader threads.
//!
//! Fetch sessions (KIP-227) are not kept: every response carries session id
//! 0, which tells clients to send full requests.

use super::fetch_response;
use super::Response;
use crate::broker::Broker;
use crate::partition::file_records::FileRecords;
use crate::partition::replication::ReplicaRead;
use crate::partition::transactions::Aborted;
use crate::partition::{Locate, Located, Read, ReadFailure};
use crate::partition::{LogOffsets, PartitionHandle};
use crate::protocol::{message_set, READ_COMMITTED};
use crate::security::listeners::Listener;
use crate::security::{Access, Operation};
use crate::topic::Topic;
use bytes::Bytes;
use futures_util::future::{join_all, select_all};
use futures_util::FutureExt;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
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
    listener: &Listener,
    version: i16,
    req: FetchRequest,
) -> Response {
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
                        // No partition gets more than the whole response.
                        max_bytes: p.partition_max_bytes.clamp(0, req.max_bytes.max(0)) as usize,
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
    let wanted: Vec<&Wanted> = topics.iter().flat_map(|t| &t.partitions).collect();
    let mut watches: Vec<Option<watch::Receiver<LogOffsets>>> = wanted
        .iter()
        .map(|w| w.target.as_ref().ok().map(|h| h.offsets.clone()))
        .collect();
    let mut results: Vec<Option<ReadResult>> = wanted.iter().map(|_| None).collect();
    loop {
        // Only the partitions whose offsets moved since their last read (all
        // of them at first) are read again.
        let stale: Vec<usize> = (0..wanted.len())
            .filter(|&i| results[i].is_none() || watches[i].as_ref().is_some_and(changed))
            .collect();
        for &i in &stale {
            if let Some(rx) = &mut watches[i] {
                rx.mark_unchanged();
            }
        }
        let read = join_all(stale.iter().map(|&i| read_one(wanted[i]))).await;
        for (i, result) in stale.into_iter().zip(read) {
            results[i] = Some(result);
        }
        let (bytes, errors) =
            results
                .iter()
                .flatten()
                .fold((0, false), |(bytes, errors), r| match r {
                    // A diverging follower must truncate before it can use
                    // any data: answer it at once.
                    Ok(answer) if answer.diverging.is_some() => (bytes, true),
                    Ok(answer) => (bytes + answer.records.len(), errors),
                    Err(_) => (bytes, true),
                });
        let satisfied = bytes >= min_bytes.max(1) || errors || watches.iter().all(Option::is_none);
        // Waits on clones, so that each partition's own receiver still says
        // whether it changed when the wait ends.
        let waiting = watches.iter().flatten().map(|rx| {
            let mut rx = rx.clone();
            async move { rx.changed().await }.boxed()
        });
        if satisfied
            || Instant::now() >= deadline
            || timeout_at(deadline, select_all(waiting)).await.is_err()
        {
            let mut results: Vec<ReadResult> = results.into_iter().flatten().collect();
            trim(&mut results, max_bytes);
            let plain = !listener.protocol.tls() && replica_id < 0;
            return respond(broker, version, plain, topics, results).await;
        }
    }
}

/// The partition's offsets moved (or it went away) since it was read.
fn changed(rx: &watch::Receiver<LogOffsets>) -> bool {
    rx.has_changed().unwrap_or(true)
}

fn target(
    topic: Option<&Topic>,
    partition: i32,
    missing: ResponseError,
) -> Result<PartitionHandle, ResponseError> {
    let topic = topic.ok_or(missing)?;
    topic.replica(partition).cloned()
}

/// A partition's answer.
struct Answer {
    records: Data,
    offsets: LogOffsets,
    /// For read_committed: aborted transactions among the records.
    aborted: Vec<Aborted>,
    /// For a diverging follower: the `(epoch, end offset)` to truncate to.
    diverging: Option<(i32, i64)>,
}

/// A consumer's records are located; a follower's are read at once.
enum Data {
    Located(FileRecords),
    Read(Bytes),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::Located(records) => records.len() as usize,
            Data::Read(bytes) => bytes.len(),
        }
    }
}

type ReadResult = Result<Answer, ReadFailure>;

/// Cuts the answers to the response budget: the first data always goes in
/// whole (so a batch larger than `max_bytes` still makes progress); later
/// partitions keep the whole batches that still fit.
fn trim(results: &mut [ReadResult], max_bytes: usize) {
    let mut total = 0usize;
    for answer in results.iter_mut().flatten() {
        if total > 0 {
            let left = max_bytes.saturating_sub(total);
            match &mut answer.records {
                Data::Located(records) => records.truncate(left as u64),
                Data::Read(bytes) if bytes.len() > left => *bytes = Bytes::new(),
                Data::Read(_) => {}
            }
        }
        total += answer.records.len();
    }
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
        return Ok(Answer {
            records: Data::Located(FileRecords::default()),
            offsets,
            aborted: Vec::new(),
            diverging: None,
        });
    }
    let lost = |_| ReadFailure {
        error: ResponseError::UnknownTopicOrPartition,
        offsets,
    };
    if wanted.replica.is_some() {
        let read = Read {
            offset: wanted.offset,
            max_bytes: wanted.max_bytes,
            committed: wanted.committed,
            current_leader_epoch: wanted.current_leader_epoch,
            replica: wanted.replica,
        };
        let records = handle.addr.send(read).await.map_err(lost)??;
        return Ok(Answer {
            records: Data::Read(records.records),
            offsets: records.offsets,
            aborted: records.aborted,
            diverging: records.diverging,
        });
    }
    let locate = Locate {
        offset: wanted.offset,
        max_bytes: wanted.max_bytes,
        committed: wanted.committed,
        current_leader_epoch: wanted.current_leader_epoch,
    };
    let located: Located = handle.addr.send(locate).await.map_err(lost)??;
    Ok(Answer {
        records: Data::Located(located.records),
        offsets: located.offsets,
        aborted: located.aborted,
        diverging: None,
    })
}

/// The response: on a `plain` connection (no TLS, a consumer), from v4,
/// with the records sent from their files; else with them read into memory.
async fn respond(
    broker: &Broker,
    version: i16,
    plain: bool,
    topics: Vec<WantedTopic>,
    results: Vec<ReadResult>,
) -> Response {
    let mut results = results.into_iter();
    let mut topics: Vec<(WantedTopic, Vec<ReadResult>)> = topics
        .into_iter()
        .map(|topic| {
            let results = results.by_ref().take(topic.partitions.len()).collect();
            (topic, results)
        })
        .collect();
    for (topic, results) in &topics {
        let bytes = results
            .iter()
            .flatten()
            .map(|r| r.records.len())
            .sum::<usize>();
        if bytes > 0 {
            broker.metrics().fetched(&topic.label, bytes);
        }
    }
    // Only records in the page cache go out with sendfile; the reader
    // threads read the others (they would wait on the disk here).
    let cached = topics
        .iter()
        .flat_map(|(_, results)| results.iter().flatten())
        .all(|answer| match &answer.records {
            Data::Located(records) => records.cached,
            Data::Read(_) => true,
        });
    let zero_copy = (fetch_response::MIN_VERSION..=fetch_response::MAX_VERSION).contains(&version);
    if plain && cached && zero_copy {
        let (response, records) = split_records(version, topics);
        return Response::Parts(fetch_response::encode(&response, records, version));
    }
    load(broker, &mut topics).await;
    Response::Message(Box::new(ResponseKind::Fetch(in_memory(version, topics))))
}

/// The response without records, and each partition's located records
/// (none for a failed partition).
fn split_records(
    version: i16,
    topics: Vec<(WantedTopic, Vec<ReadResult>)>,
) -> (FetchResponse, Vec<Vec<FileRecords>>) {
    let (responses, records) = topics
        .into_iter()
        .map(|(topic, results)| {
            let (partitions, records) = topic
                .partitions
                .iter()
                .zip(results)
                .map(|(wanted, mut result)| {
                    let taken = result
                        .as_mut()
                        .map(|a| std::mem::replace(&mut a.records, Data::Read(Bytes::new())));
                    let records = match taken {
                        Ok(Data::Located(records)) => records,
                        _ => FileRecords::default(),
                    };
                    (
                        partition_data(wanted.partition, wanted.committed, result),
                        records,
                    )
                })
                .unzip();
            (topic_response(version, topic, partitions), records)
        })
        .unzip();
    (FetchResponse::default().with_responses(responses), records)
}

/// Reads every located answer into memory, on the reader threads; if that
/// fails, those partitions answer KAFKA_STORAGE_ERROR.
async fn load(broker: &Broker, topics: &mut [(WantedTopic, Vec<ReadResult>)]) {
    let located: Vec<&mut ReadResult> = topics
        .iter_mut()
        .flat_map(|(_, results)| results.iter_mut())
        .filter(|r| {
            matches!(
                r,
                Ok(Answer {
                    records: Data::Located(_),
                    ..
                })
            )
        })
        .collect();
    let records = located
        .iter()
        .filter_map(|r| match r {
            Ok(Answer {
                records: Data::Located(records),
                ..
            }) => Some(records.clone()),
            _ => None,
        })
        .collect();
    let loaded = match broker.readers() {
        Some(readers) => readers.load(records).await,
        None => Err(std::io::Error::other("the reader threads have stopped")),
    };
    match loaded {
        Ok(loaded) => {
            for (result, bytes) in located.into_iter().zip(loaded) {
                if let Ok(answer) = result {
                    answer.records = Data::Read(bytes);
                }
            }
        }
        Err(e) => {
            log::error!("fetch: reading located records failed: {e}");
            for result in located {
                if let Ok(answer) = result {
                    let offsets = answer.offsets;
                    *result = Err(ReadFailure {
                        error: ResponseError::KafkaStorageError,
                        offsets,
                    });
                }
            }
        }
    }
}

/// The response with the records in memory, as message sets before v4.
fn in_memory(version: i16, topics: Vec<(WantedTopic, Vec<ReadResult>)>) -> FetchResponse {
    let responses = topics
        .into_iter()
        .map(|(topic, results)| {
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
            topic_response(version, topic, partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

fn topic_response(
    version: i16,
    topic: WantedTopic,
    partitions: Vec<PartitionData>,
) -> FetchableTopicResponse {
    let mut response = FetchableTopicResponse::default().with_partitions(partitions);
    if version >= TOPIC_IDS_VERSION {
        response.topic_id = topic.id;
    } else {
        response.topic = topic.name;
    }
    response
}

/// A partition's fields; its records are those read into memory (none
/// when located only).
fn partition_data(partition: i32, committed: bool, result: ReadResult) -> PartitionData {
    let (error, offsets, records, aborted, diverging) = match result {
        Ok(Answer {
            records,
            offsets,
            aborted,
            diverging,
        }) => {
            let records = match records {
                Data::Read(bytes) => bytes,
                Data::Located(_) => Bytes::new(),
            };
            (0, offsets, records, aborted, diverging)
        }
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
