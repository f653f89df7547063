//! One replica fetcher per leader broker, as Kafka's ReplicaFetcherThread:
//! a loop that asks every partition followed from that leader where its
//! log ends, sends one Fetch naming them all, and hands each partition the
//! leader's answer: records to append (with the leader's high watermark),
//! or where to truncate to when its log diverged or fell off the leader's.
//!
//! The loop runs as a task on an actix arbiter and never blocks it: the
//! partition actors do the writing, and answer appends only once fsynced,
//! so the offset fetched next is what is durable here. A partition in
//! trouble is left out of the fetches for a while (100 ms, doubling to
//! 1 s) without holding up the others; a broken connection is dropped and
//! made again after the same backoff.

use super::client::Client;
use crate::partition::replication::{FollowerPosition, Position, ReplicaAppend, Truncate};
use crate::partition::Partition;
use crate::security::peer::PeerSecurity;
use actix::{Addr, ArbiterHandle, Handler, Message};
use futures_util::future::join_all;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest};
use kafka_protocol::ResponseError;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use uuid::Uuid;

/// Fetch v15: the first with `replica_state` (the follower's broker epoch,
/// KIP-903); topics named by id.
const FETCH_VERSION: i16 = 15;

/// How long the leader may hold a fetch with nothing new (Kafka's
/// `replica.fetch.wait.max.ms`): an idle follower costs one request per
/// half second per leader, not a spinning loop.
const MAX_WAIT_MS: i32 = 500;

/// Response budget (`replica.fetch.response.max.bytes`, 10 MiB in Kafka).
const MAX_BYTES: i32 = 8 * 1024 * 1024;

/// Per partition budget (`replica.fetch.max.bytes`).
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;

/// Followers copy everything up to the log end, open transactions too.
const READ_UNCOMMITTED: i8 = 0;

/// How long connecting may take (`socket.connection.setup.timeout.ms`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A fetch unanswered this long, far past the leader's long poll, means a
/// stalled leader or a dead connection (`replica.socket.timeout.ms`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Backoff after a failure, doubling while failures go on.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A partition this broker follows from the fetcher's leader, in one
/// leader epoch.
#[derive(Clone)]
pub struct FollowedPartition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub addr: Addr<Partition>,
}

/// A partition in one leader epoch: a new epoch starts with a clean slate.
type Key = (Uuid, i32, i32);

impl FollowedPartition {
    fn key(&self) -> Key {
        (self.topic_id, self.partition, self.leader_epoch)
    }
}

impl fmt::Display for FollowedPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The handle of a fetch loop: it changes the partitions fetched and ends
/// the loop (also when dropped).
pub struct Fetcher {
    partitions: watch::Sender<Arc<Vec<FollowedPartition>>>,
    stop: watch::Sender<bool>,
}

impl Fetcher {
    /// Starts the fetch loop of broker `local_id` (in the broker epoch
    /// `broker_epoch` holds) from broker `leader_id` at `leader_addr`
    /// (`host:port`, its inter-broker listener, reached with `security`) as
    /// a task on `arbiter`. It fetches nothing until
    /// [`Fetcher::set_partitions`] gives it partitions.
    pub fn start(
        local_id: i32,
        broker_epoch: watch::Receiver<i64>,
        leader_id: i32,
        leader_addr: String,
        security: PeerSecurity,
        arbiter: &ArbiterHandle,
    ) -> Fetcher {
        let (partitions, partitions_rx) = watch::channel(Arc::new(Vec::new()));
        let (stop, stop_rx) = watch::channel(false);
        let name = format!("replica fetcher {local_id}<-{leader_id} ({leader_addr})");
        let fetch_loop = FetchLoop {
            local_id,
            name: name.clone(),
            leader_addr,
            security,
            broker_epoch,
            partitions: partitions_rx,
            client: None,
            backoff: MIN_BACKOFF,
            connection_failure: None,
            stalled: HashMap::new(),
        };
        let started = arbiter.spawn(async move {
            log::info!("{name}: started");
            tokio::select! {
                () = fetch_loop.run() => {}
                () = stopped(stop_rx) => {}
            }
            log::info!("{name}: stopped");
        });
        if !started {
            log::error!("replica fetcher {local_id}<-{leader_id}: its arbiter has stopped");
        }
        Fetcher { partitions, stop }
    }

    /// Replaces the set of partitions fetched; the loop takes it before
    /// its next request.
    pub fn set_partitions(&self, partitions: Vec<FollowedPartition>) {
        self.partitions.send_replace(Arc::new(partitions));
    }

