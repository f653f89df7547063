//! The client subcommands. They speak the Kafka protocol through librdkafka,
//! so they work against any Kafka-compatible broker, not only actorlog;
//! `simulate` needs no broker at all, and `cluster` runs brokers. `users`
//! speaks the two SCRAM credential APIs itself, which librdkafka lacks;
//! `connect` runs connectors (the `actorlog-connect` crate).

pub mod cluster;
pub mod connect;
pub mod consume;
pub mod groups;
pub mod produce;
pub mod simulate;
pub mod topics;
pub mod users;

use rdkafka::config::ClientConfig;
use std::time::Duration;

/// How long an admin or produce request may take before the command fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka settings shared by every subcommand.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3");
    config
}

/// Formats any displayable error for the command line.
pub fn fail(context: &str) -> impl Fn(rdkafka::error::KafkaError) -> String + '_ {
    move |e| format!("{context}: {e}")
}
