//! The on-disk readers: a partition directory is written through the real
//! log (so segments roll and sealed segments get index files), then damaged
//! as a crash, a bad disk or a stray file could leave it, then opened the
//! way a restarting broker opens it (log recovery, index loading, the
//! aborted-transactions file, the producer-state replay) and read through
//! every read path.
//!
//! An undamaged directory must read back every batch written.

#![no_main]

use actorlog_actors::partition::batch::{self, Compression};
use actorlog_actors::partition::local_log::{Log, LogConfig};
use actorlog_actors::partition::producers::Producers;
use actorlog_actors::partition::transactions::Transactions;
use arbitrary::Arbitrary;
use bytes::Bytes;
use kafka_protocol::records::Record;
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOC: actorlog_actors::alloc::Guarded = actorlog_actors::alloc::Guarded;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Small, so that a few batches fill a segment.
    segment_bytes: u16,
    index_interval_bytes: u8,
    batches: Vec<BatchSpec>,
    damage: Vec<Damage>,
    reads: Vec<(i64, u16)>,
    timestamps: Vec<i64>,
}

#[derive(Arbitrary, Debug)]
struct BatchSpec {
    records: u8,
    value_len: u8,
    timestamp: i64,
    codec: u8,
    producer_id: i8,
    transactional: bool,
}

/// One change to a file of the directory (picked by index among the files
/// there, in name order, or among the names the broker reads).
#[derive(Arbitrary, Debug)]
enum Damage {
    Flip { file: u8, at: u32, xor: u8 },
    Truncate { file: u8, len: u32 },
    Append { file: u8, bytes: Vec<u8> },
    Write { file: u8, bytes: Vec<u8> },
    Remove { file: u8 },
}

/// Files the broker reads that the writes may not have created.
const KNOWN_NAMES: [&str; 4] = [
    "aborted.txn",
    "log-start-offset",
    "00000000000000000000.index",
    "00000000000000000000.timeindex",
];

fuzz_target!(|input: Input| {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = LogConfig {
        segment_bytes: u64::from(input.segment_bytes.max(1)),
        segment_ms: u64::MAX,
        index_interval_bytes: u32::from(input.index_interval_bytes),
    };
    let written = write(dir.path(), &config, &input.batches);
    for damage in &input.damage {
        apply(dir.path(), damage);
    }
    let Ok(log) = Log::open(dir.path(), config) else {
        return;
    };
    replay(dir.path(), &log);
    if input.damage.is_empty() {
        let all = log
            .read(log.log_start_offset(), usize::MAX)
            .expect("an undamaged log reads");
        assert_eq!(
            batch::last_offset_of(&all),
            written,
            "every batch reads back"
        );
    }
    read(log, &input);
});

/// Appends the batches, returning the last offset written.
fn write(dir: &Path, config: &LogConfig, batches: &[BatchSpec]) -> Option<i64> {
    let mut log = Log::open(dir, config.clone()).expect("a new log opens");
    let mut last = None;
    for spec in batches {
        let bytes = encode(spec);
        let appended = log.append(&bytes, 0).expect("append");
        last = Some(appended.last_offset);
    }
    last
}

fn encode(spec: &BatchSpec) -> Bytes {
    let codec = match spec.codec % 5 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        _ => Compression::Zstd,
    };
    let records: Vec<Record> = (0..i64::from(spec.records % 8) + 1)
        .map(|offset| {
            let value = Bytes::from(vec![b'v'; usize::from(spec.value_len)]);
            let plain = batch::record(
                offset,
                spec.timestamp.wrapping_add(offset),
                None,
                Some(value),
            );
            Record {
                producer_id: i64::from(spec.producer_id),
                producer_epoch: 0,
                transactional: spec.transactional,
                ..plain
            }
        })
        .collect();
    batch::encode_records(&records, codec).expect("records encode")
}

fn apply(dir: &Path, damage: &Damage) {
    let (Damage::Flip { file, .. }
    | Damage::Truncate { file, .. }
    | Damage::Append { file, .. }
    | Damage::Write { file, .. }
    | Damage::Remove { file }) = damage;
    let path = pick(dir, *file);
    match damage {
        Damage::Flip { at, xor, .. } => {
            if let Ok(mut bytes) = fs::read(&path) {
                let len = bytes.len().max(1);
                if let Some(byte) = bytes.get_mut(*at as usize % len) {
                    *byte ^= xor;
                }
                let _ = fs::write(&path, bytes);
            }
        }
        Damage::Truncate { len, .. } => {
            if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                let size = f.metadata().map_or(0, |m| m.len());
                let _ = f.set_len(u64::from(*len) % (size + 1));
            }
        }
        Damage::Append { bytes, .. } => {
            let mut old = fs::read(&path).unwrap_or_default();
            old.extend_from_slice(bytes);
            let _ = fs::write(&path, old);
        }
        Damage::Write { bytes, .. } => {
            let _ = fs::write(&path, bytes);
        }
        Damage::Remove { .. } => {
            let _ = fs::remove_file(&path);
        }
    }
}

/// The `index`-th of the directory's files followed by the known names.
fn pick(dir: &Path, index: u8) -> PathBuf {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.extend(KNOWN_NAMES.iter().map(|n| n.to_string()));
    dir.join(&names[usize::from(index) % names.len()])
}

/// What a restarting partition does with its log before serving it.
fn replay(dir: &Path, log: &Log) {
    let mut producers = Producers::default();
    let Ok(mut transactions) = Transactions::load(dir) else {
        return;
    };
    if let Ok(headers) = log.tail_headers(16 * 1024 * 1024) {
        for header in &headers {
            producers.record(header, header.base_offset);
            transactions.on_batch(header, header.base_offset);
        }
    }
    let end = log.log_end_offset();
    let stable = transactions.last_stable_offset(end);
    let _ = transactions.aborted_between(log.log_start_offset(), stable);
}

/// Every read path, then an append to the recovered log and the reads again.
fn read(mut log: Log, input: &Input) {
    for round in 0..2 {
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        let span = (end - start).max(1);
        for &(offset, max_bytes) in &input.reads {
            let _ = log.read(start + offset.rem_euclid(span + 1), usize::from(max_bytes));
            let _ = log.read(offset, usize::from(max_bytes));
        }
        for &ts in &input.timestamps {
            let _ = log.offset_for_timestamp(ts);
        }
        let _ = log.max_timestamp();
        if round == 0 {
            let spec = BatchSpec {
                records: 2,
                value_len: 3,
                timestamp: 0,
                codec: 0,
                producer_id: -1,
                transactional: false,
            };
            if log.append(&encode(&spec), 0).is_err() {
                return;
            }
        }
    }
}
