//! Per-topic configuration keys: their broker-wide defaults and validation
//! of overrides given at CreateTopics.

use super::broker_settings::Settings;
use crate::config::BrokerConfig;
use crate::partition::local_log::LogConfig;
use crate::partition::Cleanup;
use kafka_protocol::records::Compression;
use std::collections::BTreeMap;

/// Kafka's config value types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One known topic config key.
pub struct ConfigKey {
    pub name: &'static str,
    /// The broker setting that gives its default (Kafka's synonym).
    pub broker_name: &'static str,
    pub kind: ConfigType,
    pub default: String,
}

// Kafka's defaults of the keys no broker setting changes, for
// DescribeConfigs and for the cleanup settings alike.
const DELETE_RETENTION_MS: i64 = 86_400_000;
const MIN_COMPACTION_LAG_MS: i64 = 0;
const MAX_COMPACTION_LAG_MS: i64 = i64::MAX;
const MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;

/// Every topic config key Kafka 4.0 has, with its current default. Those
/// listed under "accepted" below are stored and reported like the others
/// but change nothing here: they tune what this broker does not have
/// (replication, tiered storage, flush policies, preallocation) or does
/// its own way. The deprecated keys at the end are there because older
/// clients and tools still set them: Kafka 4.0 ignores them too (it writes
/// only message format v2 and never down-converts), and refusing them would
/// fail a whole CreateTopics or AlterConfigs for a no-op.
pub fn keys(config: &BrokerConfig) -> Vec<ConfigKey> {
    use ConfigType::{Boolean, Double, Int, List, Long, String as Text};
    vec![
        key("cleanup.policy", "log.cleanup.policy", List, "delete"),
        key("compression.type", "compression.type", Text, "producer"),
        key(
            "delete.retention.ms",
            "log.cleaner.delete.retention.ms",
            Long,
            DELETE_RETENTION_MS,
        ),
        key(
            "index.interval.bytes",
            "log.index.interval.bytes",
            Int,
            config.index_interval_bytes,
        ),
        key(
            "max.message.bytes",
            "message.max.bytes",
            Int,
            config.message_max_bytes,
        ),
        key(
            "max.compaction.lag.ms",
            "log.cleaner.max.compaction.lag.ms",
            Long,
            MAX_COMPACTION_LAG_MS,
        ),
        key(
            "message.timestamp.type",
            "log.message.timestamp.type",
            Text,
            "CreateTime",
        ),
        key(
            "min.cleanable.dirty.ratio",
            "log.cleaner.min.cleanable.ratio",
            Double,
            MIN_CLEANABLE_DIRTY_RATIO,
        ),
        key(
            "min.compaction.lag.ms",
            "log.cleaner.min.compaction.lag.ms",
            Long,
            MIN_COMPACTION_LAG_MS,
        ),
        key("min.insync.replicas", "min.insync.replicas", Int, 1),
        key(
            "retention.bytes",
            "log.retention.bytes",
            Long,
            config.retention_bytes,
        ),
        key(
            "retention.ms",
            "log.retention.ms",
            Long,
            config.retention_ms,
        ),
        key(
            "segment.bytes",
            "log.segment.bytes",
            Int,
            config.segment_bytes,
        ),
        key("segment.ms", "log.roll.ms", Long, config.segment_ms),
        // Accepted.
        key("compression.gzip.level", "compression.gzip.level", Int, -1),
        key("compression.lz4.level", "compression.lz4.level", Int, 9),
        key("compression.zstd.level", "compression.zstd.level", Int, 3),
        key(
            "file.delete.delay.ms",
            "log.segment.delete.delay.ms",
            Long,
            60_000,
        ),
        key(
            "flush.messages",
            "log.flush.interval.messages",
            Long,
            i64::MAX,
        ),
        key("flush.ms", "log.flush.interval.ms", Long, i64::MAX),
        key(
            "follower.replication.throttled.replicas",
            "follower.replication.throttled.replicas",
            List,
            "",
        ),
        key(
            "leader.replication.throttled.replicas",
            "leader.replication.throttled.replicas",
            List,
            "",
        ),
        key(
            "local.retention.bytes",
            "log.local.retention.bytes",
            Long,
            -2,
        ),
        key("local.retention.ms", "log.local.retention.ms", Long, -2),
        key(
            "message.timestamp.after.max.ms",
            "log.message.timestamp.after.max.ms",
            Long,
            3_600_000,
        ),
        key(
            "message.timestamp.before.max.ms",
            "log.message.timestamp.before.max.ms",
            Long,
            i64::MAX,
        ),
        key("preallocate", "log.preallocate", Boolean, false),
        key(
            "remote.log.copy.disable",
            "remote.log.copy.disable",
            Boolean,
            false,
        ),
        key(
            "remote.log.delete.on.disable",
            "remote.log.delete.on.disable",
            Boolean,
            false,
        ),
        key(
            "remote.storage.enable",
            "remote.storage.enable",
            Boolean,
            false,
        ),
        key(
            "segment.index.bytes",
            "log.index.size.max.bytes",
            Int,
            10_485_760,
        ),
        key("segment.jitter.ms", "log.roll.jitter.ms", Long, 0),
        key(
            "unclean.leader.election.enable",
            "unclean.leader.election.enable",
            Boolean,
            false,
        ),
        // Accepted, deprecated: their last defaults in Kafka 3.x.
        key(
            "message.downconversion.enable",
            "log.message.downconversion.enable",
            Boolean,
            true,
        ),
        key(
            "message.format.version",
            "log.message.format.version",
            Text,
            "3.0-IV1",
        ),
    ]
}

