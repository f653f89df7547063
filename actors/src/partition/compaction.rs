//! Log compaction: which offset holds the latest value of each key, what
//! remains of a batch once older values are gone, and the job that reads a
//! snapshot of a partition's files and writes the cleaned segments.
//!
//! The job only reads files (sealed segments never change; the active one
//! only grows, and is read up to its size at the snapshot) and writes
//! `.cleaned` files beside them, so it runs on the cleaner thread while the
//! partition goes on serving; the partition actor then swaps each cleaned
//! file in, if its segment is still as it was.
//!
//! Kept records keep their offsets (gaps appear, order stays); a batch whose
//! records all stay is kept byte for byte; a batch that loses some is
//! re-encoded with its own codec; control batches (transaction markers) are
//! never touched. Tombstones (null values) stay until `delete_retention_ms`
//! after their timestamp, so consumers get to see the deletion.

use super::batch::{self, BatchError, BatchHeader};
use super::segment;
use super::transactions::Aborted;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Record, RecordBatchDecoder, NO_SEQUENCE};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// The topic settings compaction follows (which segments it may touch is
/// [`super::cleanable`]'s).
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// `delete.retention.ms`: how long a tombstone outlives its key.
    pub delete_retention_ms: i64,
}

/// Key → offset of its latest record.
pub type LatestOffsets = HashMap<Bytes, i64>;

fn corrupt(e: impl std::fmt::Display) -> BatchError {
    BatchError::Corrupt(e.to_string())
}

fn decode(batch: &Bytes) -> Result<Vec<Record>, BatchError> {
    let mut input = batch.clone();
    Ok(RecordBatchDecoder::decode(&mut input)
        .map_err(corrupt)?
        .records)
}

/// Notes the keys of one batch in `latest` (later batches win).
pub fn note_keys(batch: &Bytes, latest: &mut LatestOffsets) -> Result<(), BatchError> {
    if batch::parse_header(batch)?.is_control() {
        return Ok(());
    }
    for record in decode(batch)? {
        if let Some(key) = record.key {
            latest.insert(key, record.offset);
        }
    }
    Ok(())
}

/// What to do with one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Compacted {
    /// Every record stays: keep the bytes as they are.
    Unchanged,
    /// Nothing stays.
    Empty,
    /// Some records stay, re-encoded; the count of records removed.
    Rewritten(Bytes, usize),
}

/// Compacts one batch against the latest offsets of its keys. Lowers
/// `tombstones_expire_ms` to when the first tombstone it keeps may go.
pub fn compact_batch(
    batch: &Bytes,
    latest: &LatestOffsets,
    now_ms: i64,
    policy: &CompactionPolicy,
    tombstones_expire_ms: &mut Option<i64>,
) -> Result<Compacted, BatchError> {
    let header = batch::parse_header(batch)?;
    if header.is_control() {
        return Ok(Compacted::Unchanged);
    }
    let records = decode(batch)?;
    let total = records.len();
    let tombstone_horizon = now_ms.saturating_sub(policy.delete_retention_ms);
    let mut kept: Vec<Record> = records
        .into_iter()
        .filter(|r| match &r.key {
            // Keyless records cannot be superseded.
            None => true,
            Some(key) => {
                latest.get(key) == Some(&r.offset)
                    && (r.value.is_some() || r.timestamp >= tombstone_horizon)
            }
        })
        .collect();
    for kept_tombstone in kept.iter().filter(|r| r.key.is_some() && r.value.is_none()) {
        let expiry = kept_tombstone
            .timestamp
            .saturating_add(policy.delete_retention_ms);
        *tombstones_expire_ms = Some(tombstones_expire_ms.map_or(expiry, |e| e.min(expiry)));
    }
    if kept.len() == total {
        return Ok(Compacted::Unchanged);
    }
    let Some(first) = kept.first().map(|r| r.offset) else {
        return Ok(Compacted::Empty);
    };
    if header.producer_id < 0 {
        // No idempotence: keep the sequence field "none" after re-encoding,
        // which derives the base sequence from the first record's.
        for r in &mut kept {
            r.sequence = NO_SEQUENCE.wrapping_add((r.offset - first) as i32);
        }
    }
    let rewritten = batch::encode_records(&kept, header.compression()?)?;
    Ok(Compacted::Rewritten(rewritten, total - kept.len()))
}

