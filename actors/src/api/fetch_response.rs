//! The Fetch response body (v4 and later, record batches) encoded as
//! [`ResponseParts`]: every field as kafka-protocol lays it out, but each
//! partition's records as the file regions of its located batches, so the
//! connection sends them with `sendfile(2)` instead of copying them into
//! the response. The tests decode what this writes with kafka-protocol's
//! decoder and compare it with the response that decoder would read from
//! kafka-protocol's own encoding.
//!
//! Fields a consumer's fetch never sets (a partition's `current_leader` and
//! `snapshot_id`, the response's `node_endpoints`, unknown tagged fields)
//! are refused with an error rather than dropped.

use crate::partition::file_records::FileRecords;
use crate::protocol::response_parts::{PartsWriter, ResponseParts};
use bytes::BufMut;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::protocol::Encodable;

/// The first version with record batches rather than message sets.
pub const MIN_VERSION: i16 = 4;
/// The last version whose layout this module knows.
pub const MAX_VERSION: i16 = 17;

/// From this version on the response is "flexible": compact lengths and
/// tagged fields.
const FLEXIBLE: i16 = 12;

/// Encodes `response` at `version`, taking partition `p` of topic `t`'s
/// records from `records[t][p]` (its `records` field is not read).
pub fn encode(
    response: &FetchResponse,
    records: Vec<Vec<FileRecords>>,
    version: i16,
) -> Result<ResponseParts, String> {
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(format!("Fetch v{version} is not sent from files"));
    }
    if !response.node_endpoints.is_empty() || !response.unknown_tagged_fields.is_empty() {
        return Err("Fetch response fields not sent from files".into());
    }
    if records.len() != response.responses.len() {
        return Err("Fetch response records do not match its topics".into());
    }
    let flexible = version >= FLEXIBLE;
    let mut out = PartsWriter::default();
    out.buf.put_i32(response.throttle_time_ms);
    if version >= 7 {
        out.buf.put_i16(response.error_code);
        out.buf.put_i32(response.session_id);
    }
    array_len(&mut out, response.responses.len(), flexible);
    for (topic, records) in response.responses.iter().zip(records) {
        encode_topic(&mut out, topic, records, version)?;
    }
    tagged_fields_end(&mut out, flexible);
    Ok(out.finish())
}

fn encode_topic(
    out: &mut PartsWriter,
    topic: &FetchableTopicResponse,
    records: Vec<FileRecords>,
    version: i16,
) -> Result<(), String> {
    let flexible = version >= FLEXIBLE;
    if !topic.unknown_tagged_fields.is_empty() {
        return Err("Fetch response topic fields not sent from files".into());
    }
    if records.len() != topic.partitions.len() {
        return Err("Fetch response records do not match its partitions".into());
    }
    if version >= 13 {
        out.buf.put_slice(topic.topic_id.as_bytes());
    } else {
        let name = topic.topic.as_bytes();
        if flexible {
            unsigned_varint(&mut out.buf, name.len() as u64 + 1);
        } else {
            let len = i16::try_from(name.len()).map_err(|_| "a topic name too long")?;
            out.buf.put_i16(len);
        }
        out.buf.put_slice(name);
    }
    array_len(out, topic.partitions.len(), flexible);
    for (partition, records) in topic.partitions.iter().zip(records) {
        encode_partition(out, partition, records, version)?;
    }
    tagged_fields_end(out, flexible);
    Ok(())
}

