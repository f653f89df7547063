//! actorlog: a Kafka-compatible message broker built as an actor system.
//!
//! This crate is what a user runs or links: the `actorlog` command line,
//! configuration loading, the server entry point and the embedding API
//! ([`Broker`]; [`embedded`] starts with an example). The actors themselves
//! live in [`actorlog_actors`], re-exported as [`actors`].

#![warn(missing_docs)]

pub use actorlog_actors as actors;
pub use actorlog_actors::BrokerConfig;

// The command line and the simulator are public for the binary, not for
// embedding: documented module by module, not item by item.
#[allow(missing_docs)]
pub mod cli;
pub mod config_file;
pub mod embedded;
pub mod server;
#[allow(missing_docs)]
pub mod simulate;

/// Who an in-process producer or consumer acts as, for the ACLs
/// ([`Producer::as_principal`], [`ConsumerBuilder::as_principal`]).
pub use actorlog_actors::security::Principal;
pub use embedded::{
    block_on, murmur2, partition_for_key, Broker, BrokerBuilder, ConsumedRecord, Consumer,
    ConsumerBuilder, Delivered, Error, Producer,
};
/// Kafka's error codes, as [`Error::Kafka`] carries them.
pub use kafka_protocol::ResponseError;
