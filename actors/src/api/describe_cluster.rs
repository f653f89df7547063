//! DescribeCluster: the live brokers, as clients of the listener the
//! request came in on reach them, and the active controller.

use crate::broker::Broker;
use crate::security::listeners::Listener;
use crate::security::{Access, Operation};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

pub fn handle(broker: &Broker, access: &Access, listener: &Listener) -> DescribeClusterResponse {
    if let Err(error) = access.cluster(Operation::Describe) {
        return DescribeClusterResponse::default().with_error_code(error.code());
    }
    let brokers = broker
        .brokers(listener)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id().to_string()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_cluster_authorized_operations(i32::MIN)
        .with_brokers(brokers)
}
