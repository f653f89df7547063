//! A partition's log on disk: a directory of segments, each holding a
//! contiguous run of offsets, the last one active (taking appends). A log
//! kept in memory has the same segments as anonymous memory files, and no
//! directory.
//!
//! Batches are stored exactly as produced, with only their base offset
//! rewritten, so appends never decode records and reads return file bytes
//! as they are.

use super::batch::BatchHeader;
use super::cleanable::{self, Cleanable, CleaningLimits, SegmentSummary};
use super::compaction::{self, Cleaned, CompactionPolicy, FileRange, SealedFile, Snapshot};
use super::epoch_cache::EpochCache;
use super::read_plan::ReadPlan;
use super::segment::{self, PendingBatch, Segment};
use super::transactions::Aborted;
use super::LEADER_EPOCH;
use crate::durable;
use crate::flusher::Flusher;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::iter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File positions are u32 in the offset index, so no segment may grow past
/// this, whatever segment_bytes says.
const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment before the active one would exceed this size.
    pub segment_bytes: u64,
    /// Roll to a new segment once the active one is older than this.
    pub segment_ms: u64,
    /// Bytes of log between index entries.
    pub index_interval_bytes: u32,
}

/// Where an appended batch went.
#[derive(Debug, Clone)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's maxTimestamp.
    pub max_timestamp: i64,
    /// The segment file written, for the flusher to fsync.
    pub file: Arc<File>,
}

#[derive(Debug)]
pub enum ReadError {
    OffsetOutOfRange { log_start: i64, log_end: i64 },
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::OffsetOutOfRange { log_start, log_end } => write!(
                f,
                "offset out of range: the log holds offsets {log_start} to {log_end} (exclusive)"
            ),
            ReadError::Io(e) => write!(f, "cannot read the log: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::OffsetOutOfRange { .. } => None,
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// File holding a log start offset moved by DeleteRecords, which may lie
/// inside the first segment.
const START_OFFSET_FILE: &str = "log-start-offset";

/// Stores a new log start offset durably, before any segment below it is
/// deleted or any reader is told of it.
fn write_start_offset(dir: &Path, offset: i64) -> io::Result<()> {
    durable::replace(&dir.join(START_OFFSET_FILE), offset.to_string().as_bytes())
}

/// File holding the cleaner checkpoint: the log below it is compacted, so a
/// restart neither compacts it all again nor takes what came after as clean.
const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// Reads an offset stored by [`durable::replace`]; 0 when there is none.
fn read_offset(dir: &Path, file: &str) -> i64 {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

pub struct Log {
    /// `None` for a log kept in memory.
    dir: Option<PathBuf>,
    config: LogConfig,
    /// The log start offset as DeleteRecords last set it; the real start is
    /// the larger of this and the first segment's base.
    start_floor: i64,
    /// Every segment but the active one, by base offset.
    sealed: BTreeMap<i64, Segment>,
    active: Segment,
    /// Where each leader epoch starts in this log.
    epochs: EpochCache,
    /// The epoch stamped on batches appended as leader.
    leader_epoch: i32,
    /// Where rolled segments are sealed (fsynced, indexes saved) off the
    /// appending thread; `None` seals them in the append itself.
    sealer: Option<Flusher>,
    /// Compaction has cleaned the log below this offset.
    cleaner_checkpoint: i64,
    /// How many times the log was truncated: a compaction job that read
    /// the log before a truncation must not move the checkpoint after it.
    truncations: u64,
}

impl Log {
    /// Opens the log in `dir`, creating it (with one empty segment at offset
    /// 0) if needed. Sealed segments are trusted when their indexes look
    /// sound and rebuilt otherwise; the active segment is always re-read and
    /// cut at its first torn or corrupt batch. A corrupt sealed segment is cut
    /// the same way and the segments after it are dropped, since offsets must
    /// stay contiguous.
    pub fn open(dir: &Path, config: LogConfig) -> io::Result<Log> {
        durable::create_dir_all(dir)?;
        remove_unfinished_compactions(dir)?;
        let bases = segment::list_segments(dir)?;
        let interval = config.index_interval_bytes;
        let Some((&last, _)) = bases.split_last() else {
            let now_ms = crate::clock::now_ms();
            let active = Segment::create(dir, 0, interval, now_ms)?;
            durable::sync_dir(dir)?;
            return Log::new(dir, config, BTreeMap::new(), active);
        };
        let mut sealed = BTreeMap::new();
        for (i, pair) in bases.windows(2).enumerate() {
            let (base, next_base) = (pair[0], pair[1]);
            let (segment, cut) = Segment::load(dir, base, next_base, interval)?;
            if let Some(cut) = cut {
                let later = &bases[i + 1..];
                log::warn!(
                    "{}: {cut}; dropping the {} segments after it",
                    segment.log_path().display(),
                    later.len()
                );
                for &base in later {
                    segment::delete_files(dir, base)?;
                }
                return Log::new(dir, config, sealed, segment);
            }
            if segment.next_offset() > next_base {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: runs to offset {} but the next segment starts at {next_base}",
                        segment.log_path().display(),
                        segment.next_offset()
                    ),
                ));
            }
            sealed.insert(base, segment);
        }
        let (active, cut) = Segment::recover(dir, last, interval)?;
        if let Some(cut) = cut {
            log::warn!("{}: {cut}", active.log_path().display());
        }
        Log::new(dir, config, sealed, active)
    }

    /// An empty log kept in memory only: it never touches a filesystem and
    /// is gone when dropped.
    pub fn in_memory(config: LogConfig) -> io::Result<Log> {
        let now_ms = crate::clock::now_ms();
        let active = Segment::create_in_memory(0, config.index_interval_bytes, now_ms)?;
        Ok(Log {
            dir: None,
            config,
            start_floor: 0,
            sealed: BTreeMap::new(),
            active,
            epochs: EpochCache::in_memory(),
            leader_epoch: LEADER_EPOCH,
            sealer: None,
            cleaner_checkpoint: 0,
            truncations: 0,
        })
    }

    fn new(
        dir: &Path,
        config: LogConfig,
        sealed: BTreeMap<i64, Segment>,
        active: Segment,
    ) -> io::Result<Log> {
        let start_floor = read_offset(dir, START_OFFSET_FILE);
        // A checkpoint past the end covers records recovery cut off.
        let cleaner_checkpoint =
            read_offset(dir, CLEANER_CHECKPOINT_FILE).min(active.next_offset());
        let mut epochs = EpochCache::load(dir)?;
        // Entries past the end describe records recovery cut off.
        epochs.truncate_from(active.next_offset())?;
        let leader_epoch = epochs.latest().map_or(LEADER_EPOCH, |e| e.epoch);
        Ok(Log {
            dir: Some(dir.to_path_buf()),
            config,
            start_floor,
            sealed,
            active,
            epochs,
            leader_epoch,
            sealer: None,
            cleaner_checkpoint,
            truncations: 0,
        })
    }

