//! What a processor sees while it handles one record: the record's
//! partition and timestamp, the task's state stores, and the records the
//! task will write when its work commits.

use crate::error::StreamsError;
use std::collections::HashMap;

/// A record read from a source topic.
#[derive(Debug, Clone)]
pub(crate) struct InRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

/// A record a task writes: results, repartitioned records and changelog
/// entries alike. `partition: None` lets the producer pick by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

/// One state store as a task holds it: its sled tree, the changelog its
/// writes go to (none for a global table, whose source topic is its log),
/// and the stream time windowed stores close windows by.
pub(crate) struct LocalStore {
    pub tree: sled::Tree,
    pub changelog: Option<String>,
    pub stream_time: i64,
}

/// The per-record view of a task.
pub(crate) struct Ctx<'a> {
    pub partition: i32,
    pub timestamp: i64,
    pub stores: &'a mut HashMap<String, LocalStore>,
    pub out: &'a mut Vec<OutRecord>,
}

impl Ctx<'_> {
    pub fn store(&mut self, name: &str) -> Result<&mut LocalStore, StreamsError> {
        self.stores
            .get_mut(name)
            .ok_or_else(|| StreamsError::Topology(format!("store {name} is not open in this task")))
    }

    /// The bytes `key` maps to in store `name`.
    pub fn get(&mut self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        Ok(self.store(name)?.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Writes `key = value` into store `name` and queues the same entry for
    /// its changelog, on the task's own partition.
    pub fn put(&mut self, name: &str, key: Vec<u8>, value: Vec<u8>) -> Result<(), StreamsError> {
        let partition = self.partition;
        let timestamp = self.timestamp;
        let store = self.store(name)?;
        store.tree.insert(key.as_slice(), value.as_slice())?;
        if let Some(changelog) = store.changelog.clone() {
            self.out.push(OutRecord {
                topic: changelog,
                partition: Some(partition),
                key: Some(key),
                value: Some(value),
                timestamp,
            });
        }
        Ok(())
    }

    /// Removes `key` from store `name` and queues a tombstone for its
    /// changelog, if it has one (a partitioned table's topic is its
    /// changelog already).
    pub fn delete(&mut self, name: &str, key: &[u8]) -> Result<(), StreamsError> {
        let partition = self.partition;
        let timestamp = self.timestamp;
        let store = self.store(name)?;
        store.tree.remove(key)?;
        if let Some(changelog) = store.changelog.clone() {
            self.out.push(OutRecord {
                topic: changelog,
                partition: Some(partition),
                key: Some(key.to_vec()),
                value: None,
                timestamp,
            });
        }
        Ok(())
    }

    pub fn emit(&mut self, topic: &str, key: Vec<u8>, value: Vec<u8>) {
        self.out.push(OutRecord {
            topic: topic.to_string(),
            partition: None,
            key: Some(key),
            value: Some(value),
            timestamp: self.timestamp,
        });
    }
}
