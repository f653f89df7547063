//! The GroupCoordinator actor: one per consumer group, created on first use.
//!
//! It owns the group's pure [`classic::GroupState`] and turns requests into
//! calls on it. Requests that the state machine answers later (JoinGroup until
//! the join phase ends, a follower's SyncGroup until the leader's) park a
//! oneshot sender under a token; the replies the machine returns are routed
//! back through those. One timer, always set to the machine's next deadline,
//! drives session expiry and rebalance timeouts. Committed offsets go to the
//! shared sled [`OffsetStore`] after the machine has checked the member; in
//! a cluster they are first replicated through a [`CommitLog`], so they
//! survive the loss of this coordinator.
//!
//! A group speaks one protocol at a time: the classic one (JoinGroup,
//! SyncGroup) or the new consumer protocol of KIP-848
//! (ConsumerGroupHeartbeat, [`kip848::ConsumerGroup`]). While one
//! has members, requests of the other are refused, as Kafka does for a
//! group it does not convert.
//!
//! A coordinator lives while its group is used: one that the broker's
//! periodic check finds idle twice in a row ([`StopIfIdle`]) stops, and the
//! broker starts a new one the next time the group is used.

pub mod assignor;
pub mod classic;
pub mod consumer_protocol;
pub mod kip848;

use crate::store::offsets::{OffsetStore, PartitionOffset};
use actix::{
    Actor, ActorContext, AsyncContext, Context, Handler, Message, MessageResult, ResponseFuture,
    SpawnHandle,
};
use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use self::assignor::Topics;
use self::classic::{
    GroupConfig, GroupDescription, GroupState, JoinRequest, JoinResponse, LeaveMember, LeaveResult,
    Reply, SyncRequest, SyncResponse, Token,
};
use self::consumer_protocol::decode_subscription;
use self::kip848::{
    ConsumerGroup, ConsumerGroupConfig, ConsumerGroupDescription, HeartbeatRequest,
    HeartbeatResponse,
};

/// Where a cluster replicates a group's commits before they count (the
/// group's partition of the offsets topic).
pub trait CommitLog: Send + Sync {
    /// Resolves once the commit is replicated, or with the error the
    /// committing client gets.
    fn append(
        &self,
        group: &str,
        offsets: &[PartitionOffset],
    ) -> BoxFuture<'static, Result<(), ResponseError>>;

    /// Resolves once the deletion of the group's offsets of `partitions`
    /// is replicated.
    fn delete(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> BoxFuture<'static, Result<(), ResponseError>>;
}

pub struct GroupCoordinator {
    /// The group it coordinates, for log lines and the offset store.
    group_id: String,
    /// The classic protocol's state machine (JoinGroup, SyncGroup).
    state: GroupState,
    /// The KIP-848 consumer protocol's state machine.
    consumer: ConsumerGroup,
    /// Where committed offsets are stored (shared sled tree).
    offsets: OffsetStore,
    /// In a cluster: replicates commits before they are stored.
    commit_log: Option<Arc<dyn CommitLog>>,
    /// The state machine's clock is milliseconds since the actor started.
    clock: Instant,
    /// JoinGroup requests the state machine answers later, by token.
    joins: HashMap<Token, oneshot::Sender<JoinResponse>>,
    /// SyncGroup requests waiting for the leader's assignment, by token.
    syncs: HashMap<Token, oneshot::Sender<SyncResponse>>,
    /// The last token handed out.
    next_token: Token,
    /// The one timer, set to the machines' next deadline.
    timer: Option<SpawnHandle>,
    /// Set by an idle check that found the group idle (no members, no
    /// waiting request, no deadline), cleared by any request of its
    /// members or committers: a group still idle at the next check stops.
    seen_idle: bool,
}

impl GroupCoordinator {
    pub fn new(
        group_id: String,
        config: GroupConfig,
        consumer_config: ConsumerGroupConfig,
        offsets: OffsetStore,
        commit_log: Option<Arc<dyn CommitLog>>,
    ) -> Self {
        GroupCoordinator {
            state: GroupState::new(group_id.clone(), config),
            consumer: ConsumerGroup::new(consumer_config),
            group_id,
            offsets,
            commit_log,
            clock: Instant::now(),
            joins: HashMap::new(),
            syncs: HashMap::new(),
            next_token: 0,
            timer: None,
            seen_idle: false,
        }
    }