    /// Ends the loop, also in the middle of a request.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resolves once `stop` says so or its sender is gone.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// What went wrong with a partition, as logged; a repeat of the same
/// failure is not logged again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A partition left out of fetches until `until`.
struct Stall {
    until: Instant,
    backoff: Duration,
    failure: Failure,
}

struct FetchLoop {
    local_id: i32,
    /// Names the loop in log lines.
    name: String,
    leader_addr: String,
    security: PeerSecurity,
    broker_epoch: watch::Receiver<i64>,
    partitions: watch::Receiver<Arc<Vec<FollowedPartition>>>,
    client: Option<Client>,
    /// The wait before the next connection attempt.
    backoff: Duration,
    /// The last connection failure logged, until a fetch succeeds.
    connection_failure: Option<String>,
    stalled: HashMap<Key, Stall>,
}

impl FetchLoop {
    async fn run(mut self) {
        loop {
            let partitions = self.partitions.borrow_and_update().clone();
            if !self.stalled.is_empty() {
                let followed: HashSet<Key> =
                    partitions.iter().map(FollowedPartition::key).collect();
                self.stalled.retain(|key, _| followed.contains(key));
            }
            if partitions.is_empty() {
                // Nothing to follow from this leader: no connection held.
                self.client = None;
                if self.partitions.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let now = Instant::now();
            let due: Vec<&FollowedPartition> = partitions
                .iter()
                .filter(|p| self.stalled.get(&p.key()).is_none_or(|s| s.until <= now))
                .collect();
            if due.is_empty() {
                let until = self.stalled.values().map(|s| s.until).min();
                tokio::select! {
                    () = sleep_until(until.unwrap_or(now + MIN_BACKOFF)) => {}
                    changed = self.partitions.changed() => if changed.is_err() {
                        return;
                    },
                }
                continue;
            }
            if let Err(e) = self.round(&due).await {
                let wait = self.connection_failed(e);
                sleep(wait).await;
            }
        }
    }

    /// One fetch: where each partition stands, the request, and the
    /// answers applied, all partitions at once (their fsyncs share the
    /// flusher's group commit). An error is the connection's.
    async fn round(&mut self, due: &[&FollowedPartition]) -> io::Result<()> {
        // Taken out while in use: any error below drops it.
        let mut client = match self.client.take() {
            Some(client) => client,
            None => {
                let client_id = format!("actorlog-replica-{}", self.local_id);
                Client::connect(
                    &self.leader_addr,
                    client_id,
                    CONNECT_TIMEOUT,
                    &self.security,
                )
                .await?
            }
        };
        let positions = join_all(due.iter().map(|p| {
            let position = Position {
                leader_epoch: p.leader_epoch,
            };
            ask(p, position, "asking where its log ends")
        }))
        .await;
        let mut fetching = Vec::with_capacity(due.len());
        for (p, position) in due.iter().zip(positions) {
            match position {
                Ok(position) => fetching.push((*p, position)),
                // Its role changed: the metadata will move it.
                Err(failure) => self.stall(p, failure),
            }
        }
        if fetching.is_empty() {
            self.client = Some(client);
            return Ok(());
        }
        let request = fetch_request(self.local_id, *self.broker_epoch.borrow(), &fetching);
        let response = match timeout(REQUEST_TIMEOUT, client.request(FETCH_VERSION, &request)).await
        {
            Ok(response) => response?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no fetch response within {REQUEST_TIMEOUT:?}"),
                ))
            }
        };
        self.client = Some(client);
        self.connected();
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            // The leader refused the whole request (a top-level error,
            // as for fetch sessions): every partition waits.
            for (p, _) in &fetching {
                self.stall(p, Failure(format!("fetch refused: {error}")));
            }
            return Ok(());
        }
        let mut answers: HashMap<(Uuid, i32), PartitionData> = response
            .responses
            .into_iter()
            .flat_map(|topic| {
                let id = topic.topic_id;
                topic
                    .partitions
                    .into_iter()
                    .map(move |data| ((id, data.partition_index), data))
            })
            .collect();
        let applied = join_all(fetching.iter().map(|(p, position)| {
            let data = answers.remove(&(p.topic_id, p.partition));
            apply(p, *position, data)
        }))
        .await;
        for ((p, _), outcome) in fetching.iter().zip(applied) {
            match outcome {
                Ok(()) => self.resume(p),
                Err(failure) => self.stall(p, failure),
            }
        }
        Ok(())
    }

    /// Leaves `p` out of fetches for a while, longer while it keeps
    /// failing; logs the failure unless it is the one logged last.
    fn stall(&mut self, p: &FollowedPartition, failure: Failure) {
        let now = Instant::now();
        match self.stalled.get_mut(&p.key()) {
            Some(stall) => {
                stall.backoff = (stall.backoff * 2).min(MAX_BACKOFF);
                stall.until = now + stall.backoff;
                if stall.failure != failure {
                    log::warn!("{}: {p}: {failure}; retrying", self.name);
                    stall.failure = failure;
                }
            }
            None => {
                log::warn!("{}: {p}: {failure}; retrying", self.name);
                let stall = Stall {
                    until: now + MIN_BACKOFF,
                    backoff: MIN_BACKOFF,
                    failure,
                };
                self.stalled.insert(p.key(), stall);
            }
        }
    }

    /// `p` fetched fine: it is due in every round again.
    fn resume(&mut self, p: &FollowedPartition) {
        if let Some(stall) = self.stalled.remove(&p.key()) {
            log::info!(
                "{}: {p}: fetching again after: {}",
                self.name,
                stall.failure
            );
        }
    }

    /// Drops the connection; answers how long to wait before the next.
    fn connection_failed(&mut self, e: io::Error) -> Duration {
        self.client = None;
        let message = e.to_string();
        if self.connection_failure.as_ref() != Some(&message) {
            log::warn!("{}: {message}; reconnecting", self.name);
            self.connection_failure = Some(message);
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        wait
    }

    fn connected(&mut self) {
        self.backoff = MIN_BACKOFF;
        if let Some(failure) = self.connection_failure.take() {
            log::info!("{}: fetching again after: {failure}", self.name);
        }
    }
}

