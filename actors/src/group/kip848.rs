//! One consumer group under the new consumer protocol (KIP-848).
//!
//! Here the coordinator, not a client, computes the assignment, and moves
//! partitions member by member with no group-wide barrier. Each change of
//! membership, subscriptions or topic metadata bumps the group epoch and
//! computes a new target assignment with a server-side assignor. Every
//! heartbeat then reconciles its member towards its target: a member first
//! gives up what it must lose (keeping its epoch until its heartbeat shows
//! the partitions gone), then takes the new epoch and whatever of its
//! target no other member still holds; the rest follows on later heartbeats,
//! once the previous owners have let go. So no partition is ever held by
//! two members, and members whose partitions do not move keep consuming.
//!
//! Like [`super::classic::GroupState`], this is a pure state machine: the time
//! comes with every call, [`ConsumerGroup::next_deadline`] says when to
//! call [`ConsumerGroup::tick`], and topic metadata is passed in.

use super::assignor::{Assignment, Assignor, Subscriber, TopicPartition, Topics};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The member epoch that joins.
pub const JOIN_EPOCH: i32 = 0;
/// The member epoch that leaves the group.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch a static member leaves with when it will be back: it
/// keeps its partitions for a session timeout.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// The broker settings a consumer group obeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `group.consumer.heartbeat.interval.ms`, told to every member.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.assignors`: the first is used when no member asks
    /// for one.
    pub assignors: Vec<Assignor>,
    /// `group.consumer.max.size`; 0 means unlimited.
    pub max_size: usize,
}

impl Default for ConsumerGroupConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            assignors: vec![Assignor::Uniform, Assignor::Range],
            max_size: 0,
        }
    }
}

/// A ConsumerGroupHeartbeat request, with topic ids already resolved to
/// names. `None` fields are unchanged since the member's last heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topics: Option<Vec<String>>,
    /// `SubscribedTopicRegex`: also every topic whose whole name matches;
    /// an empty one clears it.
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member holds now.
    pub owned: Option<Vec<TopicPartition>>,
    pub client_id: String,
    pub client_host: String,
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// Why the heartbeat failed; `None` when it succeeded.
    pub error: Option<ResponseError>,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed.
    pub assignment: Option<Vec<TopicPartition>>,
}

impl HeartbeatResponse {
    fn error(error: ResponseError, message: impl Into<String>) -> Self {
        HeartbeatResponse {
            error: Some(error),
            error_message: Some(message.into()),
            member_epoch: LEAVE_EPOCH,
            ..HeartbeatResponse::default()
        }
    }
}

/// The group's state, as ConsumerGroupDescribe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// Some member has not reached its target assignment yet.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A member, for ConsumerGroupDescribe and the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub subscribed_topics: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub assignment: Vec<TopicPartition>,
    pub target_assignment: Vec<TopicPartition>,
}

/// The group, for ConsumerGroupDescribe and the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: Assignor,
    pub members: Vec<ConsumerMemberDescription>,
}

#[derive(Debug, Clone)]
struct Member {
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    subscribed: BTreeSet<String>,
    regex: Option<TopicRegex>,
    /// `subscribed` and the existing topics `regex` matches: what the
    /// assignor sees.
    resolved: BTreeSet<String>,
    server_assignor: Option<Assignor>,
    rebalance_timeout_ms: u64,
    epoch: i32,
    /// The epoch before the last bump, still accepted from a member whose
    /// last answer was lost.
    previous_epoch: i32,
    /// What the member has been given and may consume.
    assigned: BTreeSet<TopicPartition>,
    /// Taken away, but the member has not yet confirmed letting go: nobody
    /// else may have these.
    revoking: BTreeSet<TopicPartition>,
    session_deadline: u64,
    /// When a member still holding `revoking` partitions is fenced.
    revoke_deadline: Option<u64>,
    /// A static member that left with epoch -2 and may come back.
    away: bool,
}

/// A subscription pattern. Kafka matches the whole topic name (RE2/J
/// syntax, which the `regex` crate follows).
#[derive(Debug, Clone)]
struct TopicRegex {
    source: String,
    whole_name: regex::Regex,
}

