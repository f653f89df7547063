//! FindCoordinator: this broker coordinates every group (and, later, every
//! transactional id). v4+ asks for several keys at once.

use crate::broker::Broker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

/// From this version keys come as a list.
const BATCHED_VERSION: i16 = 4;

pub fn handle(
    broker: &Broker,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let config = broker.config();
    let (host, port) = config.advertised();
    let node = BrokerId(config.node_id);
    if version >= BATCHED_VERSION {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node)
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(port)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(host))
        .with_port(port)
}
