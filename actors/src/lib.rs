//! The engine of actorlog: everything that runs inside the broker.
//!
//! Each partition, each client connection (and, later, each consumer group
//! coordinator) is an actix actor. Actors own plain data structures — the
//! partition [`partition::local_log::Log`], the topic [`topic::catalog::Catalog`] — and turn
//! messages into method calls on them, so the logic is testable without actors.

pub mod alloc;
pub mod api;
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod flusher;
pub mod group;
pub mod listener;
pub mod metrics;
pub mod partition;
pub mod protocol;
pub mod replication;
pub mod store;
pub mod topic;
pub mod txn;

pub use broker::Broker;
pub use config::BrokerConfig;
