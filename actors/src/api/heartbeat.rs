//! Heartbeat: keeps a member's session alive and tells it to rejoin when a
//! rebalance is under way.

use super::WireCode;
use crate::broker::Broker;
use crate::group::Heartbeat;
use crate::security::{Access, Operation};
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::ResponseError;

pub async fn handle(broker: &Broker, access: &Access, req: HeartbeatRequest) -> HeartbeatResponse {
    let ready = access
        .group(Operation::Read, &req.group_id)
        .and_then(|()| broker.check_coordinator(&req.group_id));
    if let Err(e) = ready {
        return HeartbeatResponse::default().with_error_code(e.code());
    }
    let error = match broker.existing_group(&req.group_id) {
        None => Err(ResponseError::UnknownMemberId),
        Some(coordinator) => coordinator
            .send(Heartbeat {
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.map(|s| s.to_string()),
                generation_id: req.generation_id,
            })
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable)),
    };
    HeartbeatResponse::default().with_error_code(error.wire_code())
}
