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
//! sled's `flush_async` runs the flush on sled's own thread pool, and that
//! job holds the page cache (and with it the directory's file lock) until
//! it returns, a moment after the awaiting caller has been answered. A
//! database dropped and reopened in one process, as an embedded broker
//! restarted on the same directory does, can therefore meet its own lock
//! still held. Opening waits that moment out; a lock held longer belongs to
//! someone else and is reported as such.

use super::StoreError;
use crate::durable;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a lock left by this process's own dropped handle may linger.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_millis(10);
/// sled's log file in its directory.
const SLED_LOG_FILE: &str = "db";
/// sled's settings file, written once when the database is created.
const SLED_SETTINGS_FILE: &str = "conf";

/// The broker's sled database.
pub struct StateDb {
    db: sled::Db,
    /// What a flush fsyncs; `None` for a temporary database.
    disk: Option<Arc<OnDisk>>,
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
        return Ok(StateDb { db, disk: None });
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
    Ok(StateDb {
        db,
        disk: Some(Arc::new(disk)),
    })
}

impl StateDb {
    /// The tree `name`, created if needed.
    pub fn open_tree(&self, name: &str) -> io::Result<StateTree> {
        let tree = self
            .db
            .open_tree(name)
            .map_err(|e| StoreError::io("cannot open a tree of the state database", e))?;
        Ok(StateTree {
            tree,
            disk: self.disk.clone(),
        })
    }
}

/// A tree of the state database: sled's tree, and [`StateTree::flush_to_disk`].
#[derive(Clone)]
pub struct StateTree {
    tree: sled::Tree,
    disk: Option<Arc<OnDisk>>,
}

impl Deref for StateTree {
    type Target = sled::Tree;

    fn deref(&self) -> &sled::Tree {
        &self.tree
    }
}

impl StateTree {
    /// Returns once everything stored so far survives a power loss.
    pub async fn flush_to_disk(&self) -> io::Result<()> {
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
