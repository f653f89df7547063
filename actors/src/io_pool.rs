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
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// A job: it sends its own answer.
type Job = Box<dyn FnOnce() + Send>;

enum Message {
    Run(Job),
    /// Ends the thread that takes it.
    Stop,
}

/// Handle to the threads of a pool; they end after [`IoPool::stop`], or
/// once the last handle is dropped, when the jobs queued before are done.
#[derive(Clone)]
pub struct IoPool {
    tx: Sender<Message>,
    threads: usize,
}

impl IoPool {
    /// Starts `threads` threads (at least one) named `{name}-{i}`.
    pub fn start(name: &str, threads: usize) -> io::Result<(IoPool, Vec<JoinHandle<()>>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let threads = threads.max(1);
        let handles = (0..threads)
            .map(|i| {
                let rx: Receiver<Message> = rx.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        for message in rx {
                            match message {
                                Message::Run(job) => job(),
                                Message::Stop => return,
                            }
                        }
                    })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok((IoPool { tx, threads }, handles))
    }

    /// Ends the threads once the jobs queued before are done, though other
    /// handles remain. A job asked after fails: once the last thread has
    /// ended, the jobs still queued are dropped and their askers get an
    /// error.
    pub fn stop(&self) {
        for _ in 0..self.threads {
            // Fails only if every thread has ended already.
            let _ = self.tx.send(Message::Stop);
        }
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
        let queued = self.tx.send(Message::Run(job)).is_ok();
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
        let (pool, _threads) = IoPool::start("test-io", 1).unwrap();
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
        let (pool, _threads) = IoPool::start("test-io", 2).unwrap();
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

    #[actix_rt::test]
    async fn stopped_threads_end_and_later_jobs_fail() {
        let (pool, threads) = IoPool::start("test-io", 2).unwrap();
        let before = pool.run(|| Ok(1));
        pool.stop();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(before.await.unwrap(), 1, "queued before the stop");
        assert!(pool.run(|| Ok(2)).await.is_err());
    }
}