/// The Fetch of one round: every partition from where its log ends, with
/// the epoch of its last batch for the leader's divergence check. No fetch
/// session (id 0, epoch -1): every request is full.
fn fetch_request(
    local_id: i32,
    broker_epoch: i64,
    fetching: &[(&FollowedPartition, FollowerPosition)],
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, position) in fetching {
        let partition = FetchPartition::default()
            .with_partition(p.partition)
            .with_current_leader_epoch(p.leader_epoch)
            .with_fetch_offset(position.log_end)
            .with_last_fetched_epoch(position.last_epoch)
            .with_log_start_offset(position.log_start)
            .with_partition_max_bytes(PARTITION_MAX_BYTES);
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let replica = ReplicaState::default()
        .with_replica_id(BrokerId(local_id))
        .with_replica_epoch(broker_epoch);
    FetchRequest::default()
        .with_replica_state(replica)
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(MAX_BYTES)
        .with_isolation_level(READ_UNCOMMITTED)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Applies the leader's answer for one partition, fetched from `position`.
async fn apply(
    p: &FollowedPartition,
    position: FollowerPosition,
    data: Option<PartitionData>,
) -> Result<(), Failure> {
    let Some(data) = data else {
        return Err(Failure("the leader's response left it out".into()));
    };
    let leader_epoch = p.leader_epoch;
    match ResponseError::try_from_code(data.error_code) {
        // The logs part before the fetch offset: cut back to where they
        // agree, then fetch again from there (KIP-320).
        None if data.diverging_epoch.epoch >= 0 => {
            let truncate = Truncate {
                leader_epoch,
                offset: data.diverging_epoch.end_offset,
                epoch: Some(data.diverging_epoch.epoch),
                fully: false,
            };
            let after = ask(p, truncate, "truncating where it diverged").await?;
            moved(position, after, "truncating where it diverged")
        }
        // Also with no records: the leader's high watermark and log start
        // move the follower's.
        None => {
            let append = ReplicaAppend {
                leader_epoch,
                records: data.records.unwrap_or_default(),
                high_watermark: data.high_watermark,
                log_start: data.log_start_offset,
            };
            ask(p, append, "appending the leader's records")
                .await
                .map(drop)
        }
        Some(ResponseError::OffsetOutOfRange) => {
            let truncate = if position.log_end < data.log_start_offset {
                // The leader deleted what this log would fetch next: start
                // again at the leader's log start.
                Truncate {
                    leader_epoch,
                    offset: data.log_start_offset,
                    epoch: None,
                    fully: true,
                }
            } else if data.high_watermark >= 0 {
                // Past the leader's end, which leader epochs should rule
                // out: keep only what the leader has committed.
                Truncate {
                    leader_epoch,
                    offset: data.high_watermark,
                    epoch: None,
                    fully: false,
                }
            } else {
                return Err(Failure(
                    "fetch offset out of range and the leader's offsets unknown".into(),
                ));
            };
            let after = ask(p, truncate, "truncating to the leader's range").await?;
            moved(
                position,
                after,
                "fetch offset out of range of the leader's log",
            )
        }
        Some(error) => Err(Failure(format!("fetch answered {error}"))),
    }
}

/// A truncation that left the log as it was would only fetch the same
/// answer again: back off instead.
fn moved(before: FollowerPosition, after: FollowerPosition, doing: &str) -> Result<(), Failure> {
    if before == after {
        return Err(Failure(format!("{doing}: the log stays as it was")));
    }
    Ok(())
}

/// Sends `msg` to the partition's actor.
async fn ask<M>(p: &FollowedPartition, msg: M, doing: &str) -> Result<FollowerPosition, Failure>
where
    M: Message<Result = Result<FollowerPosition, ResponseError>> + Send + 'static,
    Partition: Handler<M>,
{
    match p.addr.send(msg).await {
        Ok(Ok(position)) => Ok(position),
        Ok(Err(error)) => Err(Failure(format!("{doing}: {error}"))),
        Err(_) => Err(Failure(format!("{doing}: its partition actor has stopped"))),
    }
}