fn encode_partition(
    out: &mut PartsWriter,
    partition: &PartitionData,
    records: FileRecords,
    version: i16,
) -> Result<(), String> {
    let flexible = version >= FLEXIBLE;
    if partition.current_leader != Default::default()
        || partition.snapshot_id != Default::default()
        || !partition.unknown_tagged_fields.is_empty()
    {
        return Err("Fetch response partition fields not sent from files".into());
    }
    let buf = &mut out.buf;
    buf.put_i32(partition.partition_index);
    buf.put_i16(partition.error_code);
    buf.put_i64(partition.high_watermark);
    buf.put_i64(partition.last_stable_offset);
    if version >= 5 {
        buf.put_i64(partition.log_start_offset);
    }
    match &partition.aborted_transactions {
        None if flexible => unsigned_varint(buf, 0),
        None => buf.put_i32(-1),
        Some(aborted) => {
            if flexible {
                unsigned_varint(buf, aborted.len() as u64 + 1);
            } else {
                buf.put_i32(aborted.len() as i32);
            }
            for transaction in aborted {
                transaction
                    .encode(buf, version)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    if version >= 11 {
        buf.put_i32(partition.preferred_read_replica.0);
    }
    let len = records.len();
    if flexible {
        unsigned_varint(buf, len + 1);
    } else {
        let len = i32::try_from(len).map_err(|_| format!("{len} bytes of records"))?;
        buf.put_i32(len);
    }
    records.regions().into_iter().for_each(|r| out.file(r));
    if flexible {
        let diverging = &partition.diverging_epoch;
        if *diverging == Default::default() {
            unsigned_varint(&mut out.buf, 0);
        } else {
            let size = diverging.compute_size(version).map_err(|e| e.to_string())?;
            unsigned_varint(&mut out.buf, 1);
            unsigned_varint(&mut out.buf, 0);
            unsigned_varint(&mut out.buf, size as u64);
            diverging
                .encode(&mut out.buf, version)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn array_len(out: &mut PartsWriter, len: usize, flexible: bool) {
    if flexible {
        unsigned_varint(&mut out.buf, len as u64 + 1);
    } else {
        out.buf.put_i32(len as i32);
    }
}

/// No tagged fields.
fn tagged_fields_end(out: &mut PartsWriter, flexible: bool) {
    if flexible {
        unsigned_varint(&mut out.buf, 0);
    }
}

fn unsigned_varint(buf: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8(value as u8 | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::file_records::FileRecords;
    use crate::protocol::response_parts::Part;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset};
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    /// A file holding `content`, and records for `ranges` of it.
    fn records(file: &Arc<std::fs::File>, ranges: &[(u64, u64)]) -> FileRecords {
        let mut records = FileRecords::default();
        for &(offset, len) in ranges {
            records.push(file, offset, len, 0);
        }
        records
    }

    fn flatten(parts: ResponseParts) -> Bytes {
        let mut all = BytesMut::new();
        for part in parts.parts {
            match part {
                Part::Bytes(bytes) => all.extend_from_slice(&bytes),
                Part::File(region) => {
                    let mut buf = vec![0; region.len as usize];
                    region.file.read_exact_at(&mut buf, region.offset).unwrap();
                    all.extend_from_slice(&buf);
                }
            }
        }
        all.freeze()
    }

    fn partition(index: i32, aborted: Option<Vec<AbortedTransaction>>) -> PartitionData {
        PartitionData::default()
            .with_partition_index(index)
            .with_error_code(if index == 2 { 1 } else { 0 })
            .with_high_watermark(100 + index as i64)
            .with_last_stable_offset(90 + index as i64)
            .with_aborted_transactions(aborted)
            .with_preferred_read_replica(BrokerId(-1))
    }

    /// Every supported version, with several topics and partitions, empty
    /// and non-contiguous records, aborted transactions present, empty and
    /// absent, and a diverging epoch: the parts, the file regions read, are
    /// kafka-protocol's encoding of the response with the records read from
    /// the file, and decode as it.
    #[test]
    fn decodes_as_kafka_protocol_encodes() {
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        file.write_all(&content).unwrap();
        let file = Arc::new(file);
        let ranges: Vec<Vec<&[(u64, u64)]>> = vec![
            vec![&[(0, 100), (100, 28)], &[], &[(1000, 10), (3000, 300)]],
            vec![&[(7, 1)]],
        ];
        let aborted = vec![AbortedTransaction::default()
            .with_producer_id(ProducerId(7))
            .with_first_offset(3)];
        for version in MIN_VERSION..=MAX_VERSION {
            let mut expected = FetchResponse::default()
                .with_throttle_time_ms(5)
                .with_responses(vec![
                    FetchableTopicResponse::default().with_partitions(vec![
                        partition(0, Some(aborted.clone())),
                        partition(1, Some(Vec::new())),
                        partition(2, None),
                    ]),
                    FetchableTopicResponse::default().with_partitions(vec![partition(3, None)]),
                ]);
            if version >= 7 {
                expected.error_code = 0;
                expected.session_id = 0;
            }
            for (t, topic) in expected.responses.iter_mut().enumerate() {
                if version >= 13 {
                    topic.topic_id = uuid::Uuid::from_u128(t as u128 + 1);
                } else {
                    topic.topic = TopicName(StrBytes::from_string(format!("topic-{t}")));
                }
            }
            if version >= 5 {
                for partition in expected
                    .responses
                    .iter_mut()
                    .flat_map(|t| &mut t.partitions)
                {
                    partition.log_start_offset = partition.partition_index as i64 + 1;
                }
            }
            if version >= FLEXIBLE {
                expected.responses[0].partitions[1].diverging_epoch =
                    EpochEndOffset::default().with_epoch(4).with_end_offset(40);
            }
            let files: Vec<Vec<FileRecords>> = ranges
                .iter()
                .map(|t| t.iter().map(|p| records(&file, p)).collect())
                .collect();
            for (topic, files) in expected.responses.iter_mut().zip(&files) {
                for (partition, records) in topic.partitions.iter_mut().zip(files) {
                    partition.records = Some(records.read().unwrap());
                }
            }
            let mut theirs = BytesMut::new();
            expected.encode(&mut theirs, version).unwrap();
            let mut theirs = theirs.freeze();
            let mut ours = flatten(encode(&expected, files, version).unwrap());
            assert_eq!(ours, theirs, "v{version}");
            let decoded = FetchResponse::decode(&mut ours, version).unwrap();
            assert!(ours.is_empty(), "v{version}: bytes left after the response");
            let reference = FetchResponse::decode(&mut theirs, version).unwrap();
            assert_eq!(decoded, reference, "v{version}");
            assert_eq!(decoded.responses.len(), 2);
        }
    }

    #[test]
    fn refuses_versions_it_does_not_know() {
        let response = FetchResponse::default();
        assert!(encode(&response, Vec::new(), 3).is_err());
        assert!(encode(&response, Vec::new(), MAX_VERSION + 1).is_err());
    }

    #[test]
    fn refuses_fields_it_does_not_write() {
        let mut response = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_partitions(vec![partition(0, None)]),
        ]);
        response.responses[0].partitions[0].snapshot_id.epoch = 3;
        let records = vec![vec![FileRecords::default()]];
        assert!(encode(&response, records, 12).is_err());
    }
}
