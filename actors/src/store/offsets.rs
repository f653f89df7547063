//! Committed consumer-group offsets, in sled.
//!
//! Keys are `len(group) group len(topic) topic partition` (lengths and the
//! partition big-endian), so every offset of a group shares one prefix and
//! a scan of that prefix lists them in topic-partition order. Values are
//! bincode. A commit is answered only after sled's flush, so an
//! acknowledged commit survives a crash. Every sled call runs on the
//! database's store threads ([`super::state_db`]).

use super::state_db::{StateDb, StateTree};
use super::StoreError;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io;

/// One committed offset, as OffsetCommit stores it and OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// A group's offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub committed: CommittedOffset,
}

/// The durable offset store shared by all group coordinators.
#[derive(Clone)]
pub struct OffsetStore {
    db: StateTree,
}

/// A sled or bincode error of this store, kept as the source.
fn io_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    StoreError::io("offset store", e)
}

fn group_prefix(group: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + group.len());
    key.extend_from_slice(&(group.len() as u32).to_be_bytes());
    key.extend_from_slice(group.as_bytes());
    key
}

fn key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut key = group_prefix(group);
    key.extend_from_slice(&(topic.len() as u32).to_be_bytes());
    key.extend_from_slice(topic.as_bytes());
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

/// The batch that stores `offsets`, given as `(group, offset)`.
fn batch<'a>(
    offsets: impl Iterator<Item = (&'a str, &'a PartitionOffset)>,
) -> io::Result<sled::Batch> {
    let mut batch = sled::Batch::default();
    for (group, o) in offsets {
        let value = bincode::serialize(&o.committed).map_err(io_error)?;
        batch.insert(key(group, &o.topic, o.partition), value);
    }
    Ok(batch)
}

/// The offset stored under `key`, if any.
fn get(tree: &sled::Tree, key: Vec<u8>) -> io::Result<Option<CommittedOffset>> {
    match tree.get(key).map_err(io_error)? {
        Some(value) => bincode::deserialize(&value).map(Some).map_err(io_error),
        None => Ok(None),
    }
}

/// Splits a key into (group, topic, partition); `None` for a foreign key.
fn parse_key(key: &[u8]) -> Option<(String, String, i32)> {
    let (group, rest) = take_str(key)?;
    let (topic, rest) = take_str(rest)?;
    let partition = i32::from_be_bytes(rest.try_into().ok()?);
    Some((group, topic, partition))
}

fn take_str(bytes: &[u8]) -> Option<(String, &[u8])> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let s = bytes.get(4..4 + len)?;
    Some((String::from_utf8(s.to_vec()).ok()?, &bytes[4 + len..]))
}

impl OffsetStore {
    /// Opens (or creates) the store in the broker's sled database.
    pub fn open(db: &StateDb) -> io::Result<OffsetStore> {
        let db = db.open_tree("offsets")?;
        Ok(OffsetStore { db })
    }

