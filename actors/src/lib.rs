//! The engine of actorlog: everything that runs inside the broker.
//!
//! Each partition, each client connection, each consumer group coordinator
//! and the transaction coordinator is an actix actor. Actors own plain data
//! structures — the partition [`partition::local_log::Log`], the topic
//! [`topic::catalog::Catalog`], the group state machines — and turn messages
//! into method calls on them, so the logic is testable without actors.
//!
//! A request travels [`listener`] → [`connection`] (framing, order, limits)
//! → [`api`] (one handler per Kafka API) → the actors: [`partition`],
//! [`group`], [`txn`], and the [`broker`] that registers them. What the
//! connection and the handlers share sits in [`protocol`]; the durable
//! stores in [`store`] and [`topic`].

pub mod alloc;
pub mod api;
pub mod broker;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod durable;
pub mod dynamic_config;
pub mod flusher;
pub mod group;
pub mod io_pool;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod metrics_endpoint;
pub mod partition;
pub mod protocol;
pub mod replication;
pub mod security;
pub mod store;
pub mod topic;
pub mod txn;

pub use broker::Broker;
pub use config::BrokerConfig;
