//! The answer to a read before any record byte is read: the file ranges of
//! whole batches, located by a [`super::read_plan::ReadPlan`].
//!
//! A fetch cuts them to its budgets (`partition_max_bytes` when locating,
//! the response's `max_bytes` across partitions) while they are still just
//! ranges, then either hands them to the connection, which sends them from
//! the page cache with `sendfile(2)`, or reads them into memory once (TLS
//! connections, old message-set versions, followers). Each range holds its
//! file open: a segment deleted by retention or replaced by compaction
//! meanwhile still sends what the plan found, since sealed segments never
//! change and the active one only grows past the planned size.

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Bytes `offset..offset + len` of an open segment file.
#[derive(Clone)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
}

/// One batch located in a segment file.
#[derive(Clone)]
struct Span {
    region: FileRegion,
    last_offset: i64,
}

/// Whole batches, in log order.
#[derive(Clone, Default)]
pub struct FileRecords {
    batches: Vec<Span>,
    len: u64,
    /// The batches were among the last [`RECENT_BYTES`] of their log when
    /// located: written lately, so very likely still in the page cache.
    pub recent: bool,
}

/// How far behind its log's end a read may start and still be sent with
/// `sendfile` from the connection's thread. A `sendfile` of pages no longer
/// cached waits on the disk there, stalling every connection and actor on
/// that thread; older data (a consumer catching up on a backlog) is read
/// on the reader threads instead. Consumers at the tail, the common case,
/// read what was just written.
pub const RECENT_BYTES: u64 = 64 * 1024 * 1024;

impl FileRecords {
    pub fn push(&mut self, file: &Arc<File>, offset: u64, len: u64, last_offset: i64) {
        let region = FileRegion {
            file: file.clone(),
            offset,
            len,
        };
        self.batches.push(Span {
            region,
            last_offset,
        });
        self.len += len;
    }

    /// Bytes of all the batches.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The last offset of the last batch.
    pub fn last_offset(&self) -> Option<i64> {
        self.batches.last().map(|b| b.last_offset)
    }

    /// Keeps the leading batches that fit in `max_bytes` together.
    pub fn truncate(&mut self, max_bytes: u64) {
        let mut len = 0;
        let keep = self
            .batches
            .iter()
            .take_while(|b| {
                len += b.region.len;
                len <= max_bytes
            })
            .count();
        self.batches.truncate(keep);
        self.len = self.batches.iter().map(|b| b.region.len).sum();
    }

    /// The batches as file regions, adjacent batches of one file joined:
    /// usually one region per segment.
    pub fn regions(&self) -> Vec<FileRegion> {
        let mut regions: Vec<FileRegion> = Vec::new();
        for FileRegion { file, offset, len } in self.batches.iter().map(|b| &b.region) {
            match regions.last_mut() {
                Some(last)
                    if Arc::ptr_eq(&last.file, file) && last.offset + last.len == *offset =>
                {
                    last.len += len
                }
                _ => regions.push(FileRegion {
                    file: file.clone(),
                    offset: *offset,
                    len: *len,
                }),
            }
        }
        regions
    }

    /// Reads the batches into memory, one `pread` per region.
    pub fn read(&self) -> io::Result<Bytes> {
        let mut buf = vec![0; self.len as usize];
        let mut at = 0;
        for region in self.regions() {
            let end = at + region.len as usize;
            region
                .file
                .read_exact_at(&mut buf[at..end], region.offset)?;
            at = end;
        }
        Ok(Bytes::from(buf))
    }
}
