//! Log compaction, record by record: which offset holds the latest value of
//! each key, and what remains of a batch once older values are gone.
//!
//! Kept records keep their offsets (gaps appear, order stays); a batch whose
//! records all stay is kept byte for byte; a batch that loses some is
//! re-encoded with its own codec; control batches (transaction markers) are
//! never touched. Tombstones (null values) stay until `delete_retention_ms`
//! after their timestamp, so consumers get to see the deletion.

use super::batch::{self, BatchError};
use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder, NO_SEQUENCE};
use std::collections::HashMap;

/// The topic settings compaction follows.
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// `delete.retention.ms`: how long a tombstone outlives its key.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: segments with newer records are left alone.
    pub min_compaction_lag_ms: i64,
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

/// Compacts one batch against the latest offsets of its keys.
pub fn compact_batch(
    batch: &Bytes,
    latest: &LatestOffsets,
    now_ms: i64,
    policy: &CompactionPolicy,
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

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;

    const POLICY: CompactionPolicy = CompactionPolicy {
        delete_retention_ms: 100,
        min_compaction_lag_ms: 0,
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
                compact_batch(&first, &latest, 20, &POLICY).unwrap()
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
                compact_batch(&second, &latest, 20, &POLICY).unwrap(),
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
        let Compacted::Rewritten(bytes, 1) = compact_batch(&batch, &latest, 50, &POLICY).unwrap()
        else {
            panic!("the old value goes, the fresh tombstone stays");
        };
        assert_eq!(decode(&bytes).unwrap()[0].offset, 1);
        assert_eq!(
            compact_batch(&batch, &latest, 500, &POLICY).unwrap(),
            Compacted::Empty
        );
    }
}
