//! The topic catalog: which topics exist, their ids, partition counts and
//! config overrides, and the cluster id. Kept in one small bincode file that
//! is replaced atomically (write, fsync, rename, fsync the directory), so a
//! crash leaves either the old or the new catalog, never a torn one. The
//! broker changes it from tasks on its arbiters, so a change's write and
//! fsyncs run on the broker's topic I/O thread and the change awaits them:
//! the catalog is changed under the broker's catalog lock, one change at a
//! time, so one thread keeps the writes in order; and it is not the state
//! database's writer, so a topic's creation never holds up a group's commit.

use crate::durable;
use crate::io_pool::IoPool;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "catalog.bin";
const FORMAT_VERSION: u32 = 1;

/// One topic as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// The topic's name.
    pub name: String,
    /// The topic id (a UUID) clients see in Metadata.
    pub id: [u8; 16],
    /// How many partitions it has.
    pub partitions: i32,
    /// Its config overrides.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CatalogFile {
    format_version: u32,
    cluster_id: String,
    topics: Vec<TopicRecord>,
    /// Every producer id below this may have been handed out.
    producer_ids_reserved: i64,
}

impl CatalogFile {
    /// No topics, and a fresh cluster id.
    fn empty() -> CatalogFile {
        CatalogFile {
            format_version: FORMAT_VERSION,
            cluster_id: uuid::Uuid::new_v4().simple().to_string(),
            topics: Vec::new(),
            producer_ids_reserved: 0,
        }
    }
}

/// The durable topic catalog of one data directory (or of a broker kept
/// in memory).
pub struct Catalog {
    /// `None` in memory: nothing is written.
    disk: Option<OnDisk>,
    state: CatalogFile,
}

/// Where a catalog kept on disk is written, and the thread that writes it.
struct OnDisk {
    path: PathBuf,
    /// One thread, so changes are written in the order made.
    writer: IoPool,
}

impl Catalog {
    /// Loads the catalog of `dir`, creating an empty one with a fresh
    /// cluster id on first start; `writer` (one thread) writes its changes.
    pub fn open(dir: &Path, writer: IoPool) -> io::Result<Catalog> {
        let path = dir.join(FILE_NAME);
        let state = match fs::read(&path) {
            Ok(bytes) => decode(&bytes).map_err(|why| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is unreadable: {why}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => CatalogFile::empty(),
            Err(e) => return Err(e),
        };
        // Written again at once: a catalog made here exists from now on.
        write(&path, &state)?;
        Ok(Catalog {
            disk: Some(OnDisk { path, writer }),
            state,
        })
    }

    /// An empty catalog with a fresh cluster id, kept in memory only.
    pub fn in_memory() -> Catalog {
        Catalog {
            disk: None,
            state: CatalogFile::empty(),
        }
    }

    /// The cluster id, fixed at the first start.
    pub fn cluster_id(&self) -> &str {
        &self.state.cluster_id
    }

    /// Every topic, in the order they were last changed.
    pub fn topics(&self) -> &[TopicRecord] {
        &self.state.topics
    }

    /// Adds or replaces the topic of the same name, durably.
    pub async fn upsert(&mut self, record: TopicRecord) -> io::Result<()> {
        self.state.topics.retain(|t| t.name != record.name);
        self.state.topics.push(record);
        self.persist().await
    }

    /// Removes a topic, durably.
    pub async fn remove(&mut self, name: &str) -> io::Result<()> {
        self.state.topics.retain(|t| t.name != name);
        self.persist().await
    }

    /// Durably reserves the next `count` producer ids, so ids stay unique
    /// across restarts without a write per id.
    pub async fn reserve_producer_ids(&mut self, count: i64) -> io::Result<std::ops::Range<i64>> {
        let start = self.state.producer_ids_reserved;
        self.state.producer_ids_reserved = start + count;
        if let Err(e) = self.persist().await {
            self.state.producer_ids_reserved = start;
            return Err(e);
        }
        Ok(start..start + count)
    }

    /// Writes the catalog on its thread; resolves once it is durable.
    async fn persist(&self) -> io::Result<()> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let bytes = bincode::serialize(&self.state).map_err(io::Error::other)?;
        let path = disk.path.clone();
        disk.writer
            .run(move || durable::replace(&path, &bytes))
            .await
    }
}

/// Replaces the catalog file with `state`, on the calling thread.
fn write(path: &Path, state: &CatalogFile) -> io::Result<()> {
    let bytes = bincode::serialize(state).map_err(io::Error::other)?;
    durable::replace(path, &bytes)
}

fn decode(bytes: &[u8]) -> Result<CatalogFile, String> {
    let state: CatalogFile = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
    if state.format_version != FORMAT_VERSION {
        return Err(format!("unknown format version {}", state.format_version));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, partitions: i32) -> TopicRecord {
        TopicRecord {
            name: name.into(),
            id: [7; 16],
            partitions,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        }
    }

    fn writer() -> IoPool {
        IoPool::start("test-catalog", 1).unwrap().0
    }

    #[actix_rt::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(dir.path(), writer()).unwrap();
        let cluster = catalog.cluster_id().to_string();
        catalog.upsert(record("a", 3)).await.unwrap();
        catalog.upsert(record("b", 1)).await.unwrap();
        catalog.upsert(record("a", 5)).await.unwrap();
        catalog.remove("b").await.unwrap();
        assert_eq!(catalog.reserve_producer_ids(10).await.unwrap(), 0..10);
        let mut catalog = Catalog::open(dir.path(), writer()).unwrap();
        assert_eq!(catalog.cluster_id(), cluster);
        assert_eq!(catalog.topics(), &[record("a", 5)]);
        assert_eq!(catalog.reserve_producer_ids(10).await.unwrap(), 10..20);
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"\xff\xff garbage").unwrap();
        let err = Catalog::open(dir.path(), writer()).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains(FILE_NAME));
    }
}
