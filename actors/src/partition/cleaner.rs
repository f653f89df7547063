//! The cleaner thread: runs compaction jobs off the partition actors, one at
//! a time, reading at most `bytes_per_sec` so compaction never crowds out
//! produce and fetch on the disk. A partition gets its job's result back as
//! a message and swaps the cleaned segments in between its other messages.
//!
//! Partitions whose logs are eligible ([`super::cleanable`]) send a job
//! each, with their dirty ratio; of the jobs waiting, the cleaner takes the
//! dirtiest log first, as Kafka's does.

use super::compaction::{self, Compaction, CompactionPolicy, Snapshot};
use actix::{Message, Recipient};
use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The outcome of a compaction job, for the partition that asked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CompactionDone(pub io::Result<Compaction>);

struct Job {
    dirty_ratio: f64,
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

    /// Queues a job for a log this dirty; the answer comes to `done`.
    pub fn compact(
        &self,
        dirty_ratio: f64,
        snapshot: Snapshot,
        now_ms: i64,
        policy: CompactionPolicy,
        done: Recipient<CompactionDone>,
    ) {
        let job = Job {
            dirty_ratio,
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

/// Jobs waiting for the cleaner, taken dirtiest first.
struct Waiting<T> {
    jobs: Vec<(f64, T)>,
}

impl<T> Waiting<T> {
    fn new() -> Self {
        Waiting { jobs: Vec::new() }
    }

    fn push(&mut self, dirty_ratio: f64, job: T) {
        self.jobs.push((dirty_ratio, job));
    }

    /// The job of the dirtiest log; of equally dirty ones, the first queued.
    fn pop_dirtiest(&mut self) -> Option<T> {
        let (at, _) = self
            .jobs
            .iter()
            .enumerate()
            .rev()
            .max_by(|(_, a), (_, b)| a.0.total_cmp(&b.0))?;
        Some(self.jobs.remove(at).1)
    }
}

fn run(rx: Receiver<Job>, bytes_per_sec: u64) {
    let mut waiting = Waiting::new();
    loop {
        // Wait for work only when none is waiting, then take in every job
        // queued meanwhile, so the choice sees them all.
        if waiting.jobs.is_empty() {
            match rx.recv() {
                Ok(job) => waiting.push(job.dirty_ratio, job),
                Err(_) => return,
            }
        }
        for job in rx.try_iter() {
            waiting.push(job.dirty_ratio, job);
        }
        let Some(job) = waiting.pop_dirtiest() else {
            continue;
        };
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

#[cfg(test)]
mod tests {
    use super::Waiting;

    #[test]
    fn the_dirtiest_log_goes_first() {
        let mut waiting = Waiting::new();
        for (ratio, log) in [(0.5, "a"), (0.9, "b"), (0.7, "c"), (0.9, "d"), (1.0, "e")] {
            waiting.push(ratio, log);
        }
        let order: Vec<_> = std::iter::from_fn(|| waiting.pop_dirtiest()).collect();
        assert_eq!(order, ["e", "b", "d", "c", "a"]);
    }
}
