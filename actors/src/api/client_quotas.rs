//! DescribeClientQuotas. The broker enforces no client quotas, so every
//! filter matches nothing; a filter naming an entity type Kafka does not
//! know is refused as Kafka refuses it.

use crate::security::{Access, Operation};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const ENTITY_TYPES: [&str; 3] = ["user", "client-id", "ip"];

/// Needs DESCRIBE_CONFIGS on the cluster.
pub fn describe(access: &Access, req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    if let Err(error) = access.cluster(Operation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(error.code())
            .with_entries(None);
    }
    let unknown = req
        .components
        .iter()
        .find(|c| !ENTITY_TYPES.contains(&c.entity_type.as_str()));
    match unknown {
        Some(c) => DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_string(format!(
                "unknown quota entity type '{}'",
                c.entity_type.as_str()
            ))))
            .with_entries(None),
        None => DescribeClientQuotasResponse::default().with_entries(Some(Vec::new())),
    }
}
