//! The Partition actor: the single owner of one partition's [`log::Log`].
//!
//! Producers' connections send it [`Append`] with validated batches; a disk
//! thread writes them at the offsets the log assigns while the actor waits
//! for its log to come back ([`disk`]), and for durable appends it then
//! waits (without blocking its mailbox) for the flusher thread's fsync
//! before answering. A consumer's
//! fetch sends [`Locate`] (the file ranges of the batches to send, see
//! [`file_records`]); a follower's, and the embedded consumer, [`Read`]. After
//! every append it publishes the new [`LogOffsets`] on a watch channel so
//! long-polling fetches wake up without asking.

pub mod batch;
pub mod cleanable;
pub mod cleaner;
pub mod compaction;
pub mod disk;
pub mod epoch_cache;
pub mod file_records;
mod handle;
pub mod index;
pub mod local_log;
pub mod producers;
mod read_plan;
pub mod reader;
pub mod replicas;
pub mod replication;
// memfd_create through libc, each call with its SAFETY comment.
#[allow(unsafe_code)]
pub mod segment;
pub mod transactions;

use crate::clock::now_ms;
use crate::flusher::Flusher;
use actix::fut::{self, ActorFutureExt, WrapFuture};
use actix::{
    Actor, AsyncContext, Context, Handler, Message, MessageResult, ResponseActFuture,
    ResponseFuture,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

pub use self::handle::{LogOffsets, PartitionHandle, LEADER_EPOCH};

use self::batch::BatchHeader;
use self::cleanable::{Cleanable, CleaningLimits};
use self::cleaner::{Cleaner, CompactionDone};
use self::compaction::CompactionPolicy;
use self::disk::{answered, DiskThreads, Lent};
use self::file_records::FileRecords;
use self::local_log::{AppendInfo, Log, LogConfig, ReadError};
use self::producers::{ActiveProducer, Producers, Verdict};
use self::reader::Readers;
use self::replication::{ReplicaRead, Role};
use self::transactions::{Aborted, Transactions};

/// Mailbox size: deep enough for a few pipelined requests from many
/// connections; senders wait (backpressure) beyond it.
const MAILBOX_CAPACITY: usize = 1024;

/// ListOffsets special timestamps (KIP-734, KIP-405).
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

/// How much of the active segment a restart replays to rebuild the
/// idempotent-producer state: retries come within seconds, so the last
/// batches suffice.
const PRODUCER_REPLAY_BYTES: u64 = 16 * 1024 * 1024;

/// Rebuilds the idempotent producers' state and the open transactions
/// from the headers of the log's tail.
fn replay(
    name: &str,
    producers: &mut Producers,
    transactions: &mut Transactions,
    tail: io::Result<Vec<BatchHeader>>,
) {
    match tail {
        Ok(headers) => headers.iter().for_each(|h| {
            producers.record(h, h.base_offset);
            transactions.on_batch(h, h.base_offset);
        }),
        Err(e) => log::warn!("{name}: cannot replay producer state: {e}"),
    }
}

pub struct Partition {
    /// `topic-index`, for log lines.
    name: String,
    /// The segments, indexes and offsets: the partition's data, which only
    /// this actor touches (or a disk thread it lends them to).
    log: Lent<Log>,
    /// Retention and compaction settings, replaced by [`SetConfigs`].
    cleanup: Cleanup,
    /// How often retention and compaction are checked.
    schedule: CleanupSchedule,
    /// Idempotent producers' last sequences, to refuse duplicates and gaps.
    producers: Producers,
    /// Open transactions and the aborted ones `read_committed` skips; lent
    /// with the log, since markers write its index.
    transactions: Lent<Transactions>,
    /// Where durable appends go to be fsynced (group commit).
    flusher: Flusher,
    /// The thread that compacts, off this actor's arbiter.
    cleaner: Cleaner,
    /// The threads that carry out this partition's reads.
    readers: Readers,
    /// The threads that carry out its other disk work.
    disk: DiskThreads,
    /// A compaction job of this partition is on the cleaner thread.
    compacting: Option<CompactionJob>,
    /// A [`Clean`] is on its way to this actor.
    clean_queued: bool,
    /// When tombstones kept by the last compaction may go: compaction runs
    /// again then even without new records, or they would stay forever.
    tombstones_expire_ms: Option<i64>,
    /// Published after every change, so long-polling fetches and followers
    /// wait on it instead of asking the actor.
    offsets: watch::Sender<LogOffsets>,
    /// Standalone, or this broker's place among the partition's replicas.
    role: Role,
}

/// The threads every partition hands its disk work to.
#[derive(Clone)]
pub struct LogThreads {
    pub flusher: Flusher,
    pub cleaner: Cleaner,
    pub readers: Readers,
    pub disk: DiskThreads,
}

impl Partition {
    /// Wraps an opened log. The receiver follows the log's offsets.
    pub fn new(
        name: String,
        mut log: Log,
        cleanup: Cleanup,
        schedule: CleanupSchedule,
        threads: LogThreads,
    ) -> io::Result<(Self, watch::Receiver<LogOffsets>)> {
        let LogThreads {
            flusher,
            cleaner,
            readers,
            disk,
        } = threads;
        log.seal_in_background(flusher.clone());
        let mut producers = Producers::default();
        let mut transactions = match log.dir() {
            Some(dir) => Transactions::load(dir)?,
            None => Transactions::in_memory(),
        };
        let tail = log.tail_headers(PRODUCER_REPLAY_BYTES);
        replay(&name, &mut producers, &mut transactions, tail);
        let end = log.log_end_offset();
        let (offsets, rx) = watch::channel(LogOffsets {
            log_start: log.log_start_offset(),
            high_watermark: end,
            last_stable: transactions.last_stable_offset(end),
            log_end: end,
            leading: true,
        });
        let partition = Partition {
            name,
            log: Lent::new(log),
            cleanup,
            schedule,
            producers,
            transactions: Lent::new(transactions),
            flusher,
            cleaner,
            readers,
            disk,
            compacting: None,
            clean_queued: false,
            tombstones_expire_ms: None,
            offsets,
            role: Role::Standalone,
        };
        Ok((partition, rx))
    }

    fn publish(&self) {
        self.offsets.send_replace(self.current_offsets());
    }

    /// KAFKA_STORAGE_ERROR once the log directory is offline: what is on
    /// disk may differ from what this actor believes, until a restart
    /// recovers the log from the disk.
    fn check_online(&self) -> Result<(), ResponseError> {
        if self.flusher.log_dir().is_offline() {
            Err(ResponseError::KafkaStorageError)
        } else {
            Ok(())
        }
    }

    /// Logs a failed operation on the log; a failed fsync takes the log
    /// directory offline. The answer is KAFKA_STORAGE_ERROR.
    fn storage_error(&self, what: &str, e: &io::Error) -> ResponseError {
        log::error!("{}: {what}: {e}", self.name);
        self.flusher.log_dir().on_error(e);
        ResponseError::KafkaStorageError
    }

    /// The offsets readers see: consumers read up to the high watermark.
    fn current_offsets(&self) -> LogOffsets {
        let high_watermark = self.high_watermark();
        LogOffsets {
            log_start: self.log.log_start_offset(),
            high_watermark,
            last_stable: self.transactions.last_stable_offset(high_watermark),
            log_end: self.log.log_end_offset(),
            leading: !matches!(self.role, Role::Follower { .. }),
        }
    }

    /// Applies the topic's cleanup policy once the operation in hand is
    /// done (see [`Clean`]); asked again before that, it still runs once.
    fn clean(&mut self, ctx: &mut Context<Self>) {
        if !self.clean_queued {
            self.clean_queued = true;
            ctx.notify(Clean);
        }
    }

    /// Measures on a disk thread how dirty the log is and deletes the
    /// closed segments that retention no longer keeps; back here, sends
    /// the cleaner thread a compaction job if the log is eligible. A read
    /// in flight on a reader thread holds open the files it planned (a
    /// deleted or replaced segment keeps its inode), so it reads them as
    /// they were.
    fn clean_now(&mut self, ctx: &mut Context<Self>) {
        let compact = self.cleanup.compact && self.compacting.is_none();
        let delete = self.cleanup.delete;
        if !compact && !delete {
            self.publish();
            return;
        }
        let (retention_ms, retention_bytes) =
            (self.cleanup.retention_ms, self.cleanup.retention_bytes);
        let limits = self.cleanup.limits();
        let now = now_ms();
        self.on_disk(
            ctx,
            move |log, transactions| {
                let cleanable = compact.then(|| {
                    let first_unstable = transactions.last_stable_offset(log.log_end_offset());
                    log.cleanable(first_unstable, now, &limits)
                });
                let deleted =
                    delete.then(|| log.enforce_retention(now, retention_ms, retention_bytes));
                (cleanable, deleted)
            },
            move |act, (cleanable, deleted), ctx| {
                if let Some(cleanable) = cleanable {
                    act.compact_if_due(cleanable, now, ctx);
                }
                if let Some(deleted) = deleted {
                    act.retention_done(deleted);
                }
                act.publish();
            },
        );
    }

    /// The cleaner's periodic look at a compacted log (every
    /// `log_cleaner_backoff_ms`): an active segment past `segment.ms` rolls
    /// even without an append, then the log is cleaned if eligible.
    fn cleaner_check(&mut self, ctx: &mut Context<Self>) {
        // An offline log directory would fail the roll on every look.
        if !self.cleanup.compact || self.check_online().is_err() {
            return;
        }
        let now = now_ms();
        self.on_disk(
            ctx,
            move |log, _| log.roll_if_aged(now),
            |act, rolled, ctx| match rolled {
                Ok(_) => act.clean(ctx),
                Err(e) => {
                    act.storage_error("rolling an aged segment failed", &e);
                }
            },
        );
    }

    /// Sends a compaction job to the cleaner thread (one at a time) when
    /// the log's dirty ratio reaches `min.cleanable.dirty.ratio`, a dirty
    /// record is older than `max.compaction.lag.ms`, or tombstones kept by
    /// the last cleaning are due to go.
    fn compact_if_due(
        &mut self,
        cleanable: io::Result<Cleanable>,
        now: i64,
        ctx: &mut Context<Self>,
    ) {
        let cleanable = match cleanable {
            Ok(cleanable) => cleanable,
            Err(e) => {
                self.storage_error("measuring the dirty log failed", &e);
                return;
            }
        };
        let tombstones_due = self.tombstones_expire_ms.is_some_and(|t| t <= now);
        if !cleanable.eligible(&self.cleanup.limits()) && !tombstones_due {
            return;
        }
        self.tombstones_expire_ms = None;
        let policy = CompactionPolicy {
            delete_retention_ms: self.cleanup.delete_retention_ms,
        };
        self.compacting = Some(CompactionJob {
            clean_below: cleanable.clean_below,
            truncations: self.log.truncations(),
        });
        let snapshot = self
            .log
            .compaction_snapshot(self.transactions.aborted().to_vec(), cleanable.clean_below);
        self.cleaner.compact(
            cleanable.dirty_ratio(),
            snapshot,
            now,
            policy,
            ctx.address().recipient(),
        );
    }

    /// Logs what retention deleted.
    fn retention_done(&mut self, deleted: io::Result<usize>) {
        match deleted {
            Ok(0) => {}
            Ok(deleted) => log::info!(
                "{}: retention deleted {deleted} segments; log starts at {}",
                self.name,
                self.log.log_start_offset()
            ),
            Err(e) => {
                self.storage_error("retention failed", &e);
            }
        }
    }
}

/// Applies the topic's cleanup policy: posted to the partition itself, so
/// that it runs after the operation that asked for it, with the log home
/// (a handler never lends the log twice).
#[derive(Message)]
#[rtype(result = "()")]
struct Clean;

impl Handler<Clean> for Partition {
    type Result = ();

    fn handle(&mut self, _: Clean, ctx: &mut Self::Context) {
        self.clean_queued = false;
        self.clean_now(ctx);
    }
}

/// The cleaner's periodic look (see [`Partition::cleaner_check`]).
#[derive(Message)]
#[rtype(result = "()")]
struct CleanerCheck;

impl Handler<CleanerCheck> for Partition {
    type Result = ();

    fn handle(&mut self, _: CleanerCheck, ctx: &mut Self::Context) {
        self.cleaner_check(ctx);
    }
}

impl Actor for Partition {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        // As messages to itself: a late timer calls its function once per
        // missed tick in a row, and a handler must lend the log only once.
        ctx.run_interval(self.schedule.retention_check, |act, ctx| act.clean(ctx));
        ctx.run_interval(self.schedule.cleaner_backoff, |_, ctx| {
            ctx.notify(CleanerCheck)
        });
    }
}

