//! Opening the broker's sled database (committed offsets, transactions).
//!
//! sled's `flush_async` runs the flush on sled's own thread pool, and that
//! job holds the page cache (and with it the directory's file lock) until
//! it returns, a moment after the awaiting caller has been answered. A
//! database dropped and reopened in one process, as an embedded broker
//! restarted on the same directory does, can therefore meet its own lock
//! still held. Opening waits that moment out; a lock held longer belongs to
//! someone else and is reported as such.

use super::StoreError;
use std::io;
use std::time::{Duration, Instant};

/// How long a lock left by this process's own dropped handle may linger.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// Opens the database `config` describes.
pub fn open(config: &sled::Config) -> io::Result<sled::Db> {
    open_waiting(config, LOCK_WAIT)
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
        let _held = open(&config).unwrap();
        let err = open_waiting(&config, Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("another broker"), "{err}");
    }

    /// As sled's flush job does: the last handle goes a moment after the
    /// owner has moved on.
    #[test]
    fn waits_for_a_handle_dropped_late_in_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        let db = open(&config).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(db);
        });
        let db = open(&config).unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        late.join().unwrap();
    }
}