impl TopicRegex {
    /// `Ok(None)` for the empty pattern, which means "no pattern".
    fn parse(source: &str) -> Result<Option<TopicRegex>, HeartbeatResponse> {
        if source.is_empty() {
            return Ok(None);
        }
        match regex::Regex::new(&format!("^(?:{source})$")) {
            Ok(whole_name) => Ok(Some(TopicRegex {
                source: source.to_string(),
                whole_name,
            })),
            Err(e) => Err(HeartbeatResponse::error(
                ResponseError::InvalidRegularExpression,
                format!("SubscribedTopicRegex {source:?} is not valid: {e}"),
            )),
        }
    }
}

/// One KIP-848 consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    config: ConsumerGroupConfig,
    group_epoch: i32,
    assignment_epoch: i32,
    assignor: Assignor,
    members: BTreeMap<String, Member>,
    target: Assignment,
    /// The partition counts the target was computed for.
    metadata: Topics,
}

impl ConsumerGroup {
    pub fn new(config: ConsumerGroupConfig) -> Self {
        let assignor = config
            .assignors
            .first()
            .copied()
            .unwrap_or(Assignor::Uniform);
        ConsumerGroup {
            config,
            group_epoch: 0,
            assignment_epoch: 0,
            assignor,
            members: BTreeMap::new(),
            target: Assignment::new(),
            metadata: Topics::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// Every topic some member subscribes to, by name or by pattern.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.resolved.iter().cloned())
            .collect()
    }

    /// One heartbeat. `topics` holds the partition count of every existing
    /// topic the group (with this request's subscription) subscribes to.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &Topics,
        now: u64,
    ) -> HeartbeatResponse {
        match req.member_epoch {
            JOIN_EPOCH => self.join(req, topics, now),
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => self.leave(req),
            _ => self.beat(req, topics, now),
        }
    }

