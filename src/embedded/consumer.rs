//! The in-process group consumer: joins a consumer group through the
//! GroupCoordinator actor with the same classic protocol and consumer
//! protocol bytes as Kafka's clients, so it can share a group with
//! librdkafka or Java consumers; reads its partitions from the partition
//! actors and commits to the same offset store.

use super::checks::Checks;
use super::record::{decode, ConsumedRecord};
use super::Error;
use actorlog_actors::clock::now_ms;
use actorlog_actors::group::assignor::{Assignor, Subscriber, Topics};
use actorlog_actors::group::classic::{JoinRequest, JoinedMember, LeaveMember, SyncRequest};
use actorlog_actors::group::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, ProtocolError,
    Subscription, PROTOCOL_TYPE,
};
use actorlog_actors::group::{Commit, Heartbeat, Join, Leave, SyncGroup};
use actorlog_actors::partition::Read;
use actorlog_actors::security::{Operation, Principal};
use actorlog_actors::store::offsets::{CommittedOffset, PartitionOffset};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The assignor this consumer offers (and runs when it leads the group).
const ASSIGNOR: Assignor = Assignor::Range;
const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long `poll` waits for records when there are none.
const POLL_WAIT: Duration = Duration::from_millis(100);
const FETCH_BYTES: usize = 1 << 20;

/// A record with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: i32,
    /// The record itself.
    pub record: ConsumedRecord,
}

/// Starts a group consumer; see [`Broker::consumer`](super::Broker::consumer).
pub struct ConsumerBuilder {
    broker: Arc<actorlog_actors::Broker>,
    group: String,
    checks: Checks,
}

impl ConsumerBuilder {
    pub(super) fn new(broker: Arc<actorlog_actors::Broker>, group: &str) -> Self {
        ConsumerBuilder {
            broker,
            group: group.to_string(),
            checks: Checks::default(),
        }
    }

    /// The consumer, reading as `principal`: with `authorizer: acl` it
    /// needs READ on its group to join and commit and READ on each topic to
    /// subscribe, read and commit, as a Kafka client of that principal from
    /// 127.0.0.1 would; without, [`ResponseError::GroupAuthorizationFailed`]
    /// or [`ResponseError::TopicAuthorizationFailed`]. A consumer without a
    /// principal acts for the application and is not checked.
    pub fn as_principal(self, principal: Principal) -> ConsumerBuilder {
        ConsumerBuilder {
            checks: Checks::as_principal(&self.broker, principal),
            ..self
        }
    }

    /// Subscribes to `topics` and joins the group; returns once this member
    /// has its partitions (which may be none, if the group has more
    /// members than partitions). Each partition is read from the group's
    /// committed offset, or from its start if nothing was committed.
    pub async fn subscribe<'a>(
        self,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Result<Consumer, Error> {
        let topics: Vec<String> = topics.into_iter().map(str::to_string).collect();
        for topic in &topics {
            self.checks.topic(Operation::Read, topic)?;
        }
        let mut consumer = Consumer {
            broker: self.broker,
            checks: self.checks,
            group: self.group,
            topics,
            member_id: String::new(),
            generation: -1,
            positions: BTreeMap::new(),
            last_heartbeat: Instant::now(),
        };
        consumer.join().await?;
        Ok(consumer)
    }
}

/// A member of a consumer group inside this process.
///
/// Run each consumer in its own task and call [`poll`](Self::poll) in a
/// loop, as with any Kafka consumer: heartbeats and rebalances happen
/// there, and a rebalance waits for every member to poll.
///
/// ```
/// # actorlog::block_on(async {
/// # let broker = actorlog::Broker::builder().in_memory().start().await?;
/// let producer = broker.producer();
/// for i in 0..3 {
///     producer.send("jobs", None, format!("job {i}").as_bytes()).await?;
/// }
/// let mut worker = broker.consumer("workers").subscribe(["jobs"]).await?;
/// let mut done = 0;
/// while done < 3 {
///     done += worker.poll().await?.len();
/// }
/// worker.commit().await?;
/// worker.close().await?;
/// # broker.shutdown().await
/// # }).unwrap();
/// ```
pub struct Consumer {
    broker: Arc<actorlog_actors::Broker>,
    checks: Checks,
    group: String,
    topics: Vec<String>,
    member_id: String,
    generation: i32,
    /// Assigned partitions and the next offset to read from each.
    positions: BTreeMap<(String, i32), i64>,
    last_heartbeat: Instant,
}

