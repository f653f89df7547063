//! CreateTopics. One broker: a replication factor above 1 is refused.

use crate::broker::Broker;
use crate::topic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        results.push(create(broker, topic, req.validate_only).await);
    }
    CreateTopicsResponse::default().with_topics(results)
}

async fn create(broker: &Broker, req: CreatableTopic, validate_only: bool) -> CreatableTopicResult {
    let result = CreatableTopicResult::default().with_name(req.name.clone());
    let fail = |error: ResponseError, message: String| {
        result
            .clone()
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    };
    let node = broker.config().node_id;
    let partitions = if !req.assignments.is_empty() {
        if req.num_partitions != -1 || req.replication_factor != -1 {
            return fail(
                ResponseError::InvalidRequest,
                "give either assignments or a partition count and replication factor".into(),
            );
        }
        if req
            .assignments
            .iter()
            .any(|a| a.broker_ids.iter().any(|b| b.0 != node))
        {
            return fail(
                ResponseError::InvalidReplicaAssignment,
                format!("this cluster has one broker, id {node}"),
            );
        }
        req.assignments.len() as i32
    } else if req.num_partitions == -1 {
        broker.config().num_partitions as i32
    } else {
        req.num_partitions
    };
    if !matches!(req.replication_factor, -1 | 1) {
        return fail(
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} is larger than the 1 available broker",
                req.replication_factor
            ),
        );
    }
    let configs: BTreeMap<String, String> = req
        .configs
        .into_iter()
        .filter_map(|c| c.value.map(|v| (c.name.to_string(), v.to_string())))
        .collect();
    if let Err(why) = configs
        .iter()
        .try_for_each(|(name, value)| topic::config::validate(broker.config(), name, value))
    {
        return fail(ResponseError::InvalidConfig, why);
    }
    if validate_only {
        if broker.topic(&req.name).is_some() {
            return fail(
                ResponseError::TopicAlreadyExists,
                format!("topic '{}' already exists", &*req.name),
            );
        }
        if let Err(e) = broker.check_partition_room(partitions) {
            return fail(e.code, e.message);
        }
        return result
            .with_num_partitions(partitions)
            .with_replication_factor(1);
    }
    match broker.create_topic(&req.name, partitions, configs).await {
        Ok(topic) => result
            .with_topic_id(topic.id)
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(Some(Vec::new())),
        Err(e) => fail(e.code, e.message),
    }
}
