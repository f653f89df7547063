//! LeaveGroup: one member (v0-v2) or a batch of members (v3+, KIP-345).

use super::WireCode;
use crate::broker::Broker;
use crate::group::classic::LeaveMember;
use crate::group::Leave;
use crate::security::{Access, Operation};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// From this version members come as a list.
const BATCH_VERSION: i16 = 3;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members: Vec<LeaveMember> = if version >= BATCH_VERSION {
        req.members
            .into_iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let ready = access
        .group(Operation::Read, &req.group_id)
        .and_then(|()| broker.check_coordinator(&req.group_id));
    if let Err(e) = ready {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    let results = match broker.existing_group(&req.group_id) {
        Some(coordinator) => match coordinator.send(Leave(members)).await {
            Ok(results) => results,
            Err(_) => {
                return LeaveGroupResponse::default()
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            }
        },
        None => members
            .into_iter()
            .map(|m| (m, Err(ResponseError::UnknownMemberId)))
            .collect(),
    };
    if version < BATCH_VERSION {
        let error = results.first().map_or(0, |(_, e)| e.wire_code());
        return LeaveGroupResponse::default().with_error_code(error);
    }
    LeaveGroupResponse::default().with_members(
        results
            .into_iter()
            .map(|(m, error)| {
                MemberResponse::default()
                    .with_member_id(StrBytes::from_string(m.member_id))
                    .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                    .with_error_code(error.wire_code())
            })
            .collect(),
    )
}
