//! DescribeConfigs for topics (overrides and defaults) and for the broker
//! (its static settings under the dynamic ones, KIP-226), each value with
//! where it comes from.

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::dynamic_config::{self, Source};
use crate::protocol::resource_type;
use crate::security::listeners::Listener;
use crate::security::{Access, Operation};
use crate::topic::broker_settings::Settings;
use crate::topic::{self, config::ConfigType};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// One value of a config: the name it is set under, the value, its source.
type Level = (String, String, Source);

pub fn handle(
    broker: &Broker,
    access: &Access,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let settings = broker.settings();
    // The first level is the value in force; the synonyms are all levels,
    // in Kafka's order, when asked for.
    let entry = |name: &str, levels: Vec<Level>, kind: ConfigType, read_only: bool| {
        let (_, value, source) = levels.first()?;
        let result = DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_value(Some(StrBytes::from_string(value.clone())))
            .with_config_source(*source as i8)
            .with_config_type(kind as i8)
            .with_read_only(read_only);
        if !req.include_synonyms {
            return Some(result);
        }
        let synonyms = levels
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source as i8)
            })
            .collect();
        Some(result.with_synonyms(synonyms))
    };
    let results = req
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let allowed = super::config_access(
                access,
                Operation::DescribeConfigs,
                resource.resource_type,
                &resource.resource_name,
            );
            if let Err(error) = allowed {
                return failed(result, error, "not authorized");
            }
            let wanted = |name: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            match resource.resource_type {
                resource_type::TOPIC => match broker.topic(&resource.resource_name) {
                    Some(topic) => result.with_configs(
                        topic::config::keys(broker.config())
                            .into_iter()
                            .filter(|k| wanted(k.name))
                            .filter_map(|k| {
                                let own = topic
                                    .configs
                                    .get(k.name)
                                    .map(|v| (k.name.to_string(), v.clone(), Source::Topic));
                                let inherited = settings
                                    .synonym_levels(broker.config().node_id, k.broker_name)
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|(v, source)| (k.broker_name.to_string(), v, source));
                                entry(
                                    k.name,
                                    own.into_iter().chain(inherited).collect(),
                                    k.kind,
                                    false,
                                )
                            })
                            .collect(),
                    ),
                    None => failed(
                        result,
                        ResponseError::UnknownTopicOrPartition,
                        "unknown topic",
                    ),
                },
                resource_type::BROKER => {
                    match super::alter_configs::broker_resource(broker, &resource.resource_name) {
                        Ok(id) => result.with_configs(
                            broker_levels(&settings, broker.listeners(), id)
                                .into_iter()
                                .filter(|(name, _, _)| wanted(name))
                                .filter_map(|(name, levels, kind)| {
                                    let read_only = !dynamic_config::is_dynamic(name);
                                    entry(name, levels, kind, read_only)
                                })
                                .collect(),
                        ),
                        Err((error, message)) => failed(result, error, &message),
                    }
                }
                other => failed(
                    result,
                    ResponseError::InvalidRequest,
                    &format!("resource type {other} is not supported"),
                ),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The configs of a broker resource with their levels: for a broker id
/// every setting of this broker under that id's dynamic values, for the
/// cluster default (`None`) only the dynamic values set on it, as Kafka.
fn broker_levels(
    settings: &Settings,
    listeners: &[Listener],
    id: Option<i32>,
) -> Vec<(&'static str, Vec<Level>, ConfigType)> {
    let builtin_config = BrokerConfig::default();
    let builtin_listeners = builtin_config.listeners().unwrap_or_default();
    let builtin = broker_configs(&builtin_config, &builtin_listeners);
    broker_configs(settings.config, listeners)
        .into_iter()
        .filter_map(|(name, static_value, kind)| {
            let levels = match id {
                Some(id) => {
                    let builtin = builtin
                        .iter()
                        .find(|(n, _, _)| *n == name)
                        .map_or_else(|| static_value.clone(), |(_, v, _)| v.clone());
                    settings.levels(id, name, static_value, builtin)
                }
                None => {
                    let value = settings.dynamic.cluster_default.get(name)?;
                    vec![(value.clone(), Source::DynamicDefault)]
                }
            };
            let levels = levels
                .into_iter()
                .map(|(value, source)| (name.to_string(), value, source))
                .collect();
            Some((name, levels, kind))
        })
        .collect()
}

