//! What can stop the connect runtime as a whole (a single connector's
//! failure is its status, not an error of the runtime).

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("config: {0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("REST API: {0}")]
    Rest(String),
}