    /// Expires sessions and fences members that did not let go of revoked
    /// partitions in time.
    pub fn tick(&mut self, now: u64) {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            log::info!("consumer group member {id} expired");
            self.remove(&id);
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline), m.revoke_deadline])
            .flatten()
            .min()
    }

    /// OffsetCommit's checks for a member of this group, by member epoch.
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), ResponseError> {
        // Epoch -1: a client outside the group's management; allowed while
        // the group is empty, whatever member id it names.
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        if member_epoch < 0 && member_id.is_empty() {
            return Err(ResponseError::UnknownMemberId);
        }
        match self.members.get(member_id) {
            None => Err(ResponseError::UnknownMemberId),
            Some(m) if member_epoch > m.epoch => Err(ResponseError::StaleMemberEpoch),
            // A member may commit at its previous epoch what it keeps, so
            // commits racing with an epoch bump are not lost.
            Some(m) if member_epoch != m.epoch && member_epoch != m.previous_epoch => {
                Err(ResponseError::StaleMemberEpoch)
            }
            Some(_) => Ok(()),
        }
    }

    pub fn describe(&self) -> ConsumerGroupDescription {
        let sorted = |set: &BTreeSet<TopicPartition>| set.iter().cloned().collect::<Vec<_>>();
        ConsumerGroupDescription {
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor,
            members: self
                .members
                .iter()
                .map(|(id, m)| ConsumerMemberDescription {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    member_epoch: m.epoch,
                    subscribed_topics: m.subscribed.iter().cloned().collect(),
                    subscribed_regex: m.regex.as_ref().map(|r| r.source.clone()),
                    assignment: sorted(&m.assigned),
                    target_assignment: self.target.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            return ConsumerGroupState::Empty;
        }
        let settled = self.members.iter().all(|(id, m)| {
            let target = self.target.get(id).map(Vec::as_slice).unwrap_or(&[]);
            m.epoch == self.assignment_epoch
                && m.revoking.is_empty()
                && same(target, &m.assigned.iter().cloned().collect::<Vec<_>>())
        });
        if settled {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
    }

    fn join(&mut self, req: HeartbeatRequest, topics: &Topics, now: u64) -> HeartbeatResponse {
        if req.subscribed_topics.is_none() && req.subscribed_regex.is_none() {
            return HeartbeatResponse::error(
                ResponseError::InvalidRequest,
                "SubscribedTopicNames or SubscribedTopicRegex must be set when joining",
            );
        }
        let subscribed = req.subscribed_topics.clone().unwrap_or_default();
        let regex = match req.subscribed_regex.as_deref().map(TopicRegex::parse) {
            Some(Err(response)) => return response,
            Some(Ok(regex)) => regex,
            None => None,
        };
        if req.rebalance_timeout_ms < 0 {
            return HeartbeatResponse::error(
                ResponseError::InvalidRequest,
                "RebalanceTimeoutMs must be set when joining",
            );
        }
        let assignor = match self.requested_assignor(&req) {
            Ok(a) => a,
            Err(response) => return response,
        };
        let member_id = if req.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            req.member_id.clone()
        };
        let mut inherited = None;
        if let Some(instance) = &req.instance_id {
            let holder = self
                .members
                .iter()
                .find(|(id, m)| m.instance_id.as_ref() == Some(instance) && **id != member_id)
                .map(|(id, m)| (id.clone(), m.away));
            match holder {
                Some((_, false)) => {
                    return HeartbeatResponse::error(
                        ResponseError::UnreleasedInstanceId,
                        format!("instance {instance} is still in use by another member"),
                    )
                }
                // A static member back within its session takes over its
                // predecessor's place and partitions: no rebalance.
                Some((old, true)) => inherited = self.members.remove(&old).map(|m| (old, m)),
                None => {}
            }
        }
        let is_new = !self.members.contains_key(&member_id) && inherited.is_none();
        if is_new && self.config.max_size > 0 && self.members.len() >= self.config.max_size {
            return HeartbeatResponse::error(
                ResponseError::GroupMaxSizeReached,
                "the group is full",
            );
        }
        let subscribed: BTreeSet<String> = subscribed.into_iter().collect();
        let member = match inherited {
            Some((old, mut m)) => {
                if let Some(target) = self.target.remove(&old) {
                    self.target.insert(member_id.clone(), target);
                }
                m.away = false;
                if m.subscribed != subscribed
                    || m.regex.as_ref().map(|r| &r.source) != regex.as_ref().map(|r| &r.source)
                {
                    self.bump();
                }
                m.subscribed = subscribed;
                m.regex = regex;
                m.server_assignor = assignor.or(m.server_assignor);
                m
            }
            None => {
                // A known member joining again lost its partitions (it was
                // fenced or restarted): it starts over.
                if let Some(old) = self.members.remove(&member_id) {
                    log::info!(
                        "consumer group member {member_id} rejoined; it had {:?}",
                        old.assigned
                    );
                }
                self.bump();
                Member {
                    instance_id: req.instance_id.clone(),
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    subscribed,
                    regex,
                    resolved: BTreeSet::new(),
                    server_assignor: assignor,
                    rebalance_timeout_ms: 0,
                    epoch: JOIN_EPOCH,
                    previous_epoch: JOIN_EPOCH,
                    assigned: BTreeSet::new(),
                    revoking: BTreeSet::new(),
                    session_deadline: 0,
                    revoke_deadline: None,
                    away: false,
                }
            }
        };
        self.members.insert(member_id.clone(), member);
        let mut response = self.update_and_reconcile(&member_id, req, topics, now);
        response.assignment = Some(self.assigned(&member_id));
        response
    }

    fn leave(&mut self, req: HeartbeatRequest) -> HeartbeatResponse {
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return HeartbeatResponse::error(ResponseError::UnknownMemberId, "unknown member");
        };
        let epoch = req.member_epoch;
        if epoch == STATIC_LEAVE_EPOCH && member.instance_id.is_some() {
            member.away = true;
        } else {
            self.remove(&req.member_id);
        }
        HeartbeatResponse {
            member_id: req.member_id,
            member_epoch: epoch,
            heartbeat_interval_ms: self.config.heartbeat_interval_ms,
            ..HeartbeatResponse::default()
        }
    }

    fn beat(&mut self, req: HeartbeatRequest, topics: &Topics, now: u64) -> HeartbeatResponse {
        let Some(member) = self.members.get(&req.member_id) else {
            return HeartbeatResponse::error(ResponseError::UnknownMemberId, "unknown member");
        };
        let lost_answer = req.member_epoch == member.previous_epoch
            && req
                .owned
                .as_ref()
                .is_some_and(|owned| owned.iter().all(|tp| member.assigned.contains(tp)));
        if req.member_epoch != member.epoch && !lost_answer {
            return HeartbeatResponse::error(
                ResponseError::FencedMemberEpoch,
                format!(
                    "epoch {} is not the member's epoch {}",
                    req.member_epoch, member.epoch
                ),
            );
        }
        let assignor = match self.requested_assignor(&req) {
            Ok(a) => a,
            Err(response) => return response,
        };
        if let Some(Err(response)) = req.subscribed_regex.as_deref().map(TopicRegex::parse) {
            return response;
        }
        if let Some(m) = self.members.get_mut(&req.member_id) {
            if assignor.is_some() && assignor != m.server_assignor {
                m.server_assignor = assignor;
                self.bump();
            }
        }
        let id = req.member_id.clone();
        let before = self.assigned(&id);
        let resend = lost_answer || req.owned.as_ref().is_some_and(|o| !same(o, &before));
        let mut response = self.update_and_reconcile(&id, req, topics, now);
        let after = self.assigned(&id);
        if resend || after != before {
            response.assignment = Some(after);
        }
        response
    }

    /// Records what the heartbeat says, recomputes the target if anything
    /// changed, and moves the member towards it.
    fn update_and_reconcile(
        &mut self,
        id: &str,
        req: HeartbeatRequest,
        topics: &Topics,
        now: u64,
    ) -> HeartbeatResponse {
        let session = self.config.session_timeout_ms;
        let mut changed = false;
        if let Some(m) = self.members.get_mut(id) {
            m.session_deadline = now.saturating_add(session);
            m.client_id = req.client_id;
            m.client_host = req.client_host;
            if req.rack_id.is_some() {
                m.rack_id = req.rack_id;
            }
            if req.rebalance_timeout_ms >= 0 {
                m.rebalance_timeout_ms = req.rebalance_timeout_ms as u64;
            }
            if let Some(topics) = req.subscribed_topics {
                let topics: BTreeSet<String> = topics.into_iter().collect();
                if topics != m.subscribed {
                    m.subscribed = topics;
                    changed = true;
                }
            }
            // Checked by the caller: only valid patterns reach here.
            if let Some(Ok(regex)) = req.subscribed_regex.as_deref().map(TopicRegex::parse) {
                if m.regex.as_ref().map(|r| &r.source) != regex.as_ref().map(|r| &r.source) {
                    m.regex = regex;
                    changed = true;
                }
            }
            // The member confirms a revocation by no longer listing the
            // partitions it was asked to give up.
            if let Some(owned) = &req.owned {
                if !m.revoking.is_empty() && m.revoking.iter().all(|tp| !owned.contains(tp)) {
                    m.revoking.clear();
                    m.revoke_deadline = None;
                }
            }
        }
        if changed {
            self.bump();
        }
        self.refresh_metadata(topics);
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }
        self.reconcile(id, now);
        let epoch = self.members.get(id).map_or(LEAVE_EPOCH, |m| m.epoch);
        HeartbeatResponse {
            error: None,
            error_message: None,
            member_id: id.to_string(),
            member_epoch: epoch,
            heartbeat_interval_ms: self.config.heartbeat_interval_ms,
            assignment: None,
        }
    }

    /// A change in the partition counts of subscribed topics (a topic
    /// created, grown or deleted), or in the topics a pattern matches, is a
    /// new group epoch.
    fn refresh_metadata(&mut self, topics: &Topics) {
        let mut matches_changed = false;
        for m in self.members.values_mut() {
            let mut resolved = m.subscribed.clone();
            if let Some(regex) = &m.regex {
                resolved.extend(
                    topics
                        .keys()
                        .filter(|t| regex.whole_name.is_match(t))
                        .cloned(),
                );
            }
            if resolved != m.resolved {
                m.resolved = resolved;
                matches_changed = true;
            }
        }
        if matches_changed {
            self.bump();
        }
        let subscribed = self.subscribed_topics();
        let current: Topics = topics
            .iter()
            .filter(|(t, _)| subscribed.contains(*t))
            .map(|(t, c)| (t.clone(), *c))
            .collect();
        if current != self.metadata {
            self.metadata = current;
            self.bump();
        }
    }

    fn compute_target(&mut self) {
        self.assignor = self.preferred_assignor();
        let subscribers: Vec<Subscriber> = self
            .members
            .iter()
            .map(|(id, m)| Subscriber {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                topics: m.resolved.clone(),
                owned: m.assigned.iter().chain(&m.revoking).cloned().collect(),
            })
            .collect();
        self.target = self.assignor.assign(&subscribers, &self.metadata);
        self.assignment_epoch = self.group_epoch;
    }

    /// The assignor most members ask for, else the configured default.
    fn preferred_assignor(&self) -> Assignor {
        let mut votes: BTreeMap<&str, (usize, Assignor)> = BTreeMap::new();
        for assignor in self.members.values().filter_map(|m| m.server_assignor) {
            votes.entry(assignor.name()).or_insert((0, assignor)).0 += 1;
        }
        votes
            .values()
            .max_by_key(|(count, a)| (*count, std::cmp::Reverse(a.name())))
            .map(|(_, a)| *a)
            .unwrap_or_else(|| {
                self.config
                    .assignors
                    .first()
                    .copied()
                    .unwrap_or(Assignor::Uniform)
            })
    }

    fn requested_assignor(
        &self,
        req: &HeartbeatRequest,
    ) -> Result<Option<Assignor>, HeartbeatResponse> {
        let Some(name) = req.server_assignor.as_deref() else {
            return Ok(None);
        };
        match Assignor::from_name(name).filter(|a| self.config.assignors.contains(a)) {
            Some(a) => Ok(Some(a)),
            None => Err(HeartbeatResponse::error(
                ResponseError::UnsupportedAssignor,
                format!(
                    "server assignor {name} is not one of {:?}",
                    self.assignor_names()
                ),
            )),
        }
    }

    fn assignor_names(&self) -> Vec<&'static str> {
        self.config.assignors.iter().map(|a| a.name()).collect()
    }

    /// One step of the member towards its target: first give up, then take.
    fn reconcile(&mut self, id: &str, now: u64) {
        let target: BTreeSet<TopicPartition> =
            self.target.get(id).into_iter().flatten().cloned().collect();
        let held_elsewhere: BTreeSet<TopicPartition> = self
            .members
            .iter()
            .filter(|(other, _)| other.as_str() != id)
            .flat_map(|(_, m)| m.assigned.iter().chain(&m.revoking).cloned())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if !m.revoking.is_empty() {
            return;
        }
        let lose: BTreeSet<TopicPartition> = m.assigned.difference(&target).cloned().collect();
        if !lose.is_empty() {
            m.assigned.retain(|tp| !lose.contains(tp));
            m.revoking = lose;
            m.revoke_deadline = Some(now.saturating_add(m.rebalance_timeout_ms));
            return;
        }
        let free = target.difference(&held_elsewhere).cloned();
        m.assigned.extend(free);
        if m.epoch != assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = assignment_epoch;
        }
    }

    fn assigned(&self, id: &str) -> Vec<TopicPartition> {
        self.members
            .get(id)
            .map(|m| m.assigned.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn remove(&mut self, id: &str) {
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.bump();
        }
    }

    /// A new group epoch, once per change until its target is computed.
    fn bump(&mut self) {
        if self.group_epoch == self.assignment_epoch {
            self.group_epoch += 1;
        }
    }
}

fn same(owned: &[TopicPartition], assigned: &[TopicPartition]) -> bool {
    let owned: BTreeSet<&TopicPartition> = owned.iter().collect();
    owned.len() == assigned.len() && assigned.iter().all(|tp| owned.contains(tp))
}

#[cfg(test)]
mod tests;
