//! DescribeConfigs for topics (overrides and defaults) and for the broker.

use crate::broker::Broker;
use crate::topic_config;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub fn handle(broker: &Broker, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
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
            let wanted = |name: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            match resource.resource_type {
                RESOURCE_TOPIC => match broker.topic(&resource.resource_name) {
                    Some(topic) => result.with_configs(
                        topic_config::keys(broker.config())
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
                RESOURCE_BROKER => {
                    let config = broker.config();
                    let entries = [
                        ("broker.id", config.node_id.to_string()),
                        (
                            "auto.create.topics.enable",
                            config.auto_create_topics.to_string(),
                        ),
                        ("num.partitions", config.num_partitions.to_string()),
                        ("message.max.bytes", config.message_max_bytes.to_string()),
                        ("log.segment.bytes", config.segment_bytes.to_string()),
                        ("log.dirs", config.data_dir.display().to_string()),
                    ];
                    result.with_configs(
                        entries
                            .iter()
                            .filter(|(name, _)| wanted(name))
                            // AlterConfigs takes no broker configs.
                            .map(|(name, value)| {
                                entry(name, value, SOURCE_STATIC_BROKER, 2).with_read_only(true)
                            })
                            .collect(),
                    )
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