/// Part of a log file: the first `size` bytes.
#[derive(Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub size: u64,
}

/// A sealed segment as the job sees it.
#[derive(Clone)]
pub struct SealedFile {
    pub base: i64,
    pub range: FileRange,
}

/// What a compaction job reads: the partition's files at one moment, and
/// its aborted transactions (their records go; markers stay).
#[derive(Clone)]
pub struct Snapshot {
    /// The partition directory; `None` for a log kept in memory.
    pub dir: Option<PathBuf>,
    pub sealed: Vec<SealedFile>,
    pub active: FileRange,
    pub aborted: Vec<Aborted>,
    /// The job cleans the sealed segments below this offset; it reads the
    /// keys of all the others too, since later values win.
    pub clean_below: i64,
}

/// Whether a transactional batch belongs to an aborted transaction.
fn is_aborted(header: &BatchHeader, aborted: &[Aborted]) -> bool {
    header.is_transactional()
        && !header.is_control()
        && aborted.iter().any(|a| {
            a.producer_id == header.producer_id
                && (a.first_offset..=a.last_offset).contains(&header.base_offset)
        })
}

/// A sealed segment the job cleaned: its `.cleaned` file is written.
#[derive(Debug, Clone)]
pub struct Cleaned {
    pub base: i64,
    /// The segment's size when it was read: swap only if it still is.
    pub size: u64,
    pub removed: u64,
    /// For a log kept in memory, the cleaned contents (there is no
    /// `.cleaned` file).
    pub in_memory: Option<Arc<File>>,
}

/// How much a job reads at a time.
const CHUNK: usize = 4 << 20;

