//! The rules that make a write survive a power loss, in one place.
//!
//! A write is in the page cache until its file is fsynced; a file's name
//! (its creation, a rename onto it, its removal) is in the page cache until
//! its *directory* is fsynced. So every durable step of the storage code is
//! one of these:
//!
//! - data appended to a file: [`sync_file`] before it is acknowledged;
//! - a new file or directory: [`sync_dir`] of its parent before anything in
//!   it is acknowledged ([`create_dir_all`] does it for directories);
//! - a small file replaced whole (catalog, checkpoints): [`replace`], which
//!   writes a temporary, fsyncs it, renames it over and fsyncs the directory;
//! - files removed or renamed: [`sync_dir`] afterwards.
//!
//! An fsync that fails says the kernel may already have dropped the dirty
//! pages it could not write: retrying it and succeeding proves nothing, so
//! its error is marked ([`is_sync_failure`]) and the storage code takes the
//! whole log directory offline ([`LogDirState`]) instead of going on.

use std::error::Error;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The error of an fsync that failed, kept as the source of the
/// [`io::Error`] the functions here return.
#[derive(Debug)]
struct SyncFailed {
    what: String,
    source: io::Error,
}

impl fmt::Display for SyncFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fsync of {} failed: {}", self.what, self.source)
    }
}

impl Error for SyncFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

fn sync_failed(what: impl fmt::Display, source: io::Error) -> io::Error {
    io::Error::new(
        source.kind(),
        SyncFailed {
            what: what.to_string(),
            source,
        },
    )
}

/// Whether `e` comes from a failed fsync: the data it covered may be lost
/// even though it was written.
pub fn is_sync_failure(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<SyncFailed>())
}

/// fsyncs a file's data (and the metadata needed to read it back, such as
/// its size). `what` names it in the error.
pub fn sync_file(file: &File, what: impl fmt::Display) -> io::Result<()> {
    file.sync_data().map_err(|e| sync_failed(what, e))
}

/// fsyncs a directory: the names created, renamed or removed in it so far
/// survive a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| sync_failed(dir.display(), e))
}

/// fsyncs a directory already open (with `File::open`), as [`sync_dir`].
pub fn sync_open_dir(dir: &File, what: impl fmt::Display) -> io::Result<()> {
    dir.sync_all().map_err(|e| sync_failed(what, e))
}

/// Creates `dir` and its missing parents, fsyncing the parent of each
/// directory created, so the whole path survives a power loss.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        other => other?,
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

/// Replaces `path` with `contents` so that a power loss leaves the old file
/// or the new one, whole: write a temporary beside it, fsync it, rename it
/// over, fsync the directory.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp)?;
    file.write_all(contents)?;
    sync_file(&file, tmp.display())?;
    fs::rename(&tmp, path)?;
    sync_dir(parent(path))
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether a log directory can still be trusted. Once an fsync in it has
/// failed it is offline for good (until the broker restarts and recovers
/// from what is on disk): its partitions answer KAFKA_STORAGE_ERROR.
#[derive(Debug, Default)]
pub struct LogDirState {
    offline: AtomicBool,
}

impl LogDirState {
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// Takes the directory offline if `e` is a failed fsync; logs it the
    /// first time only. Returns whether the directory is offline.
    pub fn on_error(&self, e: &io::Error) -> bool {
        if is_sync_failure(e) && !self.offline.swap(true, Ordering::AcqRel) {
            log::error!(
                "log directory offline: {e}; its partitions answer KAFKA_STORAGE_ERROR \
                 until the broker restarts and recovers from what reached the disk"
            );
        }
        self.is_offline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_leaves_only_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/checkpoint");
        create_dir_all(parent(&path)).unwrap();
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(parent(&path)).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn only_failed_fsyncs_take_a_directory_offline() {
        let state = LogDirState::default();
        assert!(!state.on_error(&io::Error::other("disk full")));
        let missing = Path::new("/nonexistent/actorlog");
        let failed = sync_dir(missing).unwrap_err();
        assert!(is_sync_failure(&failed));
        assert!(state.on_error(&failed));
        assert!(state.is_offline());
    }
}
