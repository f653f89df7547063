//! ConsumerGroupDescribe (KIP-848): epochs, assignor, and each member's
//! current and target assignment.

use super::consumer_group_heartbeat::assigned_topics;
use crate::broker::Broker;
use crate::group::assignor::TopicPartition;
use crate::group::DescribeConsumerGroup;
use crate::security::{Access, Operation};
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// The member type of a member that speaks the new protocol (KIP-1099).
const CONSUMER_MEMBER: i8 = 1;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let described = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(i32::MIN);
        let ready = access
            .group(Operation::Describe, &id)
            .and_then(|()| broker.check_coordinator(&id));
        if let Err(e) = ready {
            groups.push(described.with_error_code(e.code()));
            continue;
        }
        let description = match broker.existing_group(&id) {
            Some(coordinator) => coordinator.send(DescribeConsumerGroup).await.ok().flatten(),
            None => None,
        };
        groups.push(match description {
            Some(d) => described
                .with_group_state(StrBytes::from_static_str(d.state.as_str()))
                .with_group_epoch(d.group_epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(StrBytes::from_static_str(d.assignor.name()))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_instance_id(m.instance_id.map(StrBytes::from_string))
                                .with_rack_id(m.rack_id.map(StrBytes::from_string))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topics
                                        .into_iter()
                                        .map(|t| TopicName(StrBytes::from_string(t)))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_regex.map(StrBytes::from_string),
                                )
                                .with_assignment(assignment(broker, &m.assignment))
                                .with_target_assignment(assignment(broker, &m.target_assignment))
                                .with_member_type(CONSUMER_MEMBER)
                        })
                        .collect(),
                ),
            None => described
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "group {} is not a consumer group",
                    id.as_str()
                )))),
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn assignment(broker: &Broker, partitions: &[TopicPartition]) -> Assignment {
    let topics = assigned_topics(broker, partitions)
        .map(|(id, name, partitions)| {
            TopicPartitions::default()
                .with_topic_id(id)
                .with_topic_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    Assignment::default().with_topic_partitions(topics)
}