fn io_error(e: BatchError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Calls `f` with every whole batch of the range, reading a few megabytes
/// at a time; `pace` hears of every chunk read (rate limiting).
pub fn for_each_batch(
    range: &FileRange,
    pace: &mut impl FnMut(usize),
    mut f: impl FnMut(&Bytes) -> Result<(), BatchError>,
) -> io::Result<()> {
    let mut position = 0u64;
    let mut pending = BytesMut::new();
    while position < range.size {
        let want = CHUNK.min((range.size - position) as usize);
        let start = pending.len();
        pending.resize(start + want, 0);
        range.file.read_exact_at(&mut pending[start..], position)?;
        position += want as u64;
        pace(want);
        while let Ok(header) = batch::parse_header(&pending) {
            if header.total_len() > pending.len() {
                break;
            }
            let one = pending.split_to(header.total_len()).freeze();
            f(&one).map_err(io_error)?;
        }
    }
    Ok(())
}

/// What a compaction pass did.
#[derive(Debug, Clone, Default)]
pub struct Compaction {
    pub cleaned: Vec<Cleaned>,
    /// When the first tombstone the pass kept may go: the log is worth
    /// another pass then, even if nothing new was written.
    pub tombstones_expire_ms: Option<i64>,
}

/// Compacts the sealed segments of the snapshot below its `clean_below`,
/// writing `.cleaned` files for those that lose records.
pub fn clean(
    snapshot: &Snapshot,
    now_ms: i64,
    policy: &CompactionPolicy,
    pace: &mut impl FnMut(usize),
) -> io::Result<Compaction> {
    let mut latest = LatestOffsets::new();
    for range in snapshot
        .sealed
        .iter()
        .map(|s| &s.range)
        .chain([&snapshot.active])
    {
        for_each_batch(range, pace, |b| note_keys(b, &mut latest))?;
    }
    let mut cleaned = Vec::new();
    let mut tombstones_expire_ms = None;
    let cleanable = snapshot
        .sealed
        .iter()
        .take_while(|s| s.base < snapshot.clean_below);
    for sealed in cleanable {
        let (mut kept, mut removed, mut changed) = (Vec::new(), 0u64, false);
        for_each_batch(&sealed.range, pace, |one| {
            let header = batch::parse_header(one)?;
            if is_aborted(&header, &snapshot.aborted) {
                removed += header.records_count.max(0) as u64;
                changed = true;
                return Ok(());
            }
            match compact_batch(one, &latest, now_ms, policy, &mut tombstones_expire_ms)? {
                Compacted::Unchanged => kept.extend_from_slice(one),
                Compacted::Empty => {
                    removed += header.records_count.max(0) as u64;
                    changed = true;
                }
                Compacted::Rewritten(bytes, gone) => {
                    kept.extend_from_slice(&bytes);
                    removed += gone as u64;
                    changed = true;
                }
            }
            Ok(())
        })?;
        if changed {
            // An emptied segment stays (empty) so the log start does not move.
            let in_memory = match &snapshot.dir {
                Some(dir) => {
                    segment::write_cleaned(dir, sealed.base, &kept)?;
                    None
                }
                None => Some(Arc::new(segment::cleaned_in_memory(sealed.base, &kept)?)),
            };
            cleaned.push(Cleaned {
                base: sealed.base,
                size: sealed.range.size,
                removed,
                in_memory,
            });
        }
    }
    Ok(Compaction {
        cleaned,
        tombstones_expire_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;

    const POLICY: CompactionPolicy = CompactionPolicy {
        delete_retention_ms: 100,
    };

    fn record(offset: i64, key: &str, value: Option<&str>, timestamp: i64) -> Record {
        let bytes = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        batch::record(offset, timestamp, Some(bytes(key)), value.map(bytes))
    }

    fn encode(records: &[Record], compression: Compression) -> Bytes {
        batch::encode_records(records, compression).unwrap()
    }

    #[test]
    fn keeps_the_latest_value_per_key_at_its_offset() {
        for codec in [Compression::None, Compression::Zstd] {
            let first = encode(
                &[
                    record(0, "a", Some("1"), 10),
                    record(1, "b", Some("1"), 10),
                    record(2, "a", Some("2"), 10),
                ],
                codec,
            );
            let second = encode(&[record(3, "b", Some("2"), 10)], codec);
            let mut latest = LatestOffsets::new();
            note_keys(&first, &mut latest).unwrap();
            note_keys(&second, &mut latest).unwrap();
            let Compacted::Rewritten(bytes, removed) =
                compact_batch(&first, &latest, 20, &POLICY, &mut None).unwrap()
            else {
                panic!("expected a rewrite");
            };
            assert_eq!(removed, 2);
            batch::validate(&bytes).unwrap();
            let left = decode(&bytes).unwrap();
            assert_eq!(left.len(), 1);
            assert_eq!(
                (left[0].offset, left[0].value.as_deref()),
                (2, Some(&b"2"[..]))
            );
            assert_eq!(
                batch::parse_header(&bytes).unwrap().compression().unwrap(),
                codec
            );
            assert_eq!(
                compact_batch(&second, &latest, 20, &POLICY, &mut None).unwrap(),
                Compacted::Unchanged
            );
        }
    }

    #[test]
    fn tombstones_expire_after_delete_retention() {
        let batch = encode(
            &[record(0, "a", Some("1"), 10), record(1, "a", None, 10)],
            Compression::None,
        );
        let mut latest = LatestOffsets::new();
        note_keys(&batch, &mut latest).unwrap();
        let mut expiry = None;
        let Compacted::Rewritten(bytes, 1) =
            compact_batch(&batch, &latest, 50, &POLICY, &mut expiry).unwrap()
        else {
            panic!("the old value goes, the fresh tombstone stays");
        };
        assert_eq!(decode(&bytes).unwrap()[0].offset, 1);
        assert_eq!(
            expiry,
            Some(10 + POLICY.delete_retention_ms),
            "when to look again"
        );
        let mut expiry = None;
        assert_eq!(
            compact_batch(&batch, &latest, 500, &POLICY, &mut expiry).unwrap(),
            Compacted::Empty
        );
        assert_eq!(expiry, None, "no tombstone kept");
    }
}
