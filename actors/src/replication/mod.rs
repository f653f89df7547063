//! Data replication between brokers: the follower side copying the logs
//! of the partitions other brokers lead. The broker's replica manager
//! (`crate::broker`) decides, from the cluster metadata, which partitions
//! follow which leader; nothing here depends on the broker.
//!
//! As in Kafka, one [`fetcher::Fetcher`] per leader broker covers every
//! partition followed from it, with one Fetch request at a time over one
//! connection ([`client::Client`]); the partition actors
//! ([`crate::partition::replication`]) append, truncate and answer where
//! to fetch from next.

pub mod client;
pub mod fetcher;
pub mod txn_offsets;

#[cfg(test)]
mod tests;
