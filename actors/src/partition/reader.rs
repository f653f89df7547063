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

use super::read_plan::ReadPlan;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

struct Job {
    plan: ReadPlan,
    max_bytes: usize,
    done: oneshot::Sender<io::Result<Bytes>>,
}

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
                    .spawn(move || {
                        for job in rx {
                            // The asker may have gone (its fetch timed out):
                            // nothing to do with the bytes then.
                            let _ = job.done.send(job.plan.execute(job.max_bytes));
                        }
                    })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok((Readers { tx }, handles))
    }

    /// Carries out `plan` on a reader thread.
    pub async fn read(&self, plan: ReadPlan, max_bytes: usize) -> io::Result<Bytes> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            plan,
            max_bytes,
            done,
        };
        self.tx
            .send(job)
            .map_err(|_| io::Error::other("the reader threads have stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("a reader thread dropped a read"))?
    }
}
