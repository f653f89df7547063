//! Metadata: brokers, topics and partition leaders, replicas and ISRs
//! (from the cluster metadata image in a cluster). Unknown topics are
//! auto-created when the broker and the request allow it.

use crate::broker::offsets_topic::OFFSETS_TOPIC;
use crate::broker::Broker;
use crate::security::listeners::Listener;
use crate::security::{Access, Operation};
use crate::topic::Topic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::sync::Arc;
use uuid::Uuid;

/// Kafka's "not requested" value for authorized-operation fields.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Answers with the broker endpoints of `listener`, the one the request
/// came in on, as Kafka does.
pub async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    listener: &Listener,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    // v0 has no null: an empty list asks for every topic.
    let all_topics = match &req.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    // Before v4 the request has no flag and Kafka always auto-created.
    let may_create = version < 4 || req.allow_auto_topic_creation;
    // Every topic means every topic the requester may describe; the others
    // are left out, as if they did not exist.
    let topics = if all_topics {
        broker
            .topics()
            .iter()
            .filter(|t| access.topic(Operation::Describe, &t.name).is_ok())
            .map(|t| describe(broker, t))
            .collect()
    } else {
        let mut topics = Vec::new();
        for wanted in req.topics.unwrap_or_default() {
            topics.push(match wanted.name {
                Some(name) => by_name(broker, access, name, may_create).await,
                None => by_id(broker, access, wanted.topic_id),
            });
        }
        topics
    };
    let brokers = broker
        .brokers(listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id().to_string())))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_cluster_authorized_operations(OPERATIONS_OMITTED)
        .with_topics(topics)
}

/// A topic named in the request: TOPIC_AUTHORIZATION_FAILED without
/// DESCRIBE on it, and, when it does not exist and may be auto-created,
/// without CREATE on it or the cluster (as Kafka answers).
async fn by_name(
    broker: &Broker,
    access: &Access,
    name: TopicName,
    may_create: bool,
) -> MetadataResponseTopic {
    if let Err(error) = access.topic(Operation::Describe, &name) {
        return failed(Some(name), Uuid::nil(), error);
    }
    let found = match broker.topic(&name) {
        Some(topic) => Ok(Some(topic)),
        None if may_create => match access.create_topic(&name) {
            Ok(()) => broker.topic_or_create(&name).await,
            Err(error) => return failed(Some(name), Uuid::nil(), error),
        },
        None => Ok(None),
    };
    match found {
        Ok(Some(topic)) => describe(broker, &topic),
        Ok(None) => failed(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        ),
        Err(e) => failed(Some(name), Uuid::nil(), e.code),
    }
}

fn by_id(broker: &Broker, access: &Access, id: Uuid) -> MetadataResponseTopic {
    match broker.topic_by_id(id) {
        Some(topic) => match access.topic(Operation::Describe, &topic.name) {
            Ok(()) => describe(broker, &topic),
            Err(error) => failed(None, id, error),
        },
        None => failed(None, id, ResponseError::UnknownTopicId),
    }
}

fn failed(name: Option<TopicName>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name)
        .with_topic_id(id)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}

fn describe(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions.len() as i32)
        .filter_map(|index| {
            let view = broker.partition_view(topic, index)?;
            let error = if view.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            let partition = MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(index);
            Some(super::with_placement!(partition, view))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name.to_string(),
        ))))
        .with_topic_id(topic.id)
        .with_is_internal(&*topic.name == OFFSETS_TOPIC)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}
