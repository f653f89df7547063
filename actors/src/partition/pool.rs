//! A fixed set of named threads that run closures off the actix arbiters:
//! the reader threads and the disk threads are each one. The asker awaits
//! the answer on a oneshot, so its arbiter runs other actors meanwhile.

use crossbeam_channel::{Receiver, Sender};
use std::io;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Work to carry out; it sends its own answer.
type Job = Box<dyn FnOnce() + Send>;

/// Handle to the threads; they end when the last handle goes, after the
/// work already queued.
#[derive(Clone)]
pub struct Pool {
    tx: Sender<Job>,
}

impl Pool {
    /// Starts `threads` threads (at least one) named `<name>-<i>`, taking
    /// work from one queue in order.
    pub fn start(name: &str, threads: usize) -> io::Result<(Pool, Vec<JoinHandle<()>>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handles = (0..threads.max(1))
            .map(|i| {
                let rx: Receiver<Job> = rx.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || rx.into_iter().for_each(|job| job()))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok((Pool { tx }, handles))
    }

    /// Runs `work` on one of the threads. If they have stopped (the broker
    /// is shutting down), it runs here instead: work that owns state, such
    /// as a lent log, is never dropped unrun. Fails only if `work` panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        let (done, answer) = oneshot::channel();
        // The asker may have gone (a fetch timed out): nothing to do with
        // the answer then.
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        if let Err(stopped) = self.tx.send(job) {
            (stopped.0)();
        }
        answer
            .await
            .map_err(|_| io::Error::other("a pool thread dropped its work"))
    }
}
