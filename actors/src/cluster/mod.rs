//! Clusters: the controller quorum (openraft) and the metadata image every
//! broker applies, as Kafka's KRaft combined mode.

pub mod config;
pub mod image;
mod meta;
pub mod node;
pub mod raft;
mod reassignment;

pub use config::ClusterConfig;
pub use image::{
    assign_replicas, Applied, BrokerInfo, ClusterImage, Command, CommandResult, Endpoint,
    MetadataError, PartitionImage, TopicImage,
};
pub use node::{ClusterError, ClusterNode, Quorum};

#[cfg(test)]
mod tests;
