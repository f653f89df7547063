//! Per-topic configuration keys: their broker-wide defaults and validation
//! of overrides given at CreateTopics.

use crate::config::BrokerConfig;
use crate::partition::log::LogConfig;
use kafka_protocol::records::Compression;
use std::collections::BTreeMap;

/// Kafka's config value types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One known topic config key.
pub struct ConfigKey {
    pub name: &'static str,
    pub kind: ConfigType,
    pub default: String,
}

// Kafka's defaults of the keys no broker setting changes, for
// DescribeConfigs and for the cleanup settings alike.
const DELETE_RETENTION_MS: i64 = 86_400_000;
const MIN_COMPACTION_LAG_MS: i64 = 0;
const MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;

/// Every topic config key this broker knows, with its current default.
pub fn keys(config: &BrokerConfig) -> Vec<ConfigKey> {
    use ConfigType::{Double, Int, List, Long, String as Text};
    vec![
        key("cleanup.policy", List, "delete"),
        key("compression.type", Text, "producer"),
        key("delete.retention.ms", Long, DELETE_RETENTION_MS),
        key("max.message.bytes", Int, config.message_max_bytes),
        key("message.timestamp.type", Text, "CreateTime"),
        key(
            "min.cleanable.dirty.ratio",
            Double,
            MIN_CLEANABLE_DIRTY_RATIO,
        ),
        key("min.compaction.lag.ms", Long, MIN_COMPACTION_LAG_MS),
        key("min.insync.replicas", Int, 1),
        key("retention.bytes", Long, config.retention_bytes),
        key("retention.ms", Long, config.retention_ms),
        key("segment.bytes", Int, config.segment_bytes),
        key("segment.ms", Long, config.segment_ms),
    ]
}

fn key(name: &'static str, kind: ConfigType, default: impl ToString) -> ConfigKey {
    ConfigKey {
        name,
        kind,
        default: default.to_string(),
    }
}

/// The value in force for `name`: the topic's override or the default.
pub fn effective(
    config: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Option<String> {
    overrides.get(name).cloned().or_else(|| {
        keys(config)
            .into_iter()
            .find(|k| k.name == name)
            .map(|k| k.default)
    })
}

/// Segment settings of a topic's partitions (`segment.bytes`, `segment.ms`).
pub fn log_config(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let number = |name, default| {
        effective(config, overrides, name)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    LogConfig {
        segment_bytes: number("segment.bytes", config.segment_bytes),
        segment_ms: number("segment.ms", config.segment_ms),
        index_interval_bytes: config.index_interval_bytes,
    }
}

/// How a topic's partitions are cleaned up (`cleanup.policy` and friends).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanup {
    /// `delete` in the policy: retention by time and size applies.
    pub delete: bool,
    /// `compact` in the policy: only the latest record per key is kept.
    pub compact: bool,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: compact once this share of the closed
    /// segments has not been compacted yet.
    pub min_cleanable_dirty_ratio: f64,
}

pub fn cleanup(config: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Cleanup {
    let get = |name| effective(config, overrides, name).unwrap_or_default();
    let number = |name, default| get(name).parse().unwrap_or(default);
    let policy = get("cleanup.policy");
    Cleanup {
        delete: policy.split(',').any(|p| p == "delete"),
        compact: policy.split(',').any(|p| p == "compact"),
        retention_ms: number("retention.ms", config.retention_ms),
        retention_bytes: number("retention.bytes", config.retention_bytes),
        delete_retention_ms: number("delete.retention.ms", DELETE_RETENTION_MS),
        min_compaction_lag_ms: number("min.compaction.lag.ms", MIN_COMPACTION_LAG_MS),
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .parse()
            .unwrap_or(MIN_CLEANABLE_DIRTY_RATIO),
    }
}

/// What the produce path needs to know of a topic's configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceSettings {
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `compression.type` other than `producer`: recompress to this.
    pub compression: Option<Compression>,
}

pub fn produce_settings(
    config: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> ProduceSettings {
    let get = |name| effective(config, overrides, name).unwrap_or_default();
    ProduceSettings {
        max_message_bytes: get("max.message.bytes")
            .parse()
            .unwrap_or(config.message_max_bytes as usize),
        log_append_time: get("message.timestamp.type") == "LogAppendTime",
        compression: match get("compression.type").as_str() {
            "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        },
    }
}

/// Checks that `name` is a known key and `value` parses as its type.
pub fn validate(config: &BrokerConfig, name: &str, value: &str) -> Result<(), String> {
    let keys = keys(config);
    let key = keys
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| format!("unknown topic config '{name}'"))?;
    let allowed: &[&str] = match name {
        "compression.type" => &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
        "message.timestamp.type" => &["CreateTime", "LogAppendTime"],
        "cleanup.policy" => &["delete", "compact", "compact,delete", "delete,compact"],
        _ => &[],
    };
    if !allowed.is_empty() && !allowed.contains(&value) {
        return Err(format!(
            "invalid value '{value}' for topic config '{name}'; allowed: {}",
            allowed.join(", ")
        ));
    }
    let ok = match key.kind {
        ConfigType::Int => value.parse::<i32>().is_ok(),
        ConfigType::Long => value.parse::<i64>().is_ok(),
        ConfigType::Double => value.parse::<f64>().is_ok(),
        ConfigType::String | ConfigType::List => !value.is_empty(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value '{value}' for topic config '{name}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names_and_types() {
        let config = BrokerConfig::default();
        assert!(validate(&config, "retention.ms", "1000").is_ok());
        assert!(validate(&config, "retention.ms", "soon").is_err());
        assert!(validate(&config, "no.such.key", "1").is_err());
        assert!(validate(&config, "min.cleanable.dirty.ratio", "0.1").is_ok());
    }

    #[test]
    fn enumerated_values() {
        let config = BrokerConfig::default();
        assert!(validate(&config, "compression.type", "zstd").is_ok());
        assert!(validate(&config, "compression.type", "brotli").is_err());
        let overrides = BTreeMap::from([
            ("compression.type".to_string(), "zstd".to_string()),
            (
                "message.timestamp.type".to_string(),
                "LogAppendTime".to_string(),
            ),
            ("max.message.bytes".to_string(), "100".to_string()),
        ]);
        let settings = produce_settings(&config, &overrides);
        assert_eq!(settings.compression, Some(Compression::Zstd));
        assert!(settings.log_append_time);
        assert_eq!(settings.max_message_bytes, 100);
        assert_eq!(
            produce_settings(&config, &BTreeMap::new()).compression,
            None
        );
    }

    #[test]
    fn overrides_win_over_defaults() {
        let config = BrokerConfig::default();
        let overrides = BTreeMap::from([
            ("retention.ms".to_string(), "1000".to_string()),
            ("cleanup.policy".to_string(), "compact".to_string()),
        ]);
        let set = cleanup(&config, &overrides);
        assert_eq!((set.retention_ms, set.retention_bytes), (1000, -1));
        assert!(set.compact && !set.delete);
        let segments = BTreeMap::from([("segment.bytes".to_string(), "4096".to_string())]);
        assert_eq!(log_config(&config, &segments).segment_bytes, 4096);
        assert_eq!(
            log_config(&config, &BTreeMap::new()).segment_ms,
            config.segment_ms
        );
        let defaults = cleanup(&config, &BTreeMap::new());
        assert_eq!(defaults.retention_ms, config.retention_ms);
        assert!(defaults.delete && !defaults.compact);
    }
}
