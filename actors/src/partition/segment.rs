//! One segment of a partition log: `<base offset, 20 digits>.log` holding
//! whole batches back to back, with its sparse `.index` and `.timeindex`.
//!
//! Every `index_interval_bytes` of log, the next batch gets an entry in both
//! indexes. The indexes live in memory and are written to disk when the
//! segment is sealed (rolled): the active segment is always re-scanned on
//! open, so writing its indexes any earlier would only cost syscalls on the
//! append path.
//!
//! Reads use positional I/O (`pread`), so readers never move the file cursor;
//! only appends use it, and they seek to the known end first.
//!
//! A segment kept in memory (an embedded broker's in-memory mode) is an
//! anonymous memory file (`memfd_create`): the same `File` calls, so appends
//! and reads take exactly the path of a segment on disk, but nothing reaches
//! a filesystem and its indexes are never saved.

mod files;
mod scan;

pub use self::files::{
    cleaned_in_memory, delete_files, discard_cleaned, install_cleaned, list_segments,
    write_cleaned, CLEANED_SUFFIX,
};
use self::files::{
    file_path, memory_file, INDEX_EXTENSION, LOG_EXTENSION, MEMORY_DIR, TIME_INDEX_EXTENSION,
};
use self::scan::{Hops, Scanned, Scanner};
use super::batch::{self, BatchHeader, HEADER_LEN};
use super::index::{self, IndexError, IndexLimits, OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use super::read_plan::SegmentSlice;
use crate::durable;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch by the wall clock.
pub fn wall_clock_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A batch about to be appended: the client's bytes, and its header as it
/// will be stored (with the base offset and leader epoch the log assigned;
/// neither is covered by the CRC).
#[derive(Debug, Clone, Copy)]
pub struct PendingBatch<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> PendingBatch<'a> {
    /// Checks that `bytes` is one whole batch by its header (the CRC was
    /// checked when the request came in) and gives it `base_offset` and
    /// `leader_epoch`, as Kafka's leader stamps every batch it appends.
    pub fn new(bytes: &'a [u8], base_offset: i64, leader_epoch: i32) -> io::Result<Self> {
        let mut header = batch::parse_header(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if header.total_len() != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                batch::BatchError::InvalidLength,
            ));
        }
        header.base_offset = base_offset;
        header.partition_leader_epoch = leader_epoch;
        Ok(PendingBatch { bytes, header })
    }

    /// A batch copied from the leader: it keeps the base offset and leader
    /// epoch the leader gave it.
    pub fn replicated(bytes: &'a [u8]) -> io::Result<Self> {
        let header = batch::parse_header(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        PendingBatch::new(bytes, header.base_offset, header.partition_leader_epoch)
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// Header bytes the log rewrites: base offset (8), batch length (4, kept),
/// partition leader epoch (4).
const STAMPED_BYTES: usize = 16;

fn stamped_start(batch: &PendingBatch<'_>) -> [u8; STAMPED_BYTES] {
    let mut start = [0; STAMPED_BYTES];
    start[..8].copy_from_slice(&batch.header.base_offset.to_be_bytes());
    start[8..12].copy_from_slice(&batch.bytes[8..12]);
    start[12..].copy_from_slice(&batch.header.partition_leader_epoch.to_be_bytes());
    start
}

/// A batch found in a segment file.
#[derive(Debug, Clone, Copy)]
pub struct BatchPosition {
    pub position: u64,
    pub header: BatchHeader,
}

impl BatchPosition {
    /// File position just past the batch.
    pub fn end(&self) -> u64 {
        self.position + self.header.total_len() as u64
    }
}

/// Where recovery cut a segment's log, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub position: u64,
    pub bytes: u64,
    pub reason: String,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dropped {} bytes from position {}: {}",
            self.bytes, self.position, self.reason
        )
    }
}

pub struct Segment {
    /// The partition directory; `None` for a segment kept in memory.
    dir: Option<PathBuf>,
    /// The first offset it holds, which names its files.
    base_offset: i64,
    /// The `.log` file, shared with reads in flight.
    file: Arc<File>,
    /// Bytes written to `file`.
    size: u64,
    /// One past the last offset it holds.
    next_offset: i64,
    /// Largest batch maxTimestamp in the segment.
    max_timestamp: Option<i64>,
    /// When it was created, for `segment.ms` rolls.
    created_ms: i64,
    /// `index.interval.bytes`: log bytes between two index entries.
    index_interval_bytes: u64,
    /// Log bytes written since the last index entry.
    bytes_since_index_entry: u64,
    /// Sparse offset → position index (`.index`).
    offset_index: OffsetIndex,
    /// Sparse timestamp → offset index (`.timeindex`).
    time_index: TimeIndex,
}

