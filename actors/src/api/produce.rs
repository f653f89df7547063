//! Produce: validate each partition's record batches here, on the
//! connection's thread (CRC32C, sizes, magic), then send them to the
//! partition actor, which only assigns offsets and writes.
//!
//! The appends are sent before this function returns, in request order, so
//! two pipelined Produce requests to one partition are written in the order
//! they arrived.

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::partition::batch::{self, BatchError, BatchHeader};
use crate::partition::{Append, Appended};
use crate::security::{Access, Operation};
use crate::topic::config::ProduceSettings;
use crate::topic::Topic;
use bytes::Bytes;
use futures_util::future::{join_all, LocalBoxFuture};
use futures_util::FutureExt;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

type PartitionReply = LocalBoxFuture<'static, PartitionProduceResponse>;

/// What the producer asked to wait for, and for how long (acks=all waits
/// for the ISR; past `timeout_ms` the answer is REQUEST_TIMED_OUT).
#[derive(Debug, Clone, Copy)]
struct Acks {
    level: i16,
    timeout_ms: i32,
}

/// Starts the appends; the future yields the response, or `None` for acks=0.
pub fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    req: ProduceRequest,
) -> impl Future<Output = Option<ProduceResponse>> + 'static {
    let acks = Acks {
        level: req.acks,
        timeout_ms: req.timeout_ms,
    };
    // A transactional producer writes for its transactional id: without
    // WRITE on it, nothing of the request is written.
    let refused = req
        .transactional_id
        .as_ref()
        .and_then(|id| access.transactional_id(Operation::Write, id).err());
    let topics: Vec<_> = req
        .topic_data
        .into_iter()
        .map(|data| {
            let denied = refused.or_else(|| access.topic(Operation::Write, &data.name).err());
            match denied {
                Some(error) => {
                    let partitions = data
                        .partition_data
                        .iter()
                        .map(|p| failed(p.index, error, "not authorized"))
                        .collect();
                    let response = TopicProduceResponse::default()
                        .with_name(data.name)
                        .with_topic_id(data.topic_id)
                        .with_partition_responses(partitions);
                    async move { response }.boxed_local()
                }
                None => start_topic(broker, access, acks, data),
            }
        })
        .collect();
    async move {
        let responses = join_all(topics).await;
        (acks.level != 0).then(|| ProduceResponse::default().with_responses(responses))
    }
}

fn start_topic(
    broker: &Arc<Broker>,
    access: &Access,
    acks: Acks,
    data: TopicProduceData,
) -> LocalBoxFuture<'static, TopicProduceResponse> {
    let response = TopicProduceResponse::default()
        .with_name(data.name.clone())
        .with_topic_id(data.topic_id);
    if !matches!(acks.level, -1..=1) {
        let partitions = data
            .partition_data
            .iter()
            .map(|p| {
                failed(
                    p.index,
                    ResponseError::InvalidRequiredAcks,
                    "acks must be -1, 0 or 1",
                )
            })
            .collect();
        return async move { response.with_partition_responses(partitions) }.boxed_local();
    }
    if let Some(topic) = broker.topic(&data.name) {
        // The common case: send every append now, before returning.
        let replies: Vec<_> = data
            .partition_data
            .into_iter()
            .map(|p| start_partition(&topic, acks, broker.metrics(), p))
            .collect();
        return async move { response.with_partition_responses(join_all(replies).await) }
            .boxed_local();
    }
    let broker = broker.clone();
    let may_create = access.create_topic(&data.name).is_ok();
    async move {
        let created = if may_create {
            broker.topic_or_create(&data.name).await
        } else {
            Ok(None)
        };
        let partitions = match created {
            Ok(Some(topic)) => {
                let replies: Vec<_> = data
                    .partition_data
                    .into_iter()
                    .map(|p| start_partition(&topic, acks, broker.metrics(), p))
                    .collect();
                join_all(replies).await
            }
            Ok(None) => unknown(&data.partition_data, "unknown topic"),
            Err(e) => data
                .partition_data
                .iter()
                .map(|p| failed(p.index, e.code, &e.message))
                .collect(),
        };
        response.with_partition_responses(partitions)
    }
    .boxed_local()
}

fn unknown(partitions: &[PartitionProduceData], why: &str) -> Vec<PartitionProduceResponse> {
    partitions
        .iter()
        .map(|p| failed(p.index, ResponseError::UnknownTopicOrPartition, why))
        .collect()
}

