//! The reader threads: every fetch's disk reads run here, off the actix
//! arbiters, so a consumer reading cold data (a `pread` that waits for the
//! disk) never stalls the partitions, connections and group coordinators
//! that share its arbiter, and a producer of another topic keeps its
//! latency.
//!
//! One pool per broker, not per disk: the broker has one data directory,
//! and a few threads are enough to keep a disk's queue busy. Jobs are
//! [`ReadPlan`]s made by the partition actors, which stay the only owners
//! of their logs; a thread only reads files the plan holds open. Threads
//! take jobs from one queue in order, so a burst of cold reads delays other
//! reads by at most a queue's worth, never an append.

use super::file_records::FileRecords;
use super::read_plan::ReadPlan;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// A read to carry out; it sends its own answer.
type Job = Box<dyn FnOnce() + Send>;

/// Handle to the reader threads; they end when the last handle goes.
#[derive(Clone)]
pub struct Readers {
    tx: Sender<Job>,
}

impl Readers {
    /// Starts `threads` reader threads (at least one).
    pub fn start(threads: usize) -> io::Result<(Readers, Vec<JoinHandle<()>>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handles = (0..threads.max(1))
            .map(|i| {
                let rx: Receiver<Job> = rx.clone();
                std::thread::Builder::new()
                    .name(format!("actorlog-reader-{i}"))
                    .spawn(move || rx.into_iter().for_each(|job| job()))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok((Readers { tx }, handles))
    }

    /// Carries out `plan` on a reader thread.
    pub async fn read(&self, plan: ReadPlan, max_bytes: usize) -> io::Result<Bytes> {
        self.run(move || plan.execute(max_bytes)).await
    }

    /// Locates the batches of `plan` (see [`ReadPlan::locate`]) on a reader
    /// thread, and notes whether they are in the page cache.
    pub async fn locate(
        &self,
        plan: ReadPlan,
        max_bytes: usize,
        below: i64,
    ) -> io::Result<FileRecords> {
        self.run(move || {
            let mut records = plan.locate(max_bytes, below)?;
            records.cached = records.in_page_cache();
            Ok(records)
        })
        .await
    }

    /// Reads located batches into memory on a reader thread.
    pub async fn load(&self, records: Vec<FileRecords>) -> io::Result<Vec<Bytes>> {
        self.run(move || records.iter().map(FileRecords::read).collect())
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (done, answer) = oneshot::channel();
        // The asker may have gone (its fetch timed out): nothing to do with
        // the answer then.
        let job: Job = Box::new(move || {
            let _ = done.send(read());
        });
        self.tx
            .send(job)
            .map_err(|_| io::Error::other("the reader threads have stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("a reader thread dropped a read"))?
    }
}
