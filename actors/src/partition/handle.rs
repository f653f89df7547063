//! How the rest of the broker reaches a partition: its actor's address and
//! the offsets it publishes. Topics, fetches and replication hold these;
//! they live with the partition so that the partition needs nothing from
//! the modules above it.

use super::Partition;
use actix::Addr;
use tokio::sync::watch;

/// The leader epoch of every partition: on one broker the leader never
/// changes, so the epoch it starts with is the only one.
pub const LEADER_EPOCH: i32 = 0;

/// The offsets a partition publishes after every change, so fetches can
/// wait for data without asking the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start: i64,
    /// One past the last readable offset; on a single broker the log end.
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, or the high
    /// watermark: how far `read_committed` consumers may read.
    pub last_stable: i64,
    /// One past the last offset in the log: how far followers may read.
    pub log_end: i64,
    /// Whether this broker leads the partition (standalone, or leader of
    /// the replicas), so consumers may read it here.
    pub leading: bool,
}

impl LogOffsets {
    /// What Kafka answers for a partition it cannot read.
    pub const UNKNOWN: LogOffsets = LogOffsets {
        log_start: -1,
        high_watermark: -1,
        last_stable: -1,
        log_end: -1,
        leading: false,
    };
}

/// How to reach one partition.
#[derive(Clone)]
pub struct PartitionHandle {
    pub addr: Addr<Partition>,
    pub offsets: watch::Receiver<LogOffsets>,
}
