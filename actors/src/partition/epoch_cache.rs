//! The leader-epoch cache of one partition: for every leader epoch whose
//! leader appended records, the offset of its first record (Kafka's
//! `leader-epoch-checkpoint`, KIP-101).
//!
//! It answers OffsetForLeaderEpoch and the diverging-epoch check of replica
//! fetches: where did epoch E end in this log? A follower whose last fetched
//! epoch ended earlier on the leader holds records the leader never had and
//! must truncate to that end before it appends, so no two replicas ever
//! hold different records below the high watermark.
//!
//! The file is small (one line per leadership change) and rewritten whole,
//! durably (write, fsync, rename, fsync of the directory), whenever it
//! changes: a lost entry would let a diverged follower keep its records.

use crate::durable;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The file in the partition directory.
const FILE_NAME: &str = "leader-epoch-checkpoint";

/// One leader epoch and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The entries in increasing epoch and offset order, and where they live.
#[derive(Debug, Default)]
pub struct EpochCache {
    /// `None` for a log kept in memory.
    path: Option<PathBuf>,
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Loads the cache of the partition in `dir`; an absent file is an empty
    /// cache, an unreadable one an error (it would hide divergence).
    pub fn load(dir: &Path) -> io::Result<EpochCache> {
        let path = dir.join(FILE_NAME);
        let entries = match fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(EpochCache {
            path: Some(path),
            entries,
        })
    }

    /// An empty cache of a log kept in memory.
    pub fn in_memory() -> EpochCache {
        EpochCache::default()
    }

    /// The newest entry.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than
    /// every epoch known. Older or equal epochs are ignored: a leader stamps
    /// its epoch on every batch, so only the first batch of an epoch counts.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<()> {
        if epoch < 0 || self.latest().is_some_and(|e| e.epoch >= epoch) {
            return Ok(());
        }
        // A log truncated below an entry and appended again in a newer
        // epoch: the entries past the new start no longer describe the log.
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.save()
    }

    /// Forgets every epoch that starts at or after `offset`: the log was
    /// truncated there.
    pub fn truncate_from(&mut self, offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < offset);
        if self.entries.len() == before {
            return Ok(());
        }
        self.save()
    }

    /// Forgets epochs that ended before `offset` (the log start moved past
    /// them), keeping the one `offset` falls in, moved up to start there.
    pub fn truncate_before(&mut self, offset: i64) -> io::Result<()> {
        let keep_from = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= offset)
            .unwrap_or(0);
        if keep_from == 0
            && self
                .entries
                .first()
                .is_none_or(|e| e.start_offset >= offset)
        {
            return Ok(());
        }
        self.entries.drain(..keep_from);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = first.start_offset.max(offset);
        }
        self.save()
    }

    /// Where `epoch` ends in this log, Kafka's `endOffsetFor`: the largest
    /// known epoch no greater than `epoch`, and the start offset of the
    /// epoch after it (or `log_end` if it is the latest). `(-1, -1)` when
    /// the log knows no epoch that old (UNDEFINED_EPOCH_OFFSET).
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        let Some(found) = self.entries.iter().rposition(|e| e.epoch <= epoch) else {
            return (-1, -1);
        };
        let end = self
            .entries
            .get(found + 1)
            .map_or(log_end, |next| next.start_offset);
        (self.entries[found].epoch, end)
    }

    /// The epoch of the record at `offset`, if the cache covers it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text: String = self
            .entries
            .iter()
            .map(|e| format!("{} {}\n", e.epoch, e.start_offset))
            .collect();
        durable::replace(path, text.as_bytes())
    }
}

fn parse(text: &str) -> Result<Vec<EpochEntry>, String> {
    let mut entries: Vec<EpochEntry> = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = || {
            format!(
                "line {}: expected 'epoch start_offset', got '{line}'",
                n + 1
            )
        };
        let (epoch, start) = line.trim().split_once(' ').ok_or_else(bad)?;
        let entry = EpochEntry {
            epoch: epoch.parse().map_err(|_| bad())?,
            start_offset: start.trim().parse().map_err(|_| bad())?,
        };
        if entries
            .last()
            .is_some_and(|last| last.epoch >= entry.epoch || last.start_offset > entry.start_offset)
        {
            return Err(format!("line {}: entries out of order", n + 1));
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let mut cache = EpochCache::in_memory();
        cache.assign(0, 0).unwrap();
        cache.assign(2, 10).unwrap();
        cache.assign(5, 25).unwrap();
        assert_eq!(cache.end_offset_for(0, 40), (0, 10));
        // Epoch 1 never appended: the answer is the epoch before it.
        assert_eq!(cache.end_offset_for(1, 40), (0, 10));
        assert_eq!(cache.end_offset_for(2, 40), (2, 25));
        assert_eq!(cache.end_offset_for(5, 40), (5, 40));
        assert_eq!(cache.end_offset_for(9, 40), (5, 40));
        assert_eq!(EpochCache::in_memory().end_offset_for(3, 0), (-1, -1));
        assert_eq!(cache.epoch_at(12), Some(2));
        assert_eq!(cache.epoch_at(30), Some(5));
    }

    #[test]
    fn only_newer_epochs_are_assigned() {
        let mut cache = EpochCache::in_memory();
        cache.assign(3, 5).unwrap();
        cache.assign(3, 9).unwrap();
        cache.assign(2, 9).unwrap();
        assert_eq!(cache.entries(), &[entry(3, 5)]);
    }

    #[test]
    fn truncation_drops_later_epochs() {
        let mut cache = EpochCache::in_memory();
        for (e, o) in [(0, 0), (1, 10), (2, 20)] {
            cache.assign(e, o).unwrap();
        }
        cache.truncate_from(15).unwrap();
        assert_eq!(cache.entries(), &[entry(0, 0), entry(1, 10)]);
        cache.truncate_before(12).unwrap();
        assert_eq!(cache.entries(), &[entry(1, 12)]);
        // Appending again after a truncation in a new epoch.
        cache.assign(4, 13).unwrap();
        assert_eq!(cache.entries(), &[entry(1, 12), entry(4, 13)]);
    }

    #[test]
    fn survives_a_reload_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path()).unwrap();
        cache.assign(1, 0).unwrap();
        cache.assign(4, 7).unwrap();
        let reloaded = EpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries(), &[entry(1, 0), entry(4, 7)]);
        fs::write(dir.path().join(FILE_NAME), "4 7\n1 9\n").unwrap();
        let err = EpochCache::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
        fs::write(dir.path().join(FILE_NAME), "x").unwrap();
        assert!(EpochCache::load(dir.path()).is_err());
    }
}