impl Consumer {
    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    /// The group this consumer is a member of.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Records from the assigned partitions, in offset order within each
    /// partition; waits up to 100 ms for some when there are none, then
    /// returns an empty batch. Heartbeats and rebalances happen here too.
    pub async fn poll(&mut self) -> Result<Vec<Delivered>, Error> {
        if self.last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
            self.heartbeat().await?;
        }
        let mut delivered = Vec::new();
        let mut watches = Vec::new();
        for ((topic, partition), position) in self.positions.iter_mut() {
            self.checks.topic(Operation::Read, topic)?;
            let Some(handle) = self
                .broker
                .topic(topic)
                .and_then(|t| t.partition(*partition).cloned())
            else {
                continue;
            };
            // Watch from before the read, so an append after it wakes us.
            let mut watch = handle.offsets.clone();
            watch.mark_unchanged();
            watches.push(watch);
            let read = Read {
                offset: *position,
                max_bytes: FETCH_BYTES,
                committed: false,
                current_leader_epoch: -1,
                replica: None,
            };
            let records = match handle.addr.send(read).await.map_err(|_| Error::Stopped)? {
                Ok(records) => decode(records.records, *position)?,
                // Behind the log start (retention): continue from there.
                Err(failure) if failure.error == ResponseError::OffsetOutOfRange => {
                    *position = failure.offsets.log_start.max(0);
                    Vec::new()
                }
                Err(failure) => return Err(Error::kafka(failure.error, "fetch")),
            };
            if let Some(last) = records.last() {
                *position = last.offset + 1;
            }
            delivered.extend(records.into_iter().map(|record| Delivered {
                topic: topic.clone(),
                partition: *partition,
                record,
            }));
        }
        if delivered.is_empty() {
            let timer = self.timer(POLL_WAIT)?;
            if watches.is_empty() {
                let _ = timer.await;
            } else {
                let changes = watches.iter_mut().map(|w| Box::pin(w.changed()));
                let changed = futures_util::future::select_all(changes);
                let _ = futures_util::future::select(changed, timer).await;
            }
        }
        Ok(delivered)
    }

    /// Resolves after `wait`, timed on the broker's own threads, so that
    /// `poll` needs no timer from the caller's runtime.
    fn timer(&self, wait: Duration) -> Result<oneshot::Receiver<()>, Error> {
        let (done, timer) = oneshot::channel();
        let spawned = self.broker.next_arbiter().spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = done.send(());
        });
        if spawned {
            Ok(timer)
        } else {
            Err(Error::Stopped)
        }
    }

    /// Commits the positions of every assigned partition (one past the
    /// last record `poll` returned), durably: once this returns, the group
    /// resumes from there, even after a broker restart.
    ///
    /// If the group rebalanced since the last poll, the commit is refused
    /// with [`ResponseError::RebalanceInProgress`] (or
    /// [`ResponseError::IllegalGeneration`]) as Kafka refuses it, and this
    /// consumer rejoins: records it returned since its last successful commit
    /// may be delivered again, here or to another member.
    pub async fn commit(&mut self) -> Result<(), Error> {
        self.checks.group(Operation::Read, &self.group)?;
        for (topic, _) in self.positions.keys() {
            self.checks.topic(Operation::Read, topic)?;
        }
        let now = now_ms();
        let offsets = self
            .positions
            .iter()
            .map(|((topic, partition), offset)| PartitionOffset {
                topic: topic.clone(),
                partition: *partition,
                committed: CommittedOffset {
                    offset: *offset,
                    leader_epoch: -1,
                    metadata: None,
                    commit_timestamp_ms: now,
                },
            })
            .collect();
        let commit = Commit {
            member_id: self.member_id.clone(),
            group_instance_id: None,
            generation_id: self.generation,
            offsets,
        };
        let committed = self
            .broker
            .group(&self.group)
            .send(commit)
            .await
            .map_err(|_| Error::Stopped)?;
        match committed {
            Ok(()) => Ok(()),
            Err(code @ (ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration)) => {
                // The group moved on: these partitions may be someone else's.
                self.join().await?;
                Err(Error::kafka(code, "commit refused: the group rebalanced"))
            }
            Err(code) => Err(Error::kafka(code, "commit")),
        }
    }

    /// Commits and leaves the group, so the others take over at once. A
    /// commit refused because the group rebalanced does not keep it from
    /// leaving.
    pub async fn close(mut self) -> Result<(), Error> {
        match self.commit().await {
            Err(e) if !is_rebalance(&e) => return Err(e),
            _ => {}
        }
        let leave = Leave(vec![LeaveMember {
            member_id: self.member_id.clone(),
            group_instance_id: None,
        }]);
        self.broker
            .group(&self.group)
            .send(leave)
            .await
            .map_err(|_| Error::Stopped)?;
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), Error> {
        self.last_heartbeat = Instant::now();
        let heartbeat = Heartbeat {
            member_id: self.member_id.clone(),
            group_instance_id: None,
            generation_id: self.generation,
        };
        let beat = self
            .broker
            .group(&self.group)
            .send(heartbeat)
            .await
            .map_err(|_| Error::Stopped)?;
        match beat {
            Ok(()) => Ok(()),
            // Eager protocol: give everything up, committed, and rejoin.
            Err(ResponseError::RebalanceInProgress) => self.commit_or_rejoin().await,
            Err(_) => {
                self.member_id.clear();
                self.join().await
            }
        }
    }

    async fn commit_or_rejoin(&mut self) -> Result<(), Error> {
        match self.commit().await {
            Ok(()) => self.join().await,
            // A refused commit has rejoined already.
            Err(e) if is_rebalance(&e) => Ok(()),
            Err(Error::Stopped) => Err(Error::Stopped),
            Err(_) => self.join().await,
        }
    }

    /// The classic join: JoinGroup (twice for a new member, KIP-394), the
    /// leader's range assignment, SyncGroup, then the committed positions.
    async fn join(&mut self) -> Result<(), Error> {
        self.checks.group(Operation::Read, &self.group)?;
        let coordinator = self.broker.group(&self.group);
        let joined = loop {
            let request = JoinRequest {
                member_id: self.member_id.clone(),
                group_instance_id: None,
                client_id: "actorlog-embedded".into(),
                client_host: "/in-process".into(),
                session_timeout_ms: SESSION_TIMEOUT_MS,
                rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
                protocol_type: PROTOCOL_TYPE.into(),
                protocols: vec![(ASSIGNOR.name().into(), subscription(&self.topics)?)],
                require_known_member_id: true,
                reason: None,
            };
            let response = coordinator
                .send(Join(request))
                .await
                .map_err(|_| Error::Stopped)?;
            match response.error {
                None => break response,
                Some(ResponseError::MemberIdRequired) => self.member_id = response.member_id,
                Some(ResponseError::UnknownMemberId) => self.member_id.clear(),
                Some(code) => return Err(Error::kafka(code, "join group")),
            }
        };
        self.member_id = joined.member_id.clone();
        self.generation = joined.generation_id;
        let assignments = if joined.leader == self.member_id {
            self.assign(&joined.members)?
        } else {
            Vec::new()
        };
        let sync = SyncRequest {
            member_id: self.member_id.clone(),
            group_instance_id: None,
            generation_id: self.generation,
            protocol_type: Some(PROTOCOL_TYPE.into()),
            protocol_name: joined.protocol_name,
            assignments,
        };
        let synced = coordinator
            .send(SyncGroup(sync))
            .await
            .map_err(|_| Error::Stopped)?;
        match synced.error {
            None => {}
            Some(ResponseError::RebalanceInProgress) => return Box::pin(self.join()).await,
            Some(code) => return Err(Error::kafka(code, "sync group")),
        }
        self.positions.clear();
        for (topic, partition) in decode_assignment(synced.assignment).map_err(protocol_error)? {
            let committed = self
                .broker
                .offsets()
                .fetch(&self.group, &topic, partition)
                .await
                .map_err(Error::Io)?;
            let start = match committed {
                Some(c) => c.offset,
                None => self
                    .broker
                    .topic(&topic)
                    .and_then(|t| t.partition(partition).map(|p| p.offsets.borrow().log_start))
                    .unwrap_or(0),
            };
            self.positions.insert((topic, partition), start);
        }
        self.last_heartbeat = Instant::now();
        Ok(())
    }

    /// The range assignment of the group, as the leader computes it.
    fn assign(&self, members: &[JoinedMember]) -> Result<Vec<(String, Bytes)>, Error> {
        let mut subscribers = Vec::with_capacity(members.len());
        let mut topics = Topics::new();
        for member in members {
            let subscription =
                decode_subscription(member.metadata.clone()).map_err(protocol_error)?;
            for topic in &subscription.topics {
                if let Some(t) = self.broker.topic(topic) {
                    topics.insert(topic.clone(), t.partitions.len() as i32);
                }
            }
            subscribers.push(Subscriber {
                member_id: member.member_id.clone(),
                instance_id: member.group_instance_id.clone(),
                topics: subscription.topics.into_iter().collect(),
                owned: subscription.owned,
            });
        }
        ASSIGNOR
            .assign(&subscribers, &topics)
            .into_iter()
            .map(|(member, partitions)| {
                Ok((
                    member,
                    encode_assignment(&partitions).map_err(protocol_error)?,
                ))
            })
            .collect()
    }
}

/// Whether a commit was refused because the group rebalanced.
fn is_rebalance(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration)
    )
}

fn protocol_error(e: ProtocolError) -> Error {
    Error::kafka(ResponseError::InconsistentGroupProtocol, e.to_string())
}

fn subscription(topics: &[String]) -> Result<Bytes, Error> {
    let subscription = Subscription {
        topics: topics.to_vec(),
        owned: Vec::new(),
    };
    encode_subscription(&subscription).map_err(protocol_error)
}
