//! A topic as the broker serves it: its partitions' actor addresses and the
//! offsets each partition publishes for long-polling fetches. Below it, the
//! durable [`catalog`] of topics and the per-topic [`config`] keys.

pub mod broker_settings;
pub mod catalog;
pub mod config;

// They lived here once; the partition module owns them now.
pub use crate::partition::{LogOffsets, PartitionHandle, LEADER_EPOCH};

use crate::topic::config::ProduceSettings;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// Longest topic name Kafka accepts.
const MAX_NAME_LEN: usize = 249;

/// A live topic. Immutable: adding partitions replaces the whole value.
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    /// By partition index; `None` where this broker holds no replica (in a
    /// cluster). A single broker holds them all.
    pub partitions: Vec<Option<PartitionHandle>>,
    pub configs: BTreeMap<String, String>,
    /// Derived from `configs` (and the broker defaults) once, not per request.
    pub produce: ProduceSettings,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&PartitionHandle> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(Option::as_ref)
    }

    /// The partition's handle, or the error a client gets for it:
    /// UNKNOWN_TOPIC_OR_PARTITION past the partition count,
    /// NOT_LEADER_OR_FOLLOWER for a partition this broker holds no replica of.
    pub fn replica(&self, index: i32) -> Result<&PartitionHandle, kafka_protocol::ResponseError> {
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .ok_or(kafka_protocol::ResponseError::UnknownTopicOrPartition)?;
        slot.as_ref()
            .ok_or(kafka_protocol::ResponseError::NotLeaderOrFollower)
    }

    /// Whether the topic has a partition `index` (held here or not).
    pub fn has_partition(&self, index: i32) -> bool {
        usize::try_from(index).is_ok_and(|i| i < self.partitions.len())
    }

    /// The handles of the partitions held here.
    pub fn local_partitions(&self) -> impl Iterator<Item = &PartitionHandle> {
        self.partitions.iter().flatten()
    }
}

/// Checks a topic name the way Kafka does: 1 to 249 characters of
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name '{name}' is illegal"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "topic name is {} characters long, more than the maximum {MAX_NAME_LEN}",
            name.len()
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "topic name '{name}' contains '{c}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("orders.v1_2-x").is_ok());
        for bad in ["", ".", "..", "a/b", "spa ce", "é"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(249)).is_ok());
        assert!(validate_name(&"a".repeat(250)).is_err());
    }
}