/// The broker's settings under Kafka's names: its own, then the defaults
/// of the topic configs (`log.index.interval.bytes` and the other topic
/// synonyms come from there, once), all with their static values.
pub(super) fn broker_configs(
    config: &BrokerConfig,
    listeners: &[Listener],
) -> Vec<(&'static str, String, ConfigType)> {
    use ConfigType::{Boolean, Double, Int, List, Long, String as Text};
    let list = |endpoint: &dyn Fn(&Listener) -> String| {
        listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, endpoint(l)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let protocol_map = listeners
        .iter()
        .map(|l| format!("{}:{}", l.name, l.protocol))
        .collect::<Vec<_>>()
        .join(",");
    let mut configs = vec![
        ("broker.id", config.node_id.to_string(), Int),
        ("node.id", config.node_id.to_string(), Int),
        ("process.roles", "broker,controller".to_string(), List),
        ("listeners", list(&|l| l.bind.to_string()), List),
        (
            "advertised.listeners",
            list(&|l| format!("{}:{}", l.host, l.port)),
            List,
        ),
        ("listener.security.protocol.map", protocol_map, List),
        ("log.dirs", config.data_dir.display().to_string(), Text),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            Boolean,
        ),
        ("num.partitions", config.num_partitions.to_string(), Int),
        ("default.replication.factor", "1".to_string(), Int),
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
            Int,
        ),
        (
            "log.retention.check.interval.ms",
            config.retention_check_interval_ms.to_string(),
            Long,
        ),
        (
            "log.cleaner.backoff.ms",
            config.log_cleaner_backoff_ms.to_string(),
            Long,
        ),
        (
            "log.cleaner.io.max.bytes.per.second",
            config.compaction_bytes_per_sec.to_string(),
            Double,
        ),
        (
            "group.initial.rebalance.delay.ms",
            config.group_initial_rebalance_delay_ms.to_string(),
            Int,
        ),
        (
            "group.min.session.timeout.ms",
            config.group_min_session_timeout_ms.to_string(),
            Int,
        ),
        (
            "group.max.session.timeout.ms",
            config.group_max_session_timeout_ms.to_string(),
            Int,
        ),
        (
            "group.consumer.session.timeout.ms",
            config.group_consumer_session_timeout_ms.to_string(),
            Int,
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            config.group_consumer_heartbeat_interval_ms.to_string(),
            Int,
        ),
        (
            "offsets.retention.minutes",
            (config.offsets_retention_ms / 60_000).to_string(),
            Int,
        ),
        ("max.connections", config.max_connections.to_string(), Int),
        (
            "max.connections.per.ip",
            config.max_connections_per_ip.to_string(),
            Int,
        ),
        (
            "connections.max.idle.ms",
            config.connections_max_idle_ms.to_string(),
            Long,
        ),
    ];
    configs.extend(
        topic::config::keys(config)
            .into_iter()
            .map(|k| (k.broker_name, k.default, k.kind)),
    );
    configs
}

fn failed(
    result: DescribeConfigsResult,
    error: ResponseError,
    message: &str,
) -> DescribeConfigsResult {
    result
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_broker_config_is_listed_once() {
        let config = BrokerConfig::default();
        let configs = broker_configs(&config, &config.listeners().unwrap());
        let mut names: Vec<&str> = configs.iter().map(|(name, _, _)| *name).collect();
        names.sort_unstable();
        let listed = names.len();
        names.dedup();
        assert_eq!(names.len(), listed, "{names:?}");
    }
}
