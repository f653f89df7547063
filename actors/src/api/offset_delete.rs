//! OffsetDelete: drop a group's committed offsets for some partitions,
//! unless a live member is subscribed to their topic.

use crate::broker::Broker;
use crate::group::SubscribedTopics;
use crate::security::{Access, Operation};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;
use std::collections::BTreeSet;

/// Needs DELETE on the group and READ on each topic.
pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let ready = access
        .group(Operation::Delete, &req.group_id)
        .and_then(|()| broker.check_coordinator(&req.group_id));
    if let Err(e) = ready {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    if !broker.group_exists(&req.group_id).await.unwrap_or(false) {
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
            let denied = access.topic(Operation::Read, &topic.name).err();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = match denied {
                        Some(error) => error.code(),
                        None if busy => ResponseError::GroupSubscribedToTopic.code(),
                        None => {
                            deletable.push((topic.name.to_string(), p.partition_index));
                            0
                        }
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
    if let Err(e) = broker.delete_offsets(&req.group_id, Some(&deletable)).await {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    OffsetDeleteResponse::default().with_topics(topics)
}

/// Topics the group's live members subscribe to, whichever protocol the
/// group speaks.
async fn subscribed_topics(broker: &Broker, group: &str) -> BTreeSet<String> {
    match broker.existing_group(group) {
        Some(coordinator) => coordinator.send(SubscribedTopics).await.unwrap_or_default(),
        None => BTreeSet::new(),
    }
}