    /// The leader epoch stamped on the batches appended from now on (this
    /// broker leads the partition in that epoch).
    pub fn set_leader_epoch(&mut self, epoch: i32) {
        self.leader_epoch = epoch;
    }

    /// Where each leader epoch starts in this log.
    pub fn epochs(&self) -> &EpochCache {
        &self.epochs
    }

    /// New segment settings; they apply from the next append on.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The log's directory; `None` in memory.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn log_start_offset(&self) -> i64 {
        let first_base = self
            .sealed
            .first_key_value()
            .map_or(self.active.base_offset(), |(&base, _)| base);
        first_base.max(self.start_floor).min(self.log_end_offset())
    }

    /// Deletes sealed segments, oldest first, that retention no longer keeps:
    /// those whose newest record is older than `retention_ms`, and those
    /// whose removal still leaves at least `retention_bytes`. A negative
    /// limit is off. The active segment always stays. Returns how many went.
    pub fn enforce_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> io::Result<usize> {
        let mut size = self.size_bytes();
        let mut deleted = 0;
        while let Some((&base, oldest)) = self.sealed.first_key_value() {
            let newest = oldest
                .max_timestamp()
                .unwrap_or_else(|| oldest.created_ms());
            let expired = retention_ms >= 0 && newest < now_ms.saturating_sub(retention_ms);
            let oversized = retention_bytes >= 0 && size - oldest.size() >= retention_bytes as u64;
            if !expired && !oversized {
                break;
            }
            size -= oldest.size();
            self.sealed.remove(&base);
            self.delete_segment_files(base)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Compacts the cleanable part of the log ([`cleanable`]) here and
    /// now, and moves the cleaner checkpoint past it (the broker runs the
    /// same job on its cleaner thread instead). Returns how many records went.
    pub fn compact(
        &mut self,
        now_ms: i64,
        policy: &CompactionPolicy,
        limits: &CleaningLimits,
    ) -> io::Result<u64> {
        let cleanable = self.cleanable(self.log_end_offset(), now_ms, limits)?;
        let snapshot = self.compaction_snapshot(Vec::new(), cleanable.clean_below);
        let done = compaction::clean(&snapshot, now_ms, policy, &mut |_| {})?;
        for cleaned in &done.cleaned {
            self.install_cleaned(cleaned)?;
        }
        self.advance_cleaner_checkpoint(cleanable.clean_below)?;
        Ok(done.cleaned.iter().map(|c| c.removed).sum())
    }

    /// The files a compaction job reads, with the aborted transactions
    /// whose records it drops; it cleans the sealed segments below
    /// `clean_below`.
    pub fn compaction_snapshot(&self, aborted: Vec<Aborted>, clean_below: i64) -> Snapshot {
        let range = |s: &Segment| FileRange {
            file: s.file(),
            size: s.size(),
        };
        Snapshot {
            dir: self.dir.clone(),
            sealed: self
                .sealed
                .values()
                .map(|s| SealedFile {
                    base: s.base_offset(),
                    range: range(s),
                })
                .collect(),
            active: range(&self.active),
            aborted,
            clean_below,
        }
    }

    /// The cleanable part of the log and how dirty it is, given where open
    /// transactions start (`first_unstable`). Reads the first batch of each
    /// dirty segment when `max.compaction.lag.ms` is finite.
    pub fn cleanable(
        &self,
        first_unstable: i64,
        now_ms: i64,
        limits: &CleaningLimits,
    ) -> io::Result<Cleanable> {
        let bounded = limits.max_compaction_lag_ms < i64::MAX;
        let summaries = self
            .sealed
            .values()
            .map(|s| {
                let dirty = s.next_offset() > self.cleaner_checkpoint;
                Ok(SegmentSummary {
                    base: s.base_offset(),
                    next_offset: s.next_offset(),
                    size: s.size(),
                    max_timestamp: s.max_timestamp(),
                    first_timestamp: if bounded && dirty {
                        s.first_batch_timestamp()?
                    } else {
                        None
                    },
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(cleanable::measure(
            &summaries,
            self.cleaner_checkpoint,
            first_unstable,
            now_ms,
            limits,
        ))
    }

    /// Compaction has cleaned the log below this offset.
    pub fn cleaner_checkpoint(&self) -> i64 {
        self.cleaner_checkpoint
    }

    /// Notes, durably, that compaction cleaned the log below `offset`; the
    /// checkpoint never moves back this way.
    pub fn advance_cleaner_checkpoint(&mut self, offset: i64) -> io::Result<()> {
        if offset > self.cleaner_checkpoint {
            self.store_cleaner_checkpoint(offset)?;
        }
        Ok(())
    }

    /// How many times the log was truncated so far.
    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    /// Records written again from `offset` on (truncation) are dirty: the
    /// checkpoint goes back there, before anything is cut.
    fn lower_cleaner_checkpoint(&mut self, offset: i64) -> io::Result<()> {
        self.truncations += 1;
        self.cap_cleaner_checkpoint(offset)
    }

    fn cap_cleaner_checkpoint(&mut self, offset: i64) -> io::Result<()> {
        if offset < self.cleaner_checkpoint {
            self.store_cleaner_checkpoint(offset.max(0))?;
        }
        Ok(())
    }

    fn store_cleaner_checkpoint(&mut self, offset: i64) -> io::Result<()> {
        if let Some(dir) = &self.dir {
            durable::replace(
                &dir.join(CLEANER_CHECKPOINT_FILE),
                offset.to_string().as_bytes(),
            )?;
        }
        self.cleaner_checkpoint = offset;
        Ok(())
    }

    /// Seals the active segment if it holds records and its first one came
    /// longer than `segment.ms` ago: an idle log rolls too, so the records
    /// it holds become cleanable without waiting for the next append.
    /// Returns whether it rolled.
    pub fn roll_if_aged(&mut self, now_ms: i64) -> io::Result<bool> {
        if self.active.size() == 0 || !self.too_old(now_ms) {
            return Ok(false);
        }
        self.roll(now_ms)?;
        Ok(true)
    }

    /// Swaps a cleaned file in, if its segment is still the one that was
    /// read (retention or DeleteRecords may have removed it meanwhile).
    /// Returns whether it was installed.
    pub fn install_cleaned(&mut self, cleaned: &Cleaned) -> io::Result<bool> {
        let Some(old) = self
            .sealed
            .get(&cleaned.base)
            .filter(|s| s.size() == cleaned.size)
        else {
            if let Some(dir) = &self.dir {
                segment::discard_cleaned(dir, cleaned.base)?;
            }
            return Ok(false);
        };
        let next_base = self
            .sealed
            .range(cleaned.base + 1..)
            .next()
            .map_or(self.active.base_offset(), |(&base, _)| base);
        let interval = self.config.index_interval_bytes;
        let (segment, cut) = match (&self.dir, &cleaned.in_memory) {
            (Some(dir), _) => {
                segment::install_cleaned(dir, cleaned.base)?;
                Segment::load(dir, cleaned.base, next_base, interval)?
            }
            (None, Some(file)) => {
                Segment::in_memory_from(file.clone(), cleaned.base, interval, old.created_ms())?
            }
            (None, None) => {
                return Err(io::Error::other(
                    "a compacted segment of a log in memory came without its contents",
                ))
            }
        };
        if let Some(cut) = cut {
            log::warn!("{}: after compaction: {cut}", segment.log_path().display());
        }
        self.sealed.insert(cleaned.base, segment);
        Ok(true)
    }

    /// Moves the log start offset up to `offset` (DeleteRecords): reads
    /// below it fail from now on and whole segments below it are deleted.
    pub fn delete_records(&mut self, offset: i64) -> io::Result<()> {
        if offset <= self.log_start_offset() {
            return Ok(());
        }
        if let Some(dir) = &self.dir {
            write_start_offset(dir, offset)?;
        }
        self.start_floor = offset;
        self.epochs.truncate_before(offset)?;
        while let Some((&base, oldest)) = self.sealed.first_key_value() {
            if oldest.next_offset() > offset {
                break;
            }
            self.sealed.remove(&base);
            self.delete_segment_files(base)?;
        }
        Ok(())
    }

    /// Removes a dropped segment's files (a segment in memory has none).
    fn delete_segment_files(&self, base: i64) -> io::Result<()> {
        match &self.dir {
            Some(dir) => segment::delete_files(dir, base),
            None => Ok(()),
        }
    }

    /// Cuts the log back to end before the batch holding `offset`: a
    /// follower whose records diverge from its leader's from there. Later
    /// segments go newest first, so a crash midway leaves a contiguous log;
    /// epochs that started past the new end are forgotten.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.lower_cleaner_checkpoint(offset)?;
        if offset <= self.log_start_offset() {
            return self.truncate_fully_and_start_at(offset);
        }
        while offset < self.active.base_offset() {
            let Some((_, previous)) = self.sealed.pop_last() else {
                break;
            };
            let dropped = std::mem::replace(&mut self.active, previous);
            self.delete_segment_files(dropped.base_offset())?;
        }
        self.active.truncate_to(offset)?;
        // The cut falls at the start of the batch holding `offset`.
        self.cap_cleaner_checkpoint(self.log_end_offset())?;
        self.epochs.truncate_from(self.log_end_offset())
    }

    /// Empties the log and starts it again at `offset`: a follower whose
    /// log ends below its leader's log start, or that must drop everything
    /// it has.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> io::Result<()> {
        self.lower_cleaner_checkpoint(offset)?;
        let now_ms = crate::clock::now_ms();
        let interval = self.config.index_interval_bytes;
        let fresh = match &self.dir {
            Some(dir) => {
                write_start_offset(dir, offset)?;
                let fresh = Segment::create(dir, offset, interval, now_ms)?;
                durable::sync_dir(dir)?;
                fresh
            }
            None => Segment::create_in_memory(offset, interval, now_ms)?,
        };
        let old_active = std::mem::replace(&mut self.active, fresh);
        if old_active.base_offset() != offset {
            self.delete_segment_files(old_active.base_offset())?;
        }
        while let Some((base, _)) = self.sealed.pop_last() {
            if base != offset {
                self.delete_segment_files(base)?;
            }
        }
        self.start_floor = offset;
        self.epochs.truncate_from(0)
    }

    /// One past the last offset written.
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// The active segment's file, for the flusher.
    pub fn active_file(&self) -> Arc<File> {
        self.active.file()
    }

    /// fsyncs what is not yet on disk: the active segment (sealed ones
    /// were fsynced when they were closed) and its directory.
    pub fn sync(&self) -> io::Result<()> {
        self.active.sync()
    }

    /// Closes the log and removes its directory, durably (a directory back
    /// after a power loss would give its records to a topic of that name).
    pub fn delete(mut self) -> io::Result<()> {
        let dir = self.dir.take();
        drop(self);
        match dir {
            Some(dir) => remove_dir(&dir),
            None => Ok(()),
        }
    }

    /// Headers of the batches in about the last `tail_bytes` of the active
    /// segment, oldest first: what a restart replays to rebuild state that
    /// only recent batches matter for.
    pub fn tail_headers(&self, tail_bytes: u64) -> io::Result<Vec<BatchHeader>> {
        self.active.tail_headers(tail_bytes)
    }

    /// Appends one batch (already validated; its base offset field is
    /// ignored) at the log end offset.
    pub fn append(&mut self, batch: &[u8], now_ms: i64) -> io::Result<AppendInfo> {
        let mut appended = self.append_many(&[batch], now_ms)?;
        appended
            .pop()
            .ok_or_else(|| io::Error::other("append wrote no batch"))
    }

    /// Appends batches in order, each at the next offset. Batches bound for
    /// the same segment go out in one write. If a write fails, the batches
    /// before it stay appended and the error is returned.
    pub fn append_many<B: AsRef<[u8]>>(
        &mut self,
        batches: &[B],
        now_ms: i64,
    ) -> io::Result<Vec<AppendInfo>> {
        let epoch = self.leader_epoch;
        self.append_with(batches, now_ms, |bytes, next_offset| {
            PendingBatch::new(bytes, next_offset, epoch)
        })
    }

    /// Appends batches copied from the leader, at the offsets and with the
    /// leader epochs the leader gave them. Offsets may skip (the leader's
    /// log may be compacted) but never go back.
    pub fn append_replicated<B: AsRef<[u8]>>(
        &mut self,
        batches: &[B],
        now_ms: i64,
    ) -> io::Result<Vec<AppendInfo>> {
        self.append_with(batches, now_ms, |bytes, next_offset| {
            let batch = PendingBatch::replicated(bytes)?;
            if batch.header().base_offset < next_offset {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "replicated batch at offset {} but the log ends at {next_offset}",
                        batch.header().base_offset
                    ),
                ));
            }
            Ok(batch)
        })
    }

    /// Appends batches in order, `make` stamping each with its offset given
    /// the log end so far, and notes new leader epochs in the epoch cache.
    fn append_with<'b, B: AsRef<[u8]>>(
        &mut self,
        batches: &'b [B],
        now_ms: i64,
        make: impl Fn(&'b [u8], i64) -> io::Result<PendingBatch<'b>>,
    ) -> io::Result<Vec<AppendInfo>> {
        let mut new_epochs = Vec::new();
        let written = self.write_batches(batches, now_ms, &make, &mut new_epochs);
        // Only epochs whose first batch made it into the log count.
        let end = self.log_end_offset();
        for (epoch, start) in new_epochs.into_iter().filter(|&(_, s)| s < end) {
            self.epochs.assign(epoch, start)?;
        }
        written
    }

    fn write_batches<'b, B: AsRef<[u8]>>(
        &mut self,
        batches: &'b [B],
        now_ms: i64,
        make: &impl Fn(&'b [u8], i64) -> io::Result<PendingBatch<'b>>,
        new_epochs: &mut Vec<(i32, i64)>,
    ) -> io::Result<Vec<AppendInfo>> {
        let mut appended = Vec::with_capacity(batches.len());
        let mut run: Vec<PendingBatch<'_>> = Vec::with_capacity(batches.len());
        let mut run_bytes = 0;
        let mut next_offset = self.log_end_offset();
        let mut latest_epoch = self.epochs.latest().map_or(-1, |e| e.epoch);
        for bytes in batches {
            let batch = make(bytes.as_ref(), next_offset)?;
            let epoch = batch.header().partition_leader_epoch;
            if epoch > latest_epoch {
                latest_epoch = epoch;
                new_epochs.push((epoch, batch.header().base_offset));
            }
            if self.must_roll(run_bytes, &batch, now_ms) {
                self.write_run(&run, &mut appended)?;
                run.clear();
                run_bytes = 0;
                self.roll(now_ms)?;
            }
            next_offset = batch.header().last_offset() + 1;
            run_bytes += batch.size();
            run.push(batch);
        }
        self.write_run(&run, &mut appended)?;
        Ok(appended)
    }

    /// Whether `batch` must go to a new segment, given `run_bytes` already
    /// bound for the active one. An empty segment always takes the batch.
    fn must_roll(&self, run_bytes: u64, batch: &PendingBatch<'_>, now_ms: i64) -> bool {
        let size = self.active.size() + run_bytes;
        if size == 0 {
            return false;
        }
        let max_size = self.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        // Index entries hold offsets relative to the segment base as u32.
        let offset_span = batch.header().last_offset() - self.active.base_offset();
        size + batch.size() > max_size || self.too_old(now_ms) || offset_span > i64::from(u32::MAX)
    }

    /// Whether the active segment is older than `segment.ms`.
    fn too_old(&self, now_ms: i64) -> bool {
        let max_age = i64::try_from(self.config.segment_ms).unwrap_or(i64::MAX);
        now_ms.saturating_sub(self.active.created_ms()) > max_age
    }

    fn write_run(
        &mut self,
        run: &[PendingBatch<'_>],
        appended: &mut Vec<AppendInfo>,
    ) -> io::Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        self.active.append(run)?;
        let file = self.active.file();
        appended.extend(run.iter().map(|batch| append_info(batch.header(), &file)));
        Ok(())
    }

    /// Seals rolled segments on `flusher`'s thread from now on: an append
    /// that rolls never waits for the old segment's fsync, as Kafka flushes
    /// a rolled segment in the background. The flusher runs the seal before
    /// any fsync asked after it, so nothing appended to the new segment is
    /// acknowledged as durable before the old one and the new name are.
    pub fn seal_in_background(&mut self, flusher: Flusher) {
        self.sealer = Some(flusher);
    }

    /// Starts a new segment at the log end offset and seals the old one.
    fn roll(&mut self, now_ms: i64) -> io::Result<()> {
        let (base, interval) = (self.log_end_offset(), self.config.index_interval_bytes);
        let next = match &self.dir {
            Some(dir) => Segment::create(dir, base, interval, now_ms)?,
            None => Segment::create_in_memory(base, interval, now_ms)?,
        };
        let sealed = std::mem::replace(&mut self.active, next);
        // The directory's fsync also makes the new segment's name durable.
        match &self.sealer {
            Some(flusher) => {
                if let Some(closed) = sealed.close()? {
                    let files = vec![closed.log, closed.offset_index, closed.time_index];
                    flusher.flush_in_background(files, closed.dir);
                }
            }
            None => sealed.seal()?,
        }
        self.sealed.insert(sealed.base_offset(), sealed);
        Ok(())
    }

    /// Whole batches starting with the one that contains `offset`, as long
    /// as they fit in `max_bytes` — but at least one batch, however large, if
    /// any exists from `offset` on. Empty at the log end offset. Reads on
    /// the calling thread; the partition actor hands its plans to the
    /// reader threads instead.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, ReadError> {
        Ok(self.read_plan(offset)?.execute(max_bytes)?)
    }

    /// What reading from `offset` needs, from memory alone: every segment
    /// that may hold batches from it on. The offset must lie within the log.
    pub fn read_plan(&self, offset: i64) -> Result<ReadPlan, ReadError> {
        let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
        if offset < log_start || offset > log_end {
            return Err(ReadError::OffsetOutOfRange { log_start, log_end });
        }
        let slices = self
            .segments_from(offset)
            .filter_map(|segment| segment.read_slice(offset))
            .collect();
        Ok(ReadPlan { slices })
    }

    /// The first record with a timestamp of at least `ts`, as `(offset,
    /// timestamp)`; `None` if there is none. Segments whose max timestamp is
    /// below `ts` are skipped without I/O.
    pub fn offset_for_timestamp(&self, ts: i64) -> io::Result<Option<(i64, i64)>> {
        for segment in self.segments() {
            if let Some(found) = segment.offset_for_timestamp(ts)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first one, if several
    /// share it), as `(offset, timestamp)`.
    pub fn max_timestamp(&self) -> io::Result<Option<(i64, i64)>> {
        match self.segments().filter_map(Segment::max_timestamp).max() {
            Some(max) => self.offset_for_timestamp(max),
            None => Ok(None),
        }
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed.values().chain(iter::once(&self.active))
    }

    /// The segment that would hold `offset` and all later ones.
    fn segments_from(&self, offset: i64) -> impl Iterator<Item = &Segment> {
        let first = if offset >= self.active.base_offset() {
            self.active.base_offset()
        } else {
            self.sealed
                .range(..=offset)
                .next_back()
                .map_or(i64::MIN, |(&base, _)| base)
        };
        self.sealed
            .range(first..)
            .map(|(_, segment)| segment)
            .chain(iter::once(&self.active))
    }
}

/// Removes a partition's directory and fsyncs its parent.
pub fn remove_dir(dir: &Path) -> io::Result<()> {
    fs::remove_dir_all(dir)?;
    durable::sync_dir(durable::parent(dir))
}

/// Deletes compacted files a crash left before they replaced their segment.
fn remove_unfinished_compactions(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(segment::CLEANED_SUFFIX) {
            log::warn!("{}: removing an unfinished compaction", path.display());
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn append_info(header: &BatchHeader, file: &Arc<File>) -> AppendInfo {
    AppendInfo {
        base_offset: header.base_offset,
        last_offset: header.last_offset(),
        max_timestamp: header.max_timestamp,
        file: Arc::clone(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::batch::testing::{batch, batch_sized};
    use crate::partition::batch::{self, HEADER_LEN};
    use std::os::unix::fs::FileExt;

    fn config(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            segment_ms: 60_000,
            index_interval_bytes: 256,
        }
    }

    /// Batch `i` of the tests: 4 records with timestamps 1000 + 10 * i +
    /// (0, 7, 3, 5) and 100-byte values.
    fn test_batch(i: i64) -> Vec<u8> {
        let t = 1000 + 10 * i;
        batch_sized(&[t, t + 7, t + 3, t + 5], 100)
    }

    fn batch_len() -> u64 {
        test_batch(0).len() as u64
    }

    /// A log of `batches` test batches (offsets 0..4 * batches), with room
    /// for `per_segment` batches per segment.
    fn filled(dir: &Path, batches: i64, per_segment: u64) -> Log {
        let mut log = Log::open(dir, config(per_segment * batch_len())).unwrap();
        for i in 0..batches {
            let info = log.append(&test_batch(i), 0).unwrap();
            assert_eq!(info.base_offset, 4 * i);
            assert_eq!(info.last_offset, 4 * i + 3);
        }
        log
    }

    /// The base offsets of the batches in a read result, checking each.
    fn bases(records: &Bytes) -> Vec<i64> {
        batch::split(records.clone())
            .unwrap()
            .iter()
            .map(|b| batch::validate(b).unwrap().base_offset)
            .collect()
    }

    fn log_file(dir: &Path, base: i64) -> PathBuf {
        dir.join(format!("{base:020}.log"))
    }

    #[test]
    fn retention_by_time_deletes_old_sealed_segments() {
        let dir = tempfile::tempdir().unwrap();
        // Two batches per segment: segments [0,8) [8,16) [16,24) and active [24,..).
        let mut log = filled(dir.path(), 7, 2);
        assert_eq!(log.segment_count(), 4);
        // Batch i's newest timestamp is 1007 + 10 * i: segment [0,8) ends at
        // 1017, [8,16) at 1037. Keep records newer than 1020.
        assert_eq!(log.enforce_retention(1020 + 100, 100, -1).unwrap(), 1);
        assert_eq!(log.log_start_offset(), 8);
        assert!(!log_file(dir.path(), 0).exists());
        assert!(matches!(
            log.read(0, 1 << 20),
            Err(ReadError::OffsetOutOfRange { log_start: 8, .. })
        ));
        assert_eq!(bases(&log.read(8, 1).unwrap()), vec![8]);
        // Everything expired: the active segment stays all the same.
        assert_eq!(log.enforce_retention(i64::MAX, 0, -1).unwrap(), 2);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), 24);
        assert_eq!(log.log_end_offset(), 28);
    }

    #[test]
    fn retention_by_size_keeps_at_least_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), 7, 2);
        let limit = 3 * batch_len() as i64;
        assert_eq!(log.enforce_retention(0, -1, limit).unwrap(), 2);
        assert!(log.size_bytes() >= limit as u64);
        assert_eq!(log.log_start_offset(), 16);
        let log = Log::open(dir.path(), config(2 * batch_len())).unwrap();
        assert_eq!(log.log_start_offset(), 16);
    }

    /// A one-record batch of `key` = `value` at timestamp 10.
    fn keyed(key: &str, value: Option<&str>) -> Vec<u8> {
        let bytes = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let record = batch::record(0, 10, Some(bytes(key)), value.map(bytes));
        batch::encode_records(&[record], kafka_protocol::records::Compression::None)
            .unwrap()
            .to_vec()
    }

    fn values(log: &Log) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        let snapshot = log.compaction_snapshot(Vec::new(), 0);
        let ranges = snapshot
            .sealed
            .iter()
            .map(|s| &s.range)
            .chain([&snapshot.active]);
        for range in ranges {
            compaction::for_each_batch(range, &mut |_| {}, |b| {
                let mut input = b.clone();
                let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut input).unwrap();
                for r in set.records {
                    let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                    out.push((r.offset, text(r.key).unwrap(), text(r.value)));
                }
                Ok(())
            })
            .unwrap();
        }
        out
    }

    /// Compaction of every sealed segment, however young.
    const NO_LAG: CleaningLimits = CleaningLimits {
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        min_cleanable_dirty_ratio: 0.0,
    };

    /// Updates of three keys, one deleted, for the compaction tests.
    const KEYED_WRITES: [(&str, Option<&str>); 7] = [
        ("a", Some("1")),
        ("b", Some("1")),
        ("a", Some("2")),
        ("c", Some("1")),
        ("b", None),
        ("a", Some("3")),
        ("c", Some("2")),
    ];

    #[test]
    fn compaction_keeps_the_latest_value_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let small = keyed("a", Some("0")).len() as u64;
        let mut log = Log::open(dir.path(), config(3 * small)).unwrap();
        for (key, value) in KEYED_WRITES {
            log.append(&keyed(key, value), 0).unwrap();
        }
        let policy = CompactionPolicy {
            delete_retention_ms: 1_000,
        };
        log.compact(500, &policy, &NO_LAG).unwrap();
        let expected = vec![
            (4, "b".to_string(), None),
            (5, "a".to_string(), Some("3".to_string())),
            (6, "c".to_string(), Some("2".to_string())),
        ];
        assert_eq!(values(&log), expected);
        assert_eq!(log.log_end_offset(), 7);
        // Reading from an offset that compaction removed skips ahead.
        assert_eq!(bases(&log.read(1, 1).unwrap()), vec![4]);
        drop(log);
        let mut log = Log::open(dir.path(), config(3 * small)).unwrap();
        assert_eq!(values(&log), expected);
        // Past delete.retention.ms the tombstone goes too.
        log.compact(5_000, &policy, &NO_LAG).unwrap();
        assert_eq!(values(&log)[0].0, 5);
        assert_eq!(
            log.append(&keyed("d", Some("1")), 0).unwrap().base_offset,
            7
        );
    }

    #[test]
    fn the_cleaner_checkpoint_survives_a_restart_and_truncation_lowers_it() {
        let dir = tempfile::tempdir().unwrap();
        let small = keyed("a", Some("0")).len() as u64;
        let mut log = Log::open(dir.path(), config(3 * small)).unwrap();
        for (key, value) in KEYED_WRITES {
            log.append(&keyed(key, value), 0).unwrap();
        }
        let policy = CompactionPolicy {
            delete_retention_ms: 1_000,
        };
        let dirty = |log: &Log| log.cleanable(i64::MAX, 500, &NO_LAG).unwrap();
        assert_eq!(dirty(&log).dirty_ratio(), 1.0);
        log.compact(500, &policy, &NO_LAG).unwrap();
        assert_eq!(log.cleaner_checkpoint(), 6);
        drop(log);
        let mut log = Log::open(dir.path(), config(3 * small)).unwrap();
        assert_eq!(log.cleaner_checkpoint(), 6, "kept across a restart");
        assert!(!dirty(&log).eligible(&NO_LAG));
        // Records written again below the checkpoint are dirty.
        let truncations = log.truncations();
        log.truncate_to(4).unwrap();
        assert_eq!(log.truncations(), truncations + 1);
        // Offset 3 went to compaction: the log now ends there.
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(log.cleaner_checkpoint(), 3);
        drop(log);
        let log = Log::open(dir.path(), config(3 * small)).unwrap();
        assert_eq!(log.cleaner_checkpoint(), 3);
    }

    #[test]
    fn an_idle_active_segment_rolls_once_past_segment_ms() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(1 << 20)).unwrap();
        let start = log.active.created_ms();
        assert!(
            !log.roll_if_aged(start + 120_000).unwrap(),
            "nothing to roll"
        );
        log.append(&test_batch(0), start).unwrap();
        assert!(!log.roll_if_aged(start + 60_000).unwrap());
        assert!(log.roll_if_aged(start + 60_001).unwrap());
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.active_file().metadata().unwrap().len(), 0);
        assert!(!log.roll_if_aged(start + 200_000).unwrap(), "empty again");
    }

    #[test]
    fn a_log_in_memory_rolls_reads_compacts_and_retains() {
        let small = keyed("a", Some("0")).len() as u64;
        let mut log = Log::in_memory(config(3 * small)).unwrap();
        assert_eq!(log.dir(), None);
        for (i, (key, value)) in KEYED_WRITES.into_iter().enumerate() {
            assert_eq!(
                log.append(&keyed(key, value), 0).unwrap().base_offset,
                i as i64
            );
        }
        assert_eq!(log.segment_count(), 3);
        assert_eq!(
            bases(&log.read(0, 1 << 20).unwrap()),
            (0..7).collect::<Vec<_>>()
        );
        assert_eq!(log.offset_for_timestamp(10).unwrap(), Some((0, 10)));
        let policy = CompactionPolicy {
            delete_retention_ms: 1_000,
        };
        assert_eq!(log.compact(500, &policy, &NO_LAG).unwrap(), 4);
        let expected = vec![
            (4, "b".to_string(), None),
            (5, "a".to_string(), Some("3".to_string())),
            (6, "c".to_string(), Some("2".to_string())),
        ];
        assert_eq!(values(&log), expected);
        assert_eq!(bases(&log.read(1, 1).unwrap()), vec![4]);
        log.delete_records(5).unwrap();
        assert_eq!(log.log_start_offset(), 5);
        assert_eq!(log.enforce_retention(i64::MAX, 0, -1).unwrap(), 1);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(
            log.append(&keyed("d", Some("1")), 0).unwrap().base_offset,
            7
        );
        log.delete().unwrap();
    }

    #[test]
    fn delete_records_moves_the_start_durably() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), 7, 2);
        log.delete_records(10).unwrap();
        assert_eq!(log.log_start_offset(), 10);
        assert!(!log_file(dir.path(), 0).exists());
        assert!(log_file(dir.path(), 8).exists());
        assert!(log.read(9, 1).is_err());
        // A fetch at the new start still gets the whole batch holding it.
        assert_eq!(bases(&log.read(10, 1).unwrap()), vec![8]);
        drop(log);
        let log = Log::open(dir.path(), config(2 * batch_len())).unwrap();
        assert_eq!(log.log_start_offset(), 10);
    }

    #[test]
    fn empty_dir_gets_one_empty_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topic-0");
        let log = Log::open(&path, config(1 << 20)).unwrap();
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.size_bytes(), 0);
        assert!(log_file(&path, 0).exists());
        assert!(log.read(0, 1000).unwrap().is_empty());
        assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
        assert_eq!(log.max_timestamp().unwrap(), None);
    }

    #[test]
    fn append_and_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(1 << 20)).unwrap();
        let sent = test_batch(0);
        let info = log.append(&sent, 5).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 3));
        assert_eq!(info.max_timestamp, 1007);
        assert!(Arc::ptr_eq(&info.file, &log.active_file()));
        let mut second = test_batch(1);
        batch::set_base_offset(&mut second, 999); // ignored
        assert_eq!(log.append(&second, 5).unwrap().base_offset, 4);

        let read = log.read(0, 1 << 20).unwrap();
        assert_eq!(read.len(), sent.len() * 2);
        assert_eq!(&read[..sent.len()], &sent[..]);
        assert_eq!(bases(&read), vec![0, 4]);
        assert_eq!(log.log_end_offset(), 8);
        assert_eq!(log.size_bytes(), 2 * batch_len());
        assert!(log.read(8, 1 << 20).unwrap().is_empty());
    }

    #[test]
    fn append_rejects_a_malformed_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(1 << 20)).unwrap();
        let bytes = test_batch(0);
        assert!(log.append(&bytes[..bytes.len() - 1], 0).is_err());
        assert!(log.append(&bytes[..20], 0).is_err());
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.size_bytes(), 0);
    }

    #[test]
    fn rolls_on_segment_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 7, 3);
        assert_eq!(log.segment_count(), 3);
        for base in [0, 12, 24] {
            assert!(log_file(dir.path(), base).exists());
        }
        assert_eq!(log.size_bytes(), 7 * batch_len());
        // A batch larger than segment_bytes still goes into an empty segment.
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(100)).unwrap();
        log.append(&test_batch(0), 0).unwrap();
        log.append(&test_batch(1), 0).unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(bases(&log.read(0, 1 << 20).unwrap()), vec![0, 4]);
    }

    #[test]
    fn rolls_on_segment_ms() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(1 << 20)).unwrap();
        let start = log.active.created_ms();
        log.append(&test_batch(0), start).unwrap();
        log.append(&test_batch(1), start + 60_000).unwrap();
        assert_eq!(log.segment_count(), 1);
        let info = log.append(&test_batch(2), start + 60_001).unwrap();
        assert_eq!(log.segment_count(), 2);
        assert!(Arc::ptr_eq(&info.file, &log.active_file()));
        log.append(&test_batch(3), start + 120_001).unwrap();
        assert_eq!(log.segment_count(), 2);
        log.append(&test_batch(4), start + 120_002).unwrap();
        assert_eq!(log.segment_count(), 3);
    }

    #[test]
    fn append_many_fills_then_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(3 * batch_len())).unwrap();
        log.append(&test_batch(0), 0).unwrap();
        let batches: Vec<Bytes> = (1..6).map(|i| Bytes::from(test_batch(i))).collect();
        let infos = log.append_many(&batches, 0).unwrap();
        let offsets: Vec<i64> = infos.iter().map(|i| i.base_offset).collect();
        assert_eq!(offsets, vec![4, 8, 12, 16, 20]);
        assert!(Arc::ptr_eq(&infos[0].file, &infos[1].file));
        assert!(!Arc::ptr_eq(&infos[1].file, &infos[2].file));
        assert!(Arc::ptr_eq(&infos[4].file, &log.active_file()));
        assert_eq!(log.segment_count(), 2);
        assert_eq!(
            bases(&log.read(0, 1 << 20).unwrap()),
            vec![0, 4, 8, 12, 16, 20]
        );
        assert!(log.append_many::<Bytes>(&[], 0).unwrap().is_empty());
    }

    #[test]
    fn reads_cross_segment_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 10, 3);
        assert_eq!(log.segment_count(), 4);
        let len = batch_len() as usize;
        let all = log.read(0, usize::MAX).unwrap();
        assert_eq!(bases(&all), (0..10).map(|i| 4 * i).collect::<Vec<_>>());
        let middle = log.read(8, 5 * len).unwrap();
        assert_eq!(bases(&middle), vec![8, 12, 16, 20, 24]);
        // One byte short of the fifth batch: stop before it.
        let middle = log.read(8, 5 * len - 1).unwrap();
        assert_eq!(bases(&middle), vec![8, 12, 16, 20]);
    }

    #[test]
    fn read_in_the_middle_of_a_batch_returns_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 6, 3);
        let len = batch_len() as usize;
        for offset in 0..24 {
            let read = log.read(offset, len).unwrap();
            assert_eq!(bases(&read), vec![offset / 4 * 4], "offset {offset}");
        }
    }

    #[test]
    fn small_max_bytes_still_returns_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 6, 3);
        assert_eq!(bases(&log.read(5, 0).unwrap()), vec![4]);
        assert_eq!(bases(&log.read(5, 10).unwrap()), vec![4]);
        // At a segment's last batch the next segment's first does not fit.
        let len = batch_len() as usize;
        assert_eq!(bases(&log.read(8, len + 1).unwrap()), vec![8]);
    }

    #[test]
    fn lookups_at_segment_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 9, 3);
        for (first, last) in [(0, 11), (12, 23), (24, 35)] {
            for offset in [first, first + 1, last - 1, last] {
                let read = log.read(offset, 1).unwrap();
                assert_eq!(bases(&read), vec![offset / 4 * 4], "offset {offset}");
            }
        }
    }

    #[test]
    fn lookups_with_a_dense_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(
            dir.path(),
            LogConfig {
                index_interval_bytes: 1,
                ..config(1 << 20)
            },
        )
        .unwrap();
        for i in 0..20 {
            log.append(&batch(&[i]), 0).unwrap();
        }
        for offset in 0..20 {
            assert_eq!(bases(&log.read(offset, 1).unwrap()), vec![offset]);
            assert_eq!(
                log.offset_for_timestamp(offset).unwrap(),
                Some((offset, offset))
            );
        }
    }

    #[test]
    fn offsets_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 2, 3);
        for offset in [-1, 9, i64::MAX] {
            match log.read(offset, 100) {
                Err(ReadError::OffsetOutOfRange { log_start, log_end }) => {
                    assert_eq!((log_start, log_end), (0, 8));
                }
                other => panic!("offset {offset}: {other:?}"),
            }
        }
        let message = log.read(9, 1).unwrap_err().to_string();
        assert!(message.contains("0 to 8"), "{message}");
    }

    #[test]
    fn offset_for_timestamp_is_exact_within_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log = filled(dir.path(), 9, 3);
        // Batch i holds offsets 4i..4i+3 with timestamps t, t+7, t+3, t+5
        // where t = 1000 + 10i.
        let find = |ts| log.offset_for_timestamp(ts).unwrap();
        assert_eq!(find(0), Some((0, 1000)));
        assert_eq!(find(1000), Some((0, 1000)));
        assert_eq!(find(1001), Some((1, 1007)));
        assert_eq!(find(1008), Some((4, 1010)));
        assert_eq!(find(1046), Some((17, 1047)));
        assert_eq!(find(1050), Some((20, 1050)));
        assert_eq!(find(1081), Some((33, 1087)));
        assert_eq!(find(1087), Some((33, 1087)));
        assert_eq!(find(1088), None);
    }

    #[test]
    fn max_timestamp_finds_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = filled(dir.path(), 5, 2);
        assert_eq!(log.max_timestamp().unwrap(), Some((17, 1047)));
        // A later batch with an older timestamp does not change it; a later
        // one with the same maximum does not either (the first one wins).
        log.append(&batch(&[5, 6]), 0).unwrap();
        log.append(&batch(&[1047, 3]), 0).unwrap();
        assert_eq!(log.max_timestamp().unwrap(), Some((17, 1047)));
        log.append(&batch(&[9, 2000, 1]), 0).unwrap();
        assert_eq!(log.max_timestamp().unwrap(), Some((25, 2000)));
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let before = filled(dir.path(), 8, 3);
        let all = before.read(0, usize::MAX).unwrap();
        let size = before.size_bytes();
        drop(before);

        let mut log = Log::open(dir.path(), config(3 * batch_len())).unwrap();
        assert_eq!(log.segment_count(), 3);
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(log.log_end_offset(), 32);
        assert_eq!(log.size_bytes(), size);
        assert_eq!(log.read(0, usize::MAX).unwrap(), all);
        assert_eq!(log.offset_for_timestamp(1046).unwrap(), Some((17, 1047)));
        assert_eq!(log.max_timestamp().unwrap(), Some((29, 1077)));
        assert_eq!(log.append(&test_batch(8), 0).unwrap().base_offset, 32);
        assert_eq!(log.segment_count(), 3);
    }

    fn assert_recovered(dir: &Path, batches_left: i64) {
        let mut log = Log::open(dir, config(3 * batch_len())).unwrap();
        let end = 4 * batches_left;
        assert_eq!(log.log_end_offset(), end);
        let read = log.read(0, usize::MAX).unwrap();
        assert_eq!(
            bases(&read),
            (0..batches_left).map(|i| 4 * i).collect::<Vec<_>>()
        );
        let info = log.append(&test_batch(9), 0).unwrap();
        assert_eq!(info.base_offset, end);
        assert_eq!(bases(&log.read(end, 1).unwrap()), vec![end]);
        drop(log);
        let log = Log::open(dir, config(3 * batch_len())).unwrap();
        assert_eq!(log.log_end_offset(), end + 4);
    }

    #[test]
    fn recovers_from_a_truncated_tail() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 8, 3));
        let active = log_file(dir.path(), 24);
        let file = fs::OpenOptions::new().write(true).open(&active).unwrap();
        file.set_len(batch_len() + 10).unwrap();
        assert_recovered(dir.path(), 7);
    }

    #[test]
    fn recovers_from_a_torn_header() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 8, 3));
        let active = log_file(dir.path(), 24);
        let file = fs::OpenOptions::new().write(true).open(&active).unwrap();
        file.set_len(batch_len() + HEADER_LEN as u64 - 1).unwrap();
        assert_recovered(dir.path(), 7);
    }

    #[test]
    fn recovers_from_a_bit_flip_in_the_last_batch() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 8, 3));
        let active = log_file(dir.path(), 24);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&active)
            .unwrap();
        let at = 2 * batch_len() - 30;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
        assert_recovered(dir.path(), 7);
    }

    #[test]
    fn missing_or_corrupt_indexes_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let before = filled(dir.path(), 8, 3);
        let all = before.read(0, usize::MAX).unwrap();
        drop(before);
        let index = dir.path().join(format!("{:020}.index", 0));
        let time_index = dir.path().join(format!("{:020}.timeindex", 12));
        let saved = fs::read(&index).unwrap();
        fs::remove_file(&index).unwrap();
        fs::write(&time_index, [1, 2, 3]).unwrap();

        let log = Log::open(dir.path(), config(3 * batch_len())).unwrap();
        assert_eq!(fs::read(&index).unwrap(), saved);
        assert_eq!(fs::metadata(&time_index).unwrap().len() % 12, 0);
        assert_eq!(log.read(0, usize::MAX).unwrap(), all);
        for offset in 0..32 {
            assert_eq!(bases(&log.read(offset, 1).unwrap()), vec![offset / 4 * 4]);
        }
        assert_eq!(log.offset_for_timestamp(1046).unwrap(), Some((17, 1047)));
    }

    #[test]
    fn index_pointing_past_the_log_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 8, 3));
        let index = dir.path().join(format!("{:020}.index", 0));
        let mut bytes = fs::read(&index).unwrap();
        let last = bytes.len() - 4;
        bytes[last..].copy_from_slice(&u32::MAX.to_be_bytes());
        fs::write(&index, &bytes).unwrap();
        let log = Log::open(dir.path(), config(3 * batch_len())).unwrap();
        assert_eq!(log.log_end_offset(), 32);
        assert_eq!(
            fs::read(&index).unwrap()[last..],
            (2 * batch_len() as u32).to_be_bytes()
        );
    }

    #[test]
    fn corrupt_sealed_segment_drops_the_segments_after_it() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 8, 3));
        fs::remove_file(dir.path().join(format!("{:020}.index", 12))).unwrap();
        let sealed = log_file(dir.path(), 12);
        let file = fs::OpenOptions::new().write(true).open(&sealed).unwrap();
        file.write_all_at(&[0xff; 4], batch_len() + 40).unwrap();

        let log = Log::open(dir.path(), config(3 * batch_len())).unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.log_end_offset(), 16);
        assert!(!log_file(dir.path(), 24).exists());
        drop(log);
        assert_recovered(dir.path(), 4);
    }

    #[test]
    fn delete_removes_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let mut log = Log::open(&path, config(1 << 20)).unwrap();
        log.append(&test_batch(0), 0).unwrap();
        assert_eq!(log.dir(), Some(path.as_path()));
        log.delete().unwrap();
        assert!(!path.exists());
    }
    #[test]
    fn truncation_cuts_across_segments_and_forgets_later_epochs() {
        let dir = tempfile::tempdir().unwrap();
        // 10 batches of 4 records, 3 batches per segment: bases 0, 12, 24, 36.
        let mut log = filled(dir.path(), 6, 3);
        log.set_leader_epoch(2);
        for i in 6..10 {
            log.append(&test_batch(i), 0).unwrap();
        }
        assert_eq!(log.epochs().end_offset_for(0, 40), (0, 24));
        // Offset 17 lies inside the batch at 16: that batch goes too.
        log.truncate_to(17).unwrap();
        assert_eq!(log.log_end_offset(), 16);
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.epochs().latest().map(|e| e.epoch), Some(0));
        assert!(!log_file(dir.path(), 24).exists());
        assert_eq!(bases(&log.read(12, 1 << 20).unwrap()), vec![12]);
        // Appends go on from the new end, and survive a reopen.
        log.set_leader_epoch(5);
        assert_eq!(log.append(&test_batch(0), 0).unwrap().base_offset, 16);
        drop(log);
        let log = Log::open(dir.path(), config(3 * batch_len())).unwrap();
        assert_eq!(log.log_end_offset(), 20);
        assert_eq!(log.epochs().end_offset_for(0, 20), (0, 16));
        assert_eq!(log.epochs().end_offset_for(5, 20), (5, 20));
    }

    #[test]
    fn replicated_batches_keep_their_offsets_and_epochs() {
        let leader_dir = tempfile::tempdir().unwrap();
        let mut leader = Log::open(leader_dir.path(), config(1 << 20)).unwrap();
        leader.set_leader_epoch(3);
        for i in 0..3 {
            leader.append(&test_batch(i), 0).unwrap();
        }
        let records = leader.read(4, 1 << 20).unwrap();
        let follower_dir = tempfile::tempdir().unwrap();
        let mut follower = Log::open(follower_dir.path(), config(1 << 20)).unwrap();
        // A follower starting past the leader's log start skips to it.
        follower.truncate_fully_and_start_at(4).unwrap();
        let copied = follower
            .append_replicated(&batch::split(records).unwrap(), 0)
            .unwrap();
        assert_eq!(
            copied.iter().map(|i| i.base_offset).collect::<Vec<_>>(),
            [4, 8]
        );
        assert_eq!(follower.log_start_offset(), 4);
        assert_eq!(
            follower
                .epochs()
                .latest()
                .map(|e| (e.epoch, e.start_offset)),
            Some((3, 4))
        );
        // A batch behind the follower's end is refused.
        let again = batch::split(leader.read(4, 1 << 20).unwrap()).unwrap();
        assert!(follower.append_replicated(&again, 0).is_err());
        assert_eq!(follower.log_end_offset(), 12);
    }
}