/// Appends already-validated batches (offsets are assigned here).
#[derive(Message)]
#[rtype(result = "Result<Appended, ResponseError>")]
pub struct Append {
    pub batches: Vec<Bytes>,
    /// Answer only once the batches are fsynced (acks=all).
    pub durable: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub log_start_offset: i64,
}

impl Handler<Append> for Partition {
    type Result = ResponseFuture<Result<Appended, ResponseError>>;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.check_online().and_then(|()| self.check_leader(-1)) {
            return Box::pin(async move { Err(e) });
        }
        if msg.durable {
            if let Err(e) = self.check_enough_replicas() {
                return Box::pin(async move { Err(e) });
            }
        }
        // Retried batches of idempotent producers are answered, not rewritten.
        let mut duplicate_offset = None;
        let mut fresh = Vec::with_capacity(msg.batches.len());
        for bytes in msg.batches {
            let header = match batch::parse_header(&bytes) {
                Ok(header) => header,
                Err(_) => return Box::pin(async { Err(ResponseError::CorruptMessage) }),
            };
            match self.producers.check(&header) {
                Verdict::Write => fresh.push((header, bytes)),
                Verdict::Duplicate { base_offset } => {
                    duplicate_offset.get_or_insert(base_offset);
                }
                Verdict::Reject(error) => return Box::pin(async move { Err(error) }),
            }
        }
        let durable = msg.durable;
        if fresh.is_empty() {
            let written = Written {
                infos: Ok(Vec::new()),
                rolled: false,
                synced: None,
            };
            return self.appended(fresh, duplicate_offset, written, durable, ctx);
        }
        let batches: Vec<Bytes> = fresh.iter().map(|(_, b)| b.clone()).collect();
        let now = now_ms();
        let flusher = durable.then(|| self.flusher.clone());
        let duplicate = duplicate_offset.is_some();
        let reply = self.on_disk(
            ctx,
            move |log, _| {
                let segments = log.segment_count();
                let infos = log.append_many(&batches, now);
                // acks=all: the fsync is asked for here, right after the
                // write, not a hop later from the actor.
                let synced = match (&infos, flusher) {
                    (Ok(infos), Some(flusher)) => {
                        let active = duplicate.then(|| log.active_file());
                        Some(flusher.flush(files_to_sync(infos, active)))
                    }
                    _ => None,
                };
                Written {
                    infos,
                    rolled: log.segment_count() > segments,
                    synced,
                }
            },
            move |act, written, ctx| act.appended(fresh, duplicate_offset, written, durable, ctx),
        );
        Box::pin(async move {
            match reply.await {
                Ok(reply) => reply.await,
                // The write died with its disk thread.
                Err(_) => Err(ResponseError::KafkaStorageError),
            }
        })
    }
}

