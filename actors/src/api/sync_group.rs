//! SyncGroup: the leader brings the assignment, every member gets its share.

use super::WireCode;
use crate::broker::Broker;
use crate::group::classic::SyncRequest;
use crate::group::SyncGroup;
use crate::security::{Access, Operation};
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

pub async fn handle(broker: &Broker, access: &Access, req: SyncGroupRequest) -> SyncGroupResponse {
    let ready = access
        .group(Operation::Read, &req.group_id)
        .and_then(|()| broker.check_coordinator(&req.group_id));
    if let Err(e) = ready {
        return SyncGroupResponse::default().with_error_code(e.code());
    }
    let Some(coordinator) = broker.existing_group(&req.group_id) else {
        return SyncGroupResponse::default().with_error_code(ResponseError::UnknownMemberId.code());
    };
    let request = SyncRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        generation_id: req.generation_id,
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    match coordinator.send(SyncGroup(request)).await {
        Ok(response) => SyncGroupResponse::default()
            .with_error_code(response.error.wire_code())
            .with_protocol_type(response.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(response.protocol_name.map(StrBytes::from_string))
            .with_assignment(response.assignment),
        Err(_) => SyncGroupResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
    }
}
