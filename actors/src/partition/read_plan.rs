//! A read of the log, planned on the partition actor and carried out on a
//! reader thread (see [`super::reader`]).
//!
//! Planning touches only memory: which segment files hold the offset and
//! later ones, where each one's offset index puts the last batch boundary
//! at or before it, and how many bytes each file held when the read was
//! asked. Carrying it out reads only batch headers: it locates the batch
//! that holds the offset and the whole batches after it that fit the byte
//! budget and lie below the visible end (the high watermark or the last
//! stable offset), as [`FileRecords`]; the record bytes are read later, or
//! never, when the connection sends them straight from the file. The plan
//! holds the files open (`Arc<File>`), so a segment deleted by retention or
//! swapped by compaction in the meantime is still read as it was; a sealed
//! segment never changes, and the active one only grows past the size the
//! plan recorded. The actor stays the only owner of the log's state; reads
//! just no longer wait on the disk there.

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::file_records::FileRecords;
use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Bytes read at once while walking batch headers: the offset index points
/// at most `index.interval.bytes` (4 KiB by default) plus one batch before
/// the offset, so one read usually finds the first batch, and small batches
/// after it cost one read for many headers.
const HEADER_WINDOW: u64 = 4 * 1024;

/// What a read needs of one segment.
pub struct SegmentSlice {
    pub file: Arc<File>,
    /// The `.log` file's path, for error messages.
    pub path: PathBuf,
    /// A batch boundary at or before the first batch to return.
    pub from: u64,
    /// Bytes of the file that belong to the log when the read was planned.
    pub size: u64,
    /// Batches that end before this offset are skipped.
    pub offset: i64,
}

/// The segments a read may take batches from, oldest first.
pub struct ReadPlan {
    pub slices: Vec<SegmentSlice>,
}

impl ReadPlan {
    /// Whole batches starting with the one that holds the offset, as long
    /// as they fit in `max_bytes`, but at least one batch, however large,
    /// if there is any: Kafka's fetch rule, so a consumer never stalls on a
    /// batch larger than its budget. Batches from offset `below` on are left
    /// out. Reads batch headers only.
    pub fn locate(&self, max_bytes: usize, below: i64) -> io::Result<FileRecords> {
        let mut records = FileRecords::default();
        for slice in &self.slices {
            let mut window = Window::default();
            let mut position = slice.from;
            while position + HEADER_LEN as u64 <= slice.size {
                let header = window.header(slice, position)?;
                let len = header.total_len() as u64;
                if header.last_offset() >= slice.offset {
                    let over = !records.is_empty() && records.len() + len > max_bytes as u64;
                    if header.base_offset >= below || over {
                        return Ok(records);
                    }
                    records.push(&slice.file, position, len, header.last_offset());
                }
                position += len;
            }
        }
        Ok(records)
    }

    /// [`ReadPlan::locate`] up to the log end, read into memory.
    pub fn execute(&self, max_bytes: usize) -> io::Result<Bytes> {
        self.locate(max_bytes, i64::MAX)?.read()
    }
}

impl SegmentSlice {
    /// The header at `position`, checked to lie within the segment.
    fn parse(&self, bytes: &[u8], position: u64) -> io::Result<BatchHeader> {
        let header = batch::parse_header(bytes).map_err(|e| {
            invalid_data(format!(
                "{}: bad batch at position {position}: {e}",
                self.path.display()
            ))
        })?;
        if position + header.total_len() as u64 > self.size {
            return Err(invalid_data(format!(
                "{}: batch at position {position} runs past the end",
                self.path.display()
            )));
        }
        Ok(header)
    }
}

/// The bytes of the last read of a segment, so that walking the headers of
/// small batches costs one `pread` per window rather than one per header.
#[derive(Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
}

impl Window {
    /// The header at `position`; a new read if the window does not hold
    /// it.
    fn header(&mut self, slice: &SegmentSlice, position: u64) -> io::Result<BatchHeader> {
        let end = position + HEADER_LEN as u64;
        if position < self.start || end > self.start + self.bytes.len() as u64 {
            let len = HEADER_WINDOW.min(slice.size - position);
            self.bytes.resize(len as usize, 0);
            slice.file.read_exact_at(&mut self.bytes, position)?;
            self.start = position;
        }
        let at = (position - self.start) as usize;
        slice.parse(&self.bytes[at..at + HEADER_LEN], position)
    }
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use crate::partition::batch::testing::batch_sized;
    use crate::partition::file_records::FileRecords;
    use crate::partition::local_log::{Log, LogConfig};

    /// Batch `i`: 4 records with 100-byte values.
    fn test_batch(i: i64) -> Vec<u8> {
        batch_sized(&[i, i, i, i], 100)
    }

    /// A log of 7 batches (offsets 0..28), two batches per segment, and
    /// the bytes of each batch as stored.
    fn filled(dir: &std::path::Path) -> (Log, Vec<Vec<u8>>) {
        let len = test_batch(0).len() as u64;
        let config = LogConfig {
            segment_bytes: 2 * len,
            segment_ms: 60_000,
            index_interval_bytes: 256,
        };
        let mut log = Log::open(dir, config).unwrap();
        for i in 0..7 {
            log.append(&test_batch(i), 0).unwrap();
        }
        let stored = (0..7)
            .map(|i| log.read(4 * i, 1).unwrap().to_vec())
            .collect();
        (log, stored)
    }

    fn located(log: &Log, offset: i64, max_bytes: usize, below: i64) -> FileRecords {
        log.read_plan(offset)
            .unwrap()
            .locate(max_bytes, below)
            .unwrap()
    }

    #[test]
    fn locates_whole_batches_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let (log, stored) = filled(dir.path());
        let len = stored[0].len();
        // From the middle of batch 1, two and a half batches of budget.
        let records = located(&log, 5, 2 * len + len / 2, i64::MAX);
        assert_eq!(
            records.read().unwrap(),
            [&stored[1][..], &stored[2]].concat()
        );
        assert_eq!(records.last_offset(), Some(11));
        // The first batch goes whole, even over the budget.
        assert_eq!(located(&log, 0, 1, i64::MAX).read().unwrap(), stored[0]);
        // Across every segment, one region per segment.
        let all = located(&log, 0, usize::MAX, i64::MAX);
        assert_eq!(all.read().unwrap(), stored.concat());
        assert_eq!(all.regions().len(), 4);
        assert_eq!(all.len(), 7 * len as u64);
    }

    #[test]
    fn leaves_out_batches_from_the_visible_end() {
        let dir = tempfile::tempdir().unwrap();
        let (log, stored) = filled(dir.path());
        let records = located(&log, 0, usize::MAX, 12);
        assert_eq!(records.read().unwrap(), stored[..3].concat());
        assert!(located(&log, 12, usize::MAX, 12).is_empty());
    }

    #[test]
    fn trims_to_whole_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (log, stored) = filled(dir.path());
        let mut records = located(&log, 0, usize::MAX, i64::MAX);
        records.truncate(3 * stored[0].len() as u64 - 1);
        assert_eq!(records.read().unwrap(), stored[..2].concat());
        records.truncate(0);
        assert!(records.is_empty());
    }

    /// Retention deletes segments between locating and sending: the
    /// located records hold the files open and still read as planned.
    #[test]
    fn located_records_outlive_deleted_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, stored) = filled(dir.path());
        let records = located(&log, 0, usize::MAX, i64::MAX);
        assert_eq!(log.enforce_retention(i64::MAX, 0, -1).unwrap(), 3);
        assert_eq!(log.log_start_offset(), 24);
        assert_eq!(records.read().unwrap(), stored.concat());
    }
}
