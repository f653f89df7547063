//! A disk that loses power: a FUSE filesystem, mounted by the test, that
//! passes every operation through to a directory of its own ("live") and
//! keeps apart what an fsync made durable:
//!
//! - a file's contents become durable when the file is fsynced (`fsync` or
//!   `fdatasync` on any descriptor of it);
//! - a directory's entries (files and directories created, renamed in or
//!   out, removed) become durable when the directory is fsynced.
//!
//! [`PowerLossDisk::power_off`] unmounts it and builds a new directory from
//! the durable state alone: the root's durable entries, recursively, each
//! file with its durable contents (empty if it was never fsynced). Writes
//! that were never fsynced are gone, optionally except an arbitrary prefix
//! of what a file had appended since (a torn write). The broker binary,
//! unmodified (sled included), then restarts on that directory.
//!
//! It can also fail the fsyncs of some files with EIO, and "cut the power"
//! right after a chosen fsync (of a file, or of the directory that makes a
//! rename durable): from then on fsyncs succeed but change nothing
//! durable, as if the machine had died at that instant.

#![allow(dead_code)] // each test file uses its own subset

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nothing is cached by the kernel: every lookup and attribute comes from
/// the live directory, which renames change under the kernel's feet.
const TTL: Duration = Duration::ZERO;

/// An entry of a directory: the live inode it names, and whether it is a
/// directory.
#[derive(Debug, Clone, Copy)]
struct Entry {
    ino: u64,
    dir: bool,
}

/// What survives a power loss, by live inode number.
#[derive(Debug, Default)]
struct Durable {
    files: HashMap<u64, Vec<u8>>,
    dirs: HashMap<u64, BTreeMap<OsString, Entry>>,
}

/// Faults the test asks for.
#[derive(Debug, Default)]
struct Faults {
    /// fsyncs of files whose live path contains this fail with EIO.
    fail_fsync_under: Option<String>,
    /// After the first fsync of a file whose name ends with this, the
    /// power is cut (nothing more becomes durable).
    cut_after_sync_of: Option<String>,
    /// After a file whose name ends with this is renamed, the power is cut
    /// right after the fsync of the directory it went to.
    cut_after_rename_of: Option<String>,
    /// That directory (live inode), once the rename happened.
    cut_after_sync_of_dir: Option<u64>,
    /// The power is cut: fsyncs succeed and change nothing durable.
    cut: bool,
    /// Whether the power was cut by `cut_after_sync_of`.
    cut_happened: bool,
    /// Writes to files whose live path contains this wait, unanswered,
    /// until released: a disk that stalls for one file.
    stall_writes_under: Option<String>,
}

/// A write the disk holds back, answered when released.
#[derive(Debug)]
struct StalledWrite {
    file: Arc<File>,
    offset: u64,
    data: Vec<u8>,
    reply: ReplyWrite,
}

#[derive(Debug)]
struct State {
    /// The live directory's root inode (the mount's inode 1).
    root_ino: u64,
    /// The live path of every inode the kernel knows.
    paths: HashMap<u64, PathBuf>,
    /// Open files, by handle.
    handles: HashMap<u64, Arc<File>>,
    next_handle: u64,
    durable: Durable,
    faults: Faults,
    stalled: Vec<StalledWrite>,
}

struct PowerLossFs {
    state: Arc<Mutex<State>>,
}

/// The mounted filesystem; unmounted when dropped.
pub struct PowerLossDisk {
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    live: tempfile::TempDir,
    mountpoint: tempfile::TempDir,
}

impl PowerLossDisk {
    /// Mounts an empty disk.
    pub fn mount() -> PowerLossDisk {
        let live = tempfile::tempdir().expect("live dir");
        Self::mount_on(live)
    }

    /// Mounts a disk over a copy of `contents` (what survived an earlier
    /// power loss), all of it durable.
    pub fn mount_copy_of(contents: &Path) -> PowerLossDisk {
        let live = tempfile::tempdir().expect("live dir");
        copy_tree(contents, live.path()).expect("copy of the surviving data");
        Self::mount_on(live)
    }

