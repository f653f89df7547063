//! A view over one Kafka RecordBatch v2 (magic 2) kept as raw bytes.
//!
//! The broker stores batches exactly as producers send them, so the hot path
//! only ever reads the fixed 61-byte header; records are decoded only to
//! answer timestamp lookups.
//!
//! Layout (big endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch
//! i32 @12, magic i8 @16, crc u32 @17, attributes i16 @21, lastOffsetDelta i32 @23,
//! baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch
//! i16 @51, baseSequence i32 @53, recordsCount i32 @57, records from @61.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
pub use kafka_protocol::records::Compression;
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::borrow::Cow;
use std::fmt;

/// Size of the fixed batch header; records start here.
pub const HEADER_LEN: usize = 61;
/// Bytes before (and not counted by) the batchLength field.
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format this broker stores.
pub const MAGIC: i8 = 2;

/// The CRC covers everything from the attributes to the end of the batch.
const CRC_START: usize = 21;
/// The magic byte sits at the same place in every message format version, so
/// it can be read before knowing the layout of the rest.
const MAGIC_AT: usize = 16;

const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
const CODEC_MASK: i16 = 0b111;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header or the length field announce.
    Truncated,
    /// Not a v2 batch.
    Magic(i8),
    Crc {
        expected: u32,
        actual: u32,
    },
    /// The length field is impossible or disagrees with the bytes given.
    InvalidLength,
    Corrupt(String),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated => write!(f, "record batch is truncated"),
            BatchError::Magic(magic) => write!(
                f,
                "record batch has magic {magic}, only magic {MAGIC} is supported"
            ),
            BatchError::Crc { expected, actual } => write!(
                f,
                "record batch CRC mismatch: header says {expected:#010x}, data has {actual:#010x}"
            ),
            BatchError::InvalidLength => {
                write!(f, "record batch length field does not match its size")
            }
            BatchError::Corrupt(reason) => write!(f, "corrupt record batch: {reason}"),
        }
    }
}

impl std::error::Error for BatchError {}

/// The fixed header of a v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Offset of the last record (the batch spans `base_offset..=last_offset`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Size of the whole batch in bytes. At least [`HEADER_LEN`] for a header
    /// that [`parse_header`] accepted.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.batch_length).unwrap_or(0)
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes & CODEC_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::Corrupt(format!(
                "unknown compression codec {codec}"
            ))),
        }
    }

    /// With LogAppendTime every record's timestamp is the batch's maxTimestamp.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Reads the header at the start of `buf`, which may hold just the header or
/// more than one batch. Checks only what the header alone can tell: the magic
/// (first, so old-format message sets get [`BatchError::Magic`]) and a length
/// field large enough for the header itself.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let mut reader = Reader(buf);
    let magic = reader.at(MAGIC_AT)?.i8()?;
    if magic != MAGIC {
        return Err(BatchError::Magic(magic));
    }
    if buf.len() < HEADER_LEN {
        return Err(BatchError::Truncated);
    }
    let mut reader = Reader(buf);
    let header = BatchHeader {
        base_offset: reader.i64()?,
        batch_length: reader.i32()?,
        partition_leader_epoch: reader.i32()?,
        magic: reader.i8()?,
        crc: reader.u32()?,
        attributes: reader.i16()?,
        last_offset_delta: reader.i32()?,
        base_timestamp: reader.i64()?,
        max_timestamp: reader.i64()?,
        producer_id: reader.i64()?,
        producer_epoch: reader.i16()?,
        base_sequence: reader.i32()?,
        records_count: reader.i32()?,
    };
    if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(BatchError::InvalidLength);
    }
    Ok(header)
}

/// Checks that `buf` is exactly one whole, intact v2 batch. Records are not
/// decoded: like Kafka, only what the header promises is checked.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_header(buf)?;
    let total = header.total_len();
    if buf.len() < total {
        return Err(BatchError::Truncated);
    }
    if buf.len() > total {
        return Err(BatchError::InvalidLength);
    }
    let actual = crc32c::crc32c(&buf[CRC_START..]);
    if actual != header.crc {
        return Err(BatchError::Crc {
            expected: header.crc,
            actual,
        });
    }
    if header.records_count < 0 {
        return Err(BatchError::Corrupt(format!(
            "negative record count {}",
            header.records_count
        )));
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::Corrupt(format!(
            "negative last offset delta {}",
            header.last_offset_delta
        )));
    }
    header.compression()?;
    Ok(header)
}

