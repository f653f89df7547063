//! CreateTopics: with a partition count and replication factor (-1: the
//! broker defaults) or an explicit replica assignment. In a cluster the
//! controller places and records the replicas; a single broker refuses a
//! replication factor above 1.

use crate::broker::Broker;
use crate::security::Access;
use crate::topic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        results.push(match access.create_topic(&topic.name) {
            Ok(()) => create(broker, topic, req.validate_only).await,
            Err(error) => CreatableTopicResult::default()
                .with_name(topic.name)
                .with_error_code(error.code())
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
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
    let assignment = if req.assignments.is_empty() {
        None
    } else {
        if req.num_partitions != -1 || req.replication_factor != -1 {
            return fail(
                ResponseError::InvalidRequest,
                "give either assignments or a partition count and replication factor".into(),
            );
        }
        let mut assignments = req.assignments;
        assignments.sort_by_key(|a| a.partition_index);
        let in_order = assignments
            .iter()
            .enumerate()
            .all(|(i, a)| a.partition_index == i as i32);
        if !in_order {
            return fail(
                ResponseError::InvalidReplicaAssignment,
                "assignments must number the partitions 0, 1, 2, ...".into(),
            );
        }
        Some(
            assignments
                .into_iter()
                .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
        )
    };
    let partitions = match &assignment {
        Some(assignment) => assignment.len() as i32,
        None if req.num_partitions == -1 => broker.config().num_partitions as i32,
        None => req.num_partitions,
    };
    let replication_factor = match &assignment {
        Some(assignment) => assignment.first().map_or(0, |r| r.len() as i16),
        None => broker.replication_factor(req.replication_factor),
    };
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
        if let Err(e) = broker.check_replication(replication_factor, assignment.as_deref()) {
            return fail(e.code, e.message);
        }
        return result
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor);
    }
    let created = broker
        .create_replicated_topic(
            &req.name,
            partitions,
            req.replication_factor,
            assignment,
            configs,
        )
        .await;
    match created {
        Ok(topic) => result
            .with_topic_id(topic.id)
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(Some(Vec::new())),
        Err(e) => fail(e.code, e.message),
    }
}
