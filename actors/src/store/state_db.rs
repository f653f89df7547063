//! Opening the broker's sled database (committed offsets, transactions,
//! ACLs), and flushing it so that a flush survives a power loss.
//!
//! sled's `flush` writes its log with `sync_file_range`, which neither
//! writes the file's metadata nor flushes the disk's cache; it never
//! fsyncs its directory (so its files' names may not be on disk at all)
//! nor its settings file `conf` (which it refuses to open without, after a
//! power loss); only its background thread calls a real fsync, every
//! 500 ms. So opening fsyncs `conf` and the directory, and a store's flush
//! here is sled's flush, then an fsync of sled's log file and of its
//! directory, off the actor threads.
//!
//! No actor touches sled itself: a [`StateTree`] hands every sled call to
//! the database's store threads ([`crate::io_pool`]) and the caller awaits
//! the answer, since a sled call may wait on the disk (a page read back in,
//! a log segment written) and an actix arbiter is shared by partitions,
//! connections and group coordinators. Writes run on one writer thread, in
//! the order they were asked for: a group's commits, a transaction's
//! states and a store's changes are applied in the order their actor made
//! them, as when they ran on the actor's own thread, and a read asked after
//! a write returned sees it. sled is internally synchronised, so reads need
//! no such order and run on [`READER_THREADS`] threads of their own: a scan
//! of every group (ListGroups, the metrics page) neither waits behind the
//! writes nor holds them up. The flush that makes a write durable runs on
//! sled's own I/O threads and the blocking pool, not on the writer, so one
//! write's fsync does not hold back the next one's apply.
//!
//! sled's `flush_async` runs the flush on sled's own thread pool, and that
//! job holds the page cache (and with it the directory's file lock) until
//! it returns, a moment after the awaiting caller has been answered. A
//! database dropped and reopened in one process, as an embedded broker
//! restarted on the same directory does, can therefore meet its own lock
//! still held. Opening waits that moment out; a lock held longer belongs to
//! someone else and is reported as such.

use super::StoreError;
use crate::durable;
use crate::io_pool::IoPool;
use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a lock left by this process's own dropped handle may linger.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_millis(10);
/// sled's log file in its directory.
const SLED_LOG_FILE: &str = "db";
/// sled's settings file, written once when the database is created.
const SLED_SETTINGS_FILE: &str = "conf";
/// Threads that read the database: a scan and a few lookups at once.
const READER_THREADS: usize = 2;

/// The broker's sled database.
pub struct StateDb {
    db: sled::Db,
    /// What a flush fsyncs; `None` for a temporary database.
    disk: Option<Arc<OnDisk>>,
    threads: StoreThreads,
    /// The threads of `threads`, for [`StateDb::into_threads`].
    handles: Vec<JoinHandle<()>>,
}

/// The threads that make the database's sled calls.
#[derive(Clone)]
pub struct StoreThreads {
    /// One thread: writes are applied in the order asked.
    writer: IoPool,
    /// Reads, in parallel.
    readers: IoPool,
}

impl StoreThreads {
    fn start() -> io::Result<(StoreThreads, Vec<JoinHandle<()>>)> {
        let (writer, mut handles) = IoPool::start("actorlog-store-writer", 1)?;
        let (readers, reader_handles) = IoPool::start("actorlog-store-reader", READER_THREADS)?;
        handles.extend(reader_handles);
        Ok((StoreThreads { writer, readers }, handles))
    }

    /// Ends the threads once what was asked before is done, though stores
    /// remain: when the broker stops. A store's call after fails.
    pub fn stop(&self) {
        self.writer.stop();
        self.readers.stop();
    }
}

/// sled's log file and directory, fsynced after its flushes.
struct OnDisk {
    log: File,
    dir: PathBuf,
}

impl OnDisk {
    fn sync(&self) -> io::Result<()> {
        durable::sync_file(&self.log, self.dir.join(SLED_LOG_FILE).display())?;
        durable::sync_dir(&self.dir)
    }
}

/// Opens the database in `dir`, or a temporary one (deleted when dropped)
/// for `None`. The directory and the files sled creates in it are made
/// durable before anything is stored.
pub fn open(dir: Option<&Path>) -> io::Result<StateDb> {
    let Some(dir) = dir else {
        let db = open_waiting(&sled::Config::new().temporary(true), LOCK_WAIT)?;
        let (threads, handles) = StoreThreads::start()?;
        return Ok(StateDb {
            db,
            disk: None,
            threads,
            handles,
        });
    };
    durable::create_dir_all(dir)?;
    let db = open_waiting(&sled::Config::new().path(dir), LOCK_WAIT)?;
    let settings = dir.join(SLED_SETTINGS_FILE);
    durable::sync_file(&File::open(&settings)?, settings.display())?;
    let log = File::open(dir.join(SLED_LOG_FILE))?;
    let disk = OnDisk {
        log,
        dir: dir.to_path_buf(),
    };
    disk.sync()?;
    let (threads, handles) = StoreThreads::start()?;
    Ok(StateDb {
        db,
        disk: Some(Arc::new(disk)),
        threads,
        handles,
    })
}