/// Splits a record set (one or more concatenated batches) into zero-copy
/// slices, one per batch, using only the length fields. Anything left over
/// that is not a whole batch is rejected: a produce request carries no
/// partial batches.
pub fn split(buf: Bytes) -> Result<Vec<Bytes>, BatchError> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < buf.len() {
        let mut reader = Reader(&buf[start..]);
        let length = reader.at(LOG_OVERHEAD - 4)?.i32()?;
        let length = usize::try_from(length).map_err(|_| BatchError::InvalidLength)?;
        let end = start + LOG_OVERHEAD + length;
        if end > buf.len() {
            return Err(BatchError::Truncated);
        }
        batches.push(buf.slice(start..end));
        start = end;
    }
    Ok(batches)
}

/// Overwrites the base offset. It is not covered by the CRC, so the batch
/// stays valid.
///
/// # Panics
/// If `buf` is shorter than 8 bytes; callers pass validated batches.
pub fn set_base_offset(buf: &mut [u8], offset: i64) {
    buf[..8].copy_from_slice(&offset.to_be_bytes());
}

/// A copy of `batch` stamped with the log append time: the timestamp-type
/// attribute set and maxTimestamp replaced by `now_ms` (what readers use for
/// every record of such a batch), with the CRC recomputed.
pub fn with_log_append_time(batch: &[u8], now_ms: i64) -> Bytes {
    let mut out = batch.to_vec();
    let attributes = i16::from_be_bytes([out[CRC_START], out[CRC_START + 1]]) | TIMESTAMP_TYPE_BIT;
    out[CRC_START..CRC_START + 2].copy_from_slice(&attributes.to_be_bytes());
    out[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..CRC_START].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// The whole batches of `records` (as a read returns them) that start
/// before `offset`.
pub fn truncate_at_offset(mut records: Bytes, offset: i64) -> Bytes {
    let mut position = 0;
    while let Ok(header) = parse_header(&records[position..]) {
        if header.base_offset >= offset || position + header.total_len() > records.len() {
            break;
        }
        position += header.total_len();
    }
    records.truncate(position);
    records
}

/// The last offset of the last whole batch in `records`.
pub fn last_offset_of(records: &[u8]) -> Option<i64> {
    let mut position = 0;
    let mut last = None;
    while let Ok(header) = parse_header(&records[position..]) {
        if position + header.total_len() > records.len() {
            break;
        }
        last = Some(header.last_offset());
        position += header.total_len();
    }
    last
}

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
fn read_varlong(buf: &mut &[u8]) -> Result<i64, BatchError> {
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

/// Big-endian field reader that fails instead of panicking on short input.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn at(&mut self, position: usize) -> Result<&mut Self, BatchError> {
        self.0 = self.0.get(position..).ok_or(BatchError::Truncated)?;
        Ok(self)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], BatchError> {
        let (field, rest) = self.0.split_first_chunk().ok_or(BatchError::Truncated)?;
        self.0 = rest;
        Ok(*field)
    }

    fn i8(&mut self) -> Result<i8, BatchError> {
        self.take().map(i8::from_be_bytes)
    }

    fn i16(&mut self) -> Result<i16, BatchError> {
        self.take().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, BatchError> {
        self.take().map(i32::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, BatchError> {
        self.take().map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, BatchError> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod rewrite_tests {
    use super::testing::batch;
    use super::*;

    #[test]
    fn truncating_reads_at_an_offset() {
        let mut records = Vec::new();
        for base in [0i64, 2, 4] {
            let mut one = batch(&[1, 2]);
            set_base_offset(&mut one, base);
            records.extend_from_slice(&one);
        }
        let records = Bytes::from(records);
        assert_eq!(last_offset_of(&records), Some(5));
        let cut = truncate_at_offset(records.clone(), 4);
        assert_eq!(last_offset_of(&cut), Some(3));
        assert!(truncate_at_offset(records, 0).is_empty());
    }

    #[test]
    fn control_batches_are_valid_markers() {
        let marker = control_batch(7, 2, true, 0, 99).unwrap();
        let header = validate(&marker).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!((header.producer_id, header.producer_epoch), (7, 2));
        assert_eq!(header.records_count, 1);
        assert_eq!(marker_commits(&marker), Some(true));
        let abort = control_batch(7, 2, false, 0, 99).unwrap();
        assert_eq!(marker_commits(&abort), Some(false));
        assert_eq!(marker_commits(&batch(&[5, 9])), None);
    }

    #[test]
    fn log_append_time_keeps_the_batch_valid() {
        let stamped = with_log_append_time(&batch(&[5, 9]), 1234);
        let header = validate(&stamped).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 1234);
    }

    #[test]
    fn recompressing_a_batch_without_records_fails() {
        let empty = Bytes::from(testing::assemble(0, 0, 0, 0, 0, &[]));
        assert!(matches!(
            recompress(empty, Compression::Gzip),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn recompress_changes_the_codec_and_keeps_records() {
        let plain = Bytes::from(batch(&[5, 9, 7]));
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = recompress(plain.clone(), codec).unwrap();
            let header = validate(&packed).unwrap();
            assert_eq!(header.compression().unwrap(), codec);
            assert_eq!(header.records_count, 3);
            assert_eq!(
                first_offset_at_or_after_timestamp(&packed, 8).unwrap(),
                Some((1, 9))
            );
            let back = recompress(packed, Compression::None).unwrap();
            assert_eq!(validate(&back).unwrap().records_count, 3);
        }
    }
}

/// Builds valid batches for the tests of this module and its siblings.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A batch with one record per timestamp, each with a `value_len`-byte
    /// value, CreateTime, uncompressed, base offset 0.
    pub fn batch_sized(timestamps: &[i64], value_len: usize) -> Vec<u8> {
        encode(timestamps, value_len, 0)
    }

    /// Like [`batch_sized`] with 16-byte values.
    pub fn batch(timestamps: &[i64]) -> Vec<u8> {
        batch_sized(timestamps, 16)
    }

    /// A batch with the given attributes (records stay uncompressed).
    pub fn encode(timestamps: &[i64], value_len: usize, attributes: i16) -> Vec<u8> {
        let base_ts = timestamps.iter().copied().min().unwrap_or(0);
        let max_ts = timestamps.iter().copied().max().unwrap_or(-1);
        let mut records = Vec::new();
        for (delta, ts) in timestamps.iter().enumerate() {
            let mut record = vec![0u8]; // attributes
            put_varlong(&mut record, ts - base_ts);
            put_varlong(&mut record, delta as i64);
            put_varlong(&mut record, -1); // null key
            put_varlong(&mut record, value_len as i64);
            record.extend((0..value_len).map(|i| (i + delta) as u8));
            put_varlong(&mut record, 0); // no headers
            put_varlong(&mut records, record.len() as i64);
            records.extend(record);
        }
        let last_delta = timestamps.len().saturating_sub(1) as i32;
        assemble(
            attributes,
            last_delta,
            base_ts,
            max_ts,
            timestamps.len() as i32,
            &records,
        )
    }

    /// Header plus `records` bytes, with length and CRC filled in.
    pub fn assemble(
        attributes: i16,
        last_offset_delta: i32,
        base_ts: i64,
        max_ts: i64,
        count: i32,
        records: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + records.len());
        out.extend(0i64.to_be_bytes());
        out.extend(((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        out.extend(0i32.to_be_bytes()); // leader epoch
        out.push(MAGIC as u8);
        out.extend(0u32.to_be_bytes()); // crc, filled below
        out.extend(attributes.to_be_bytes());
        out.extend(last_offset_delta.to_be_bytes());
        out.extend(base_ts.to_be_bytes());
        out.extend(max_ts.to_be_bytes());
        out.extend((-1i64).to_be_bytes()); // producer id
        out.extend((-1i16).to_be_bytes()); // producer epoch
        out.extend((-1i32).to_be_bytes()); // base sequence
        out.extend(count.to_be_bytes());
        out.extend_from_slice(records);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }

    pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
        let mut raw = ((value << 1) ^ (value >> 63)) as u64;
        while raw >= 0x80 {
            out.push((raw as u8) | 0x80);
            raw >>= 7;
        }
        out.push(raw as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use kafka_protocol::records::Record;

    #[test]
    fn header_fields_are_read() {
        let mut buf = batch(&[100, 300, 200]);
        set_base_offset(&mut buf, 42);
        let header = validate(&buf).unwrap();
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.last_offset(), 44);
        assert_eq!(header.total_len(), buf.len());
        assert_eq!(header.records_count, 3);
        assert_eq!(header.base_timestamp, 100);
        assert_eq!(header.max_timestamp, 300);
        assert_eq!(header.producer_id, -1);
        assert_eq!(header.compression(), Ok(Compression::None));
        assert!(!header.is_transactional());
        assert!(!header.is_control());
        assert!(!header.is_log_append_time());
    }

    #[test]
    fn records_without_a_key_are_listed_by_position() {
        let keys = [Some("a"), None, Some(""), None];
        let records: Vec<Record> = keys
            .iter()
            .zip(0..)
            .map(|(key, offset)| {
                let key = key.map(|k| Bytes::from(k.as_bytes()));
                record(offset, 1_000 + offset, key, Some(Bytes::from_static(b"v")))
            })
            .collect();
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let batch = encode_records(&records, codec).unwrap();
            // An empty key is a key.
            assert_eq!(null_key_records(&batch), Ok(vec![1, 3]), "{codec:?}");
        }
        let keyed = encode_records(&records[..1], Compression::Gzip).unwrap();
        assert_eq!(null_key_records(&keyed), Ok(vec![]));
        // A batch announcing more records than it holds is corrupt.
        let mut short = batch(&[1, 2]);
        short[57..61].copy_from_slice(&3i32.to_be_bytes());
        assert!(matches!(
            null_key_records(&short),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn attribute_bits() {
        let header = validate(&encode(&[1], 1, 0b11_1000)).unwrap();
        assert!(header.is_log_append_time());
        assert!(header.is_transactional());
        assert!(header.is_control());
    }

    #[test]
    fn validate_rejects_bad_crc() {
        let mut buf = batch(&[1, 2]);
        let last = buf.len() - 1;
        buf[last] ^= 0x01;
        assert!(matches!(validate(&buf), Err(BatchError::Crc { .. })));
    }

    #[test]
    fn base_offset_is_outside_the_crc() {
        let mut buf = batch(&[1]);
        set_base_offset(&mut buf, i64::MAX - 5);
        assert!(validate(&buf).is_ok());
    }

    #[test]
    fn validate_rejects_wrong_magic() {
        let mut buf = batch(&[1]);
        buf[MAGIC_AT] = 1;
        assert_eq!(validate(&buf), Err(BatchError::Magic(1)));
        // An old-format message shorter than a v2 header still says magic.
        assert_eq!(parse_header(&buf[..20]), Err(BatchError::Magic(1)));
    }

    #[test]
    fn validate_rejects_truncation_and_extra_bytes() {
        let buf = batch(&[1, 2]);
        assert_eq!(validate(&buf[..buf.len() - 1]), Err(BatchError::Truncated));
        assert_eq!(validate(&buf[..HEADER_LEN - 1]), Err(BatchError::Truncated));
        assert_eq!(validate(&buf[..10]), Err(BatchError::Truncated));
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(validate(&longer), Err(BatchError::InvalidLength));
    }

    #[test]
    fn validate_rejects_impossible_fields() {
        let mut short_length = batch(&[1]);
        short_length[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(parse_header(&short_length), Err(BatchError::InvalidLength));

        let negative_count = assemble(0, 0, 0, 0, -1, &[]);
        assert!(matches!(
            validate(&negative_count),
            Err(BatchError::Corrupt(_))
        ));
        let negative_delta = assemble(0, -1, 0, 0, 0, &[]);
        assert!(matches!(
            validate(&negative_delta),
            Err(BatchError::Corrupt(_))
        ));
        let bad_codec = assemble(7, 0, 0, 0, 0, &[]);
        assert!(matches!(validate(&bad_codec), Err(BatchError::Corrupt(_))));
    }

    #[test]
    fn empty_batch_is_valid() {
        let empty = assemble(0, 0, 0, -1, 0, &[]);
        assert_eq!(validate(&empty).unwrap().total_len(), HEADER_LEN);
    }

    #[test]
    fn split_multiple_batches_without_copying() {
        let (a, b) = (batch(&[1]), batch_sized(&[2, 3, 4], 100));
        let joined = Bytes::from([a.clone(), b.clone()].concat());
        let parts = split(joined.clone()).unwrap();
        assert_eq!(parts, vec![Bytes::from(a.clone()), Bytes::from(b)]);
        assert_eq!(parts[0].as_ptr(), joined.as_ptr());
        assert_eq!(parts[1].as_ptr(), joined[a.len()..].as_ptr());
        assert!(split(Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn split_rejects_trailing_garbage() {
        let good = batch(&[1]);
        let with = |garbage: &[u8]| split(Bytes::from([&good[..], garbage].concat()));
        // Too short for a length field.
        assert_eq!(with(&[0, 0, 0]), Err(BatchError::Truncated));
        // A length field announcing more than is there.
        let mut garbage = vec![0; 8];
        garbage.extend(127i32.to_be_bytes());
        assert_eq!(with(&garbage), Err(BatchError::Truncated));
        garbage.truncate(8);
        garbage.extend((-5i32).to_be_bytes());
        assert_eq!(with(&garbage), Err(BatchError::InvalidLength));
    }

    #[test]
    fn timestamp_lookup_inside_a_batch() {
        let mut buf = batch(&[100, 300, 200, 400]);
        set_base_offset(&mut buf, 10);
        let find = |ts| first_offset_at_or_after_timestamp(&buf, ts).unwrap();
        assert_eq!(find(0), Some((10, 100)));
        assert_eq!(find(100), Some((10, 100)));
        assert_eq!(find(101), Some((11, 300)));
        assert_eq!(find(250), Some((11, 300)));
        assert_eq!(find(301), Some((13, 400)));
        assert_eq!(find(400), Some((13, 400)));
        assert_eq!(find(401), None);
    }

    #[test]
    fn timestamp_lookup_with_log_append_time() {
        let mut buf = encode(&[100, 300], 4, TIMESTAMP_TYPE_BIT);
        set_base_offset(&mut buf, 7);
        // Every record carries the batch's maxTimestamp.
        assert_eq!(
            first_offset_at_or_after_timestamp(&buf, 50).unwrap(),
            Some((7, 300))
        );
        assert_eq!(first_offset_at_or_after_timestamp(&buf, 301).unwrap(), None);
    }

    #[test]
    fn timestamp_lookup_rejects_garbled_records() {
        let buf = assemble(0, 1, 0, 10, 2, &[0x04, 0, 0]);
        assert!(matches!(
            first_offset_at_or_after_timestamp(&buf, 5),
            Err(BatchError::Corrupt(_))
        ));
        let unterminated = assemble(0, 0, 0, 10, 1, &[0xff; 12]);
        assert!(matches!(
            first_offset_at_or_after_timestamp(&unterminated, 5),
            Err(BatchError::Corrupt(_))
        ));
    }

    fn compressed(compression: Compression, timestamps: &[i64]) -> Vec<u8> {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, &timestamp)| {
                record(i as i64, timestamp, None, Some(Bytes::from(vec![b'x'; 64])))
            })
            .collect();
        encode_records(&records, compression).unwrap().to_vec()
    }

    #[test]
    fn timestamp_lookup_in_compressed_batches() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut buf = compressed(codec, &[5, 50, 20, 70]);
            let header = validate(&buf).unwrap();
            assert_eq!(header.compression(), Ok(codec));
            set_base_offset(&mut buf, 1000);
            let find = |ts| first_offset_at_or_after_timestamp(&buf, ts).unwrap();
            assert_eq!(find(21), Some((1001, 50)), "{codec:?}");
            assert_eq!(find(60), Some((1003, 70)), "{codec:?}");
            assert_eq!(find(71), None, "{codec:?}");
        }
    }

    #[test]
    fn corrupt_compressed_records_are_an_error() {
        let buf = assemble(Compression::Gzip as i16, 0, 0, 10, 1, b"not gzip at all");
        assert!(matches!(
            first_offset_at_or_after_timestamp(&buf, 0),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, value);
            let mut slice = &buf[..];
            assert_eq!(read_varlong(&mut slice), Ok(value));
            assert!(slice.is_empty());
        }
    }
}
