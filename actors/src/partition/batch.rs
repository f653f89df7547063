//! A view over one Kafka RecordBatch v2 (magic 2) kept as raw bytes.
//!
//! The broker stores batches exactly as producers send them, so the hot path
//! only ever reads the fixed 61-byte header (here); records are decoded only
//! to answer timestamp lookups, markers and compaction (`records`).
//!
//! Layout (big endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch
//! i32 @12, magic i8 @16, crc u32 @17, attributes i16 @21, lastOffsetDelta i32 @23,
//! baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch
//! i16 @51, baseSequence i32 @53, recordsCount i32 @57, records from @61.

use bytes::{Bytes, BytesMut};
pub use kafka_protocol::records::Compression;
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

mod records;
pub use records::{
    control_batch, encode_records, first_offset_at_or_after_timestamp, marker_commits,
    null_key_records, recompress, record,
};

#[cfg(test)]
mod rewrite_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