impl StateDb {
    /// Lets the database go (its trees keep it open) and hands over its
    /// threads, for the broker to stop and join when it stops.
    pub fn into_threads(self) -> (StoreThreads, Vec<JoinHandle<()>>) {
        (self.threads, self.handles)
    }

    /// The tree `name`, created if needed.
    pub fn open_tree(&self, name: &str) -> io::Result<StateTree> {
        let tree = self
            .db
            .open_tree(name)
            .map_err(|e| StoreError::io("cannot open a tree of the state database", e))?;
        Ok(StateTree {
            tree,
            disk: self.disk.clone(),
            threads: self.threads.clone(),
        })
    }
}

/// A tree of the state database, reached only through the store threads
/// (or, while the broker opens, [`StateTree::load`]).
#[derive(Clone)]
pub struct StateTree {
    tree: sled::Tree,
    disk: Option<Arc<OnDisk>>,
    threads: StoreThreads,
}

impl StateTree {
    /// Runs `read` on a reader thread.
    pub fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&sled::Tree) -> io::Result<T> + Send + 'static,
    ) -> impl Future<Output = io::Result<T>> + Send + 'static {
        let tree = self.tree.clone();
        self.threads.readers.run(move || {
            #[cfg(test)]
            sled_threads::note();
            read(&tree)
        })
    }

    /// Queues `write` on the writer thread now, after every write asked
    /// before it in this database, and resolves once what it stored
    /// survives a power loss.
    pub fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&sled::Tree) -> io::Result<T> + Send + 'static,
    ) -> impl Future<Output = io::Result<T>> + Send + 'static {
        let tree = self.tree.clone();
        let applied = self.threads.writer.run(move || {
            #[cfg(test)]
            sled_threads::note();
            write(&tree)
        });
        let this = self.clone();
        async move {
            let value = applied.await?;
            this.flush_to_disk().await?;
            Ok(value)
        }
    }

    /// Runs `read` on the calling thread: only for loading a store while
    /// the broker opens, before it serves anything.
    pub fn load<T>(&self, read: impl FnOnce(&sled::Tree) -> io::Result<T>) -> io::Result<T> {
        #[cfg(test)]
        sled_threads::note();
        read(&self.tree)
    }

    /// Returns once everything stored so far survives a power loss.
    async fn flush_to_disk(&self) -> io::Result<()> {
        self.tree
            .flush_async()
            .await
            .map_err(|e| StoreError::io("cannot flush the state database", e))?;
        let Some(disk) = self.disk.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || disk.sync())
            .await
            .map_err(io::Error::other)?
    }
}

fn open_waiting(config: &sled::Config, lock_wait: Duration) -> io::Result<sled::Db> {
    let deadline = Instant::now() + lock_wait;
    loop {
        let e = match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => e,
            Err(e) => return Err(StoreError::io("cannot open the state database", e)),
        };
        if Instant::now() >= deadline {
            return Err(StoreError::io_kind(
                io::ErrorKind::WouldBlock,
                "cannot open the state database: it is locked; is another broker \
                 using this data directory?",
                e,
            ));
        }
        std::thread::sleep(RETRY_EVERY);
    }
}

/// The names of the threads that made sled calls, so that tests can tell
/// that none was an actix arbiter.
#[cfg(test)]
pub(crate) mod sled_threads {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    static NAMES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

    /// Notes the calling thread.
    pub(super) fn note() {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        NAMES.lock().unwrap().insert(name);
    }

    /// Every thread noted so far, by any test of this process.
    pub(crate) fn seen() -> BTreeSet<String> {
        NAMES.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_elsewhere_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        let _held = open(Some(dir.path())).unwrap();
        let err = open_waiting(&config, Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("another broker"), "{err}");
    }

    /// As sled's flush job does: the last handle goes a moment after the
    /// owner has moved on.
    #[test]
    fn waits_for_a_handle_dropped_late_in_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(Some(dir.path())).unwrap().db;
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(db);
        });
        let db = open(Some(dir.path())).unwrap().db;
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        late.join().unwrap();
    }
}