/// What a disk thread did with an append.
struct Written {
    infos: io::Result<Vec<AppendInfo>>,
    /// A segment was closed.
    rolled: bool,
    /// For a durable append, the fsync the disk thread asked for.
    synced: Option<oneshot::Receiver<io::Result<()>>>,
}

/// The files a durable append must have fsynced: those written, and the
/// active one (`active`) when a retry was answered without a write, since
/// it may overtake its original's fsync.
fn files_to_sync(infos: &[AppendInfo], active: Option<Arc<File>>) -> Vec<Arc<File>> {
    let mut files: Vec<Arc<File>> = active.into_iter().collect();
    for info in infos {
        if !files.iter().any(|f| Arc::ptr_eq(f, &info.file)) {
            files.push(info.file.clone());
        }
    }
    files
}

impl Partition {
    /// After the disk thread wrote `fresh` (or failed to): the producers'
    /// and transactions' state, the new offsets published, and the answer,
    /// which for a durable append waits for the fsync and the replicas.
    fn appended(
        &mut self,
        fresh: Vec<(BatchHeader, Bytes)>,
        duplicate_offset: Option<i64>,
        written: Written,
        durable: bool,
        ctx: &mut Context<Self>,
    ) -> BoxFuture<'static, Result<Appended, ResponseError>> {
        let infos = match written.infos {
            Ok(infos) => infos,
            Err(e) => {
                let error = self.storage_error("append failed", &e);
                self.publish();
                return Box::pin(async move { Err(error) });
            }
        };
        let base_offset = duplicate_offset.or(infos.first().map(|info| info.base_offset));
        for ((header, _), info) in fresh.iter().zip(&infos) {
            self.producers.record(header, info.base_offset);
            self.transactions.on_batch(header, info.base_offset);
        }
        self.leader_appended();
        self.publish();
        if written.rolled {
            // A segment was closed: it may take the partition past its
            // retention limits or compaction's dirty ratio, which apply now,
            // as Kafka's do, not at the next periodic check.
            self.clean(ctx);
        }
        let appended = Appended {
            base_offset: base_offset.unwrap_or_else(|| self.log.log_end_offset()),
            log_start_offset: self.log.log_start_offset(),
        };
        if !durable {
            return Box::pin(async move { Ok(appended) });
        }
        // acks=all: fsynced here, and on every ISR member (the high
        // watermark passes the batches only once followers fetched past
        // them, which they do once they fsynced them).
        let replicated = self.wait_for_high_watermark(self.log.log_end_offset());
        let synced = written.synced.unwrap_or_else(|| {
            let active = duplicate_offset.map(|_| self.log.active_file());
            self.flusher.flush(files_to_sync(&infos, active))
        });
        let name = self.name.clone();
        Box::pin(async move {
            match synced.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    log::error!("{name}: fsync failed: {e}");
                    return Err(ResponseError::KafkaStorageError);
                }
                Err(_) => return Err(ResponseError::KafkaStorageError),
            }
            match replicated {
                None => Ok(appended),
                Some(rx) => match rx.await {
                    Ok(Ok(())) => Ok(appended),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(ResponseError::NotLeaderOrFollower),
                },
            }
        })
    }
}

