//! DescribeConfigs for topics (overrides and defaults) and for the broker.

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::protocol::resource_type;
use crate::security::listeners::Listener;
use crate::security::{Access, Operation};
use crate::topic::{self, config::ConfigType};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub fn handle(
    broker: &Broker,
    access: &Access,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let entry = |name: &str, value: &str, source: i8, kind: i8| {
        let result = entry(name, value, source, kind);
        if req.include_synonyms {
            // The value in force comes first; there is no other level here.
            result.with_synonyms(vec![DescribeConfigsSynonym::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_value(Some(StrBytes::from_string(value.to_string())))
                .with_source(source)])
        } else {
            result
        }
    };
    let results = req
        .resources
        .into_iter()
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
                            .map(|k| match topic.configs.get(k.name) {
                                Some(v) => entry(k.name, v, SOURCE_TOPIC, k.kind as i8),
                                None => entry(k.name, &k.default, SOURCE_DEFAULT, k.kind as i8),
                            })
                            .collect(),
                    ),
                    None => failed(
                        result,
                        ResponseError::UnknownTopicOrPartition,
                        "unknown topic",
                    ),
                },
                resource_type::BROKER => result.with_configs(
                    broker_configs(broker.config(), broker.listeners())
                        .into_iter()
                        .filter(|(name, _, _)| wanted(name))
                        .map(|(name, value, kind)| {
                            entry(name, &value, SOURCE_STATIC_BROKER, kind as i8)
                                .with_read_only(true)
                        })
                        .collect(),
                ),
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

/// The broker's settings under Kafka's names: its own, then the defaults
/// of the topic configs (`log.index.interval.bytes` and the other topic
/// synonyms come from there, once). All are read-only (set in config.yaml).
fn broker_configs(
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

fn entry(name: &str, value: &str, source: i8, kind: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value.to_string())))
        .with_config_source(source)
        .with_config_type(kind)
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
