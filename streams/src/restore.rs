//! Reading topics into sled trees: a task's store from its changelog
//! partition before the task processes, and global tables from their
//! topics.

use crate::clients::partition_count;
use crate::error::StreamsError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one poll of a reader waits.
const POLL: Duration = Duration::from_millis(100);

/// Applies one record to `tree`: a value sets the key, no value deletes it.
fn apply(tree: &sled::Tree, key: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError> {
    match value {
        Some(value) => tree.insert(key, value).map(|_| ()),
        None => tree.remove(key).map(|_| ()),
    }?;
    Ok(())
}

/// What a restore read.
pub(crate) struct Restored {
    pub records: u64,
    /// Where to go on reading the changelog from.
    pub next: Offset,
}

/// Replaces the contents of `tree` with partition `partition` of
/// `changelog`, read from its start to its end (its last stable offset
/// when reading committed records).
pub(crate) fn restore(
    reader: &BaseConsumer,
    changelog: &str,
    partition: i32,
    tree: &sled::Tree,
) -> Result<Restored, StreamsError> {
    tree.clear()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(changelog, partition, Offset::Beginning)?;
    reader.assign(&assignment)?;
    let mut restored = Restored {
        records: 0,
        next: Offset::Beginning,
    };
    loop {
        match reader.poll(POLL) {
            Some(Ok(record)) => {
                apply(tree, record.key().unwrap_or_default(), record.payload())?;
                restored.records += 1;
                restored.next = Offset::Offset(record.offset() + 1);
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    reader.unassign()?;
    Ok(restored)
}

/// A global table's source: which topic fills which tree.
pub(crate) struct TableSource {
    pub topic: String,
    pub tree: sled::Tree,
}

/// Reads every partition of `topic` from its start into `tree` until each
/// reached its end; returns where to go on reading.
fn load_table(
    reader: &BaseConsumer,
    topic: &str,
    tree: &sled::Tree,
) -> Result<TopicPartitionList, StreamsError> {
    let partitions = i32::try_from(partition_count(reader, topic)?)
        .map_err(|_| StreamsError::Topology(format!("{topic} has too many partitions")))?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    reader.assign(&assignment)?;
    let mut pending: HashSet<i32> = (0..partitions).collect();
    while !pending.is_empty() {
        match reader.poll(POLL) {
            Some(Ok(record)) => apply(tree, record.key().unwrap_or_default(), record.payload())?,
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                pending.remove(&partition);
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(reader.position()?)
}

/// Loads each table's topic into its tree, calls `loaded`, then keeps
/// following the topics until `stop` is set.
pub(crate) fn follow_tables(
    reader: BaseConsumer,
    tables: Vec<TableSource>,
    stop: Arc<AtomicBool>,
    loaded: impl FnOnce(Result<(), StreamsError>),
) {
    let mut trees = HashMap::new();
    let mut positions = TopicPartitionList::new();
    for table in tables {
        match load_table(&reader, &table.topic, &table.tree) {
            Ok(list) => {
                for element in list.elements() {
                    let added = positions.add_partition_offset(
                        element.topic(),
                        element.partition(),
                        element.offset(),
                    );
                    if let Err(e) = added {
                        return loaded(Err(e.into()));
                    }
                }
            }
            Err(e) => return loaded(Err(e)),
        }
        trees.insert(table.topic, table.tree);
    }
    if let Err(e) = reader.assign(&positions) {
        return loaded(Err(e.into()));
    }
    loaded(Ok(()));
    while !stop.load(Ordering::Relaxed) {
        let applied = match reader.poll(POLL) {
            Some(Ok(record)) => match trees.get(record.topic()) {
                Some(tree) => apply(tree, record.key().unwrap_or_default(), record.payload()),
                None => Ok(()),
            },
            Some(Err(KafkaError::PartitionEOF(_))) | None => Ok(()),
            Some(Err(e)) => Err(e.into()),
        };
        if let Err(e) = applied {
            log::warn!("following a global table: {e}");
        }
    }
}