    /// Nothing for the actor to do or remember: no members under either
    /// protocol, no parked request, no deadline. Committed offsets live in
    /// the store, so such a group's actor can go and be started again.
    fn is_idle(&self) -> bool {
        self.state.is_empty()
            && self.consumer.is_empty()
            && self.joins.is_empty()
            && self.syncs.is_empty()
            && self.state.next_deadline().is_none()
            && self.consumer.next_deadline().is_none()
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    /// Routes replies to their waiting requests and re-arms the timer.
    fn deliver(&mut self, replies: Vec<Reply>, ctx: &mut Context<Self>) {
        for reply in replies {
            match reply {
                Reply::Join(token, response) => {
                    if let Some(tx) = self.joins.remove(&token) {
                        let _ = tx.send(response);
                    }
                }
                Reply::Sync(token, response) => {
                    if let Some(tx) = self.syncs.remove(&token) {
                        let _ = tx.send(response);
                    }
                }
            }
        }
        self.rearm(ctx);
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let deadline = [self.state.next_deadline(), self.consumer.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        if let Some(deadline) = deadline {
            let delay = Duration::from_millis(deadline.saturating_sub(self.now()));
            self.timer = Some(ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                let now = act.now();
                act.consumer.tick(now);
                let replies = act.state.tick(now);
                act.deliver(replies, ctx);
            }));
        }
    }
}

impl Actor for GroupCoordinator {
    type Context = Context<Self>;
}

/// Awaits a parked reply; a dropped sender means the group went away.
fn parked<T: Send + 'static>(rx: oneshot::Receiver<T>, gone: T) -> ResponseFuture<T> {
    Box::pin(async move { rx.await.unwrap_or(gone) })
}

#[derive(Message)]
#[rtype(result = "JoinResponse")]
pub struct Join(pub JoinRequest);

impl Handler<Join> for GroupCoordinator {
    type Result = ResponseFuture<JoinResponse>;

    fn handle(&mut self, Join(request): Join, ctx: &mut Context<Self>) -> Self::Result {
        self.seen_idle = false;
        if !self.consumer.is_empty() {
            let error = JoinResponse::error(ResponseError::InconsistentGroupProtocol);
            return Box::pin(async move { error });
        }
        let token = self.token();
        let (tx, rx) = oneshot::channel();
        self.joins.insert(token, tx);
        let replies = self.state.join(token, request, self.now());
        self.deliver(replies, ctx);
        parked(
            rx,
            JoinResponse::error(ResponseError::CoordinatorNotAvailable),
        )
    }
}

#[derive(Message)]
#[rtype(result = "SyncResponse")]
pub struct SyncGroup(pub SyncRequest);

impl Handler<SyncGroup> for GroupCoordinator {
    type Result = ResponseFuture<SyncResponse>;

    fn handle(&mut self, SyncGroup(request): SyncGroup, ctx: &mut Context<Self>) -> Self::Result {
        self.seen_idle = false;
        let token = self.token();
        let (tx, rx) = oneshot::channel();
        self.syncs.insert(token, tx);
        let replies = self.state.sync(token, request, self.now());
        self.deliver(replies, ctx);
        parked(
            rx,
            SyncResponse::error(ResponseError::CoordinatorNotAvailable),
        )
    }
}

/// Heartbeat from a classic group's member: `Ok` while it is in good
/// standing, REBALANCE_IN_PROGRESS when it must rejoin.
#[derive(Message)]
#[rtype(result = "Result<(), ResponseError>")]
pub struct Heartbeat {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

impl Handler<Heartbeat> for GroupCoordinator {
    type Result = Result<(), ResponseError>;

    fn handle(&mut self, msg: Heartbeat, ctx: &mut Context<Self>) -> Self::Result {
        self.seen_idle = false;
        let error = self.state.heartbeat(
            &msg.member_id,
            msg.group_instance_id.as_deref(),
            msg.generation_id,
            self.now(),
        );
        self.rearm(ctx);
        error
    }
}

#[derive(Message)]
#[rtype(result = "Vec<LeaveResult>")]
pub struct Leave(pub Vec<LeaveMember>);

impl Handler<Leave> for GroupCoordinator {
    type Result = MessageResult<Leave>;

    fn handle(&mut self, Leave(members): Leave, ctx: &mut Context<Self>) -> Self::Result {
        let (results, replies) = self.state.leave(members, self.now());
        self.deliver(replies, ctx);
        MessageResult(results)
    }
}

/// OffsetCommit from a member (or, with generation -1, from a client that
/// manages its own partitions).
#[derive(Message)]
#[rtype(result = "Result<(), ResponseError>")]
pub struct Commit {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub offsets: Vec<PartitionOffset>,
}

impl Handler<Commit> for GroupCoordinator {
    type Result = ResponseFuture<Result<(), ResponseError>>;