fn start_partition(
    topic: &Topic,
    acks: Acks,
    metrics: &Metrics,
    data: PartitionProduceData,
) -> PartitionReply {
    let index = data.index;
    let partition = match topic.replica(index) {
        Ok(partition) => partition,
        Err(error) => {
            let message = match error {
                ResponseError::NotLeaderOrFollower => {
                    "this broker holds no replica of the partition"
                }
                _ => "unknown partition",
            };
            let reply = failed(index, error, message);
            return async move { reply }.boxed_local();
        }
    };
    let append_time = topic.produce.log_append_time.then(now_ms);
    let batches = match prepare(data.records, &topic.produce, append_time) {
        Ok((batches, records)) => {
            metrics.produced(&topic.name, batches.iter().map(Bytes::len).sum(), records);
            batches
        }
        Err(refusal) => {
            let reply = failed(index, refusal.error, &refusal.message)
                .with_record_errors(refusal.record_errors);
            return async move { reply }.boxed_local();
        }
    };
    let durable = acks.level == -1;
    let appended = partition.addr.send(Append { batches, durable });
    let timeout = Duration::from_millis(u64::try_from(acks.timeout_ms).unwrap_or(0));
    async move {
        // Some old clients send 0 (or nothing) for "the broker's choice".
        let appended = if durable && !timeout.is_zero() {
            match tokio::time::timeout(timeout, appended).await {
                Ok(appended) => appended,
                Err(_) => {
                    return failed(
                        index,
                        ResponseError::RequestTimedOut,
                        "the in-sync replicas did not confirm the batch in time",
                    )
                }
            }
        } else {
            appended.await
        };
        match appended {
            Ok(Ok(Appended {
                base_offset,
                log_start_offset,
            })) => PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(base_offset)
                .with_log_append_time_ms(append_time.unwrap_or(-1))
                .with_log_start_offset(log_start_offset),
            Ok(Err(error)) => failed(index, error, "the broker could not write the batch"),
            Err(_) => failed(
                index,
                ResponseError::UnknownTopicOrPartition,
                "partition is gone",
            ),
        }
    }
    .boxed_local()
}

/// Why a partition's records are refused, as the Produce response says it.
#[derive(Debug)]
pub struct Refusal {
    pub error: ResponseError,
    /// The partition's `error_message`.
    pub message: String,
    /// KIP-467's `record_errors`: the records at fault, by position in
    /// their batch (Produce v8+; older clients get the message alone).
    pub record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl From<(ResponseError, String)> for Refusal {
    fn from((error, message): (ResponseError, String)) -> Self {
        Refusal {
            error,
            message,
            record_errors: Vec::new(),
        }
    }
}

/// Splits the record set into batches, checks each one and applies the
/// topic's compression and timestamp settings. Returns the batches and
/// their record count.
pub fn prepare(
    records: Option<Bytes>,
    settings: &ProduceSettings,
    append_time: Option<i64>,
) -> Result<(Vec<Bytes>, usize), Refusal> {
    let max_batch = settings.max_message_bytes;
    let records = records
        .filter(|r| !r.is_empty())
        .ok_or((ResponseError::InvalidRecord, "no records".to_string()))?;
    let batches = batch::split(records).map_err(rejection)?;
    let mut count = 0;
    for one in &batches {
        if one.len() > max_batch {
            return Err(Refusal::from((
                ResponseError::MessageTooLarge,
                format!(
                    "batch of {} bytes exceeds message_max_bytes {max_batch}",
                    one.len()
                ),
            )));
        }
        let header = batch::validate(one).map_err(rejection)?;
        check_record_count(&header)?;
        if settings.compacted {
            check_keys(one)?;
        }
        count += header.records_count as usize;
    }
    let prepared = batches
        .into_iter()
        .map(|one| {
            let one = match settings.compression {
                Some(codec) => batch::recompress(one, codec).map_err(rejection)?,
                None => one,
            };
            Ok(match append_time {
                Some(now) => batch::with_log_append_time(&one, now),
                None => one,
            })
        })
        .collect::<Result<_, (ResponseError, String)>>()?;
    Ok((prepared, count))
}

/// Kafka's check of a client's batch beyond its framing: at least one
/// record, and as many as its offset range spans. A batch without records
/// would leave nothing to recompress or to stamp.
fn check_record_count(header: &BatchHeader) -> Result<(), (ResponseError, String)> {
    let span = i64::from(header.last_offset_delta) + 1;
    if header.records_count <= 0 || i64::from(header.records_count) != span {
        return Err((
            ResponseError::InvalidRecord,
            format!(
                "batch reports {} records for an offset range of {span}",
                header.records_count
            ),
        ));
    }
    Ok(())
}

/// Kafka's check of a batch for a compacted topic, where records are kept
/// by key: a record without one could never be compacted away. The whole
/// batch fails with INVALID_RECORD, naming each keyless record (KIP-467),
/// so a client can tell the bad records from the ones that only failed with
/// them.
fn check_keys(batch: &[u8]) -> Result<(), Refusal> {
    const WHY: &str = "Compacted topic cannot accept message without key";
    let keyless = batch::null_key_records(batch).map_err(rejection)?;
    if keyless.is_empty() {
        return Ok(());
    }
    Err(Refusal {
        error: ResponseError::InvalidRecord,
        message: format!(
            "{WHY}: {} of the batch's records have no key (first at index {})",
            keyless.len(),
            keyless[0]
        ),
        record_errors: keyless
            .into_iter()
            .map(|index| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(index)
                    .with_batch_index_error_message(Some(StrBytes::from_static_str(WHY)))
            })
            .collect(),
    })
}