fn key(
    name: &'static str,
    broker_name: &'static str,
    kind: ConfigType,
    default: impl ToString,
) -> ConfigKey {
    ConfigKey {
        name,
        broker_name,
        kind,
        default: default.to_string(),
    }
}

/// The value in force for `name`: the topic's override or else the
/// broker's default, dynamic or static ([`Settings::topic_default`]).
pub fn effective(
    settings: &Settings,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Option<String> {
    overrides
        .get(name)
        .cloned()
        .or_else(|| settings.topic_default(name))
}

/// Segment settings of a topic's partitions (`segment.bytes`, `segment.ms`,
/// `index.interval.bytes`). A compacted topic's active segment also rolls
/// once its first record reaches `max.compaction.lag.ms`, as in Kafka, since
/// the cleaner never touches the active segment.
pub fn log_config(settings: &Settings, overrides: &BTreeMap<String, String>) -> LogConfig {
    let config = settings.config;
    let number = |name, default| {
        effective(settings, overrides, name)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    let segment_ms = number("segment.ms", config.segment_ms);
    let compacted = effective(settings, overrides, "cleanup.policy")
        .is_some_and(|p| p.split(',').any(|p| p == "compact"));
    LogConfig {
        segment_bytes: number("segment.bytes", config.segment_bytes),
        segment_ms: if compacted {
            segment_ms.min(number("max.compaction.lag.ms", u64::MAX))
        } else {
            segment_ms
        },
        index_interval_bytes: u32::try_from(number(
            "index.interval.bytes",
            u64::from(config.index_interval_bytes),
        ))
        .unwrap_or(config.index_interval_bytes),
    }
}

pub fn cleanup(settings: &Settings, overrides: &BTreeMap<String, String>) -> Cleanup {
    let config = settings.config;
    let get = |name| effective(settings, overrides, name).unwrap_or_default();
    let number = |name, default| get(name).parse().unwrap_or(default);
    let policy = get("cleanup.policy");
    Cleanup {
        delete: policy.split(',').any(|p| p == "delete"),
        compact: policy.split(',').any(|p| p == "compact"),
        retention_ms: number("retention.ms", config.retention_ms),
        retention_bytes: number("retention.bytes", config.retention_bytes),
        delete_retention_ms: number("delete.retention.ms", DELETE_RETENTION_MS),
        min_compaction_lag_ms: number("min.compaction.lag.ms", MIN_COMPACTION_LAG_MS),
        max_compaction_lag_ms: number("max.compaction.lag.ms", MAX_COMPACTION_LAG_MS),
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
    /// `compact` in `cleanup.policy`: every record needs a key.
    pub compacted: bool,
}

pub fn produce_settings(
    settings: &Settings,
    overrides: &BTreeMap<String, String>,
) -> ProduceSettings {
    let config = settings.config;
    let get = |name| effective(settings, overrides, name).unwrap_or_default();
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
        compacted: get("cleanup.policy").split(',').any(|p| p == "compact"),
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
        "cleanup.policy" => &["delete", "compact"],
        _ => &[],
    };
    // A list names each allowed value at most once; an empty cleanup.policy
    // means neither deletion nor compaction, as in Kafka.
    let values: Vec<&str> = match key.kind {
        ConfigType::List => value.split(',').filter(|v| !v.is_empty()).collect(),
        _ => vec![value],
    };
    if !allowed.is_empty() && values.iter().any(|v| !allowed.contains(v)) {
        return Err(format!(
            "invalid value '{value}' for topic config '{name}'; allowed: {}",
            allowed.join(", ")
        ));
    }
    let ok = match key.kind {
        ConfigType::Int => value.parse::<i32>().is_ok(),
        ConfigType::Long => value.parse::<i64>().is_ok(),
        ConfigType::Double => value.parse::<f64>().is_ok(),
        ConfigType::Boolean => value == "true" || value == "false",
        ConfigType::String => !value.is_empty(),
        ConfigType::List => true,
    };
    if !ok {
        return Err(format!("invalid value '{value}' for topic config '{name}'"));
    }
    match range(name) {
        Some((low, high, allowed)) => {
            let number: f64 = value.parse().unwrap_or(f64::NAN);
            if (low..=high).contains(&number) {
                Ok(())
            } else {
                Err(format!(
                    "invalid value '{value}' for topic config '{name}'; allowed: {allowed}"
                ))
            }
        }
        None => Ok(()),
    }
}

/// The values Kafka accepts for the cleaner's numeric keys, and how its
/// error message names them.
fn range(name: &str) -> Option<(f64, f64, &'static str)> {
    let whole = i64::MAX as f64;
    match name {
        "min.cleanable.dirty.ratio" => Some((0.0, 1.0, "between 0 and 1")),
        "min.compaction.lag.ms" | "delete.retention.ms" => Some((0.0, whole, "0 or more")),
        "max.compaction.lag.ms" | "segment.ms" => Some((1.0, whole, "1 or more")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(config: &BrokerConfig) -> Settings<'_> {
        Settings::fixed(config)
    }

    #[test]
    fn validates_names_and_types() {
        let config = BrokerConfig::default();
        assert!(validate(&config, "retention.ms", "1000").is_ok());
        assert!(validate(&config, "retention.ms", "soon").is_err());
        assert!(validate(&config, "no.such.key", "1").is_err());
        assert!(validate(&config, "min.cleanable.dirty.ratio", "0.1").is_ok());
        for (name, good, bad) in [
            ("min.cleanable.dirty.ratio", ["0", "1"], ["1.5", "-0.1"]),
            (
                "min.compaction.lag.ms",
                ["0", "9223372036854775807"],
                ["-1", "1.5"],
            ),
            (
                "max.compaction.lag.ms",
                ["1", "9223372036854775807"],
                ["0", "-5"],
            ),
            ("delete.retention.ms", ["0", "1000"], ["-1", "x"]),
            ("segment.ms", ["1", "1000"], ["0", "-1"]),
        ] {
            for value in good {
                assert!(validate(&config, name, value).is_ok(), "{name}={value}");
            }
            for value in bad {
                let error = validate(&config, name, value).unwrap_err();
                assert!(error.contains(name), "{name}={value}: {error}");
            }
        }
        assert!(validate(&config, "min.cleanable.dirty.ratio", "NaN").is_err());
        assert!(validate(&config, "file.delete.delay.ms", "12345").is_ok());
        assert!(validate(&config, "preallocate", "yes").is_err());
        assert!(validate(&config, "leader.replication.throttled.replicas", "").is_ok());
    }

    #[test]
    fn deprecated_keys_are_accepted_and_change_nothing() {
        let config = BrokerConfig::default();
        assert!(validate(&config, "message.format.version", "2.8").is_ok());
        assert!(validate(&config, "message.format.version", "").is_err());
        assert!(validate(&config, "message.downconversion.enable", "false").is_ok());
        assert!(validate(&config, "message.downconversion.enable", "no").is_err());
        let defaults = BTreeMap::new();
        let deprecated = BTreeMap::from([
            ("message.format.version".to_string(), "0.10.2".to_string()),
            (
                "message.downconversion.enable".to_string(),
                "false".to_string(),
            ),
        ]);
        assert_eq!(
            effective(&fixed(&config), &defaults, "message.format.version").as_deref(),
            Some("3.0-IV1")
        );
        assert_eq!(
            effective(&fixed(&config), &defaults, "message.downconversion.enable").as_deref(),
            Some("true")
        );
        assert_eq!(
            produce_settings(&fixed(&config), &deprecated),
            produce_settings(&fixed(&config), &defaults)
        );
        assert_eq!(
            cleanup(&fixed(&config), &deprecated),
            cleanup(&fixed(&config), &defaults)
        );
        let (with, without) = (
            log_config(&fixed(&config), &deprecated),
            log_config(&fixed(&config), &defaults),
        );
        assert_eq!(
            (
                with.segment_bytes,
                with.segment_ms,
                with.index_interval_bytes
            ),
            (
                without.segment_bytes,
                without.segment_ms,
                without.index_interval_bytes
            )
        );
    }

    #[test]
    fn enumerated_values() {
        let config = BrokerConfig::default();
        assert!(validate(&config, "compression.type", "zstd").is_ok());
        assert!(validate(&config, "compression.type", "brotli").is_err());
        for policy in ["delete", "compact,delete", "", "delete,compact"] {
            assert!(
                validate(&config, "cleanup.policy", policy).is_ok(),
                "{policy}"
            );
        }
        assert!(validate(&config, "cleanup.policy", "delete,shred").is_err());
        let overrides = BTreeMap::from([
            ("compression.type".to_string(), "zstd".to_string()),
            (
                "message.timestamp.type".to_string(),
                "LogAppendTime".to_string(),
            ),
            ("max.message.bytes".to_string(), "100".to_string()),
        ]);
        let settings = produce_settings(&fixed(&config), &overrides);
        assert_eq!(settings.compression, Some(Compression::Zstd));
        assert!(settings.log_append_time);
        assert_eq!(settings.max_message_bytes, 100);
        assert!(!settings.compacted);
        let compacted =
            BTreeMap::from([("cleanup.policy".to_string(), "delete,compact".to_string())]);
        assert!(produce_settings(&fixed(&config), &compacted).compacted);
        assert_eq!(
            produce_settings(&fixed(&config), &BTreeMap::new()).compression,
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
        let set = cleanup(&fixed(&config), &overrides);
        assert_eq!((set.retention_ms, set.retention_bytes), (1000, -1));
        assert!(set.compact && !set.delete);
        assert_eq!(set.max_compaction_lag_ms, i64::MAX);
        // A compacted topic's segments roll by max.compaction.lag.ms too.
        let lagged = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.ms".to_string(), "60000".to_string()),
            ("max.compaction.lag.ms".to_string(), "5000".to_string()),
        ]);
        assert_eq!(log_config(&fixed(&config), &lagged).segment_ms, 5000);
        assert_eq!(
            cleanup(&fixed(&config), &lagged).max_compaction_lag_ms,
            5000
        );
        let deleting = BTreeMap::from([
            ("segment.ms".to_string(), "60000".to_string()),
            ("max.compaction.lag.ms".to_string(), "5000".to_string()),
        ]);
        assert_eq!(log_config(&fixed(&config), &deleting).segment_ms, 60000);
        let segments = BTreeMap::from([("segment.bytes".to_string(), "4096".to_string())]);
        assert_eq!(log_config(&fixed(&config), &segments).segment_bytes, 4096);
        assert_eq!(
            log_config(&fixed(&config), &BTreeMap::new()).segment_ms,
            config.segment_ms
        );
        let defaults = cleanup(&fixed(&config), &BTreeMap::new());
        assert_eq!(defaults.retention_ms, config.retention_ms);
        assert!(defaults.delete && !defaults.compact);
    }

    #[test]
    fn dynamic_broker_defaults_reach_topics_without_overrides() {
        use crate::dynamic_config::DynamicConfigs;
        let config = BrokerConfig::default();
        let mut dynamic = DynamicConfigs::default();
        dynamic.alter(
            None,
            BTreeMap::from([
                ("log.retention.ms".to_string(), Some("1000".to_string())),
                ("compression.type".to_string(), Some("zstd".to_string())),
            ]),
        );
        let settings = Settings::new(&config, std::sync::Arc::new(dynamic));
        assert_eq!(cleanup(&settings, &BTreeMap::new()).retention_ms, 1000);
        let own = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        assert_eq!(
            cleanup(&settings, &own).retention_ms,
            5,
            "the topic's own wins"
        );
        assert_eq!(
            produce_settings(&settings, &BTreeMap::new()).compression,
            Some(Compression::Zstd)
        );
    }
}
