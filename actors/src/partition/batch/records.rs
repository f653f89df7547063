//! The records inside a batch: decoding (and decompressing) them to answer
//! timestamp lookups, find control markers and records without a key, and
//! encoding new batches (control markers, compaction's rewritten batches,
//! recompression). The hot path never comes here.

use super::*;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::borrow::Cow;

/// A transaction marker: a control batch of one record whose key says
/// commit or abort and whose value carries the coordinator epoch.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Bytes, BatchError> {
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&i16::from(commit).to_be_bytes());
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        producer_id,
        producer_epoch,
        ..record(0, timestamp, Some(key.freeze()), Some(value.freeze()))
    };
    encode_records(&[record], Compression::None)
}

/// Whether a transaction marker commits (`Some(true)`) or aborts
/// (`Some(false)`); `None` for a batch that is not a readable marker.
pub fn marker_commits(bytes: &[u8]) -> Option<bool> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let set = RecordBatchDecoder::decode(&mut buf).ok()?;
    let record = set.records.into_iter().find(|r| r.control)?;
    let key = record.key?;
    let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    Some(kind == 1)
}

/// A plain record (no producer, no headers) at `offset`, ready for
/// [`encode_records`]; its sequence follows the offset, as a decoder reports it.
pub fn record(offset: i64, timestamp: i64, key: Option<Bytes>, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        // The encoder starts a new batch where offset - sequence changes.
        sequence: (offset as i32).wrapping_sub(1),
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Encodes records into v2 batches (one, unless their producer fields or
/// offset/sequence relation differ).
pub fn encode_records(records: &[Record], compression: Compression) -> Result<Bytes, BatchError> {
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: MAGIC,
        compression,
    };
    RecordBatchEncoder::encode(&mut out, records, &options)
        .map_err(|e| BatchError::Corrupt(e.to_string()))?;
    Ok(out.freeze())
}

/// The batch with its records compressed with `codec` instead (a topic's
/// `compression.type`); unchanged if it already is.
pub fn recompress(batch: Bytes, codec: Compression) -> Result<Bytes, BatchError> {
    if parse_header(&batch)?.compression()? == codec {
        return Ok(batch);
    }
    let mut input = batch;
    let set =
        RecordBatchDecoder::decode(&mut input).map_err(|e| BatchError::Corrupt(e.to_string()))?;
    // Encoding no records gives no batch at all.
    if set.records.is_empty() {
        return Err(BatchError::Corrupt(
            "the batch holds no records".to_string(),
        ));
    }
    encode_records(&set.records, codec)
}

/// The `(offset, timestamp)` of the first record in `batch` whose timestamp
/// is at least `ts`. Decodes (and if needed decompresses) the records, so it
/// is for lookups, not for the produce path.
pub fn first_offset_at_or_after_timestamp(
    batch: &[u8],
    ts: i64,
) -> Result<Option<(i64, i64)>, BatchError> {
    let header = parse_header(batch)?;
    let records = records_of(&header, batch)?;
    let mut records = &records[..];
    for _ in 0..header.records_count {
        let record = next_record(&mut records)?;
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(record.timestamp_delta)
        };
        if timestamp >= ts {
            let offset = header
                .base_offset
                .saturating_add(i64::from(record.offset_delta));
            return Ok(Some((offset, timestamp)));
        }
    }
    Ok(None)
}

/// The positions, in the batch, of its records without a key, which a
/// compacted topic refuses (Kafka's INVALID_RECORD). Decodes (and if needed
/// decompresses) the records, so the produce path calls it for compacted
/// topics only.
pub fn null_key_records(batch: &[u8]) -> Result<Vec<i32>, BatchError> {
    let header = parse_header(batch)?;
    let records = records_of(&header, batch)?;
    let mut records = &records[..];
    let mut null = Vec::new();
    for index in 0..header.records_count {
        if next_record(&mut records)?.null_key {
            null.push(index);
        }
    }
    Ok(null)
}

/// The record bytes of `batch`, decompressed if needed.
fn records_of<'a>(header: &BatchHeader, batch: &'a [u8]) -> Result<Cow<'a, [u8]>, BatchError> {
    let body = batch
        .get(HEADER_LEN..header.total_len())
        .ok_or(BatchError::Truncated)?;
    let decompressed = match header.compression()? {
        Compression::None => return Ok(Cow::Borrowed(body)),
        Compression::Gzip => decompress::<Gzip>(body)?,
        Compression::Snappy => decompress::<Snappy>(body)?,
        Compression::Lz4 => decompress::<Lz4>(body)?,
        Compression::Zstd => decompress::<Zstd>(body)?,
    };
    Ok(Cow::Owned(decompressed.into()))
}

fn decompress<'a, D>(mut body: &'a [u8]) -> Result<Bytes, BatchError>
where
    D: Decompressor<&'a [u8], Buf = Bytes>,
{
    D::decompress(&mut body, |records| Ok(std::mem::take(records)))
        .map_err(|e| BatchError::Corrupt(format!("cannot decompress records: {e:#}")))
}

/// The parts of a record needed to locate it and to check its key; the rest
/// is skipped.
struct RecordPosition {
    timestamp_delta: i64,
    offset_delta: i32,
    /// A negative key length: no key (not an empty one).
    null_key: bool,
}

/// Reads one record (length varint, attributes i8, timestampDelta varlong,
/// offsetDelta varint, key length varint and key, value, headers) and
/// advances past it.
fn next_record(records: &mut &[u8]) -> Result<RecordPosition, BatchError> {
    let length = read_varlong(records)?;
    let length = usize::try_from(length)
        .map_err(|_| BatchError::Corrupt(format!("negative record length {length}")))?;
    if records.len() < length {
        return Err(BatchError::Corrupt(
            "record extends past the end of the batch".to_string(),
        ));
    }
    let (record, rest) = records.split_at(length);
    *records = rest;
    let (_attributes, mut fields) = record
        .split_first()
        .ok_or_else(|| BatchError::Corrupt("empty record".to_string()))?;
    let timestamp_delta = read_varlong(&mut fields)?;
    let offset_delta = read_varlong(&mut fields)?;
    let offset_delta = i32::try_from(offset_delta)
        .map_err(|_| BatchError::Corrupt(format!("offset delta {offset_delta} overflows")))?;
    let key_len = read_varlong(&mut fields)?;
    Ok(RecordPosition {
        timestamp_delta,
        offset_delta,
        null_key: key_len < 0,
    })
}

/// Reads a zigzag-encoded variable-length integer (Kafka's varint and
/// varlong share the encoding; varlong is at most 10 bytes).
pub(super) fn read_varlong(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let mut raw: u64 = 0;
    for (i, byte) in buf.iter().take(10).enumerate() {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(BatchError::Corrupt("unterminated varint".to_string()))
}