fn rejection(err: BatchError) -> (ResponseError, String) {
    let code = match err {
        BatchError::Magic(_) => ResponseError::InvalidRecord,
        _ => ResponseError::CorruptMessage,
    };
    (code, err.to_string())
}

fn failed(index: i32, error: ResponseError, message: &str) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::batch::testing;
    use kafka_protocol::records::Compression;

    fn settings(compression: Option<Compression>, log_append_time: bool) -> ProduceSettings {
        ProduceSettings {
            max_message_bytes: 1 << 20,
            log_append_time,
            compression,
            compacted: false,
        }
    }

    /// The batch of fuzz crash da4eb1d8 (a transactional batch that reports
    /// no records), with its CRC made valid as the fuzz target does: it
    /// recompressed to nothing, and stamping the log append time on nothing
    /// panicked.
    fn empty_batch() -> Bytes {
        let mut batch = vec![
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 2,
            0, 1, 162, 49, 2, 179, 38, 0, 0, 1, 162, 49, 2, 179, 38, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(batch)
    }

    #[test]
    fn a_batch_without_records_is_an_invalid_record() {
        // The crashing combination first.
        for codec in [Some(Compression::Zstd), Some(Compression::Gzip), None] {
            for stamp in [true, false] {
                let append_time = stamp.then_some(1_700_000_000_000);
                let result = prepare(Some(empty_batch()), &settings(codec, stamp), append_time);
                let refusal = result.expect_err("an empty batch is refused");
                assert_eq!(refusal.error, ResponseError::InvalidRecord);
            }
        }
    }

    #[test]
    fn a_record_count_other_than_the_offset_range_is_an_invalid_record() {
        let records = Bytes::from(testing::assemble(0, 1, 0, 0, 3, &[]));
        let refusal = prepare(Some(records), &settings(None, false), None).unwrap_err();
        assert_eq!(refusal.error, ResponseError::InvalidRecord);
        assert!(
            refusal
                .message
                .contains("3 records for an offset range of 2"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn whole_batches_pass_with_their_record_count() {
        let mut records = testing::batch(&[1, 2, 3]);
        records.extend(testing::batch(&[4]));
        let prepared = prepare(
            Some(Bytes::from(records)),
            &settings(Some(Compression::Lz4), true),
            Some(9),
        );
        let (batches, count) = prepared.unwrap();
        assert_eq!((batches.len(), count), (2, 4));
    }

    #[test]
    fn a_compacted_topic_refuses_a_batch_with_keyless_records() {
        let records: Vec<_> = [Some("k"), None, Some("k"), None]
            .into_iter()
            .zip(0..)
            .map(|(key, offset)| {
                let key = key.map(|k: &'static str| Bytes::from_static(k.as_bytes()));
                batch::record(offset, 1, key, None)
            })
            .collect();
        let compacted = ProduceSettings {
            compacted: true,
            ..settings(None, false)
        };
        for codec in [Compression::None, Compression::Snappy] {
            let keyless = batch::encode_records(&records, codec).unwrap();
            let refusal = prepare(Some(keyless.clone()), &compacted, None).unwrap_err();
            assert_eq!(refusal.error, ResponseError::InvalidRecord);
            let indexes: Vec<_> = refusal
                .record_errors
                .iter()
                .map(|e| e.batch_index)
                .collect();
            assert_eq!(indexes, [1, 3]);
            assert!(
                refusal.message.contains("2 of the batch's records"),
                "{}",
                refusal.message
            );
            // A topic that is not compacted takes them, without looking.
            assert!(prepare(Some(keyless), &settings(None, false), None).is_ok());
            let keyed = batch::encode_records(&records[..1], codec).unwrap();
            assert!(prepare(Some(keyed), &compacted, None).is_ok());
        }
    }
}
