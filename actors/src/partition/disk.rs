//! The disk threads: every piece of a partition's log work that may wait on
//! the disk runs here, never on an actix arbiter. That is appends (a
//! `writev` into the page cache stalls under dirty-page throttling),
//! segment rolls (new files, index writes), retention's unlinks, the
//! compaction swap, DeleteRecords, transaction markers with the aborted-
//! transaction index, follower truncation, timestamp lookups and the
//! shutdown sync. A partition waiting on the disk then never delays the
//! connections, group coordinators and other partitions sharing its
//! arbiter.
//!
//! The partition actor stays the single owner of its log: it lends the log
//! (and the aborted-transaction index, which markers write beside it) to a
//! disk thread and, through `ctx.wait`, handles no other message until both
//! come back. Its operations keep their order, and nothing ever sees the
//! log half-changed; a fetch's reads go to the reader threads with plans
//! made while the log is home. Pipelined requests to one partition were
//! already served one at a time; only the hop to the thread is new.
//!
//! One pool for the broker, not one thread per disk: the broker has one
//! data directory, and a job occupies a thread only while its partition
//! waits for it. With `io_threads` threads, a partition stalled on the disk
//! (a throttled write, a cold index read, unlinking a large segment) holds
//! one of them and the other partitions go on. The pool is apart from the
//! reader threads, so a burst of cold reads never queues ahead of an append.

use super::local_log::Log;
use super::transactions::Transactions;
use super::Partition;
use crate::io_pool::IoPool;
use actix::fut::{self, ActorFutureExt, WrapFuture};
use actix::{ActorContext, AsyncContext, Context};
use kafka_protocol::ResponseError;
use std::io;
use std::ops::{Deref, DerefMut};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Handle to the disk threads.
#[derive(Clone)]
pub struct DiskThreads {
    pool: IoPool,
}

impl DiskThreads {
    /// Starts `threads` disk threads (at least one).
    pub fn start(threads: usize) -> io::Result<(DiskThreads, Vec<JoinHandle<()>>)> {
        let (pool, handles) = IoPool::start("actorlog-disk", threads)?;
        Ok((DiskThreads { pool }, handles))
    }

    /// Runs `work`, which needs none of a partition's state, on a disk
    /// thread.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        self.pool.run(work).await
    }
}

/// State the partition actor owns but lends to a disk thread while it
/// waits (see the module comment): it is always home while the actor runs
/// a handler or a continuation.
pub struct Lent<T>(Option<T>);

const AWAY: &str = "a partition's log is lent only while its actor waits for it";

impl<T> Lent<T> {
    pub fn new(value: T) -> Lent<T> {
        Lent(Some(value))
    }

    fn lend(&mut self) -> T {
        self.0.take().expect(AWAY)
    }

    fn restore(&mut self, value: T) {
        self.0 = Some(value);
    }
}

impl<T> Deref for Lent<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect(AWAY)
    }
}

impl<T> DerefMut for Lent<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect(AWAY)
    }
}

impl Partition {
    /// Runs `work` on the log and the aborted-transaction index on a disk
    /// thread, then `then` on the actor with its outcome; the actor handles
    /// nothing else in between. The receiver gets what `then` returns; it
    /// is dropped unanswered if the log never came back (`work` panicked,
    /// or the threads had stopped), which stops the partition.
    ///
    /// Whatever the caller does after it runs before `work`; of two calls
    /// in one handler, the later runs first, so a handler makes one.
    pub(super) fn on_disk<R: Send + 'static, T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl FnOnce(&mut Log, &mut Transactions) -> R + Send + 'static,
        then: impl FnOnce(&mut Self, R, &mut Context<Self>) -> T + 'static,
    ) -> oneshot::Receiver<T> {
        let (answer, rx) = oneshot::channel();
        // The log is lent when the wait is first polled, not now: actix
        // may still poll the actor's spawned futures (continuations of
        // earlier reads, its own notifications) once after a handler asks
        // to wait, and those may use the log. Waits run one at a time, the
        // newest first, so only one is ever away.
        let lent = fut::ready(()).then(move |(), act: &mut Self, _| {
            let (mut log, mut transactions) = (act.log.lend(), act.transactions.lend());
            let disk = act.disk.clone();
            disk.pool
                .run(move || {
                    let outcome = work(&mut log, &mut transactions);
                    Ok((log, transactions, outcome))
                })
                .into_actor(act)
        });
        ctx.wait(lent.map(move |back, act, ctx| match back {
            Ok((log, transactions, outcome)) => {
                act.log.restore(log);
                act.transactions.restore(transactions);
                let _ = answer.send(then(act, outcome, ctx));
            }
            Err(e) => {
                log::error!("{}: log work failed on a disk thread: {e}", act.name);
                ctx.stop();
            }
        }));
        rx
    }
}

/// The answer of a handler's work on a disk thread: KAFKA_STORAGE_ERROR if
/// the work died with its thread.
pub(super) async fn answered<T>(
    answer: oneshot::Receiver<Result<T, ResponseError>>,
) -> Result<T, ResponseError> {
    answer
        .await
        .unwrap_or(Err(ResponseError::KafkaStorageError))
}
