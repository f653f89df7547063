//! The broker-level settings in force on one broker (KIP-226): its static
//! config under the dynamic values of [`crate::dynamic_config`], resolved
//! for DescribeConfigs and for every topic config that falls back to a
//! broker default, and the validation of a dynamic value, which borrows its
//! topic synonym's.

use super::config as topic_config;
use crate::config::BrokerConfig;
use crate::dynamic_config::{is_dynamic, DynamicConfigs, Source};
use std::sync::Arc;

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
    use crate::dynamic_config::DYNAMIC_KEYS;

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