/// Reads whole batches from `offset`, up to about `max_bytes`; with
/// `committed` (read_committed isolation) only below the last stable offset.
#[derive(Message)]
#[rtype(result = "Result<Records, ReadFailure>")]
pub struct Read {
    pub offset: i64,
    pub max_bytes: usize,
    pub committed: bool,
    /// The leader epoch the client knows (Fetch v9+), -1 for none.
    pub current_leader_epoch: i32,
    /// Set when a follower replica fetches: it reads up to the log end.
    pub replica: Option<ReplicaRead>,
}

pub struct Records {
    pub records: Bytes,
    pub offsets: LogOffsets,
    /// For read_committed: aborted transactions among the records.
    pub aborted: Vec<Aborted>,
    /// For a follower whose log parts from the leader's before its fetch
    /// offset: the leader's `(epoch, end offset)` to truncate to.
    pub diverging: Option<(i32, i64)>,
}

pub struct ReadFailure {
    pub error: ResponseError,
    pub offsets: LogOffsets,
}

/// Locates whole batches from `offset`, up to about `max_bytes`, below the
/// high watermark, or with `committed` (read_committed isolation) below the
/// last stable offset, without reading them: a consumer's fetch.
#[derive(Message)]
#[rtype(result = "Result<Located, ReadFailure>")]
pub struct Locate {
    pub offset: i64,
    pub max_bytes: usize,
    pub committed: bool,
    /// The leader epoch the client knows (Fetch v9+), -1 for none.
    pub current_leader_epoch: i32,
}

