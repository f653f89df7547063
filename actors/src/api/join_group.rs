//! JoinGroup: hand the request to the group's coordinator actor and wait for
//! the end of the join phase.

use super::WireCode;
use crate::broker::Broker;
use crate::group::classic::JoinRequest;
use crate::group::Join;
use crate::security::{Access, Operation};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::net::SocketAddr;

/// From this version a new member must rejoin with the id it is given (KIP-394).
const KNOWN_MEMBER_ID_VERSION: i16 = 4;
/// Before this version there is no rebalance timeout: it equals the session timeout.
const REBALANCE_TIMEOUT_VERSION: i16 = 1;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    version: i16,
    client_id: String,
    peer: SocketAddr,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    if req.group_id.is_empty() {
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::InvalidGroupId.code())
            .with_generation_id(-1);
    }
    let ready = access
        .group(Operation::Read, &req.group_id)
        .and_then(|()| broker.check_coordinator(&req.group_id));
    if let Err(e) = ready {
        return JoinGroupResponse::default()
            .with_error_code(e.code())
            .with_generation_id(-1);
    }
    let request = JoinRequest {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id,
        client_host: format!("/{}", peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= REBALANCE_TIMEOUT_VERSION {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= KNOWN_MEMBER_ID_VERSION,
        reason: req.reason.map(|s| s.to_string()),
    };
    let coordinator = broker.group(&req.group_id);
    let Ok(response) = coordinator.send(Join(request)).await else {
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            .with_generation_id(-1);
    };
    JoinGroupResponse::default()
        .with_error_code(response.error.wire_code())
        .with_generation_id(response.generation_id)
        .with_protocol_type(response.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(response.protocol_name.map(StrBytes::from_string))
        .with_leader(StrBytes::from_string(response.leader))
        .with_skip_assignment(response.skip_assignment)
        .with_member_id(StrBytes::from_string(response.member_id))
        .with_members(
            response
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
