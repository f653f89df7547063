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
use crate::io_pool::IoPool;
use bytes::Bytes;
use std::io;
use std::thread::JoinHandle;

/// Handle to the reader threads; they end when the last handle goes.
#[derive(Clone)]
pub struct Readers {
    pool: IoPool,
}

impl Readers {
    /// Starts `threads` reader threads (at least one).
    pub fn start(threads: usize) -> io::Result<(Readers, Vec<JoinHandle<()>>)> {
        let (pool, handles) = IoPool::start("actorlog-reader", threads)?;
        Ok((Readers { pool }, handles))
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
        self.pool.run(read).await
    }
}