    fn handle(&mut self, msg: Commit, _: &mut Context<Self>) -> Self::Result {
        self.seen_idle = false;
        let checked = if self.consumer.is_empty() {
            self.state.validate_commit(
                &msg.member_id,
                msg.group_instance_id.as_deref(),
                msg.generation_id,
            )
        } else {
            self.consumer
                .validate_commit(&msg.member_id, msg.generation_id)
        };
        if let Err(error) = checked {
            return Box::pin(async move { Err(error) });
        }
        let store = self.offsets.clone();
        let group = self.group_id.clone();
        let storage_error = move |e: std::io::Error| {
            log::error!("group {group}: commit failed: {e}");
            ResponseError::KafkaStorageError
        };
        match &self.commit_log {
            Some(log) => {
                let replicated = log.append(&self.group_id, &msg.offsets);
                let group = self.group_id.clone();
                Box::pin(async move {
                    replicated.await?;
                    store
                        .commit(&group, &msg.offsets)
                        .await
                        .map_err(storage_error)
                })
            }
            // Queued on the store's writer now: the group's commits are
            // applied in the order this actor took them.
            None => {
                let stored = store.commit(&self.group_id, &msg.offsets);
                Box::pin(async move { stored.await.map_err(storage_error) })
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "GroupDescription")]
pub struct Describe;

impl Handler<Describe> for GroupCoordinator {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, _: Describe, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state.describe())
    }
}

/// DeleteGroups for this group: only an empty group may go (NON_EMPTY_GROUP
/// otherwise); a deleted coordinator stops.
#[derive(Message)]
#[rtype(result = "Result<(), ResponseError>")]
pub struct DeleteGroup;

impl Handler<DeleteGroup> for GroupCoordinator {
    type Result = Result<(), ResponseError>;

    fn handle(&mut self, _: DeleteGroup, ctx: &mut Context<Self>) -> Self::Result {
        if !self.state.is_empty() || !self.consumer.is_empty() {
            return Err(ResponseError::NonEmptyGroup);
        }
        self.state.remove_all();
        ctx.stop();
        Ok(())
    }
}

/// This broker no longer coordinates the group (in a cluster, another
/// broker took its offsets partition): the actor stops, and requests it
/// parked are answered as for a group that went away; members find the new
/// coordinator and rejoin there.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for GroupCoordinator {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// The broker's periodic idle check (with each offset-retention check):
/// a group found idle at two checks in a row, with no request of its own
/// in between, stops and answers `true`; the broker then forgets it and
/// starts a new coordinator when the group is next used. Its committed
/// offsets stay in the store. A request that reaches the stopped actor
/// fails to send, which the api handlers answer COORDINATOR_NOT_AVAILABLE,
/// a retriable error: the client's retry finds the new coordinator.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopIfIdle;

impl Handler<StopIfIdle> for GroupCoordinator {
    type Result = bool;

    fn handle(&mut self, _: StopIfIdle, ctx: &mut Context<Self>) -> bool {
        if !self.is_idle() {
            self.seen_idle = false;
            return false;
        }
        if !self.seen_idle {
            self.seen_idle = true;
            return false;
        }
        log::debug!("group {}: idle, its coordinator stops", self.group_id);
        ctx.stop();
        true
    }
}

/// ConsumerGroupHeartbeat (KIP-848), with the partition counts of the
/// broker's topics.
#[derive(Message)]
#[rtype(result = "HeartbeatResponse")]
pub struct ConsumerHeartbeat {
    pub request: HeartbeatRequest,
    pub topics: Topics,
}

impl Handler<ConsumerHeartbeat> for GroupCoordinator {
    type Result = MessageResult<ConsumerHeartbeat>;

    fn handle(&mut self, msg: ConsumerHeartbeat, ctx: &mut Context<Self>) -> Self::Result {
        self.seen_idle = false;
        if !self.state.is_empty() {
            return MessageResult(HeartbeatResponse {
                error: Some(ResponseError::GroupIdNotFound),
                error_message: Some(format!("group {} is a classic group", self.group_id)),
                ..HeartbeatResponse::default()
            });
        }
        let response = self
            .consumer
            .heartbeat(msg.request, &msg.topics, self.now());
        self.rearm(ctx);
        MessageResult(response)
    }
}

/// ConsumerGroupDescribe: `None` for a group that is not a KIP-848 group.
#[derive(Message)]
#[rtype(result = "Option<ConsumerGroupDescription>")]
pub struct DescribeConsumerGroup;

impl Handler<DescribeConsumerGroup> for GroupCoordinator {
    type Result = MessageResult<DescribeConsumerGroup>;

    fn handle(&mut self, _: DescribeConsumerGroup, _: &mut Context<Self>) -> Self::Result {
        let described =
            (!self.consumer.is_empty() || self.state.is_empty()).then(|| self.consumer.describe());
        MessageResult(described)
    }
}

/// The topics the group's live members subscribe to, under whichever
/// protocol it speaks (OffsetDelete refuses to drop their offsets). A
/// classic group's subscriptions are read from its members' metadata.
#[derive(Message)]
#[rtype(result = "BTreeSet<String>")]
pub struct SubscribedTopics;

impl Handler<SubscribedTopics> for GroupCoordinator {
    type Result = MessageResult<SubscribedTopics>;

    fn handle(&mut self, _: SubscribedTopics, _: &mut Context<Self>) -> Self::Result {
        if !self.consumer.is_empty() {
            return MessageResult(self.consumer.subscribed_topics());
        }
        let topics = self
            .state
            .describe()
            .members
            .into_iter()
            .filter_map(|m| decode_subscription(m.metadata).ok())
            .flat_map(|s| s.topics)
            .collect();
        MessageResult(topics)
    }
}

#[cfg(test)]
mod tests;
