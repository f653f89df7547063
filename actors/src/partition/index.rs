//! The sparse indexes of one segment, kept in memory and saved beside its log.
//!
//! Both indexes get an entry at the same batches: one every
//! `index_interval_bytes` of log (see `Segment`). Offsets are relative to the
//! segment's base offset.
//!
//! - The offset index maps a batch's relative base offset to its file
//!   position (8-byte entries: u32 offset, u32 position).
//! - The time index records, at the same batch, the largest batch
//!   maxTimestamp seen so far in the segment (12-byte entries: i64
//!   timestamp, u32 offset). Its timestamps never decrease, so the last
//!   entry below a target says every batch up to it can be skipped; and
//!   because entries come at a fixed byte interval even when timestamps stall,
//!   the scan from there never covers much more than one interval.
//!
//! An index file is only a cache: a missing or implausible one is reported
//! as an [`IndexError`] and the segment rebuilds it from the log.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest batch maxTimestamp up to and including the indexed batch.
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Bounds every entry of a loaded index must respect.
#[derive(Debug, Clone, Copy)]
pub struct IndexLimits {
    /// Size of the segment's log: indexed batches start before it.
    pub log_size: u64,
    /// The largest relative offset the segment can hold.
    pub max_relative_offset: u32,
}

/// One fixed-size index entry: a relative offset and what the index keeps
/// for it.
pub trait Entry: Copy {
    const SIZE: usize;
    fn relative_offset(&self) -> u32;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Checks what the entry keeps for its offset against the one before
    /// it and the limits.
    fn check_value(&self, previous: Option<&Self>, limits: &IndexLimits) -> Result<(), String>;

    /// Checks the entry against the one before it and the limits: offsets
    /// must rise and stay in the segment, whatever the index keeps.
    fn check(&self, previous: Option<&Self>, limits: &IndexLimits) -> Result<(), String> {
        let offset = self.relative_offset();
        if offset > limits.max_relative_offset {
            return Err(format!(
                "relative offset {offset} is past the segment's last {}",
                limits.max_relative_offset
            ));
        }
        match previous.map(Self::relative_offset) {
            Some(p) if p >= offset => Err(format!("relative offset {offset} does not follow {p}")),
            _ => self.check_value(previous, limits),
        }
    }
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;

    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.relative_offset.to_be_bytes());
        out.extend(self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (offset, position) = bytes.split_first_chunk()?;
        Some(OffsetEntry {
            relative_offset: u32::from_be_bytes(*offset),
            position: u32::from_be_bytes(*position.first_chunk()?),
        })
    }

    fn check_value(&self, previous: Option<&Self>, limits: &IndexLimits) -> Result<(), String> {
        if u64::from(self.position) >= limits.log_size {
            return Err(format!(
                "position {} is past the log's {} bytes",
                self.position, limits.log_size
            ));
        }
        match previous {
            Some(p) if p.position >= self.position => Err(format!(
                "position {} does not follow {}",
                self.position, p.position
            )),
            _ => Ok(()),
        }
    }
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;

    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.timestamp.to_be_bytes());
        out.extend(self.relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (timestamp, offset) = bytes.split_first_chunk()?;
        Some(TimeEntry {
            timestamp: i64::from_be_bytes(*timestamp),
            relative_offset: u32::from_be_bytes(*offset.first_chunk()?),
        })
    }

    fn check_value(&self, previous: Option<&Self>, _limits: &IndexLimits) -> Result<(), String> {
        match previous {
            Some(p) if p.timestamp > self.timestamp => Err(format!(
                "timestamp {} goes back from {}",
                self.timestamp, p.timestamp
            )),
            _ => Ok(()),
        }
    }
}

/// Why an index file cannot be used.
#[derive(Debug)]
pub enum IndexError {
    Missing,
    Io(io::Error),
    Corrupt(String),
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Missing => write!(f, "index file is missing"),
            IndexError::Io(e) => write!(f, "cannot read index file: {e}"),
            IndexError::Corrupt(reason) => write!(f, "index file is corrupt: {reason}"),
        }
    }
}

impl std::error::Error for IndexError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IndexError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A sorted, in-memory list of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index<E> {
    entries: Vec<E>,
}

pub type OffsetIndex = Index<OffsetEntry>;
pub type TimeIndex = Index<TimeEntry>;

impl<E> Default for Index<E> {
    fn default() -> Self {
        Index {
            entries: Vec::new(),
        }
    }
}

impl<E: Entry> Index<E> {
    /// Reads and checks an index file: its size must be a whole number of
    /// entries, which must be in order and within `limits`.
    pub fn load(path: &Path, limits: &IndexLimits) -> Result<Self, IndexError> {
        let bytes = fs::read(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => IndexError::Missing,
            _ => IndexError::Io(e),
        })?;
        if bytes.len() % E::SIZE != 0 {
            return Err(IndexError::Corrupt(format!(
                "{} bytes is not a whole number of {}-byte entries",
                bytes.len(),
                E::SIZE
            )));
        }
        let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::SIZE);
        for chunk in bytes.chunks_exact(E::SIZE) {
            let entry =
                E::decode(chunk).ok_or_else(|| IndexError::Corrupt("short entry".to_string()))?;
            entry
                .check(entries.last(), limits)
                .map_err(IndexError::Corrupt)?;
            entries.push(entry);
        }
        Ok(Index { entries })
    }

    /// The whole index as its file holds it.
    pub fn encoded(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * E::SIZE);
        for entry in &self.entries {
            entry.encode(&mut bytes);
        }
        bytes
    }

    /// Adds an entry; callers add them in order.
    pub fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    /// Keeps only the first `len` entries.
    pub fn truncate(&mut self, len: usize) {
        self.entries.truncate(len);
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// The last entry for which `before` holds, given that it holds for a
    /// prefix of the entries.
    fn last_where(&self, before: impl Fn(&E) -> bool) -> Option<E> {
        let end = self.entries.partition_point(before);
        end.checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .copied()
    }
}