pub struct Located {
    pub records: FileRecords,
    pub offsets: LogOffsets,
    /// For read_committed: aborted transactions among the records.
    pub aborted: Vec<Aborted>,
}

impl Handler<Locate> for Partition {
    type Result = ResponseActFuture<Self, Result<Located, ReadFailure>>;

    /// Checks and plans the read here; the batch headers are read on a
    /// reader thread, which cuts the answer to what consumers may see.
    fn handle(&mut self, msg: Locate, _: &mut Self::Context) -> Self::Result {
        let offsets = self.current_offsets();
        if let Err(error) = self
            .check_online()
            .and_then(|()| self.check_leader(msg.current_leader_epoch))
        {
            return Box::pin(fut::ready(Err(ReadFailure { error, offsets })));
        }
        let plan = match self.log.read_plan(msg.offset) {
            Ok(plan) => plan,
            Err(e) => return Box::pin(fut::ready(Err(self.read_failed(e, msg.offset)))),
        };
        let below = if msg.committed {
            offsets.last_stable
        } else {
            offsets.high_watermark
        };
        let readers = self.readers.clone();
        let max_bytes = msg.max_bytes;
        let located = async move { readers.locate(plan, max_bytes, below).await };
        let (offset, committed) = (msg.offset, msg.committed);
        Box::pin(located.into_actor(self).map(move |located, act, _| {
            let records = located.map_err(|e| act.read_failed(ReadError::Io(e), offset))?;
            let aborted = match (committed, records.last_offset()) {
                (true, Some(last)) => act.transactions.aborted_between(offset, last),
                _ => Vec::new(),
            };
            Ok(Located {
                records,
                offsets,
                aborted,
            })
        }))
    }
}

impl Handler<Read> for Partition {
    type Result = ResponseActFuture<Self, Result<Records, ReadFailure>>;

    /// A follower's read, or a consumer's: its batches located, then read
    /// into memory on a reader thread.
    fn handle(&mut self, msg: Read, ctx: &mut Self::Context) -> Self::Result {
        if let Some(replica) = msg.replica {
            return self.read_for_replica(replica, &msg, ctx);
        }
        let locate = Locate {
            offset: msg.offset,
            max_bytes: msg.max_bytes,
            committed: msg.committed,
            current_leader_epoch: msg.current_leader_epoch,
        };
        let located = Handler::<Locate>::handle(self, locate, ctx);
        let readers = self.readers.clone();
        Box::pin(located.then(move |located, act, _| {
            let offset = msg.offset;
            async move {
                let located = located?;
                let records = readers.load(vec![located.records]).await;
                Ok((records, located.offsets, located.aborted))
            }
            .into_actor(act)
            .map(move |read, act, _| {
                let (records, offsets, aborted) = read?;
                let records = records
                    .map_err(|e| act.read_failed(ReadError::Io(e), offset))?
                    .pop()
                    .unwrap_or_default();
                Ok(Records {
                    records,
                    offsets,
                    aborted,
                    diverging: None,
                })
            })
        }))
    }
}

