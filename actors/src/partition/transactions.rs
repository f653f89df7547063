//! Transactions as one partition sees them: which producers have a
//! transaction open here (from their first transactional batch to their
//! commit or abort marker), hence the last stable offset, and the aborted
//! transactions a `read_committed` fetch must list so clients drop them.
//!
//! Aborted transactions are kept in `aborted.txn` in the partition
//! directory, one `producer_id first_offset last_offset` line each, written
//! and fsynced before the abort marker itself, so the list is never behind
//! the log. Open transactions are rebuilt from the log's recent batches.

use super::batch::BatchHeader;
use crate::durable;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const ABORTED_FILE: &str = "aborted.txn";

/// An aborted transaction: its producer and offset range (the last offset
/// is the abort marker's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Default)]
pub struct Transactions {
    /// `aborted.txn`; `None` for a partition kept in memory.
    path: Option<PathBuf>,
    /// Producer id → first offset of its open transaction.
    open: BTreeMap<i64, i64>,
    aborted: Vec<Aborted>,
}

impl Transactions {
    /// Loads the aborted list of the partition in `dir`.
    pub fn load(dir: &Path) -> io::Result<Transactions> {
        let path = dir.join(ABORTED_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        // A line may be repeated with a later marker offset (an abort redone
        // after a crash): the last one wins. A torn last line is skipped.
        let mut by_start: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        for line in text.lines() {
            let fields: Vec<i64> = line.split(' ').filter_map(|f| f.parse().ok()).collect();
            if let [producer_id, first_offset, last_offset] = fields[..] {
                by_start.insert((first_offset, producer_id), last_offset);
            }
        }
        let aborted = by_start
            .into_iter()
            .map(|((first_offset, producer_id), last_offset)| Aborted {
                producer_id,
                first_offset,
                last_offset,
            })
            .collect();
        Ok(Transactions {
            path: Some(path),
            open: BTreeMap::new(),
            aborted,
        })
    }

    /// No transactions yet, kept in memory only.
    pub fn in_memory() -> Transactions {
        Transactions::default()
    }

    /// Notes a batch written (or replayed) at `base_offset`.
    pub fn on_batch(&mut self, header: &BatchHeader, base_offset: i64) {
        if !header.is_transactional() {
            return;
        }
        if header.is_control() {
            self.open.remove(&header.producer_id);
        } else {
            self.open.entry(header.producer_id).or_insert(base_offset);
        }
    }

    /// Records, durably, that the producer's open transaction is aborted by
    /// a marker about to be written at `marker_offset`.
    pub fn abort(&mut self, producer_id: i64, marker_offset: i64) -> io::Result<()> {
        let Some(&first_offset) = self.open.get(&producer_id) else {
            return Ok(());
        };
        if let Some(path) = &self.path {
            let mut file = OpenOptions::new().create(true).append(true).open(path)?;
            writeln!(file, "{producer_id} {first_offset} {marker_offset}")?;
            durable::sync_file(&file, path.display())?;
            durable::sync_dir(durable::parent(path))?;
        }
        self.aborted
            .retain(|a| !(a.producer_id == producer_id && a.first_offset == first_offset));
        self.aborted.push(Aborted {
            producer_id,
            first_offset,
            last_offset: marker_offset,
        });
        Ok(())
    }

    /// The log was cut back to `end` (a follower truncating to its
    /// leader): aborts whose marker is gone are forgotten, durably, as
    /// Kafka truncates its transaction index, and the open transactions are
    /// to be replayed from the log's new tail ([`Transactions::on_batch`]).
    pub fn truncate(&mut self, end: i64) -> io::Result<()> {
        let before = self.aborted.len();
        self.aborted.retain(|a| a.last_offset < end);
        self.open.clear();
        if self.aborted.len() == before {
            return Ok(());
        }
        if let Some(path) = &self.path {
            let text: String = self
                .aborted
                .iter()
                .map(|a| format!("{} {} {}\n", a.producer_id, a.first_offset, a.last_offset))
                .collect();
            durable::replace(path, text.as_bytes())?;
        }
        Ok(())
    }

    /// The first offset a `read_committed` consumer may not read yet.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.open
            .values()
            .copied()
            .min()
            .unwrap_or(high_watermark)
            .min(high_watermark)
    }

    /// First offset of the producer's open transaction, if it has one.
    pub fn open_since(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    /// Every aborted transaction known here.
    pub fn aborted(&self) -> &[Aborted] {
        &self.aborted
    }

    /// Aborted transactions overlapping offsets `from..=to`, oldest first.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<Aborted> {
        self.aborted
            .iter()
            .filter(|a| a.first_offset <= to && a.last_offset >= from)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, transactional: bool, control: bool) -> BatchHeader {
        let attributes = (i16::from(transactional) << 4) | (i16::from(control) << 5);
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 1,
        }
    }

    #[test]
    fn open_transactions_hold_back_the_stable_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut txns = Transactions::load(dir.path()).unwrap();
        assert_eq!(txns.last_stable_offset(10), 10);
        txns.on_batch(&header(1, false, false), 0);
        txns.on_batch(&header(7, true, false), 3);
        txns.on_batch(&header(7, true, false), 5);
        txns.on_batch(&header(8, true, false), 6);
        assert_eq!(txns.last_stable_offset(10), 3);
        txns.on_batch(&header(7, true, true), 9);
        assert_eq!(txns.last_stable_offset(10), 6);
    }

    #[test]
    fn aborts_are_durable_and_listed_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut txns = Transactions::load(dir.path()).unwrap();
        txns.on_batch(&header(7, true, false), 3);
        txns.abort(7, 8).unwrap();
        txns.on_batch(&header(7, true, true), 8);
        let expected = Aborted {
            producer_id: 7,
            first_offset: 3,
            last_offset: 8,
        };
        assert_eq!(txns.aborted_between(0, 2), vec![]);
        assert_eq!(txns.aborted_between(5, 20), vec![expected]);
        let reloaded = Transactions::load(dir.path()).unwrap();
        assert_eq!(reloaded.aborted_between(0, 100), vec![expected]);
        // Aborting a producer with nothing open writes nothing.
        txns.abort(9, 10).unwrap();
        assert_eq!(
            Transactions::load(dir.path())
                .unwrap()
                .aborted_between(0, 100)
                .len(),
            1
        );
    }

    #[test]
    fn truncation_forgets_aborts_whose_marker_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut txns = Transactions::load(dir.path()).unwrap();
        txns.on_batch(&header(7, true, false), 3);
        txns.abort(7, 8).unwrap();
        txns.on_batch(&header(7, true, true), 8);
        txns.on_batch(&header(9, true, false), 10);
        txns.abort(9, 12).unwrap();
        txns.on_batch(&header(9, true, true), 12);
        txns.truncate(12).unwrap();
        let kept = Aborted {
            producer_id: 7,
            first_offset: 3,
            last_offset: 8,
        };
        assert_eq!(txns.aborted(), [kept]);
        let reloaded = Transactions::load(dir.path()).unwrap();
        assert_eq!(reloaded.aborted(), [kept]);
        // Replaying the new tail reopens the transaction whose abort went.
        txns.on_batch(&header(9, true, false), 10);
        assert_eq!(txns.open_since(9), Some(10));
    }
}
