//! OffsetDelete: drop a group's committed offsets for some partitions,
//! unless a live member is subscribed to their topic.

use crate::broker::Broker;
use crate::group::Describe;
use bytes::Buf;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;
use std::collections::HashSet;

pub async fn handle(broker: &Broker, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if !broker.group_exists(&req.group_id).unwrap_or(false) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code());
    }
    let subscribed = subscribed_topics(broker, &req.group_id).await;
    let mut deletable = Vec::new();
    let topics: Vec<_> = req
        .topics
        .into_iter()
        .map(|topic| {
            let busy = subscribed.contains(topic.name.as_str());
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    if !busy {
                        deletable.push((topic.name.to_string(), p.partition_index));
                    }
                    let error = if busy {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else {
                        0
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    if let Err(e) = broker
        .offsets()
        .delete(&req.group_id, Some(&deletable))
        .await
    {
        log::error!("deleting offsets of {}: {e}", &*req.group_id);
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::KafkaStorageError.code());
    }
    OffsetDeleteResponse::default().with_topics(topics)
}

/// Topics the group's live members subscribe to, read from their consumer
/// protocol metadata.
async fn subscribed_topics(broker: &Broker, group: &str) -> HashSet<String> {
    let Some(coordinator) = broker.existing_group(group) else {
        return HashSet::new();
    };
    let Ok(description) = coordinator.send(Describe).await else {
        return HashSet::new();
    };
    description
        .members
        .iter()
        .filter_map(|m| {
            let mut metadata = m.metadata.clone();
            if metadata.remaining() < 2 {
                return None;
            }
            let version = metadata.get_i16();
            ConsumerProtocolSubscription::decode(&mut metadata, version).ok()
        })
        .flat_map(|s| s.topics.into_iter().map(|t| t.to_string()))
        .collect()
}
