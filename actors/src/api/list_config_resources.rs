//! ListConfigResources (KIP-1142; v0 was KIP-714's ListClientMetricsResources):
//! what DescribeConfigs can be asked about. Here that is every topic and
//! this broker; there are no client-metrics subscriptions, broker loggers
//! or groups with configs of their own.

use crate::broker::Broker;
use crate::protocol::resource_type::{BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP, TOPIC};
use crate::security::{Access, Operation};
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const KNOWN: [i8; 5] = [TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];

pub fn handle(
    broker: &Broker,
    access: &Access,
    version: i16,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    if let Err(error) = access.cluster(Operation::DescribeConfigs) {
        return ListConfigResourcesResponse::default().with_error_code(error.code());
    }
    // v0 lists client-metrics resources only; v1 with no types lists all.
    let types = match (version, req.resource_types.is_empty()) {
        (0, _) => vec![CLIENT_METRICS],
        (_, true) => KNOWN.to_vec(),
        (_, false) => req.resource_types,
    };
    // Kafka refuses a type it does not know as a version it does not serve.
    if types.iter().any(|t| !KNOWN.contains(t)) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let mut resources = Vec::new();
    if types.contains(&TOPIC) {
        resources.extend(
            broker
                .topics()
                .iter()
                .map(|t| resource(t.name.to_string(), TOPIC)),
        );
    }
    if types.contains(&BROKER) {
        resources.push(resource(broker.config().node_id.to_string(), BROKER));
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}

fn resource(name: String, resource_type: i8) -> ConfigResource {
    ConfigResource::default()
        .with_resource_name(StrBytes::from_string(name))
        .with_resource_type(resource_type)
}
