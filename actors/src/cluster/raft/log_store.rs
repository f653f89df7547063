//! The raft log and vote on disk.
//!
//! The log is one append-only file of checksummed bincode records, each an
//! entry (or, first, the id of the last purged entry). Entries also live in
//! memory (the metadata log is small and purged after every snapshot), so
//! reads never touch the disk. All writes go, in call order, to one writer
//! thread: raft requires log and vote I/O to be serialized, and fsync must
//! not stall the raft runtime's tasks. openraft is told an append is done
//! only after the writer's fsync returned. Any I/O error is fatal: it is
//! logged and returned, and openraft stops the node rather than run on a
//! log it cannot trust.

use super::files::{self, decode_record, encode_record};
use super::{LogId, StorageError, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, StorageIOError, Vote};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use tokio::sync::oneshot;

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";

#[derive(Serialize, Deserialize)]
enum Record {
    /// Everything up to this id was purged; only ever the first record.
    Purged(LogId),
    Entry(Entry<TypeConfig>),
}

#[derive(Default)]
struct Memory {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId>,
}

fn lock(m: &Mutex<Memory>) -> MutexGuard<'_, Memory> {
    // The lock guards plain data that is never left half-updated, so a
    // panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Called by the writer once an append is durable (or failed).
type AppendDone = Box<dyn FnOnce(io::Result<()>) + Send>;

enum Job {
    Append(Vec<u8>, Vec<u64>, AppendDone),
    Truncate(u64, oneshot::Sender<io::Result<()>>),
    Purge(LogId, oneshot::Sender<io::Result<()>>),
    Vote(Vec<u8>, oneshot::Sender<io::Result<()>>),
    Committed(Vec<u8>, oneshot::Sender<io::Result<()>>),
    /// Sent when the store is dropped: finish the queue and exit.
    Close,
}

/// The raft log storage: memory for reads, the writer thread for disk.
pub struct LogStore {
    memory: Arc<Mutex<Memory>>,
    jobs: mpsc::Sender<Job>,
    writer: Option<thread::JoinHandle<()>>,
}

/// Waits for the writer, so that once raft has shut down every queued
/// write is on disk and the file is closed (a restart may reopen it).
impl Drop for LogStore {
    fn drop(&mut self) {
        let _ = self.jobs.send(Job::Close);
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                log::error!("the raft log writer thread panicked");
            }
        }
    }
}

/// Reads entries for replication; shares the store's memory.
#[derive(Clone)]
pub struct LogReader {
    memory: Arc<Mutex<Memory>>,
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: io::Error) -> StorageError {
    log::error!(
        "controller log storage failed ({verb:?} {subject:?}): {e}; stopping the raft node"
    );
    StorageIOError::new(subject, verb, &e).into()
}