impl Partition {
    /// A follower's fetch: its progress moves the high watermark, and it
    /// reads up to the log end (what it has not got yet), unless its log
    /// diverged from ours.
    fn read_for_replica(
        &mut self,
        replica: ReplicaRead,
        msg: &Read,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<Records, ReadFailure>> {
        let fail = |p: &Partition, error| ReadFailure {
            error,
            offsets: p.current_offsets(),
        };
        let checked = self
            .check_online()
            .and_then(|()| self.check_leader(msg.current_leader_epoch))
            .and_then(|()| self.on_replica_read(replica, msg.offset, ctx));
        let diverging = match checked {
            Ok(diverging) => diverging,
            Err(error) => return Box::pin(fut::ready(Err(fail(self, error)))),
        };
        let offsets = self.current_offsets();
        if diverging.is_some() {
            return Box::pin(fut::ready(Ok(Records {
                records: Bytes::new(),
                offsets,
                aborted: Vec::new(),
                diverging,
            })));
        }
        let plan = match self.log.read_plan(msg.offset) {
            Ok(plan) => plan,
            Err(e) => return Box::pin(fut::ready(Err(self.read_failed(e, msg.offset)))),
        };
        let readers = self.readers.clone();
        let (offset, max_bytes) = (msg.offset, msg.max_bytes);
        let read = async move { readers.read(plan, max_bytes).await };
        Box::pin(read.into_actor(self).map(move |read, act, _| {
            let records = read.map_err(|e| act.read_failed(ReadError::Io(e), offset))?;
            Ok(Records {
                records,
                offsets,
                aborted: Vec::new(),
                diverging: None,
            })
        }))
    }

    /// The answer to a read that failed: out of range, or a storage error
    /// (logged).
    fn read_failed(&self, error: ReadError, offset: i64) -> ReadFailure {
        let error = match error {
            ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            e => {
                log::error!("{}: read at {offset} failed: {e}", self.name);
                ResponseError::KafkaStorageError
            }
        };
        ReadFailure {
            error,
            offsets: self.current_offsets(),
        }
    }
}

/// ListOffsets for one partition: `(offset, timestamp)`, -1 for unknown.
/// With `committed`, "latest" is the last stable offset.
#[derive(Message)]
#[rtype(result = "Result<(i64, i64), ResponseError>")]
pub struct ListOffset {
    pub timestamp: i64,
    pub committed: bool,
    /// The leader epoch the client knows (ListOffsets v4+), -1 for none.
    pub current_leader_epoch: i32,
}

impl Handler<ListOffset> for Partition {
    type Result = ResponseFuture<Result<(i64, i64), ResponseError>>;

    /// Answered from memory but for a timestamp, which is looked up in the
    /// segments on a disk thread.
    fn handle(&mut self, msg: ListOffset, ctx: &mut Self::Context) -> Self::Result {
        let checked = self
            .check_online()
            .and_then(|()| self.check_leader(msg.current_leader_epoch));
        let ts = match (checked, msg.timestamp) {
            (Err(e), _) => return Box::pin(async move { Err(e) }),
            (Ok(()), LATEST_TIMESTAMP) => {
                let offsets = self.current_offsets();
                let latest = if msg.committed {
                    offsets.last_stable
                } else {
                    offsets.high_watermark
                };
                return Box::pin(async move { Ok((latest, -1)) });
            }
            (Ok(()), EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP) => {
                let start = self.log.log_start_offset();
                return Box::pin(async move { Ok((start, -1)) });
            }
            (Ok(()), ts) if ts >= 0 || ts == MAX_TIMESTAMP => ts,
            (Ok(()), _) => return Box::pin(async { Err(ResponseError::InvalidRequest) }),
        };
        let found = self.on_disk(
            ctx,
            move |log, _| match ts {
                MAX_TIMESTAMP => log.max_timestamp(),
                ts => log.offset_for_timestamp(ts),
            },
            |act, found, _| {
                found.map_err(|e| {
                    log::error!("{}: offset lookup failed: {e}", act.name);
                    ResponseError::KafkaStorageError
                })
            },
        );
        Box::pin(async move { Ok(answered(found).await?.unwrap_or((-1, -1))) })
    }
}

/// Writes a transaction marker (commit or abort) for a producer and waits
/// for its fsync: the end of that producer's transaction here. A marker of
/// an epoch older than the producer's last is refused (an administrator's
/// abort of a transaction the producer has since moved past).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<(), ResponseError>")]
pub struct WriteMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

impl Handler<WriteMarker> for Partition {
    type Result = ResponseFuture<Result<(), ResponseError>>;

