//! DescribeGroups: state, protocol and members of each group.

use crate::broker::Broker;
use crate::group::Describe;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

pub async fn handle(broker: &Broker, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let described = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(i32::MIN);
        let description = match broker.existing_group(&id) {
            Some(coordinator) => coordinator.send(Describe).await.ok(),
            None => None,
        };
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
                // A group known only by its committed offsets is Empty; an
                // unknown one is Dead, as Kafka answers.
                let has_offsets = broker
                    .offsets()
                    .fetch_all(&id)
                    .is_ok_and(|offsets| !offsets.is_empty());
                let state = if has_offsets { "Empty" } else { "Dead" };
                described.with_group_state(StrBytes::from_static_str(state))
            }
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
