//! ListGroups: every group with a coordinator or committed offsets,
//! optionally filtered by state (v4+) and type (v5+).

use crate::broker::Broker;
use crate::group::kip848::ConsumerGroupState;
use crate::group::{Describe, DescribeConsumerGroup};
use crate::security::{Access, Operation};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const CLASSIC: &str = "classic";
/// Both the protocol type of classic consumer groups and the group type
/// of KIP-848 groups.
const CONSUMER: &str = "consumer";

/// Every group with DESCRIBE on the cluster; otherwise the groups the
/// requester may describe, as Kafka lists them.
pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let ids = match broker.group_ids().await {
        Ok(ids) => ids,
        Err(e) => {
            log::error!("listing groups: {e}");
            return ListGroupsResponse::default()
                .with_error_code(ResponseError::KafkaStorageError.code());
        }
    };
    let mut groups = Vec::with_capacity(ids.len());
    // In a cluster, the groups this broker coordinates now: its store may
    // still hold groups of offsets partitions it led before.
    let every_group = access.cluster(Operation::Describe).is_ok();
    for id in ids.into_iter().filter(|id| {
        broker.check_coordinator(id).is_ok()
            && (every_group || access.group(Operation::Describe, id).is_ok())
    }) {
        let (state, protocol_type, group_type) = match broker.existing_group(&id) {
            Some(coordinator) => match coordinator.send(DescribeConsumerGroup).await {
                Ok(Some(d)) if d.state != ConsumerGroupState::Empty => {
                    (d.state.as_str().to_string(), CONSUMER.to_string(), CONSUMER)
                }
                Ok(_) => match coordinator.send(Describe).await {
                    Ok(d) => (d.state.to_string(), d.protocol_type, CLASSIC),
                    Err(_) => continue,
                },
                Err(_) => continue,
            },
            None => ("Empty".to_string(), CONSUMER.to_string(), CLASSIC),
        };
        let state_ok = req.states_filter.is_empty()
            || req
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&state));
        let type_ok = req.types_filter.is_empty()
            || req
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(group_type));
        if state_ok && type_ok {
            groups.push(
                ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(id)))
                    .with_protocol_type(StrBytes::from_string(protocol_type))
                    .with_group_state(StrBytes::from_string(state))
                    .with_group_type(StrBytes::from_static_str(group_type)),
            );
        }
    }
    ListGroupsResponse::default().with_groups(groups)
}