    /// Written as an acks=all append is: by the leader only, with at least
    /// `min.insync.replicas` in the ISR (else NOT_ENOUGH_REPLICAS, which the
    /// coordinator retries), answered once fsynced here and replicated to
    /// the ISR, as Kafka's coordinator writes markers with acks=all.
    fn handle(&mut self, msg: WriteMarker, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self
            .check_online()
            .and_then(|()| self.check_leader(-1))
            .and_then(|()| self.check_enough_replicas())
        {
            return Box::pin(async move { Err(e) });
        }
        if self
            .producers
            .epoch(msg.producer_id)
            .is_some_and(|epoch| epoch > msg.producer_epoch)
        {
            return Box::pin(async { Err(ResponseError::InvalidProducerEpoch) });
        }
        let now = now_ms();
        let written = self.on_disk(
            ctx,
            move |log, transactions| {
                let marker = batch::control_batch(
                    msg.producer_id,
                    msg.producer_epoch,
                    msg.commit,
                    msg.coordinator_epoch,
                    now,
                )
                .map_err(|e| io::Error::other(e.to_string()))?;
                let header =
                    batch::parse_header(&marker).map_err(|e| io::Error::other(e.to_string()))?;
                // The abort is listed before its marker exists, never after.
                if !msg.commit {
                    transactions.abort(msg.producer_id, log.log_end_offset())?;
                }
                let info = log.append(&marker, now)?;
                transactions.on_batch(&header, info.base_offset);
                Ok((header, info))
            },
            |act, written: io::Result<(BatchHeader, AppendInfo)>, _| {
                let written = written.map(|(header, info)| {
                    act.producers.record(&header, info.base_offset);
                    info.file
                });
                act.leader_appended();
                act.publish();
                match written {
                    Ok(file) => Ok((
                        act.flusher.flush(vec![file]),
                        act.wait_for_high_watermark(act.log.log_end_offset()),
                    )),
                    Err(e) => Err(act.storage_error("writing a transaction marker failed", &e)),
                }
            },
        );
        Box::pin(async move {
            let (synced, replicated) = answered(written).await?;
            match synced.await {
                Ok(Ok(())) => {}
                _ => return Err(ResponseError::KafkaStorageError),
            }
            match replicated {
                None => Ok(()),
                Some(rx) => rx.await.unwrap_or(Err(ResponseError::NotLeaderOrFollower)),
            }
        })
    }
}

/// DeleteRecords: moves the log start offset up to `offset` (-1: the high
/// watermark). Answers the new log start offset.
#[derive(Message)]
#[rtype(result = "Result<i64, ResponseError>")]
pub struct DeleteRecords {
    pub offset: i64,
}

impl Handler<DeleteRecords> for Partition {
    type Result = ResponseFuture<Result<i64, ResponseError>>;

    fn handle(&mut self, msg: DeleteRecords, ctx: &mut Self::Context) -> Self::Result {
        let end = self.log.log_end_offset();
        let offset = if msg.offset == -1 { end } else { msg.offset };
        let in_range = if offset < 0 || offset > end {
            Err(ResponseError::OffsetOutOfRange)
        } else {
            Ok(())
        };
        let checked = self
            .check_online()
            .and_then(|()| self.check_leader(-1))
            .and(in_range);
        if let Err(e) = checked {
            return Box::pin(async move { Err(e) });
        }
        let done = self.on_disk(
            ctx,
            move |log, _| log.delete_records(offset),
            |act, done, _| match done {
                Ok(()) => {
                    act.publish();
                    Ok(act.log.log_start_offset())
                }
                Err(e) => Err(act.storage_error("delete records failed", &e)),
            },
        );
        Box::pin(answered(done))
    }
}

/// How a topic's partitions are cleaned up (`cleanup.policy` and friends).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanup {
    /// `delete` in the policy: retention by time and size applies.
    pub delete: bool,
    /// `compact` in the policy: only the latest record per key is kept.
    pub compact: bool,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: compact once this share of the
    /// cleanable log has not been compacted yet.
    pub min_cleanable_dirty_ratio: f64,
}

impl Cleanup {
    /// What decides when the log is worth a cleaning.
    pub fn limits(&self) -> CleaningLimits {
        CleaningLimits {
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            max_compaction_lag_ms: self.max_compaction_lag_ms,
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
        }
    }
}

/// A compaction job on the cleaner thread.
#[derive(Debug, Clone, Copy)]
struct CompactionJob {
    /// It cleans the log below this offset.
    clean_below: i64,
    /// [`Log::truncations`] when it read the log.
    truncations: u64,
}

