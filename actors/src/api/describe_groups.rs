//! DescribeGroups: state, protocol and members of each group. A KIP-848
//! group is shown as Kafka shows it to classic tools: protocol type
//! `consumer`, its assignor as the protocol, and each member's subscription
//! and assignment in consumer-protocol bytes.

use crate::broker::Broker;
use crate::group::consumer_protocol::{
    encode_assignment, encode_subscription, Subscription, PROTOCOL_TYPE,
};
use crate::group::kip848::{ConsumerGroupDescription, ConsumerGroupState};
use crate::group::{Describe, DescribeConsumerGroup};
use crate::security::{Access, Operation};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
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
        let coordinator = broker.existing_group(&id);
        if let Some(coordinator) = &coordinator {
            if let Ok(Some(d)) = coordinator.send(DescribeConsumerGroup).await {
                if d.state != ConsumerGroupState::Empty {
                    groups.push(consumer_group(described, d));
                    continue;
                }
            }
        }
        let description = match coordinator {
            Some(coordinator) => coordinator.send(Describe).await.ok(),
            None => None,
        };
        // A group known only by its committed offsets is Empty; an
        // unknown one is Dead, as Kafka answers.
        let has_offsets = description.is_none()
            && broker
                .offsets()
                .fetch_all(&id)
                .await
                .is_ok_and(|offsets| !offsets.is_empty());
        groups.push(match description {
            Some(d) => described
                .with_group_state(StrBytes::from_string(d.state.to_string()))
                .with_protocol_type(StrBytes::from_string(d.protocol_type))
                .with_protocol_data(StrBytes::from_string(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(
                                    m.group_instance_id.map(StrBytes::from_string),
                                )
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            None => {
                let state = if has_offsets { "Empty" } else { "Dead" };
                described.with_group_state(StrBytes::from_static_str(state))
            }
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

fn consumer_group(described: DescribedGroup, d: ConsumerGroupDescription) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let subscription = Subscription {
                topics: m.subscribed_topics,
                owned: Vec::new(),
            };
            DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                .with_client_id(StrBytes::from_string(m.client_id))
                .with_client_host(StrBytes::from_string(m.client_host))
                .with_member_metadata(encode_subscription(&subscription).unwrap_or_default())
                .with_member_assignment(encode_assignment(&m.assignment).unwrap_or_default())
        })
        .collect();
    described
        .with_group_state(StrBytes::from_static_str(d.state.as_str()))
        .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
        .with_protocol_data(StrBytes::from_static_str(d.assignor.name()))
        .with_members(members)
}
