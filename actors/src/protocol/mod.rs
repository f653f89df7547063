//! What the transport ([`crate::connection`]) and the API handlers
//! ([`crate::api`]) both speak, kept below both so that neither imports the
//! other for it: the decoded [`Request`], wire constants shared by several
//! APIs, the conversion of the old message-set record format, and responses
//! whose records are sent from the segment files ([`response_parts`]).

pub mod message_set;
pub mod response_parts;

use kafka_protocol::messages::{ApiKey, RequestKind};

/// A decoded request.
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    pub body: RequestKind,
}

/// `isolation_level` of a transactional consumer (Fetch, ListOffsets).
pub const READ_COMMITTED: i8 = 1;

/// Kafka's config resource types (DescribeConfigs, AlterConfigs,
/// IncrementalAlterConfigs, ListConfigResources).
pub mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
    pub const BROKER_LOGGER: i8 = 8;
    pub const CLIENT_METRICS: i8 = 16;
    pub const GROUP: i8 = 32;
}
