//! The flusher thread: fsync off the actor threads, with group commit.
//!
//! Partition actors hand it the segment files an `acks=all` write went to and
//! get a oneshot receiver back. The thread takes every request queued while the
//! previous fsync ran, syncs each distinct file once and answers them all, so
//! many producers and partitions share one fsync and no arbiter blocks on disk.
//!
//! A failed fsync takes the log directory offline ([`LogDirState`]): every
//! request of that round and every later one gets the error, and nothing is
//! retried, since a retry that succeeds does not bring back pages the kernel
//! dropped when the first one failed.

use crossbeam_channel::{Receiver, Sender};
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::oneshot;

use crate::durable::{self, LogDirState};
use crate::metrics::Metrics;

struct FlushRequest {
    files: Vec<Arc<File>>,
    /// Directories, fsynced after the files: the names created in them.
    dirs: Vec<Arc<File>>,
    /// `None` when nobody waits (a closed segment): a failure still takes
    /// the log directory offline.
    done: Option<oneshot::Sender<io::Result<()>>>,
}

/// Handle to the flusher thread; dropping the last one ends the thread.
#[derive(Clone)]
pub struct Flusher {
    tx: Sender<FlushRequest>,
    /// The log directory whose files it syncs.
    log_dir: Arc<LogDirState>,
}

impl Flusher {
    /// Starts the flusher thread. It ends by itself when the last handle is
    /// dropped, after answering what was queued.
    pub fn start(metrics: Arc<Metrics>) -> io::Result<(Flusher, JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let log_dir = Arc::new(LogDirState::default());
        let state = Arc::clone(&log_dir);
        let thread = std::thread::Builder::new()
            .name("actorlog-flusher".into())
            .spawn(move || run(rx, &metrics, &state))?;
        Ok((Flusher { tx, log_dir }, thread))
    }

    /// Whether the log directory is still usable.
    pub fn log_dir(&self) -> &Arc<LogDirState> {
        &self.log_dir
    }

    /// Asks for `files` to be fsynced; the receiver resolves once they are.
    pub fn flush(&self, files: Vec<Arc<File>>) -> oneshot::Receiver<io::Result<()>> {
        let (done, rx) = oneshot::channel();
        let request = FlushRequest {
            files,
            dirs: Vec::new(),
            done: Some(done),
        };
        if let Err(err) = self.tx.send(request) {
            // The thread is gone (broker shutting down): answer with an error
            // rather than pretend the data is durable.
            if let Some(done) = err.0.done {
                let _ = done.send(Err(io::Error::other("flusher stopped")));
            }
        }
        rx
    }

    /// fsyncs `files` and then `dir` without anyone waiting: a segment
    /// closed by a roll. Requests are served in order, so a flush asked
    /// after this one is answered only once these are durable too.
    pub fn flush_in_background(&self, files: Vec<Arc<File>>, dir: Arc<File>) {
        let request = FlushRequest {
            files,
            dirs: vec![dir],
            done: None,
        };
        if self.tx.send(request).is_err() {
            log::warn!("the flusher stopped before a closed segment was fsynced");
        }
    }
}

fn run(rx: Receiver<FlushRequest>, metrics: &Metrics, log_dir: &LogDirState) {
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let distinct = |of: fn(&FlushRequest) -> &Vec<Arc<File>>| {
            let mut files: Vec<&Arc<File>> = batch.iter().flat_map(of).collect();
            files.sort_by_key(|f| Arc::as_ptr(f));
            files.dedup_by_key(|f| Arc::as_ptr(f));
            files
        };
        let (files, dirs) = (distinct(|r| &r.files), distinct(|r| &r.dirs));
        let failure = if log_dir.is_offline() {
            Some("the log directory is offline after a failed fsync".to_string())
        } else {
            files
                .iter()
                .find_map(|f| durable::sync_file(f, "a partition's segment").err())
                .or_else(|| {
                    dirs.iter()
                        .find_map(|d| durable::sync_open_dir(d, "a partition's directory").err())
                })
                .map(|e| {
                    log_dir.on_error(&e);
                    e.to_string()
                })
        };
        metrics.fsynced(started.elapsed().as_micros() as u64);
        for done in batch.into_iter().filter_map(|r| r.done) {
            let result = match &failure {
                None => Ok(()),
                Some(msg) => Err(io::Error::other(msg.clone())),
            };
            let _ = done.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_every_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("f")).unwrap());
        let (flusher, thread) = Flusher::start(Arc::default()).unwrap();
        let receivers: Vec<_> = (0..10)
            .map(|_| flusher.flush(vec![file.clone(), file.clone()]))
            .collect();
        for rx in receivers {
            rx.blocking_recv().unwrap().unwrap();
        }
        drop(flusher);
        thread.join().unwrap();
    }

    /// fsync of /dev/null fails (EINVAL): the directory goes offline, and a
    /// later flush of a file that could be synced fails too.
    #[test]
    fn a_failed_fsync_fails_every_later_flush() {
        let dir = tempfile::tempdir().unwrap();
        let good = Arc::new(File::create(dir.path().join("f")).unwrap());
        let failing = Arc::new(File::options().write(true).open("/dev/null").unwrap());
        let (flusher, thread) = Flusher::start(Arc::default()).unwrap();
        flusher
            .flush(vec![good.clone()])
            .blocking_recv()
            .unwrap()
            .unwrap();
        assert!(!flusher.log_dir().is_offline());
        let failed = flusher.flush(vec![failing]).blocking_recv().unwrap();
        assert!(failed.is_err());
        assert!(flusher.log_dir().is_offline());
        let later = flusher.flush(vec![good]).blocking_recv().unwrap();
        assert!(later.is_err(), "never retried as if the data were safe");
        drop(flusher);
        thread.join().unwrap();
    }
}
