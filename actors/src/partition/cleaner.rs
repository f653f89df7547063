//! The cleaner thread: runs compaction jobs off the partition actors, one at
//! a time, reading at most `bytes_per_sec` so compaction never crowds out
//! produce and fetch on the disk. A partition gets its job's result back as
//! a message and swaps the cleaned segments in between its other messages.

use super::compaction::{self, Cleaned, CompactionPolicy, Snapshot};
use actix::{Message, Recipient};
use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The outcome of a compaction job, for the partition that asked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CompactionDone(pub io::Result<Vec<Cleaned>>);

struct Job {
    snapshot: Snapshot,
    now_ms: i64,
    policy: CompactionPolicy,
    done: Recipient<CompactionDone>,
}

/// Handle to the cleaner thread; it ends when the last handle goes.
#[derive(Clone)]
pub struct Cleaner {
    tx: Sender<Job>,
}

impl Cleaner {
    /// Starts the cleaner thread. It ends when the last handle is dropped,
    /// after the jobs queued.
    pub fn start(bytes_per_sec: u64) -> io::Result<(Cleaner, JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("actorlog-cleaner".into())
            .spawn(move || run(rx, bytes_per_sec))?;
        Ok((Cleaner { tx }, thread))
    }

    /// Queues a job; the answer comes to `done`.
    pub fn compact(
        &self,
        snapshot: Snapshot,
        now_ms: i64,
        policy: CompactionPolicy,
        done: Recipient<CompactionDone>,
    ) {
        let job = Job {
            snapshot,
            now_ms,
            policy,
            done,
        };
        if let Err(refused) = self.tx.send(job) {
            let stopped = io::Error::other("the cleaner has stopped");
            refused.0.done.do_send(CompactionDone(Err(stopped)));
        }
    }
}

fn run(rx: Receiver<Job>, bytes_per_sec: u64) {
    while let Ok(job) = rx.recv() {
        let started = Instant::now();
        let mut read = 0u64;
        // Sleep whenever reading got ahead of the allowed rate.
        let mut pace = |bytes: usize| {
            read += bytes as u64;
            let due = Duration::from_secs_f64(read as f64 / bytes_per_sec.max(1) as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        };
        let result = compaction::clean(&job.snapshot, job.now_ms, &job.policy, &mut pace);
        job.done.do_send(CompactionDone(result));
    }
}