    fn mount_on(live: tempfile::TempDir) -> PowerLossDisk {
        let mountpoint = tempfile::tempdir().expect("mount point");
        let root = live.path().to_path_buf();
        let root_ino = fs::metadata(&root).expect("live root").ino();
        let mut durable = Durable::default();
        scan_durable(&root, &mut durable).expect("scan of the live dir");
        let state = Arc::new(Mutex::new(State {
            root_ino,
            paths: HashMap::from([(root_ino, root)]),
            handles: HashMap::new(),
            next_handle: 1,
            durable,
            faults: Faults::default(),
            stalled: Vec::new(),
        }));
        let fs = PowerLossFs {
            state: Arc::clone(&state),
        };
        let session = fuser::spawn_mount(fs, mountpoint.path(), &Config::default())
            .expect("FUSE mount (needs /dev/fuse and fusermount3, as root)");
        PowerLossDisk {
            state,
            session: Some(session),
            live,
            mountpoint,
        }
    }

    /// Where the filesystem is mounted: the broker's data directory.
    pub fn path(&self) -> &Path {
        self.mountpoint.path()
    }

    /// From now on, fsyncs of files whose path contains `needle` fail with
    /// EIO (and make nothing durable).
    pub fn fail_fsyncs_under(&self, needle: &str) {
        lock(&self.state).faults.fail_fsync_under = Some(needle.to_string());
    }

    /// Cuts the power right after the first fsync of a file whose name
    /// ends with `suffix`: that fsync counts, nothing later does.
    pub fn cut_power_after_sync_of(&self, suffix: &str) {
        lock(&self.state).faults.cut_after_sync_of = Some(suffix.to_string());
    }

    /// Cuts the power right after the directory fsync that makes the first
    /// rename of a file whose name ends with `suffix` durable.
    pub fn cut_power_after_rename_of(&self, suffix: &str) {
        lock(&self.state).faults.cut_after_rename_of = Some(suffix.to_string());
    }

    /// From now on, writes to files whose path contains `needle` wait,
    /// unanswered, until [`PowerLossDisk::release_writes`]; other files
    /// are served meanwhile.
    pub fn stall_writes_under(&self, needle: &str) {
        lock(&self.state).faults.stall_writes_under = Some(needle.to_string());
    }

    /// How many writes are held back.
    pub fn stalled_writes(&self) -> usize {
        lock(&self.state).stalled.len()
    }

    /// Ends the stall: the held writes are carried out and answered.
    pub fn release_writes(&self) {
        let stalled = {
            let mut state = lock(&self.state);
            state.faults.stall_writes_under = None;
            std::mem::take(&mut state.stalled)
        };
        for write in stalled {
            write_now(&write.file, write.offset, &write.data, write.reply);
        }
    }

    /// Whether the power was cut by one of the `cut_power_after_` faults.
    pub fn power_was_cut(&self) -> bool {
        lock(&self.state).faults.cut_happened
    }

    /// Unmounts (the broker must be dead) and returns a new directory
    /// holding only what was durable. With `tear_seed`, each file also keeps
    /// a pseudo-random prefix of what it appended after its last fsync.
    pub fn power_off(mut self, tear_seed: Option<u64>) -> tempfile::TempDir {
        if let Some(session) = self.session.take() {
            // A session whose kernel connection went first (the broker was
            // killed mid-request) ends with ECONNABORTED: what was durable
            // is held here either way.
            if let Err(e) = session.umount_and_join() {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted,
                    "unmount: {e}"
                );
            }
        }
        let state = lock(&self.state);
        let target = tempfile::tempdir().expect("surviving dir");
        let mut tear = tear_seed.map(|seed| seed | 1);
        materialize(&state, state.root_ino, target.path(), &mut tear)
            .expect("surviving data written");
        target
    }
}

impl Drop for PowerLossDisk {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}

