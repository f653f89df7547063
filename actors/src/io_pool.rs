//! A small pool of named threads that run blocking work (a sled call, a
//! file written and fsynced) for actors and tasks on the actix arbiters,
//! which await the answer on a oneshot instead of waiting on the disk
//! themselves: an arbiter is shared by partitions, connections and group
//! coordinators, and must never block.
//!
//! A job is queued when [`IoPool::run`] is called, not when its answer is
//! first polled, and threads take jobs in queue order; with one thread,
//! jobs also finish in the order they were asked for, which is what a
//! store's writes rely on.

use crossbeam_channel::{Receiver, Sender};
use std::future::Future;
use std::io;
use tokio::sync::oneshot;

/// A job: it sends its own answer.
type Job = Box<dyn FnOnce() + Send>;

/// Handle to the threads of a pool; they end once the last handle is
/// dropped and the jobs queued before are done.
#[derive(Clone)]
pub struct IoPool {
    tx: Sender<Job>,
}

impl IoPool {
    /// Starts `threads` threads (at least one) named `{name}-{i}`.
    pub fn start(name: &str, threads: usize) -> io::Result<IoPool> {
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..threads.max(1) {
            let rx: Receiver<Job> = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || rx.into_iter().for_each(|job| job()))?;
        }
        Ok(IoPool { tx })
    }

    /// Queues `job` now and resolves with its result. Dropping the future
    /// does not cancel the job: it still runs, and its answer is dropped.
    pub fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> impl Future<Output = io::Result<T>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The asker may have gone: nothing to do with the answer then.
            let _ = done.send(job());
        });
        let queued = self.tx.send(job).is_ok();
        async move {
            if !queued {
                return Err(io::Error::other("the I/O threads have stopped"));
            }
            answer
                .await
                .map_err(|_| io::Error::other("an I/O thread dropped a job"))?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[actix_rt::test]
    async fn one_thread_runs_jobs_in_the_order_asked() {
        let pool = IoPool::start("test-io", 1).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers: Vec<_> = (0..20)
            .map(|i| {
                let seen = seen.clone();
                pool.run(move || {
                    seen.lock().unwrap().push(i);
                    Ok(i)
                })
            })
            .collect();
        // Awaited last first: the order is the order of the calls.
        for (i, answer) in answers.into_iter().enumerate().rev() {
            assert_eq!(answer.await.unwrap(), i);
        }
        assert_eq!(*seen.lock().unwrap(), (0..20).collect::<Vec<_>>());
    }

    #[actix_rt::test]
    async fn jobs_run_on_the_pool_threads_and_errors_come_back() {
        let pool = IoPool::start("test-io", 2).unwrap();
        let name = pool
            .run(|| Ok(std::thread::current().name().map(str::to_owned)))
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("test-io-")));
        let failed = pool
            .run(|| -> io::Result<()> { Err(io::Error::other("no")) })
            .await;
        assert_eq!(failed.unwrap_err().to_string(), "no");
    }
}
