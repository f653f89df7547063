//! FindCoordinator: which broker coordinates a group or a transactional
//! id. On a single broker, this one; in a cluster, the leader of the key's
//! partition of the offsets topic. v4+ asks for several keys at once.

use crate::broker::{Broker, BrokerAddress};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// From this version keys come as a list.
const BATCHED_VERSION: i16 = 4;

pub async fn handle(
    broker: &Broker,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    if version >= BATCHED_VERSION {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in req.coordinator_keys {
            let found = find(broker, &key).await;
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
    match find(broker, &req.key).await {
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

/// Groups and transactional ids alike belong to a partition of the
/// offsets topic, whose leader coordinates them.
async fn find(broker: &Broker, key: &str) -> Result<BrokerAddress, ResponseError> {
    broker.group_coordinator(key).await
}