/// Writes `data` at `offset` of `file` and answers the kernel.
fn write_now(file: &File, offset: u64, data: &[u8], reply: ReplyWrite) {
    match file.write_all_at(data, offset) {
        Ok(()) => reply.written(data.len() as u32),
        Err(e) => reply.error(errno(&e)),
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything under `dir` counts as durable (a disk mounted on data that
/// survived).
fn scan_durable(dir: &Path, durable: &mut Durable) -> io::Result<()> {
    let mut entries = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        entries.insert(
            entry.file_name(),
            Entry {
                ino: metadata.ino(),
                dir: metadata.is_dir(),
            },
        );
        if metadata.is_dir() {
            scan_durable(&entry.path(), durable)?;
        } else {
            durable
                .files
                .insert(metadata.ino(), fs::read(entry.path())?);
        }
    }
    durable.dirs.insert(fs::metadata(dir)?.ino(), entries);
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Writes the durable contents of directory `ino` into `target`.
fn materialize(state: &State, ino: u64, target: &Path, tear: &mut Option<u64>) -> io::Result<()> {
    let Some(entries) = state.durable.dirs.get(&ino) else {
        return Ok(());
    };
    for (name, entry) in entries {
        let path = target.join(name);
        if entry.dir {
            fs::create_dir(&path)?;
            materialize(state, entry.ino, &path, tear)?;
            continue;
        }
        let mut contents = state
            .durable
            .files
            .get(&entry.ino)
            .cloned()
            .unwrap_or_default();
        if let Some(seed) = tear {
            let live = state.paths.get(&entry.ino).and_then(|p| fs::read(p).ok());
            if let Some(live) =
                live.filter(|l| l.len() > contents.len() && l.starts_with(&contents))
            {
                let extra = live.len() - contents.len();
                let kept = (next_random(seed) % (extra as u64 + 1)) as usize;
                contents.extend_from_slice(&live[contents.len()..contents.len() + kept]);
            }
        }
        fs::write(&path, contents)?;
    }
    Ok(())
}

/// xorshift64: reproducible tears from a seed.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn kind(metadata: &Metadata) -> FileType {
    if metadata.is_dir() {
        FileType::Directory
    } else {
        FileType::RegularFile
    }
}

fn time(secs: i64, nanos: i64) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl State {
    fn fuse_ino(&self, live_ino: u64) -> INodeNo {
        if live_ino == self.root_ino {
            INodeNo::ROOT
        } else {
            INodeNo(live_ino)
        }
    }

    fn live_ino(&self, ino: INodeNo) -> u64 {
        if ino == INodeNo::ROOT {
            self.root_ino
        } else {
            ino.0
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths
            .get(&self.live_ino(ino))
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    fn attr(&self, metadata: &Metadata) -> FileAttr {
        FileAttr {
            ino: self.fuse_ino(metadata.ino()),
            size: metadata.len(),
            blocks: metadata.blocks(),
            atime: time(metadata.atime(), metadata.atime_nsec()),
            mtime: time(metadata.mtime(), metadata.mtime_nsec()),
            ctime: time(metadata.ctime(), metadata.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind(metadata),
            perm: (metadata.mode() & 0o7777) as u16,
            nlink: metadata.nlink() as u32,
            uid: metadata.uid(),
            gid: metadata.gid(),
            rdev: metadata.rdev() as u32,
            blksize: metadata.blksize() as u32,
            flags: 0,
        }
    }

    /// Stats `path`, remembers its inode's path, and answers its attributes.
    fn known(&mut self, path: PathBuf) -> Result<FileAttr, Errno> {
        let metadata = fs::symlink_metadata(&path).map_err(|e| errno(&e))?;
        self.paths.insert(metadata.ino(), path);
        Ok(self.attr(&metadata))
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn add_handle(&mut self, file: File) -> FileHandle {
        let fh = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(fh, Arc::new(file));
        FileHandle(fh)
    }

    fn handle(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.handles.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// After a rename of a directory, the paths of everything under it.
    fn moved(&mut self, from: &Path, to: &Path) {
        for path in self.paths.values_mut() {
            if let Ok(rest) = path.strip_prefix(from) {
                *path = to.join(rest);
            }
        }
    }

    fn sync_file(&mut self, ino: INodeNo, fh: FileHandle) -> Result<(), Errno> {
        let path = self.path(ino)?;
        let text = path.to_string_lossy().into_owned();
        if let Some(needle) = &self.faults.fail_fsync_under {
            if text.contains(needle.as_str()) {
                return Err(Errno::EIO);
            }
        }
        if self.faults.cut {
            return Ok(());
        }
        let file = self.handle(fh)?;
        let len = file.metadata().map_err(|e| errno(&e))?.len();
        let mut contents = vec![0; len as usize];
        file.read_exact_at(&mut contents, 0)
            .map_err(|e| errno(&e))?;
        let live_ino = self.live_ino(ino);
        self.durable.files.insert(live_ino, contents);
        if let Some(suffix) = &self.faults.cut_after_sync_of {
            if text.ends_with(suffix.as_str()) {
                self.faults.cut = true;
                self.faults.cut_happened = true;
            }
        }
        Ok(())
    }

    fn sync_dir(&mut self, ino: INodeNo) -> Result<(), Errno> {
        if self.faults.cut {
            return Ok(());
        }
        let path = self.path(ino)?;
        let mut entries = BTreeMap::new();
        for entry in fs::read_dir(&path).map_err(|e| errno(&e))? {
            let entry = entry.map_err(|e| errno(&e))?;
            let metadata = entry.metadata().map_err(|e| errno(&e))?;
            entries.insert(
                entry.file_name(),
                Entry {
                    ino: metadata.ino(),
                    dir: metadata.is_dir(),
                },
            );
        }
        let live_ino = self.live_ino(ino);
        self.durable.dirs.insert(live_ino, entries);
        if self.faults.cut_after_sync_of_dir == Some(live_ino) {
            self.faults.cut = true;
            self.faults.cut_happened = true;
        }
        Ok(())
    }

    /// Notes a rename for [`Faults::cut_after_rename_of`].
    fn renamed(&mut self, from: &Path, to_dir: u64) {
        let matches = self
            .faults
            .cut_after_rename_of
            .as_deref()
            .is_some_and(|suffix| from.to_string_lossy().ends_with(suffix));
        if matches && self.faults.cut_after_sync_of_dir.is_none() {
            self.faults.cut_after_sync_of_dir = Some(to_dir);
        }
    }
}

impl PowerLossFs {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Filesystem for PowerLossFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.state();
        match state.child(parent, name).and_then(|p| state.known(p)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut state = self.state();
        match state.path(ino).and_then(|p| state.known(p)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        let changed = state.path(ino).and_then(|path| {
            if let Some(size) = size {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size))
                    .map_err(|e| errno(&e))?;
            }
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(|e| errno(&e))?;
            }
            state.known(path)
        });
        match changed {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.state();
        let made = state.child(parent, name).and_then(|path| {
            fs::create_dir(&path).map_err(|e| errno(&e))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & !umask & 0o7777))
                .map_err(|e| errno(&e))?;
            state.known(path)
        });
        match made {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let state = self.state();
        match state
            .child(parent, name)
            .and_then(|p| fs::remove_file(p).map_err(|e| errno(&e)))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let state = self.state();
        match state
            .child(parent, name)
            .and_then(|p| fs::remove_dir(p).map_err(|e| errno(&e)))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        let renamed = state.child(parent, name).and_then(|from| {
            let to = state.child(newparent, newname)?;
            fs::rename(&from, &to).map_err(|e| errno(&e))?;
            state.moved(&from, &to);
            let to_dir = state.live_ino(newparent);
            state.renamed(&from, to_dir);
            Ok(())
        });
        match renamed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut state = self.state();
        let opened = state.path(ino).and_then(|path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .append(flags.0 & libc::O_APPEND != 0)
                .open(path)
                .map_err(|e| errno(&e))
        });
        match opened {
            Ok(file) => {
                let fh = state.add_handle(file);
                reply.opened(fh, FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let created = state.child(parent, name).and_then(|path| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(flags & libc::O_TRUNC != 0)
                .append(flags & libc::O_APPEND != 0)
                .mode(mode & !umask & 0o7777)
                .open(&path)
                .map_err(|e| errno(&e))?;
            let attr = state.known(path)?;
            Ok((file, attr))
        });
        match created {
            Ok((file, attr)) => {
                let fh = state.add_handle(file);
                reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = match self.state().handle(fh) {
            Ok(file) => file,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0; size as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(&e)),
            }
        }
        reply.data(&buf[..filled]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state();
        let file = match state.handle(fh) {
            Ok(file) => file,
            Err(e) => return reply.error(e),
        };
        let stalls = state
            .faults
            .stall_writes_under
            .as_deref()
            .is_some_and(|needle| {
                state
                    .path(ino)
                    .is_ok_and(|path| path.to_string_lossy().contains(needle))
            });
        if stalls {
            state.stalled.push(StalledWrite {
                file,
                offset,
                data: data.to_vec(),
                reply,
            });
            return;
        }
        drop(state);
        write_now(&file, offset, data, reply);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.state().sync_file(ino, fh) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut state = self.state();
        let listed = state.path(ino).and_then(|path| {
            let mut entries = vec![
                (ino, FileType::Directory, OsString::from(".")),
                (ino, FileType::Directory, OsString::from("..")),
            ];
            for entry in fs::read_dir(&path).map_err(|e| errno(&e))? {
                let entry = entry.map_err(|e| errno(&e))?;
                let metadata = entry.metadata().map_err(|e| errno(&e))?;
                state.paths.insert(metadata.ino(), entry.path());
                entries.push((
                    state.fuse_ino(metadata.ino()),
                    kind(&metadata),
                    entry.file_name(),
                ));
            }
            Ok(entries)
        });
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(ino, (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.state().sync_dir(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }
}