/// How often a partition looks at its log for cleanup work.
#[derive(Debug, Clone, Copy)]
pub struct CleanupSchedule {
    /// Retention and compaction (`log.retention.check.interval.ms`).
    pub retention_check: Duration,
    /// Compaction alone, and `segment.ms` rolls of compacted logs
    /// (`log.cleaner.backoff.ms`): cheap, from memory but for one read per
    /// dirty segment under a finite `max.compaction.lag.ms`.
    pub cleaner_backoff: Duration,
}

/// New topic settings (AlterConfigs), applied at once.
#[derive(Message)]
#[rtype(result = "()")]
#[derive(Clone)]
pub struct SetConfigs {
    pub cleanup: Cleanup,
    pub log: LogConfig,
}

impl Handler<SetConfigs> for Partition {
    type Result = ();

    fn handle(&mut self, msg: SetConfigs, ctx: &mut Self::Context) {
        self.cleanup = msg.cleanup;
        self.log.set_config(msg.log);
        self.clean(ctx);
    }
}

impl Handler<CompactionDone> for Partition {
    type Result = ();

    /// Swaps the cleaned segments in and moves the checkpoint, on a disk
    /// thread.
    fn handle(&mut self, CompactionDone(result): CompactionDone, ctx: &mut Self::Context) {
        let job = self.compacting.take();
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                // The checkpoint stays: the next check finds the log as dirty.
                self.storage_error("compaction failed", &e);
                return;
            }
        };
        self.tombstones_expire_ms = done.tombstones_expire_ms;
        self.on_disk(
            ctx,
            move |log, _| {
                let mut removed = 0;
                for cleaned in &done.cleaned {
                    match log.install_cleaned(cleaned) {
                        Ok(true) => removed += cleaned.removed,
                        Ok(false) => {}
                        Err(e) => return Err(("installing a compacted segment", e)),
                    }
                }
                // A log truncated meanwhile has new records below where the
                // job read: the checkpoint stays, and the next check cleans
                // them.
                let cleaned_below = job
                    .filter(|j| j.truncations == log.truncations())
                    .map_or(0, |j| j.clean_below);
                log.advance_cleaner_checkpoint(cleaned_below)
                    .map_err(|e| ("storing the cleaner checkpoint", e))?;
                Ok(removed)
            },
            |act, installed, _| match installed {
                Ok(removed) => {
                    if removed > 0 {
                        log::info!("{}: compaction removed {removed} records", act.name);
                    }
                    act.publish();
                }
                Err((what, e)) => {
                    act.storage_error(what, &e);
                }
            },
        );
    }
}

/// What admin APIs report of a partition (DescribeLogDirs,
/// DescribeProducers).
#[derive(Message)]
#[rtype(result = "PartitionState")]
pub struct Describe;

pub struct PartitionState {
    /// Bytes of its segments.
    pub size_bytes: u64,
    pub producers: Vec<DescribedProducer>,
}

pub struct DescribedProducer {
    pub state: ActiveProducer,
    /// First offset of its open transaction.
    pub txn_start_offset: Option<i64>,
}

impl Handler<Describe> for Partition {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, _: Describe, _: &mut Self::Context) -> Self::Result {
        let producers = self
            .producers
            .active()
            .into_iter()
            .map(|state| DescribedProducer {
                txn_start_offset: self.transactions.open_since(state.producer_id),
                state,
            })
            .collect();
        MessageResult(PartitionState {
            size_bytes: self.log.size_bytes(),
            producers,
        })
    }
}

/// Fsyncs what the log has not fsynced yet (clean shutdown).
#[derive(Message)]
#[rtype(result = "io::Result<()>")]
pub struct SyncToDisk;

impl Handler<SyncToDisk> for Partition {
    type Result = ResponseFuture<io::Result<()>>;

    fn handle(&mut self, _: SyncToDisk, ctx: &mut Self::Context) -> Self::Result {
        let synced = self.on_disk(ctx, |log, _| log.sync(), |_, synced, _| synced);
        Box::pin(async move {
            synced
                .await
                .unwrap_or_else(|_| Err(io::Error::other("the partition stopped")))
        })
    }
}

/// Deletes the partition's files and stops the actor.
#[derive(Message)]
#[rtype(result = "io::Result<()>")]
pub struct Delete;

impl Handler<Delete> for Partition {
    type Result = ResponseFuture<io::Result<()>>;

    /// The files go on a disk thread; the open ones when the actor (and
    /// its log) is dropped.
    fn handle(&mut self, _: Delete, ctx: &mut Self::Context) -> Self::Result {
        use actix::ActorContext;
        ctx.stop();
        let dir = self.log.dir().map(std::path::Path::to_path_buf);
        let disk = self.disk.clone();
        Box::pin(async move {
            match dir {
                Some(dir) => disk.run(move || local_log::remove_dir(&dir)).await,
                None => Ok(()),
            }
        })
    }
}
