//! ConsumerGroupHeartbeat (KIP-848): joins, keeps alive, reconciles and
//! leaves a member of a new-protocol consumer group. The wire names topics
//! by id; the group's state machine works with names.

use super::WireCode;
use crate::broker::Broker;
use crate::group::assignor::{by_topic, TopicPartition};
use crate::group::kip848::HeartbeatRequest;
use crate::group::ConsumerHeartbeat;
use crate::security::{Access, Operation};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::net::SocketAddr;
use uuid::Uuid;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    client_id: String,
    peer: SocketAddr,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if req.group_id.is_empty() {
        return failed(ResponseError::InvalidRequest, "GroupId can't be empty");
    }
    if let Err(e) = access.group(Operation::Read, &req.group_id) {
        return failed(e, "not authorized to read the group");
    }
    if let Err(e) = broker.check_coordinator(&req.group_id) {
        return failed(e, "this broker does not coordinate the group");
    }
    // A member subscribes only to topics it may describe.
    let hidden = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .find_map(|name| {
            access
                .topic(Operation::Describe, name)
                .err()
                .map(|e| (e, name))
        });
    if let Some((e, name)) = hidden {
        return failed(
            e,
            &format!("not authorized to describe topic {}", name.as_str()),
        );
    }
    let owned = req.topic_partitions.map(|topics| {
        topics
            .iter()
            .filter_map(|t| {
                broker
                    .topic_by_id(t.topic_id)
                    .map(|topic| (topic, &t.partitions))
            })
            .flat_map(|(topic, partitions)| {
                partitions.iter().map(move |p| (topic.name.to_string(), *p))
            })
            .collect()
    });
    let request = HeartbeatRequest {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topics: req
            .subscribed_topic_names
            .map(|names| names.iter().map(|n| n.to_string()).collect()),
        subscribed_regex: req.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id,
        client_host: format!("/{}", peer.ip()),
    };
    let message = ConsumerHeartbeat {
        request,
        topics: broker.partition_counts(),
    };
    let Ok(response) = broker.group(&req.group_id).send(message).await else {
        return failed(
            ResponseError::CoordinatorNotAvailable,
            "the coordinator stopped",
        );
    };
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(response.error.wire_code())
        .with_error_message(response.error_message.map(StrBytes::from_string))
        .with_member_id(Some(StrBytes::from_string(response.member_id)))
        .with_member_epoch(response.member_epoch)
        .with_heartbeat_interval_ms(response.heartbeat_interval_ms)
        .with_assignment(response.assignment.map(|a| assignment(broker, &a)))
}

fn assignment(broker: &Broker, partitions: &[TopicPartition]) -> Assignment {
    let topics = assigned_topics(broker, partitions)
        .map(|(id, _, partitions)| {
            TopicPartitions::default()
                .with_topic_id(id)
                .with_partitions(partitions)
        })
        .collect();
    Assignment::default().with_topic_partitions(topics)
}

/// An assignment by topic, each topic with its id and name, as both KIP-848
/// APIs give it; a topic deleted meanwhile is left out.
pub(super) fn assigned_topics<'a>(
    broker: &'a Broker,
    partitions: &[TopicPartition],
) -> impl Iterator<Item = (Uuid, String, Vec<i32>)> + 'a {
    by_topic(partitions)
        .into_iter()
        .filter_map(|(name, partitions)| Some((broker.topic(&name)?.id, name, partitions)))
}

fn failed(error: ResponseError, message: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message.to_string())))
}
