//! The openraft glue of the controller quorum: type config, durable
//! storage, and the TCP transport.

pub mod files;
pub mod log_store;
pub mod network;
pub mod state_machine;

use super::image::{Command, CommandResult};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::net::SocketAddr;

openraft::declare_raft_types!(
    /// The controller quorum's raft types: node ids are broker ids, log
    /// entries carry metadata [`Command`]s.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = ControllerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A voter as raft's membership stores it: where its controller listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerNode {
    pub addr: SocketAddr,
}

/// openraft wants a default node; an unspecified address is never dialled
/// because the membership is always built from the configured voters.
impl Default for ControllerNode {
    fn default() -> Self {
        ControllerNode {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }
}

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type StorageError = openraft::StorageError<u64>;
