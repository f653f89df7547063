//! Data replication between brokers: the replica manager turning the
//! cluster metadata into partition roles, and the follower side copying
//! the logs of the partitions other brokers lead.
//!
//! As in Kafka, one [`fetcher::Fetcher`] per leader broker covers every
//! partition followed from it, with one Fetch request at a time over one
//! connection ([`client::Client`]); the partition actors
//! ([`crate::partition::replication`]) append, truncate and answer where
//! to fetch from next.

pub mod client;
pub mod fetcher;
pub mod manager;
pub mod markers;
pub mod offsets_topic;
pub mod txn_offsets;

#[cfg(test)]
mod tests;
