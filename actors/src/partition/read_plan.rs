//! A read of the log, planned on the partition actor and carried out on a
//! reader thread (see [`super::reader`]).
//!
//! Planning touches only memory: which segment files hold the offset and
//! later ones, where each one's offset index puts the last batch boundary
//! at or before it, and how many bytes each file held when the read was
//! asked. Carrying it out does every `pread`: finding the batch that holds
//! the offset, then reading whole batches up to the byte budget in one
//! request per segment. The plan holds the files open (`Arc<File>`), so a
//! segment deleted by retention or swapped by compaction in the meantime
//! is still read as it was; a sealed segment never changes, and the active
//! one only grows past the size the plan recorded. The actor stays the only
//! owner of the log's state; reads just no longer wait on the disk there.

use super::batch::{self, BatchHeader, HEADER_LEN};
use bytes::{Bytes, BytesMut};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Bytes read at once while looking for the batch that holds the offset:
/// the offset index points at most `index.interval.bytes` (4 KiB by
/// default) plus one batch before it, so one read usually covers the walk.
const SEEK_WINDOW: u64 = 64 * 1024;

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

/// A batch found in a segment.
struct Found {
    position: u64,
    header: BatchHeader,
}

impl ReadPlan {
    /// Whole batches starting with the one that holds the offset, as long
    /// as they fit in `max_bytes`, but at least one batch, however large,
    /// if there is any: Kafka's fetch rule, so a consumer never stalls on a
    /// batch larger than its budget.
    pub fn execute(&self, max_bytes: usize) -> io::Result<Bytes> {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut budget = max_bytes as u64;
        for slice in &self.slices {
            let mut window = Window::default();
            let Some(first) = slice.find_first(&mut window, budget)? else {
                continue;
            };
            let first_len = first.header.total_len() as u64;
            if !parts.is_empty() && first_len > budget {
                break;
            }
            let (bytes, to_the_end) = slice.read_batches(&first, budget, window)?;
            budget = budget.saturating_sub(bytes.len() as u64);
            parts.push(bytes);
            if !to_the_end {
                break;
            }
        }
        Ok(match parts.len() {
            0 => Bytes::new(),
            1 => parts.pop().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                parts.iter().for_each(|p| all.extend_from_slice(p));
                all.freeze()
            }
        })
    }
}

impl SegmentSlice {
    /// The first batch whose last offset reaches `self.offset`, walking
    /// batch headers from `self.from` through `window`, whose first read
    /// also covers `budget` bytes past the start: the offset index puts the
    /// batch close to `from`, so that read usually holds the whole answer.
    fn find_first(&self, window: &mut Window, budget: u64) -> io::Result<Option<Found>> {
        let mut position = self.from;
        let want = budget.saturating_add(SEEK_WINDOW);
        while position + HEADER_LEN as u64 <= self.size {
            let header = window.header(self, position, want)?;
            let found = Found { position, header };
            if found.header.last_offset() >= self.offset {
                return Ok(Some(found));
            }
            position += found.header.total_len() as u64;
        }
        Ok(None)
    }

    /// The batches from `first` that fit in `budget` (at least `first`),
    /// taken from `window` when it holds them, else read at once; and
    /// whether they reach the end of the segment.
    fn read_batches(
        &self,
        first: &Found,
        budget: u64,
        window: Window,
    ) -> io::Result<(Bytes, bool)> {
        let start = first.position;
        let limit = start.saturating_add(budget).min(self.size);
        let first_end = start + first.header.total_len() as u64;
        let wanted = limit.max(first_end);
        let buf = match window.take(start, wanted) {
            Some(bytes) => bytes,
            None => {
                let mut buf = vec![0; (wanted - start) as usize];
                self.file.read_exact_at(&mut buf, start)?;
                Bytes::from(buf)
            }
        };
        let mut end = 0usize;
        while end + HEADER_LEN <= buf.len() {
            let header = self.parse(&buf[end..end + HEADER_LEN], start + end as u64)?;
            let next = end + header.total_len();
            if next > buf.len() {
                break;
            }
            end = next;
        }
        // The first batch always goes whole, however large.
        let end = end.max((first_end - start) as usize);
        Ok((buf.slice(..end), start + end as u64 >= self.size))
    }

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

/// The bytes of the last read of a segment, so that walking batch headers
/// costs one `pread` per window rather than one per header, and the records
/// after them need no read of their own when the window holds them.
#[derive(Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
}

impl Window {
    /// The header at `position`; a new read, of up to `want` bytes, if the
    /// window does not hold it.
    fn header(
        &mut self,
        slice: &SegmentSlice,
        position: u64,
        want: u64,
    ) -> io::Result<BatchHeader> {
        let end = position + HEADER_LEN as u64;
        if position < self.start || end > self.start + self.bytes.len() as u64 {
            let len = want.min(slice.size - position).max(HEADER_LEN as u64);
            self.bytes.resize(len as usize, 0);
            slice.file.read_exact_at(&mut self.bytes, position)?;
            self.start = position;
        }
        let at = (position - self.start) as usize;
        slice.parse(&self.bytes[at..at + HEADER_LEN], position)
    }

    /// The bytes from `start` to `end`, if the window holds them all.
    fn take(self, start: u64, end: u64) -> Option<Bytes> {
        let held = self.start..=self.start + self.bytes.len() as u64;
        if !(held.contains(&start) && held.contains(&end)) {
            return None;
        }
        let from = (start - self.start) as usize;
        Some(Bytes::from(self.bytes).slice(from..from + (end - start) as usize))
    }
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
