//! FindCoordinator: which broker coordinates a group or a transactional
//! id. On a single broker, this one; in a cluster, the leader of the key's
//! partition of the offsets topic; as clients of the listener the request
//! came in on reach it. v4+ asks for several keys at once.

use crate::broker::{Broker, BrokerAddress};
use crate::security::listeners::Listener;
use crate::security::{Access, Operation};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// From this version keys come as a list.
const BATCHED_VERSION: i16 = 4;

/// `key_type` of a transactional id.
const TRANSACTION: i8 = 1;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    listener: &Listener,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if version >= BATCHED_VERSION {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in req.coordinator_keys {
            let found = find(broker, access, listener, req.key_type, &key).await;
            let answer = Coordinator::default().with_key(key);
            coordinators.push(match found {
                Ok(b) => answer
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(b.host))
                    .with_port(b.port),
                Err(e) => answer
                    .with_error_code(e.code())
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match find(broker, access, listener, req.key_type, &req.key).await {
        Ok(b) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(b.id))
            .with_host(StrBytes::from_string(b.host))
            .with_port(b.port),
        Err(e) => FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

/// The coordinator of a group (DESCRIBE on it needed) or of a
/// transactional id (DESCRIBE on it needed). Both belong to a partition of
/// the offsets topic, whose leader coordinates them.
async fn find(
    broker: &Broker,
    access: &Access,
    listener: &Listener,
    key_type: i8,
    key: &str,
) -> Result<BrokerAddress, ResponseError> {
    if key_type == TRANSACTION {
        access.transactional_id(Operation::Describe, key)?;
    } else {
        access.group(Operation::Describe, key)?;
    }
    broker.group_coordinator(key, listener).await
}
