//! Metadata: brokers, topics and partition leaders. Unknown topics are
//! auto-created when the broker and the request allow it.

use crate::broker::Broker;
use crate::topic::{Topic, LEADER_EPOCH};
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

pub async fn handle(broker: &Arc<Broker>, version: i16, req: MetadataRequest) -> MetadataResponse {
    let config = broker.config();
    let (host, port) = config.advertised();
    // v0 has no null: an empty list asks for every topic.
    let all_topics = match &req.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    // Before v4 the request has no flag and Kafka always auto-created.
    let may_create = version < 4 || req.allow_auto_topic_creation;
    let topics = if all_topics {
        broker
            .topics()
            .iter()
            .map(|t| describe(t, config.node_id))
            .collect()
    } else {
        let mut topics = Vec::new();
        for wanted in req.topics.unwrap_or_default() {
            topics.push(match wanted.name {
                Some(name) => by_name(broker, name, may_create).await,
                None => by_id(broker, wanted.topic_id),
            });
        }
        topics
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(config.node_id))
            .with_host(StrBytes::from_string(host))
            .with_port(port)])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id().to_string())))
        .with_controller_id(BrokerId(config.node_id))
        .with_cluster_authorized_operations(OPERATIONS_OMITTED)
        .with_topics(topics)
}

async fn by_name(broker: &Broker, name: TopicName, may_create: bool) -> MetadataResponseTopic {
    let found = if may_create {
        broker.topic_or_create(&name).await
    } else {
        Ok(broker.topic(&name))
    };
    match found {
        Ok(Some(topic)) => describe(&topic, broker.config().node_id),
        Ok(None) => failed(
            Some(name),
            Uuid::nil(),
            ResponseError::UnknownTopicOrPartition,
        ),
        Err(e) => failed(Some(name), Uuid::nil(), e.code),
    }
}

fn by_id(broker: &Broker, id: Uuid) -> MetadataResponseTopic {
    match broker.topic_by_id(id) {
        Some(topic) => describe(&topic, broker.config().node_id),
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

fn describe(topic: &Topic, node_id: i32) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions.len() as i32)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(node_id))
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name.to_string(),
        ))))
        .with_topic_id(topic.id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}
