//! The follower side of data replication: this broker copying the logs of
//! the partitions other brokers lead, over the Kafka protocol
//! ([`client::Client`]).

pub mod client;
