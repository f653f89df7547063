//! How an instance of an application connects and commits.

use std::path::PathBuf;
use std::time::Duration;

/// What a crash may do to the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Input offsets are committed after the results and changelog
    /// records are acknowledged: a crash may repeat the work since the
    /// last commit.
    AtLeastOnce,
    /// Per commit interval one transaction holds the results, the changelog
    /// records and the input offsets (KIP-447 with the consumer group's
    /// metadata, as Kafka Streams' `exactly_once_v2`); instances read
    /// `read_committed`, and so should downstream consumers.
    ExactlyOnceV2,
}

/// The settings of one instance of an application.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    pub(crate) bootstrap_servers: String,
    pub(crate) state_dir: PathBuf,
    pub(crate) guarantee: Guarantee,
    pub(crate) commit_interval: Duration,
    pub(crate) max_batch: usize,
    pub(crate) threads: usize,
    pub(crate) replication_factor: i32,
    pub(crate) client: Vec<(String, String)>,
}

impl StreamsConfig {
    /// An instance talking to `bootstrap_servers`, keeping its stores under
    /// `state_dir` (one directory per instance: sled locks it), at least
    /// once, committing every 100 ms.
    pub fn new(bootstrap_servers: &str, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.to_string(),
            state_dir: state_dir.into(),
            guarantee: Guarantee::AtLeastOnce,
            commit_interval: Duration::from_millis(100),
            max_batch: 10_000,
            threads: 1,
            replication_factor: 1,
            client: Vec::new(),
        }
    }

    /// The processing guarantee.
    pub fn guarantee(mut self, guarantee: Guarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// How long records are collected before they are processed and
    /// committed together (Kafka Streams' `commit.interval.ms`).
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// At most this many records per commit.
    pub fn max_batch(mut self, records: usize) -> Self {
        self.max_batch = records.max(1);
        self
    }

    /// How many threads (actix arbiters) the task actors are spread over.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The replication factor of the repartition and changelog topics the
    /// application creates (1 unless set: right for a single broker).
    pub fn replication_factor(mut self, replicas: i32) -> Self {
        self.replication_factor = replicas.max(1);
        self
    }

    /// A librdkafka setting for every client of the instance (for example
    /// `session.timeout.ms`), after the library's own.
    pub fn client_config(mut self, key: &str, value: &str) -> Self {
        self.client.push((key.to_string(), value.to_string()));
        self
    }
}
