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
use rustix::io::ReadWriteFlags;
use std::fs::File;
use std::io::{self, IoSliceMut};
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
    /// Their pages were in the page cache when they were located (see
    /// [`FileRecords::in_page_cache`]), so `sendfile` from the connection's
    /// thread will not wait on the disk.
    pub cached: bool,
}

/// Bytes between two probes of [`FileRecords::in_page_cache`].
const PROBE_STRIDE: u64 = 1024 * 1024;

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

    /// Whether the batches' pages are in the page cache, as far as reading
    /// one byte every [`PROBE_STRIDE`] (and the last) without waiting for
    /// the disk (`RWF_NOWAIT`) tells. A `sendfile` of pages that left the
    /// cache would wait on the disk on the connection's thread, stalling
    /// every connection and actor there; such records (a consumer catching
    /// up on an old backlog) are read on the reader threads instead.
    pub fn in_page_cache(&self) -> bool {
        self.regions().iter().all(|region| {
            let last = region.offset + region.len.saturating_sub(1);
            (region.offset..=last)
                .step_by(PROBE_STRIDE as usize)
                .chain([last])
                .all(|at| resident(&region.file, at))
        })
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
/// Whether the byte at `at` of `file` is in the page cache: a read of it
/// that may not wait for the disk succeeds. A file that cannot tell (a
/// memfd of the in-memory storage, a filesystem without `RWF_NOWAIT`)
/// counts as cached, so it is sent as Kafka sends every fetch.
fn resident(file: &File, at: u64) -> bool {
    let mut byte = [0u8; 1];
    let read = rustix::io::preadv2(
        file,
        &mut [IoSliceMut::new(&mut byte)],
        at,
        ReadWriteFlags::NOWAIT,
    );
    matches!(read, Ok(1) | Err(rustix::io::Errno::OPNOTSUPP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Pages just written are cached; once written back and dropped from
    /// the cache (as a long-idle backlog is), the probe says so.
    #[test]
    fn the_probe_tells_cached_pages_from_dropped_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("segment"))
            .unwrap();
        file.write_all(&vec![7u8; 3 * PROBE_STRIDE as usize])
            .unwrap();
        let file = Arc::new(file);
        let mut records = FileRecords::default();
        records.push(&file, 0, 2 * PROBE_STRIDE, 0);
        records.push(&file, 2 * PROBE_STRIDE, PROBE_STRIDE, 1);
        assert!(records.in_page_cache());
        file.sync_all().unwrap();
        rustix::fs::fadvise(&*file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        assert!(!records.in_page_cache());
        assert_eq!(records.read().unwrap().len(), 3 * PROBE_STRIDE as usize);
    }
}