fn bincode_err(e: bincode::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn last record,
    /// and starts the writer thread.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let mut memory = Memory::default();
        let mut offsets = BTreeMap::new();
        let mut at = 0;
        while let Some((payload, next)) = decode_record(&buf, at) {
            match bincode::deserialize::<Record>(payload).map_err(bincode_err)? {
                Record::Purged(id) => {
                    memory.entries.retain(|&i, _| i > id.index);
                    memory.last_purged = Some(id);
                }
                Record::Entry(entry) => {
                    let index = entry.log_id.index;
                    // A later record at an index replaces it and all after.
                    memory.entries.split_off(&index);
                    offsets.split_off(&index);
                    memory.entries.insert(index, entry);
                    offsets.insert(index, at as u64);
                }
            }
            at = next;
        }
        if at < buf.len() {
            log::warn!(
                "{}: cutting off {} bytes of a torn or corrupt record at offset {at}",
                path.display(),
                buf.len() - at
            );
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        memory.vote = files::read_record_file(&dir.join(VOTE_FILE))?
            .map(|b| bincode::deserialize(&b).map_err(bincode_err))
            .transpose()?;
        // The committed id only lets a restarted node re-apply its own log
        // before it hears from a leader; a lost or unreadable copy is just
        // an older one, so it is written without fsync and read leniently.
        memory.committed = match files::read_record_file(&dir.join(COMMITTED_FILE)) {
            Ok(Some(b)) => bincode::deserialize::<Option<LogId>>(&b).ok().flatten(),
            Ok(None) => None,
            Err(e) => {
                log::warn!("ignoring the saved committed log id: {e}");
                None
            }
        };
        let memory = Arc::new(Mutex::new(memory));
        let (jobs, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            path,
            file,
            offsets,
            len: at as u64,
            failed: false,
        };
        let writer = thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(LogStore {
            memory,
            jobs,
            writer: Some(writer),
        })
    }

    /// Makes `entries` readable at once and queues their write; `done` runs
    /// on the writer thread after the fsync.
    fn queue_append(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
        done: AppendDone,
    ) -> io::Result<()> {
        let mut bytes = Vec::new();
        let mut indexes = Vec::new();
        let mut memory = lock(&self.memory);
        for entry in entries {
            let payload = bincode::serialize(&Record::Entry(entry.clone())).map_err(bincode_err)?;
            bytes.extend_from_slice(&encode_record(&payload)?);
            indexes.push(entry.log_id.index);
            memory.entries.split_off(&entry.log_id.index);
            memory.entries.insert(entry.log_id.index, entry);
        }
        drop(memory);
        self.jobs
            .send(Job::Append(bytes, indexes, done))
            .map_err(|_| writer_gone())
    }

    async fn call(
        &self,
        job: impl FnOnce(oneshot::Sender<io::Result<()>>) -> Job,
    ) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(job(tx)).map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> io::Error {
    io::Error::other("the raft log writer thread is gone")
}

struct Writer {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// File offset of each entry's record, to truncate by index.
    offsets: BTreeMap<u64, u64>,
    len: u64,
    /// After a failed write the file state is unknown: refuse everything.
    failed: bool,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            match job {
                Job::Close => return,
                Job::Append(bytes, indexes, done) => {
                    let r = self.guard(|w| w.append(&bytes, &indexes));
                    done(r);
                }
                Job::Truncate(since, done) => {
                    let _ = done.send(self.guard(|w| w.truncate(since)));
                }
                Job::Purge(upto, done) => {
                    let _ = done.send(self.guard(|w| w.purge(upto)));
                }
                Job::Vote(bytes, done) => {
                    let r = self
                        .guard(|w| files::write_record_file(&w.dir.join(VOTE_FILE), &bytes, true));
                    let _ = done.send(r);
                }
                Job::Committed(bytes, done) => {
                    let r = self.guard(|w| {
                        files::write_record_file(&w.dir.join(COMMITTED_FILE), &bytes, false)
                    });
                    let _ = done.send(r);
                }
            }
        }
    }

    fn guard(&mut self, f: impl FnOnce(&mut Self) -> io::Result<()>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("an earlier raft log write failed"));
        }
        let r = f(self);
        if let Err(e) = &r {
            log::error!("raft log write to {} failed: {e}", self.path.display());
            self.failed = true;
        }
        r
    }

    /// `bytes` holds one record per index of `indexes`, in order.
    fn append(&mut self, bytes: &[u8], indexes: &[u64]) -> io::Result<()> {
        let mut at = 0;
        for &index in indexes {
            let (_, next) = decode_record(bytes, at)
                .ok_or_else(|| io::Error::other("append of a malformed record"))?;
            self.offsets.split_off(&index);
            self.offsets.insert(index, self.len + at as u64);
            at = next;
        }
        self.file.write_all(bytes)?;
        self.file.sync_data()?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, since: u64) -> io::Result<()> {
        let Some(&at) = self.offsets.range(since..).next().map(|(_, at)| at) else {
            return Ok(());
        };
        self.file.set_len(at)?;
        self.file.sync_all()?;
        self.len = at;
        self.offsets.split_off(&since);
        Ok(())
    }

    /// Rewrites the file as a `Purged` record followed by the records of
    /// the entries after `upto`, copied byte for byte.
    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        let keep_from = self
            .offsets
            .range(upto.index + 1..)
            .next()
            .map_or(self.len, |(_, &at)| at);
        let mut tail = Vec::new();
        self.file.seek(SeekFrom::Start(keep_from))?;
        self.file.read_to_end(&mut tail)?;
        let header =
            encode_record(&bincode::serialize(&Record::Purged(upto)).map_err(bincode_err)?)?;
        let mut contents = header.clone();
        contents.extend_from_slice(&tail);
        files::replace_file(&self.path, &contents, true)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        let shift = keep_from as i64 - header.len() as i64;
        self.offsets = self
            .offsets
            .split_off(&(upto.index + 1))
            .into_iter()
            .map(|(i, at)| (i, (at as i64 - shift) as u64))
            .collect();
        self.len = contents.len() as u64;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let memory = lock(&self.memory);
        let start = match range.start_bound() {
            Bound::Included(&s) => Bound::Included(s),
            Bound::Excluded(&s) => Bound::Excluded(s),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => Bound::Included(e),
            Bound::Excluded(&e) => Bound::Excluded(e),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok(memory
            .entries
            .range((start, end))
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        LogReader {
            memory: self.memory.clone(),
        }
        .try_get_log_entries(range)
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let memory = lock(&self.memory);
        let last_log_id = memory
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(memory.last_purged);
        Ok(LogState {
            last_purged_log_id: memory.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            memory: self.memory.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let bytes = bincode::serialize(vote)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, bincode_err(e)))?;
        self.call(|tx| Job::Vote(bytes, tx))
            .await
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        lock(&self.memory).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        Ok(lock(&self.memory).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = bincode::serialize(&committed)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, bincode_err(e)))?;
        self.call(|tx| Job::Committed(bytes, tx))
            .await
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        lock(&self.memory).committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(lock(&self.memory).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let done: AppendDone = Box::new(move |r| callback.log_io_completed(r));
        self.queue_append(entries, done)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        lock(&self.memory).entries.split_off(&log_id.index);
        self.call(|tx| Job::Truncate(log_id.index, tx))
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut memory = lock(&self.memory);
            memory.entries = memory.entries.split_off(&(log_id.index + 1));
            memory.last_purged = Some(log_id);
        }
        self.call(|tx| Job::Purge(log_id, tx))
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::image::Command;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Command::DeleteTopic {
                name: format!("t{index}"),
            }),
        }
    }

    async fn append(store: &LogStore, entries: Vec<Entry<TypeConfig>>) {
        let (tx, rx) = oneshot::channel();
        let done: AppendDone = Box::new(move |r| {
            let _ = tx.send(r);
        });
        store.queue_append(entries, done).unwrap();
        rx.await.unwrap().unwrap();
    }

    async fn contents(store: &mut LogStore) -> Vec<LogId> {
        let entries = store.try_get_log_entries(..).await.unwrap();
        entries.into_iter().map(|e| e.log_id).collect()
    }

    #[tokio::test]
    async fn log_survives_reopen_with_truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        append(&store, (1..=5).map(|i| entry(1, i)).collect()).await;
        store.truncate(entry(1, 4).log_id).await.unwrap();
        append(&store, vec![entry(2, 4)]).await;
        store.purge(entry(1, 2).log_id).await.unwrap();
        append(&store, vec![entry(2, 5)]).await;
        let vote = Vote::new(2, 1);
        store.save_vote(&vote).await.unwrap();
        let committed = Some(entry(2, 4).log_id);
        store.save_committed(committed).await.unwrap();
        let expect = vec![entry(1, 3).log_id, entry(2, 4).log_id, entry(2, 5).log_id];
        assert_eq!(contents(&mut store).await, expect);
        drop(store);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(contents(&mut store).await, expect);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(1, 2).log_id));
        assert_eq!(state.last_log_id, Some(entry(2, 5).log_id));
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), committed);
        // Offsets were rebuilt: truncation after reopen still cuts right.
        store.truncate(entry(2, 4).log_id).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(contents(&mut store).await, vec![entry(1, 3).log_id]);
    }

    #[tokio::test]
    async fn torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        append(&store, (1..=3).map(|i| entry(1, i)).collect()).await;
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let good_len = std::fs::metadata(&path).unwrap().len();
        let torn =
            encode_record(&bincode::serialize(&Record::Entry(entry(1, 4))).unwrap()).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(file);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        assert_eq!(contents(&mut store).await.len(), 3);
        append(&store, vec![entry(1, 4)]).await;
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(contents(&mut store).await.len(), 4);
    }
}