    /// Stores offsets atomically; resolves once they are durable. They are
    /// queued on the store's writer when this is called, so commits are
    /// applied in the order they were asked for.
    pub fn commit(
        &self,
        group: &str,
        offsets: &[PartitionOffset],
    ) -> impl Future<Output = io::Result<()>> + Send + 'static {
        self.apply(batch(offsets.iter().map(|o| (group, o))))
    }

    /// Stores the offsets of several groups (`(group, offset)`, as a
    /// transaction commits them) atomically, as [`OffsetStore::commit`].
    pub fn commit_groups(
        &self,
        offsets: &[(String, PartitionOffset)],
    ) -> impl Future<Output = io::Result<()>> + Send + 'static {
        self.apply(batch(offsets.iter().map(|(group, o)| (group.as_str(), o))))
    }

    fn apply(
        &self,
        batch: io::Result<sled::Batch>,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static {
        let written = batch.map(|batch| {
            self.db
                .write(move |tree| tree.apply_batch(batch).map_err(io_error))
        });
        async move { written?.await }
    }

    /// A group's offset for one partition, if it committed one.
    pub async fn fetch(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> io::Result<Option<CommittedOffset>> {
        let key = key(group, topic, partition);
        self.db.read(move |tree| get(tree, key)).await
    }

    /// A group's offsets for each of `partitions`, in their order, each
    /// with its own error, read at once.
    pub async fn fetch_each(
        &self,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> io::Result<Vec<io::Result<Option<CommittedOffset>>>> {
        let keys: Vec<Vec<u8>> = partitions
            .iter()
            .map(|(topic, partition)| key(group, topic, *partition))
            .collect();
        self.db
            .read(move |tree| Ok(keys.into_iter().map(|k| get(tree, k)).collect()))
            .await
    }

    /// Every offset of a group, in topic-partition order.
    pub async fn fetch_all(&self, group: &str) -> io::Result<Vec<PartitionOffset>> {
        let prefix = group_prefix(group);
        self.db
            .read(move |tree| {
                let mut offsets = Vec::new();
                for entry in tree.scan_prefix(prefix) {
                    let (k, v) = entry.map_err(io_error)?;
                    let Some((_, topic, partition)) = parse_key(&k) else {
                        continue;
                    };
                    offsets.push(PartitionOffset {
                        topic,
                        partition,
                        committed: bincode::deserialize(&v).map_err(io_error)?,
                    });
                }
                Ok(offsets)
            })
            .await
    }

    /// Every committed offset of every group, by group and then in
    /// topic-partition order, read in one scan.
    pub async fn every_offset(&self) -> io::Result<Vec<(String, PartitionOffset)>> {
        self.db
            .read(|tree| {
                let mut offsets = Vec::new();
                for entry in tree.iter() {
                    let (k, v) = entry.map_err(io_error)?;
                    let Some((group, topic, partition)) = parse_key(&k) else {
                        continue;
                    };
                    let committed = bincode::deserialize(&v).map_err(io_error)?;
                    offsets.push((
                        group,
                        PartitionOffset {
                            topic,
                            partition,
                            committed,
                        },
                    ));
                }
                Ok(offsets)
            })
            .await
    }

    /// Whether the group has any committed offset.
    pub async fn has_group(&self, group: &str) -> io::Result<bool> {
        let prefix = group_prefix(group);
        self.db
            .read(move |tree| match tree.scan_prefix(prefix).next() {
                Some(entry) => entry.map(|_| true).map_err(io_error),
                None => Ok(false),
            })
            .await
    }

    /// Groups that have committed offsets.
    pub async fn groups(&self) -> io::Result<Vec<String>> {
        self.db
            .read(|tree| {
                let mut groups: Vec<String> = Vec::new();
                for entry in tree.iter().keys() {
                    let k = entry.map_err(io_error)?;
                    if let Some((group, _, _)) = parse_key(&k) {
                        if groups.last() != Some(&group) {
                            groups.push(group);
                        }
                    }
                }
                Ok(groups)
            })
            .await
    }

    /// Removes offsets of a group: all of them, or those of `only` partitions.
    pub async fn delete(&self, group: &str, only: Option<&[(String, i32)]>) -> io::Result<()> {
        let prefix = group_prefix(group);
        let keys: Option<Vec<Vec<u8>>> = only.map(|partitions| {
            partitions
                .iter()
                .map(|(topic, partition)| key(group, topic, *partition))
                .collect()
        });
        self.db
            .write(move |tree| {
                let mut batch = sled::Batch::default();
                match keys {
                    Some(keys) => keys.into_iter().for_each(|k| batch.remove(k)),
                    // Listed on the writer, so a commit asked before is
                    // deleted too.
                    None => {
                        for k in tree.scan_prefix(prefix).keys() {
                            batch.remove(k.map_err(io_error)?);
                        }
                    }
                }
                tree.apply_batch(batch).map_err(io_error)
            })
            .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A committed offset for tests here and of the transactions that
    /// carry offsets; with metadata, for the store to keep.
    pub(crate) fn offset(topic: &str, partition: i32, offset: i64) -> PartitionOffset {
        PartitionOffset {
            topic: topic.into(),
            partition,
            committed: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: Some("m".into()),
                commit_timestamp_ms: 1,
            },
        }
    }

    fn db(dir: &std::path::Path) -> StateDb {
        crate::store::state_db::open(Some(dir)).unwrap()
    }

    #[actix_rt::test]
    async fn commit_fetch_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = OffsetStore::open(&db(dir.path())).unwrap();
            store
                .commit(
                    "g1",
                    &[offset("t", 0, 5), offset("t", 1, 7), offset("u", 0, 1)],
                )
                .await
                .unwrap();
            store.commit("g2", &[offset("t", 0, 9)]).await.unwrap();
            store.commit("g1", &[offset("t", 0, 6)]).await.unwrap();
        }
        let store = OffsetStore::open(&db(dir.path())).unwrap();
        let fetched = store.fetch("g1", "t", 0).await.unwrap();
        assert_eq!(fetched.unwrap().offset, 6);
        assert_eq!(store.fetch("g1", "t", 2).await.unwrap(), None);
        assert_eq!(
            store.fetch_all("g1").await.unwrap(),
            vec![offset("t", 0, 6), offset("t", 1, 7), offset("u", 0, 1)]
        );
        assert_eq!(
            store.groups().await.unwrap(),
            vec!["g1".to_string(), "g2".to_string()]
        );
        let every = store.every_offset().await.unwrap();
        let groups: Vec<&str> = every.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(groups, ["g1", "g1", "g1", "g2"]);
        assert_eq!(every[3].1, offset("t", 0, 9));
        let each = store
            .fetch_each("g1", vec![("u".into(), 0), ("t".into(), 9)])
            .await
            .unwrap();
        assert_eq!(each[0].as_ref().unwrap().as_ref().unwrap().offset, 1);
        assert!(each[1].as_ref().unwrap().is_none());
        assert!(store.has_group("g2").await.unwrap());
        assert!(!store.has_group("g").await.unwrap());
        store.delete("g1", Some(&[("t".into(), 1)])).await.unwrap();
        assert_eq!(store.fetch_all("g1").await.unwrap().len(), 2);
        store.delete("g1", None).await.unwrap();
        assert!(store.fetch_all("g1").await.unwrap().is_empty());
        assert_eq!(store.groups().await.unwrap(), vec!["g2".to_string()]);
    }

    #[test]
    fn keys_of_prefix_groups_do_not_mix() {
        assert_ne!(group_prefix("ab"), key("a", "b", 0)[..6].to_vec());
        assert_eq!(
            parse_key(&key("g", "t", 3)),
            Some(("g".into(), "t".into(), 3))
        );
        assert_eq!(parse_key(b"\x00\x00"), None);
    }
}
