//! A segment's files: their names (`<base offset, 20 digits>.log`,
//! `.index`, `.timeindex`), listing and deleting them, the compaction swap
//! (a `.cleaned` file fsynced beside the log, then renamed over it), and
//! the anonymous memory files of segments kept in memory.

use crate::durable;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(super) const LOG_EXTENSION: &str = "log";
pub(super) const INDEX_EXTENSION: &str = "index";
pub(super) const TIME_INDEX_EXTENSION: &str = "timeindex";
/// Digits of the zero-padded base offset in file names.
pub(super) const NAME_DIGITS: usize = 20;
/// Stands for the directory in the names of segments kept in memory.
pub(super) const MEMORY_DIR: &str = "memory:";

/// `<dir>/<base offset, 20 digits>.<extension>`.
pub(super) fn file_path(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:0NAME_DIGITS$}.{extension}"))
}

/// The base offsets of the segments in `dir`, ascending. Files that are not
/// segment logs are ignored.
pub fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(base) = name.to_str().and_then(parse_log_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

pub(super) fn parse_log_name(name: &str) -> Option<i64> {
    let digits = name
        .strip_suffix(LOG_EXTENSION)?
        .strip_suffix('.')
        .filter(|d| d.len() == NAME_DIGITS && d.bytes().all(|b| b.is_ascii_digit()))?;
    digits.parse().ok()
}

/// Removes a segment's files (those that exist), durably: a segment that
/// came back after a power loss could hold records a truncation removed.
pub fn delete_files(dir: &Path, base_offset: i64) -> io::Result<()> {
    for extension in [LOG_EXTENSION, INDEX_EXTENSION, TIME_INDEX_EXTENSION] {
        match fs::remove_file(file_path(dir, base_offset, extension)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    durable::sync_dir(dir)
}

/// Suffix of a compacted log file being written; one left over from a
/// crash is incomplete and deleted on open.
pub const CLEANED_SUFFIX: &str = ".cleaned";

pub(super) fn cleaned_path(dir: &Path, base_offset: i64) -> PathBuf {
    let mut cleaned = file_path(dir, base_offset, LOG_EXTENSION).into_os_string();
    cleaned.push(CLEANED_SUFFIX);
    PathBuf::from(cleaned)
}

/// Writes (and fsyncs) the compacted contents of a sealed segment beside it:
/// its data must be on disk before the rename that installs it can be.
pub fn write_cleaned(dir: &Path, base_offset: i64, contents: &[u8]) -> io::Result<()> {
    let path = cleaned_path(dir, base_offset);
    let mut file = File::create(&path)?;
    std::io::Write::write_all(&mut file, contents)?;
    durable::sync_file(&file, path.display())
}

/// Replaces a sealed segment's log with its cleaned file atomically: the
/// indexes go (they are rebuilt on load), then a rename over the log, then
/// the directory's fsync. A crash or power loss at any point leaves the old
/// or the new file whole (the cleaned file was fsynced when written).
pub fn install_cleaned(dir: &Path, base_offset: i64) -> io::Result<()> {
    for extension in [INDEX_EXTENSION, TIME_INDEX_EXTENSION] {
        match fs::remove_file(file_path(dir, base_offset, extension)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    fs::rename(
        cleaned_path(dir, base_offset),
        file_path(dir, base_offset, LOG_EXTENSION),
    )?;
    durable::sync_dir(dir)
}

/// The compacted contents of a sealed segment kept in memory, in a memory
/// file of their own.
pub fn cleaned_in_memory(base_offset: i64, contents: &[u8]) -> io::Result<File> {
    let mut file = memory_file(base_offset)?;
    file.write_all(contents)?;
    Ok(file)
}

/// Drops a cleaned file that is no longer wanted (its segment changed).
pub fn discard_cleaned(dir: &Path, base_offset: i64) -> io::Result<()> {
    match fs::remove_file(cleaned_path(dir, base_offset)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A new anonymous file in memory: it has no name in any filesystem, and
/// its pages are freed when the last handle to it closes.
pub(super) fn memory_file(base_offset: i64) -> io::Result<File> {
    let name = CString::new(format!(
        "actorlog-{base_offset:0NAME_DIGITS$}.{LOG_EXTENSION}"
    ))
    .map_err(io::Error::other)?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}
