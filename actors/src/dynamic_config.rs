//! Dynamic broker configs (KIP-226): broker settings changed at run time
//! with AlterConfigs / IncrementalAlterConfigs on a BROKER resource, for one
//! broker (its id as the resource name) or for all of them (the empty name).
//!
//! A broker-level value resolves, first found wins: the dynamic value of
//! this broker, the dynamic cluster default, the static value (config.yaml),
//! the built-in default. Topic configs that fall back to a broker setting
//! (`retention.ms` to `log.retention.ms`) go through the same resolution, so
//! a dynamic change reaches every topic without an override of its own.
//!
//! The values are plain data: in a cluster a field of the replicated
//! metadata image, on a single broker a record of its state database. How
//! they resolve against the static config, and how they are validated, is
//! `topic::broker_settings`'s.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The broker configs that may change at run time, by their broker names.
/// Each is the broker synonym of a topic config, whose validation and whose
/// effect (retention, segments, produce checks, ISR rules) it shares: only
/// settings the broker really honours when they change are here.
pub const DYNAMIC_KEYS: &[&str] = &[
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.roll.ms",
    "log.index.interval.bytes",
    "log.cleanup.policy",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.message.timestamp.type",
    "message.max.bytes",
    "compression.type",
    "min.insync.replicas",
    "unclean.leader.election.enable",
];

/// Whether the broker config `name` may change at run time.
pub fn is_dynamic(name: &str) -> bool {
    DYNAMIC_KEYS.contains(&name)
}

/// Where a value in force comes from: DescribeConfigs' ConfigSource ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Topic = 1,
    DynamicBroker = 2,
    DynamicDefault = 3,
    Static = 4,
    Default = 5,
}

/// The dynamic values set so far: the cluster default and per broker id.
/// Only [`DYNAMIC_KEYS`] are ever stored (AlterConfigs validates first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    /// Set on the resource named "": every broker's.
    pub cluster_default: BTreeMap<String, String>,
    /// Set on a resource named by a broker id: that broker's only.
    pub per_broker: BTreeMap<i32, BTreeMap<String, String>>,
}

impl DynamicConfigs {
    /// The values set on one resource: a broker's, or the default (`None`).
    pub fn of(&self, broker: Option<i32>) -> BTreeMap<String, String> {
        match broker {
            Some(id) => self.per_broker.get(&id).cloned().unwrap_or_default(),
            None => self.cluster_default.clone(),
        }
    }

    /// Sets (`Some`) or removes (`None`) values of one resource, key by key,
    /// so two concurrent alters of different keys both survive.
    pub fn alter(&mut self, broker: Option<i32>, changes: BTreeMap<String, Option<String>>) {
        let configs = match broker {
            Some(id) => self.per_broker.entry(id).or_default(),
            None => &mut self.cluster_default,
        };
        for (key, value) in changes {
            match value {
                Some(value) => configs.insert(key, value),
                None => configs.remove(&key),
            };
        }
        // A broker without values is not kept, so equal states compare equal.
        self.per_broker.retain(|_, configs| !configs.is_empty());
    }

    /// The changes that turn the values of `broker` into `wanted`.
    pub fn changes_to(
        &self,
        broker: Option<i32>,
        wanted: &BTreeMap<String, String>,
    ) -> BTreeMap<String, Option<String>> {
        let current = self.of(broker);
        let removed = current
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .map(|k| (k.clone(), None));
        let set = wanted
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), Some(v.clone())));
        removed.chain(set).collect()
    }

    /// The dynamic value of `name` on broker `id`, if any.
    pub fn lookup(&self, id: i32, name: &str) -> Option<(&str, Source)> {
        let own = self
            .per_broker
            .get(&id)
            .and_then(|c| c.get(name))
            .map(|v| (v.as_str(), Source::DynamicBroker));
        own.or_else(|| {
            self.cluster_default
                .get(name)
                .map(|v| (v.as_str(), Source::DynamicDefault))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn changes_replace_a_resource_key_by_key() {
        let mut dynamic = DynamicConfigs::default();
        dynamic.alter(
            None,
            configs(&[("a", "1"), ("b", "2")])
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect(),
        );
        let wanted = configs(&[("b", "2"), ("c", "3")]);
        let changes = dynamic.changes_to(None, &wanted);
        assert_eq!(
            changes,
            BTreeMap::from([("a".into(), None), ("c".into(), Some("3".into()))])
        );
        dynamic.alter(None, changes);
        assert_eq!(dynamic.of(None), wanted);
        assert!(dynamic.of(Some(1)).is_empty());
    }
}