/// The files of a closed segment that are not yet durable, and its
/// directory, whose fsync also makes durable the names created in it so far
/// (such as the next segment's).
pub struct ClosedSegment {
    pub log: Arc<File>,
    pub offset_index: Arc<File>,
    pub time_index: Arc<File>,
    pub dir: Arc<File>,
}

impl Segment {
    /// A new, empty segment. A stale file of the same name (beyond the log's
    /// end, so never acknowledged) is emptied. The caller makes the file's
    /// name durable (fsyncs `dir`) before anything appended to it is
    /// acknowledged: the flusher fsyncs only the file.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> io::Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(file_path(dir, base_offset, LOG_EXTENSION))?;
        Ok(Segment::empty(
            Some(dir),
            base_offset,
            Arc::new(file),
            index_interval_bytes,
            now_ms,
        ))
    }

    /// A new, empty segment kept in memory only.
    pub fn create_in_memory(
        base_offset: i64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> io::Result<Segment> {
        let file = memory_file(base_offset)?;
        Ok(Segment::empty(
            None,
            base_offset,
            Arc::new(file),
            index_interval_bytes,
            now_ms,
        ))
    }

    /// A segment kept in memory over `file` (whole batches, as compaction
    /// writes them), its state rebuilt by reading every batch.
    pub fn in_memory_from(
        file: Arc<File>,
        base_offset: i64,
        index_interval_bytes: u32,
        created_ms: i64,
    ) -> io::Result<(Segment, Option<Cut>)> {
        let size = file.metadata()?.len();
        let mut segment = Segment::empty(None, base_offset, file, index_interval_bytes, created_ms);
        segment.size = size;
        let cut = segment.rebuild()?;
        Ok((segment, cut))
    }

    /// Opens the active segment: reads and checks every batch, rebuilds the
    /// indexes in memory, and cuts the log at the first torn or corrupt batch.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<(Segment, Option<Cut>)> {
        let mut segment = Segment::open_existing(dir, base_offset, index_interval_bytes)?;
        let cut = segment.rebuild()?;
        Ok((segment, cut))
    }

    /// Opens a sealed segment whose successor starts at `next_base_offset`.
    /// Plausible index files are trusted, and only the batch headers after
    /// their last entry are read; otherwise the segment is recovered like the
    /// active one and its indexes are saved again.
    pub fn load(
        dir: &Path,
        base_offset: i64,
        next_base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<(Segment, Option<Cut>)> {
        let mut segment = Segment::open_existing(dir, base_offset, index_interval_bytes)?;
        let limits = IndexLimits {
            log_size: segment.size,
            max_relative_offset: u32::try_from((next_base_offset - base_offset - 1).max(0))
                .unwrap_or(u32::MAX),
        };
        let loaded = segment
            .load_indexes(dir, &limits)
            .map_err(|e| e.to_string())
            .and_then(|()| segment.replay_tail().map_err(|e| e.to_string()));
        match loaded {
            Ok(completed) => {
                if completed {
                    // The files lacked entries at the tail (an interrupted
                    // save): store the completed indexes.
                    segment.seal()?;
                }
                return Ok((segment, None));
            }
            Err(reason) => log::warn!(
                "{}: rebuilding indexes: {reason}",
                segment.log_path().display()
            ),
        }
        let cut = segment.rebuild()?;
        segment.seal()?;
        Ok((segment, cut))
    }

    fn open_existing(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).open(file_path(
            dir,
            base_offset,
            LOG_EXTENSION,
        ))?;
        let metadata = file.metadata()?;
        // Reopened segments age from their file's birth, where the
        // filesystem records it, so restarts do not postpone segment.ms rolls.
        let created = metadata.created().unwrap_or_else(|_| SystemTime::now());
        let mut segment = Segment::empty(
            Some(dir),
            base_offset,
            Arc::new(file),
            index_interval_bytes,
            wall_clock_ms(created),
        );
        segment.size = metadata.len();
        Ok(segment)
    }

    fn empty(
        dir: Option<&Path>,
        base_offset: i64,
        file: Arc<File>,
        index_interval_bytes: u32,
        created_ms: i64,
    ) -> Segment {
        Segment {
            dir: dir.map(Path::to_path_buf),
            base_offset,
            file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: None,
            created_ms,
            index_interval_bytes: u64::from(index_interval_bytes.max(1)),
            bytes_since_index_entry: 0,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// One past the last offset in the segment.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The largest batch maxTimestamp, if the segment has batches.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.max_timestamp
    }

    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// The log file, for the flusher to fsync.
    pub fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// The log file's path; for a segment in memory, its name under
    /// `memory:`, for messages.
    pub fn log_path(&self) -> PathBuf {
        let dir = self.dir.as_deref().unwrap_or(Path::new(MEMORY_DIR));
        file_path(dir, self.base_offset, LOG_EXTENSION)
    }

    /// Makes the closed segment durable (a segment in memory keeps its
    /// indexes in memory only); called when it stops being the active one.
    /// Its log is fsynced first (acks=1 records in it were never), then its
    /// indexes are written and fsynced, then the directory holding their
    /// names: an index on disk never points past the log on disk.
    pub fn seal(&self) -> io::Result<()> {
        let Some(closed) = self.close()? else {
            return Ok(());
        };
        for file in [&closed.log, &closed.offset_index, &closed.time_index] {
            durable::sync_file(file, self.log_path().display())?;
        }
        let what = format!("the directory of {}", self.log_path().display());
        durable::sync_open_dir(&closed.dir, what)
    }

    /// Saves both indexes without waiting for the disk, and returns what a
    /// flush must fsync to make the closed segment durable. `None` for a
    /// segment kept in memory. Indexes that a power loss leaves ahead of
    /// the log are caught when the segment is loaded (entries past its end,
    /// or a torn tail after the last entry) and rebuilt.
    pub fn close(&self) -> io::Result<Option<ClosedSegment>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let save = |extension, bytes: Vec<u8>| {
            index::write(&file_path(dir, self.base_offset, extension), &bytes).map(Arc::new)
        };
        Ok(Some(ClosedSegment {
            log: self.file.clone(),
            offset_index: save(INDEX_EXTENSION, self.offset_index.encoded())?,
            time_index: save(TIME_INDEX_EXTENSION, self.time_index.encoded())?,
            dir: Arc::new(File::open(dir)?),
        }))
    }

    /// fsyncs the log and the directory holding its name (clean shutdown).
    pub fn sync(&self) -> io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        durable::sync_file(&self.file, self.log_path().display())?;
        durable::sync_dir(dir)
    }

    /// Appends `batches` at the end of the log with one vectored write (each
    /// batch's stamped header start: base offset, length and leader epoch,
    /// then the rest of its bytes, so nothing is copied), then indexes them.
    pub fn append(&mut self, batches: &[PendingBatch<'_>]) -> io::Result<()> {
        let stamped: Vec<[u8; STAMPED_BYTES]> = batches.iter().map(stamped_start).collect();
        // A pending batch holds at least a whole header, so it has the
        // stamped bytes to replace.
        let mut slices: Vec<IoSlice<'_>> = stamped
            .iter()
            .zip(batches)
            .flat_map(|(start, b)| [IoSlice::new(start), IoSlice::new(&b.bytes[STAMPED_BYTES..])])
            .collect();
        if let Err(e) = self.write_at_end(&mut slices) {
            self.discard_partial_write();
            return Err(e);
        }
        for batch in batches {
            self.track(self.size, &batch.header);
            self.size += batch.size();
        }
        Ok(())
    }

    fn write_at_end(&self, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        let mut file = &*self.file;
        file.seek(SeekFrom::Start(self.size))?;
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut slices, written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// After a failed write the file may end with part of a batch. The next
    /// append overwrites it anyway (it seeks to the known end), but cutting
    /// it now keeps a crash from leaving it for recovery.
    fn discard_partial_write(&self) {
        if let Err(e) = self.file.set_len(self.size) {
            log::warn!(
                "{}: cannot cut a failed write back to {} bytes: {e}",
                self.log_path().display(),
                self.size
            );
        }
    }

    /// Accounts for a batch stored at `position`: offsets, max timestamp, and
    /// an index entry when `index_interval_bytes` have passed since the last.
    fn track(&mut self, position: u64, header: &BatchHeader) {
        let max_timestamp = self
            .max_timestamp
            .map_or(header.max_timestamp, |m| m.max(header.max_timestamp));
        self.max_timestamp = Some(max_timestamp);
        if self.bytes_since_index_entry >= self.index_interval_bytes {
            // Entries must fit the u32 fields; the log rolls segments before
            // they could not, and a file that breaks this is merely indexed
            // more sparsely.
            let relative = u32::try_from(header.base_offset - self.base_offset);
            if let (Ok(relative_offset), Ok(position)) = (relative, u32::try_from(position)) {
                self.offset_index.push(OffsetEntry {
                    relative_offset,
                    position,
                });
                self.time_index.push(TimeEntry {
                    timestamp: max_timestamp,
                    relative_offset,
                });
                self.bytes_since_index_entry = 0;
            }
        }
        self.bytes_since_index_entry += header.total_len() as u64;
        self.next_offset = header.last_offset() + 1;
    }

    /// Loads both index files, which must agree with each other: they get
    /// entries at the same batches. If one is longer (a save was cut short),
    /// only the common part is kept and the tail replay adds the rest.
    fn load_indexes(&mut self, dir: &Path, limits: &IndexLimits) -> Result<(), IndexError> {
        let mut offsets =
            OffsetIndex::load(&file_path(dir, self.base_offset, INDEX_EXTENSION), limits)?;
        let mut times = TimeIndex::load(
            &file_path(dir, self.base_offset, TIME_INDEX_EXTENSION),
            limits,
        )?;
        let in_step = offsets
            .entries()
            .iter()
            .zip(times.entries())
            .all(|(o, t)| o.relative_offset == t.relative_offset);
        if !in_step {
            return Err(IndexError::Corrupt(
                "offset and time indexes disagree".to_string(),
            ));
        }
        let common = offsets.entries().len().min(times.entries().len());
        offsets.truncate(common);
        times.truncate(common);
        self.offset_index = offsets;
        self.time_index = times;
        Ok(())
    }

    /// Restores the in-memory state of a segment with loaded indexes by
    /// reading the batch headers from its last index entry to the end, adding
    /// any entries the files lack. Returns whether it added some.
    fn replay_tail(&mut self) -> io::Result<bool> {
        let (start, mut expected) = match self.offset_index.last() {
            Some(entry) => (
                u64::from(entry.position),
                self.base_offset + i64::from(entry.relative_offset),
            ),
            None => (0, self.base_offset),
        };
        self.max_timestamp = self.time_index.last().map(|e| e.timestamp);
        let entries = self.offset_index.entries().len();
        let mut position = start;
        while position < self.size {
            let batch = self.batch_at(position)?;
            // Compaction leaves gaps, so offsets only have to grow.
            if batch.header.base_offset < expected {
                return Err(invalid_data(format!(
                    "batch at position {position} has base offset {}, expected {expected} or more",
                    batch.header.base_offset
                )));
            }
            self.track(position, &batch.header);
            expected = self.next_offset;
            position = batch.end();
        }
        Ok(self.offset_index.entries().len() > entries)
    }

    /// Re-reads the whole log, checking every batch's framing, CRC and
    /// offsets, and rebuilds the in-memory state and indexes. The log is cut
    /// at the first batch that fails, so a torn batch is never served.
    fn rebuild(&mut self) -> io::Result<Option<Cut>> {
        self.reset();
        let file = Arc::clone(&self.file);
        let file_len = file.metadata()?.len();
        let mut scanner = Scanner::new(&file, file_len);
        let bad = loop {
            match scanner.next()? {
                Scanned::End => break None,
                Scanned::Bad(position, reason) => break Some((position, reason)),
                // Compaction leaves gaps, so offsets only have to grow.
                Scanned::Batch(batch) if batch.header.base_offset < self.next_offset => {
                    let reason = format!(
                        "base offset {} where {} or more was expected",
                        batch.header.base_offset, self.next_offset
                    );
                    break Some((batch.position, reason));
                }
                Scanned::Batch(batch) => self.track(batch.position, &batch.header),
            }
        };
        self.size = bad.as_ref().map_or(file_len, |(position, _)| *position);
        let Some((position, reason)) = bad else {
            return Ok(None);
        };
        file.set_len(position)?;
        Ok(Some(Cut {
            position,
            bytes: file_len - position,
            reason,
        }))
    }

    fn reset(&mut self) {
        self.next_offset = self.base_offset;
        self.max_timestamp = None;
        self.bytes_since_index_entry = 0;
        self.offset_index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
    }

    /// The header of the batch at `position`, which must lie wholly within
    /// the segment.
    fn batch_at(&self, position: u64) -> io::Result<BatchPosition> {
        if position + HEADER_LEN as u64 > self.size {
            return Err(invalid_data(format!(
                "{}: no batch header fits at position {position} of {}",
                self.log_path().display(),
                self.size
            )));
        }
        let mut buf = [0u8; HEADER_LEN];
        self.file.read_exact_at(&mut buf, position)?;
        let header = batch::parse_header(&buf).map_err(|e| {
            invalid_data(format!(
                "{}: bad batch at position {position}: {e}",
                self.log_path().display()
            ))
        })?;
        let found = BatchPosition { position, header };
        if found.end() > self.size {
            return Err(invalid_data(format!(
                "{}: batch at position {position} runs past the end",
                self.log_path().display()
            )));
        }
        Ok(found)
    }

    /// Batch headers from `position` (a batch boundary) to the end, one
    /// `pread` each.
    fn batches_from(&self, position: u64) -> Hops<'_> {
        Hops::new(self, position)
    }

    /// The first batch's maxTimestamp (Kafka's "first batch timestamp"),
    /// one `pread`; `None` when empty.
    pub fn first_batch_timestamp(&self) -> io::Result<Option<i64>> {
        self.batches_from(0)
            .next()
            .transpose()
            .map(|first| first.map(|b| b.header.max_timestamp))
    }

    /// Headers of the batches in about the last `tail_bytes` of the file,
    /// oldest first, starting at the index entry just before that point.
    pub fn tail_headers(&self, tail_bytes: u64) -> io::Result<Vec<BatchHeader>> {
        let from = self.size.saturating_sub(tail_bytes);
        let start = self
            .offset_index
            .floor_position(from)
            .map_or(0, |e| u64::from(e.position));
        self.batches_from(start)
            .map(|b| b.map(|b| b.header))
            .collect()
    }

    /// The batch holding `offset` (or, if the offset falls before or between
    /// batches, the next one), found from the offset index's nearest entry.
    pub fn find_batch(&self, offset: i64) -> io::Result<Option<BatchPosition>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let relative = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let start = self
            .offset_index
            .floor(relative)
            .map_or(0, |e| u64::from(e.position));
        for batch in self.batches_from(start) {
            let batch = batch?;
            if batch.header.last_offset() >= offset {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    /// What a read from `offset` needs of this segment (see
    /// [`ReadPlan`](super::read_plan::ReadPlan)), from the offset index
    /// alone; `None` if the segment ends before `offset`.
    pub fn read_slice(&self, offset: i64) -> Option<SegmentSlice> {
        if offset >= self.next_offset {
            return None;
        }
        let relative = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let from = self
            .offset_index
            .floor(relative)
            .map_or(0, |e| u64::from(e.position));
        Some(SegmentSlice {
            file: self.file.clone(),
            path: self.log_path(),
            from,
            size: self.size,
            offset,
        })
    }

    /// Cuts the segment before the batch holding `offset`, so the batches
    /// from it on are gone (a follower truncating to its leader's log). The
    /// file is re-read to rebuild offsets and indexes: truncation is rare.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let Some(first_gone) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.file.set_len(first_gone.position)?;
        self.size = first_gone.position;
        match self.rebuild()? {
            None => Ok(()),
            Some(cut) => {
                log::warn!("{}: after truncation: {cut}", self.log_path().display());
                Ok(())
            }
        }
    }

    /// Fills `buf` with the log bytes starting at `position`.
    pub fn read_into(&self, position: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, position)
    }

    /// `(offset, timestamp)` of the first record with a timestamp of at least
    /// `ts`. The time index gives the last batch that cannot match; from
    /// there batch headers are skipped until one's maxTimestamp reaches `ts`,
    /// and only that batch's records are read.
    pub fn offset_for_timestamp(&self, ts: i64) -> io::Result<Option<(i64, i64)>> {
        if self.max_timestamp.is_none_or(|max| max < ts) {
            return Ok(None);
        }
        let start = self
            .time_index
            .last_before(ts)
            .and_then(|e| self.offset_index.floor(e.relative_offset))
            .map_or(0, |e| u64::from(e.position));
        for batch in self.batches_from(start) {
            let batch = batch?;
            if batch.header.max_timestamp < ts {
                continue;
            }
            let mut bytes = vec![0; batch.header.total_len()];
            self.read_into(batch.position, &mut bytes)?;
            let found = batch::first_offset_at_or_after_timestamp(&bytes, ts).map_err(|e| {
                invalid_data(format!(
                    "{}: batch at position {}: {e}",
                    self.log_path().display(),
                    batch.position
                ))
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
