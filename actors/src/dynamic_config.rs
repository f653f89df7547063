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
//! metadata image, on a single broker a record of its state database.

use crate::config::BrokerConfig;
use crate::topic::config as topic_config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// The broker-level settings in force on one broker: its static config
/// under the dynamic values.
#[derive(Clone)]
pub struct Settings<'a> {
    pub config: &'a BrokerConfig,
    pub dynamic: Arc<DynamicConfigs>,
}

impl<'a> Settings<'a> {
    pub fn new(config: &'a BrokerConfig, dynamic: Arc<DynamicConfigs>) -> Settings<'a> {
        Settings { config, dynamic }
    }

    /// The static config alone, for a broker without dynamic values.
    pub fn fixed(config: &'a BrokerConfig) -> Settings<'a> {
        Settings::new(config, Arc::default())
    }

    /// Every level that gives the broker config `name` on broker `id` a
    /// value, the one in force first: its dynamic value, the dynamic
    /// cluster default, the static value `static_value`, the built-in
    /// default `builtin`. Never empty.
    pub fn levels(
        &self,
        id: i32,
        name: &str,
        static_value: String,
        builtin: String,
    ) -> Vec<(String, Source)> {
        let mut levels = Vec::new();
        if let Some(value) = self.dynamic.per_broker.get(&id).and_then(|c| c.get(name)) {
            levels.push((value.clone(), Source::DynamicBroker));
        }
        if let Some(value) = self.dynamic.cluster_default.get(name) {
            levels.push((value.clone(), Source::DynamicDefault));
        }
        // A static value equal to the built-in one is reported as the
        // default: the parsed config no longer says whether it was written.
        if static_value != builtin {
            levels.push((static_value, Source::Static));
        }
        levels.push((builtin, Source::Default));
        levels
    }

    /// The levels ([`Settings::levels`]) of a broker config that is the
    /// synonym of a topic config; `None` for any other name.
    pub fn synonym_levels(&self, id: i32, broker_name: &str) -> Option<Vec<(String, Source)>> {
        let of = |config: &BrokerConfig| {
            topic_config::keys(config)
                .into_iter()
                .find(|k| k.broker_name == broker_name)
                .map(|k| k.default)
        };
        let static_value = of(self.config)?;
        let builtin = of(&BrokerConfig::default())?;
        Some(self.levels(id, broker_name, static_value, builtin))
    }

    /// The broker-level default of the topic config `name` on this broker:
    /// the first of its levels, found without building the others (every
    /// topic config resolution goes through here); `None` for an unknown key.
    pub fn topic_default(&self, name: &str) -> Option<String> {
        let key = topic_config::keys(self.config)
            .into_iter()
            .find(|k| k.name == name)?;
        let dynamic = self.dynamic.lookup(self.config.node_id, key.broker_name);
        Some(dynamic.map_or(key.default, |(value, _)| value.to_string()))
    }
}

/// Checks one dynamic broker value with the validation of its topic
/// synonym. `Err` holds the Kafka error to answer and its message.
pub fn validate(config: &BrokerConfig, name: &str, value: &str) -> Result<(), KeyError> {
    if !is_dynamic(name) {
        return Err(KeyError::NotDynamic);
    }
    let synonym = topic_config::keys(config)
        .into_iter()
        .find(|k| k.broker_name == name)
        .map(|k| k.name)
        .ok_or(KeyError::NotDynamic)?;
    topic_config::validate(config, synonym, value)
        .map_err(|_| KeyError::Invalid(format!("invalid value '{value}' for '{name}'")))
}

/// Why a key of a broker resource cannot be set.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// A broker config that only config.yaml sets, or none at all.
    NotDynamic,
    Invalid(String),
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
    fn per_broker_then_default_then_static_then_builtin() {
        let config = BrokerConfig {
            node_id: 2,
            retention_bytes: 5000,
            ..BrokerConfig::default()
        };
        let mut dynamic = DynamicConfigs::default();
        // The value in force and where it comes from, checking that the
        // short way to the value agrees with the first of the levels.
        let in_force = |d: &DynamicConfigs, topic_key: &str, broker_key: &str| {
            let settings = Settings::new(&config, Arc::new(d.clone()));
            let levels = settings.synonym_levels(2, broker_key).unwrap();
            assert_eq!(settings.topic_default(topic_key), Some(levels[0].0.clone()));
            levels
        };
        let week = BrokerConfig::default().retention_ms.to_string();
        let ms = |d: &DynamicConfigs| in_force(d, "retention.ms", "log.retention.ms");
        assert_eq!(ms(&dynamic), vec![(week.clone(), Source::Default)]);
        assert_eq!(
            in_force(&dynamic, "retention.bytes", "log.retention.bytes"),
            vec![
                ("5000".to_string(), Source::Static),
                ("-1".to_string(), Source::Default)
            ]
        );
        dynamic.alter(
            None,
            [("log.retention.ms".into(), Some("100".into()))].into(),
        );
        assert_eq!(ms(&dynamic)[0], ("100".to_string(), Source::DynamicDefault));
        // Another broker's value does not apply here; this one's does.
        dynamic.alter(
            Some(3),
            [("log.retention.ms".into(), Some("7".into()))].into(),
        );
        assert_eq!(ms(&dynamic)[0].1, Source::DynamicDefault);
        dynamic.alter(
            Some(2),
            [("log.retention.ms".into(), Some("50".into()))].into(),
        );
        assert_eq!(
            ms(&dynamic),
            vec![
                ("50".to_string(), Source::DynamicBroker),
                ("100".to_string(), Source::DynamicDefault),
                (week, Source::Default)
            ]
        );
        dynamic.alter(Some(2), [("log.retention.ms".into(), None)].into());
        assert_eq!(ms(&dynamic)[0].0, "100");
        assert!(!dynamic.per_broker.contains_key(&2), "emptied, not kept");
        let settings = Settings::new(&config, Arc::new(dynamic));
        assert_eq!(settings.topic_default("no.such.key"), None);
        assert_eq!(settings.synonym_levels(2, "node.id"), None);
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

    #[test]
    fn only_dynamic_keys_with_valid_values() {
        let config = BrokerConfig::default();
        assert_eq!(validate(&config, "log.retention.ms", "1000"), Ok(()));
        assert!(matches!(
            validate(&config, "log.retention.ms", "soon"),
            Err(KeyError::Invalid(_))
        ));
        assert_eq!(validate(&config, "compression.type", "zstd"), Ok(()));
        assert!(validate(&config, "compression.type", "brotli").is_err());
        assert_eq!(validate(&config, "node.id", "2"), Err(KeyError::NotDynamic));
        assert_eq!(
            validate(&config, "log.dirs", "/"),
            Err(KeyError::NotDynamic)
        );
        // Every dynamic key has a topic synonym whose checks it borrows.
        let keys = topic_config::keys(&config);
        for name in DYNAMIC_KEYS {
            assert!(keys.iter().any(|k| k.broker_name == *name), "{name}");
        }
    }
}
