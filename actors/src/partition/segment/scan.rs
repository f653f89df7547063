//! Walking a segment's batches: hop by hop through their headers (one
//! `pread` each, for lookups), or chunk by chunk through the whole log (the
//! recovery scan on open, which also finds where a torn write begins).

use super::*;

/// How much of the log a recovery scan reads at once.
pub(super) const SCAN_CHUNK: usize = 1 << 20;

/// Hops from batch header to batch header; stops after the first error.
pub(super) struct Hops<'a> {
    segment: &'a Segment,
    position: u64,
    failed: bool,
}

impl<'a> Hops<'a> {
    /// From `position`, which must be a batch boundary of `segment`.
    pub(super) fn new(segment: &'a Segment, position: u64) -> Hops<'a> {
        Hops {
            segment,
            position,
            failed: false,
        }
    }
}

impl Iterator for Hops<'_> {
    type Item = io::Result<BatchPosition>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.segment.size {
            return None;
        }
        let batch = self.segment.batch_at(self.position);
        match &batch {
            Ok(found) => self.position = found.end(),
            Err(_) => self.failed = true,
        }
        Some(batch)
    }
}

pub(super) enum Scanned {
    Batch(BatchPosition),
    End,
    /// The data at this position is not a whole, intact batch.
    Bad(u64, String),
}

/// Reads a log file front to back in large chunks, checking each batch.
pub(super) struct Scanner<'a> {
    file: &'a File,
    file_len: u64,
    /// File bytes from `buf_position` on.
    buf: Vec<u8>,
    buf_position: u64,
    /// Start of the next batch within `buf`.
    next: usize,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(file: &'a File, file_len: u64) -> Self {
        Scanner {
            file,
            file_len,
            buf: Vec::new(),
            buf_position: 0,
            next: 0,
        }
    }

    pub(super) fn next(&mut self) -> io::Result<Scanned> {
        let position = self.buf_position + self.next as u64;
        let left = self.file_len - position;
        if left == 0 {
            return Ok(Scanned::End);
        }
        if left < HEADER_LEN as u64 {
            return Ok(Scanned::Bad(
                position,
                format!("{left} bytes of torn header"),
            ));
        }
        self.fill(HEADER_LEN)?;
        let header = match batch::parse_header(&self.buf[self.next..]) {
            Ok(header) => header,
            Err(e) => return Ok(Scanned::Bad(position, e.to_string())),
        };
        let len = header.total_len();
        if len as u64 > left {
            let reason = format!("torn batch: {len} bytes announced, {left} left");
            return Ok(Scanned::Bad(position, reason));
        }
        self.fill(len)?;
        if let Err(e) = batch::validate(&self.buf[self.next..self.next + len]) {
            return Ok(Scanned::Bad(position, e.to_string()));
        }
        self.next += len;
        Ok(Scanned::Batch(BatchPosition { position, header }))
    }

    /// Makes at least `wanted` bytes (which the file has) available from
    /// `next`, reading a chunk or more.
    fn fill(&mut self, wanted: usize) -> io::Result<()> {
        if self.buf.len() - self.next >= wanted {
            return Ok(());
        }
        self.buf.drain(..self.next);
        self.buf_position += self.next as u64;
        self.next = 0;
        let have = self.buf.len();
        let in_file = self.file_len - self.buf_position;
        let target = wanted
            .max(SCAN_CHUNK)
            .min(usize::try_from(in_file).unwrap_or(usize::MAX));
        self.buf.resize(target, 0);
        self.file
            .read_exact_at(&mut self.buf[have..], self.buf_position + have as u64)
    }
}