impl OffsetIndex {
    /// The last indexed batch starting at or before `relative_offset`; the
    /// batch holding that offset is this one or a later one.
    pub fn floor(&self, relative_offset: u32) -> Option<OffsetEntry> {
        self.last_where(|e| e.relative_offset <= relative_offset)
    }

    /// The last indexed batch starting at or before file `position`.
    pub fn floor_position(&self, position: u64) -> Option<OffsetEntry> {
        self.last_where(|e| u64::from(e.position) <= position)
    }
}

impl TimeIndex {
    /// The last entry whose running maximum is below `timestamp`: no record
    /// up to its batch can match, so a search may start at that batch.
    pub fn last_before(&self, timestamp: i64) -> Option<TimeEntry> {
        self.last_where(|e| e.timestamp < timestamp)
    }
}

/// Writes an index file (`bytes` from [`Index::encoded`]), replacing it;
/// the caller fsyncs the file and its directory.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<fs::File> {
    let mut file = fs::File::create(path)?;
    io::Write::write_all(&mut file, bytes)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: IndexLimits = IndexLimits {
        log_size: 10_000,
        max_relative_offset: 1_000,
    };

    fn offsets(pairs: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in pairs {
            index.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    fn times(pairs: &[(i64, u32)]) -> TimeIndex {
        let mut index = TimeIndex::default();
        for &(timestamp, relative_offset) in pairs {
            index.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
        index
    }

    #[test]
    fn floor_finds_the_last_entry_not_after_the_target() {
        let index = offsets(&[(10, 100), (20, 200), (30, 300)]);
        let floor = |o| index.floor(o).map(|e| e.position);
        assert_eq!(floor(0), None);
        assert_eq!(floor(9), None);
        assert_eq!(floor(10), Some(100));
        assert_eq!(floor(19), Some(100));
        assert_eq!(floor(20), Some(200));
        assert_eq!(floor(u32::MAX), Some(300));
        let by_position = |p| index.floor_position(p).map(|e| e.relative_offset);
        assert_eq!(by_position(99), None);
        assert_eq!(by_position(100), Some(10));
        assert_eq!(by_position(299), Some(20));
        assert_eq!(by_position(5000), Some(30));
    }

    #[test]
    fn last_before_skips_equal_timestamps() {
        let index = times(&[(100, 5), (100, 9), (200, 14), (300, 20)]);
        let before = |ts| index.last_before(ts).map(|e| e.relative_offset);
        assert_eq!(before(100), None);
        assert_eq!(before(101), Some(9));
        assert_eq!(before(200), Some(9));
        assert_eq!(before(201), Some(14));
        assert_eq!(before(i64::MAX), Some(20));
        assert_eq!(TimeIndex::default().last_before(5), None);
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (opath, tpath) = (dir.path().join("a.index"), dir.path().join("a.timeindex"));
        let offset_index = offsets(&[(1, 10), (2, 20), (1000, 9999)]);
        let time_index = times(&[(-5, 1), (7, 2), (7, 1000)]);
        write(&opath, &offset_index.encoded()).unwrap();
        write(&tpath, &time_index.encoded()).unwrap();
        assert_eq!(fs::metadata(&opath).unwrap().len(), 24);
        assert_eq!(fs::metadata(&tpath).unwrap().len(), 36);
        assert_eq!(OffsetIndex::load(&opath, &LIMITS).unwrap(), offset_index);
        assert_eq!(TimeIndex::load(&tpath, &LIMITS).unwrap(), time_index);
        write(&opath, &OffsetIndex::default().encoded()).unwrap();
        assert!(OffsetIndex::load(&opath, &LIMITS)
            .unwrap()
            .entries()
            .is_empty());
    }

    #[test]
    fn load_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = OffsetIndex::load(&dir.path().join("none.index"), &LIMITS);
        assert!(matches!(missing, Err(IndexError::Missing)));
    }

    fn load_offsets(pairs: &[(u32, u32)]) -> Result<OffsetIndex, IndexError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        write(&path, &offsets(pairs).encoded()).unwrap();
        OffsetIndex::load(&path, &LIMITS)
    }

    #[test]
    fn load_rejects_implausible_offset_indexes() {
        let corrupt = |r: Result<OffsetIndex, IndexError>| matches!(r, Err(IndexError::Corrupt(_)));
        assert!(corrupt(load_offsets(&[(2, 10), (1, 20)])));
        assert!(corrupt(load_offsets(&[(1, 10), (1, 20)])));
        assert!(corrupt(load_offsets(&[(1, 20), (2, 20)])));
        assert!(corrupt(load_offsets(&[(1, 10_000)])));
        assert!(corrupt(load_offsets(&[(1_001, 10)])));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.index");
        fs::write(&path, [0u8; 12]).unwrap();
        assert!(corrupt(OffsetIndex::load(&path, &LIMITS)));
    }

    #[test]
    fn load_rejects_time_going_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.timeindex");
        write(&path, &times(&[(10, 1), (9, 2)]).encoded()).unwrap();
        assert!(matches!(
            TimeIndex::load(&path, &LIMITS),
            Err(IndexError::Corrupt(_))
        ));
        write(&path, &times(&[(10, 2), (11, 2)]).encoded()).unwrap();
        assert!(matches!(
            TimeIndex::load(&path, &LIMITS),
            Err(IndexError::Corrupt(_))
        ));
    }
}
