//! The one error type of the library.

use rdkafka::error::KafkaError;

/// Why building, starting, running or querying a streams application failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// A serde could not turn a value into bytes or bytes into a value.
    #[error("serde: {0}")]
    Serde(String),
    /// The Kafka client refused a setting or a request failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Creating an internal topic failed (other than it existing already).
    #[error("creating topic {topic}: {reason}")]
    CreateTopic {
        /// The internal topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
    /// A source topic of the topology does not exist on the broker.
    #[error("source topic {0} does not exist")]
    MissingTopic(String),
    /// The local state store (sled) failed.
    #[error("state store: {0}")]
    Store(#[from] sled::Error),
    /// The topology is not one this library can run.
    #[error("topology: {0}")]
    Topology(String),
    /// Records could not be delivered to the broker.
    #[error("{0} records were not delivered")]
    Delivery(u64),
    /// A task actor or the driver thread stopped unexpectedly.
    #[error("the application stopped: {0}")]
    Stopped(String),
}
