//! One consumer group's membership, as Kafka's classic group protocol runs it.
//!
//! [`GroupState`] is the GroupCoordinator's state machine for JoinGroup,
//! SyncGroup, Heartbeat and LeaveGroup, and the member checks OffsetCommit
//! needs. It does no I/O, owns no timer and reads no clock: every call is
//! given the time, the owner asks [`GroupState::next_deadline`] after each
//! call and calls [`GroupState::tick`] when that time comes. Requests whose
//! answer must wait (a JoinGroup until the join phase ends, a follower's
//! SyncGroup until the leader's) come with a [`Token`] and are answered later
//! through the [`Reply`] values the calls return. Every token is answered
//! exactly once.
//!
//! States follow Kafka: Empty → PreparingRebalance (the join phase) →
//! CompletingRebalance (waiting for the leader's assignment) → Stable, and
//! Dead once deleted.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use std::cmp::Reverse;
use std::fmt;
use uuid::Uuid;

mod requests;

pub use self::requests::{
    GroupDescription, JoinRequest, JoinResponse, JoinedMember, LeaveMember, LeaveResult,
    MemberDescription, Reply, SyncRequest, SyncResponse, Token,
};

/// A new member cannot heartbeat while its first JoinGroup waits, so Kafka
/// gives up on it after this long (a client that is still there retries).
const NEW_MEMBER_JOIN_TIMEOUT_MS: u64 = 300_000;

/// The broker settings a group obeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`; 0 means unlimited.
    pub max_size: usize,
}

impl Default for GroupConfig {
    /// Kafka's defaults, with no size limit.
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: 0,
        }
    }
}

/// The group's state, named as Kafka prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl StateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Empty => "Empty",
            StateKind::PreparingRebalance => "PreparingRebalance",
            StateKind::CompletingRebalance => "CompletingRebalance",
            StateKind::Stable => "Stable",
            StateKind::Dead => "Dead",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// A JoinGroup waiting for the end of the join phase.
    join: Option<Token>,
    /// A SyncGroup waiting for the leader's assignment.
    sync: Option<Token>,
    /// Joined during this rebalance and never got a generation.
    is_new: bool,
    /// Has not sent SyncGroup since the last join phase ended.
    needs_sync: bool,
    session_deadline: u64,
}

impl Member {
    fn new(id: String, req: JoinRequest, token: Token, now: u64) -> Self {
        Member {
            id,
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: millis(req.session_timeout_ms),
            rebalance_timeout_ms: millis(req.rebalance_timeout_ms),
            protocols: req.protocols,
            assignment: Bytes::new(),
            join: Some(token),
            sync: None,
            is_new: true,
            needs_sync: false,
            session_deadline: after(now, NEW_MEMBER_JOIN_TIMEOUT_MS),
        }
    }

    /// Takes what a later JoinGroup says about the member.
    fn update(&mut self, req: JoinRequest) {
        self.client_id = req.client_id;
        self.client_host = req.client_host;
        self.session_timeout_ms = millis(req.session_timeout_ms);
        self.rebalance_timeout_ms = millis(req.rebalance_timeout_ms);
        self.protocols = req.protocols;
    }

    fn touch(&mut self, now: u64) {
        self.session_deadline = after(now, self.session_timeout_ms);
    }

    /// When the member is dropped for silence. A known member waiting in the
    /// join phase or for its assignment cannot heartbeat meanwhile, so it is
    /// kept: the rebalance and sync timeouts deal with it.
    fn expiry(&self) -> Option<u64> {
        let waiting = self.sync.is_some() || (self.join.is_some() && !self.is_new);
        (!waiting).then_some(self.session_deadline)
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

/// A member id handed out with ResponseError::MemberIdRequired, not yet used to join.
#[derive(Debug)]
struct PendingMember {
    id: String,
    deadline: u64,
}

/// The join phase of a rebalance (state PreparingRebalance).
#[derive(Debug)]
struct JoinPhase {
    deadline: u64,
    /// Set when the phase started from an empty group.
    initial: Option<InitialDelay>,
}

/// `group.initial.rebalance.delay.ms`: the first rebalance of an empty group
/// waits in windows of that delay while new members keep coming, so that a
/// starting fleet of consumers forms one generation rather than many.
#[derive(Debug)]
struct InitialDelay {
    /// The join phase never outlasts the rebalance timeout (or one delay).
    until: u64,
    new_member_joined: bool,
}

/// Who a JoinGroup comes from.
enum Joiner {
    New,
    /// Comes back with the id it got with ResponseError::MemberIdRequired.
    Pending,
    Known(usize),
    /// A known static instance restarted with no member id (KIP-345).
    Restarted(usize),
}

/// One consumer group's membership state machine.
#[derive(Debug)]
pub struct GroupState {
    group_id: String,
    config: GroupConfig,
    state: StateKind,
    generation: i32,
    protocol_type: Option<String>,
    /// The protocol selected for the current generation.
    protocol: Option<String>,
    leader: Option<String>,
    /// In the order they joined.
    members: Vec<Member>,
    pending: Vec<PendingMember>,
    join_phase: Option<JoinPhase>,
    /// Members that have not synced by then are dropped.
    sync_deadline: Option<u64>,
}

impl GroupState {
    pub fn new(group_id: String, config: GroupConfig) -> Self {
        GroupState {
            group_id,
            config,
            state: StateKind::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: Vec::new(),
            join_phase: None,
            sync_deadline: None,
        }
    }

    pub fn state(&self) -> StateKind {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Whether the group is Empty, the only state in which it may be deleted.
    pub fn is_empty(&self) -> bool {
        self.state == StateKind::Empty
    }

    /// JoinGroup. The answer comes at once or when the join phase ends.
    pub fn join(&mut self, token: Token, req: JoinRequest, now_ms: u64) -> Vec<Reply> {
        let mut out = Vec::new();
        match self.admit(&req) {
            Ok(joiner) => self.enter(joiner, token, req, now_ms, &mut out),
            Err(error) => {
                let response = JoinResponse::error_for(&req.member_id, error);
                out.push(Reply::Join(token, response));
            }
        }
        out
    }

    /// SyncGroup. A follower's answer waits for the leader's assignment.
    pub fn sync(&mut self, token: Token, req: SyncRequest, now_ms: u64) -> Vec<Reply> {
        let mut out = Vec::new();
        if let Err(error) = self.try_sync(token, req, now_ms, &mut out) {
            out.push(Reply::Sync(token, SyncResponse::error(error)));
        }
        out
    }

    /// Heartbeat: `Ok` when the member is in good standing.
    /// ResponseError::RebalanceInProgress is how members learn that they must rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: u64,
    ) -> Result<(), ResponseError> {
        if self.state == StateKind::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let i = self.current_member(member_id, group_instance_id)?;
        if generation_id != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        self.members[i].touch(now_ms);
        if self.state == StateKind::PreparingRebalance {
            Err(ResponseError::RebalanceInProgress)
        } else {
            Ok(())
        }
    }

    /// LeaveGroup: a result per member, and the answers to requests of
    /// the members that left.
    pub fn leave(
        &mut self,
        members: Vec<LeaveMember>,
        now_ms: u64,
    ) -> (Vec<LeaveResult>, Vec<Reply>) {
        let mut out = Vec::new();
        let results = members
            .into_iter()
            .map(|member| {
                let error = self.leave_one(&member, now_ms, &mut out);
                (member, error)
            })
            .collect();
        (results, out)
    }

    /// Acts on every deadline reached by `now_ms`: drops silent members and
    /// unused pending ids, ends join phases and sync waits.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Reply> {
        let mut out = Vec::new();
        if self.state == StateKind::Dead {
            return out;
        }
        self.expire_pending(now_ms, &mut out);
        self.expire_sessions(now_ms, &mut out);
        if self
            .join_phase
            .as_ref()
            .is_some_and(|p| p.deadline <= now_ms)
        {
            self.end_join_window(now_ms, &mut out);
        }
        if self.sync_deadline.is_some_and(|d| d <= now_ms) {
            self.expire_sync(now_ms, &mut out);
        }
        out
    }

    /// The earliest time at which [`GroupState::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let members = self.members.iter().filter_map(Member::expiry);
        let pending = self.pending.iter().map(|p| p.deadline);
        let phases = self.join_phase.as_ref().map(|p| p.deadline);
        members
            .chain(pending)
            .chain(phases)
            .chain(self.sync_deadline)
            .min()
    }

    /// OffsetCommit's checks: `Ok` when the commit may be stored. A commit with
    /// no member id, no instance id and a negative generation comes from a
    /// client that assigns itself partitions; it is only allowed while the
    /// group has no members.
    pub fn validate_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if self.state == StateKind::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        // Generation -1: a client managing its own partitions (or an admin
        // client). It may commit to an empty group, whatever member id it
        // names, as Kafka allows.
        if generation_id < 0 && self.members.is_empty() {
            return Ok(());
        }
        if generation_id < 0 && member_id.is_empty() && group_instance_id.is_none() {
            return Err(ResponseError::UnknownMemberId);
        }
        self.current_member(member_id, group_instance_id)?;
        if generation_id != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        // A member that has its generation but not yet its assignment must
        // not commit for partitions it may be about to lose.
        if self.state == StateKind::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    pub fn describe(&self) -> GroupDescription {
        let stable = self
            .protocol
            .as_deref()
            .filter(|_| self.state == StateKind::Stable);
        GroupDescription {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: stable.unwrap_or_default().to_string(),
            members: self
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: stable.map(|p| m.metadata(p)).unwrap_or_default(),
                    assignment: if stable.is_some() {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// DeleteGroups: marks the group Dead. The caller deletes only Empty
    /// groups, which have no waiting requests; any there are get
    /// ResponseError::CoordinatorNotAvailable, as from a coordinator that went away.
    pub fn remove_all(&mut self) -> Vec<Reply> {
        let out = self
            .members
            .drain(..)
            .flat_map(|m| answer_waiting(m.join, m.sync, ResponseError::CoordinatorNotAvailable))
            .collect();
        self.state = StateKind::Dead;
        self.pending.clear();
        self.join_phase = None;
        self.sync_deadline = None;
        self.leader = None;
        self.protocol = None;
        self.protocol_type = None;
        out
    }

    /// Checks a JoinGroup: who sends it, or why it is refused.
    fn admit(&self, req: &JoinRequest) -> Result<Joiner, ResponseError> {
        if self.state == StateKind::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let timeouts = self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms;
        if !timeouts.contains(&req.session_timeout_ms) {
            return Err(ResponseError::InvalidSessionTimeout);
        }
        let joiner = self.identify(req)?;
        let known = match joiner {
            Joiner::Known(i) | Joiner::Restarted(i) => Some(i),
            Joiner::New | Joiner::Pending => None,
        };
        if known.is_none() && !self.has_room() {
            return Err(ResponseError::GroupMaxSizeReached);
        }
        if !self.accepts_protocols(req, known) {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        Ok(joiner)
    }

    /// Acts on an admitted JoinGroup.
    fn enter(
        &mut self,
        joiner: Joiner,
        token: Token,
        req: JoinRequest,
        now: u64,
        out: &mut Vec<Reply>,
    ) {
        match joiner {
            // KIP-394: a dynamic member first gets an id, and joins with it.
            Joiner::New if req.group_instance_id.is_none() && req.require_known_member_id => {
                let id = new_member_id(&req);
                self.pending.push(PendingMember {
                    id: id.clone(),
                    deadline: after(now, millis(req.session_timeout_ms)),
                });
                let response = JoinResponse::error_for(&id, ResponseError::MemberIdRequired);
                out.push(Reply::Join(token, response));
            }
            Joiner::New => {
                let id = new_member_id(&req);
                self.add_member(id, req, token, now, out);
            }
            Joiner::Pending => {
                self.pending.retain(|p| p.id != req.member_id);
                let id = req.member_id.clone();
                self.add_member(id, req, token, now, out);
            }
            Joiner::Known(i) => self.rejoin(i, req, token, now, out),
            Joiner::Restarted(i) => self.restart_static(i, req, token, now, out),
        }
    }

    /// Tells who sends a JoinGroup, or why it is refused.
    fn identify(&self, req: &JoinRequest) -> Result<Joiner, ResponseError> {
        let instance = req.group_instance_id.as_deref();
        let static_member = instance.and_then(|id| self.static_member(id));
        if req.member_id.is_empty() {
            return Ok(static_member.map_or(Joiner::New, Joiner::Restarted));
        }
        if let Some(i) = static_member {
            return if self.members[i].id == req.member_id {
                Ok(Joiner::Known(i))
            } else {
                Err(ResponseError::FencedInstanceId)
            };
        }
        if self.pending.iter().any(|p| p.id == req.member_id) {
            return Ok(Joiner::Pending);
        }
        // An unknown id, or an instance id the group no longer knows: the
        // client resets its member id and joins afresh.
        match (self.index_of(&req.member_id), instance) {
            (Some(i), None) => Ok(Joiner::Known(i)),
            _ => Err(ResponseError::UnknownMemberId),
        }
    }

    /// Whether one more member fits under `max_size`. During the join phase
    /// only the members that rejoined count: the others are about to go.
    fn has_room(&self) -> bool {
        let size = match self.state {
            StateKind::PreparingRebalance => {
                self.members.iter().filter(|m| m.join.is_some()).count()
            }
            _ => self.members.len(),
        };
        self.config.max_size == 0 || size < self.config.max_size
    }

    /// A joining member must speak the group's protocol type and share at
    /// least one protocol with every other member; `known` is the joiner's
    /// own entry, whose old protocols do not count.
    fn accepts_protocols(&self, req: &JoinRequest, known: Option<usize>) -> bool {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(req.protocol_type.as_str()) {
            return false;
        }
        let others: Vec<&Member> = self
            .members
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != known)
            .map(|(_, m)| m)
            .collect();
        req.protocols
            .iter()
            .any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        token: Token,
        now: u64,
        out: &mut Vec<Reply>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(initial) = self.join_phase.as_mut().and_then(|p| p.initial.as_mut()) {
            initial.new_member_joined = true;
        }
        let reason = format!("new member {id} joined{}", client_reason(&req));
        self.members.push(Member::new(id, req, token, now));
        self.rebalance(&reason, now, out);
    }

    /// A known member sends JoinGroup again.
    fn rejoin(&mut self, i: usize, req: JoinRequest, token: Token, now: u64, out: &mut Vec<Reply>) {
        let member = &self.members[i];
        let unchanged = member.protocols == req.protocols;
        let is_leader = self.is_leader(&member.id);
        // A member that missed its JoinGroup answer gets the current
        // generation again. In Stable the leader's rejoin always rebalances:
        // that is how it reacts to changes the metadata does not show (new
        // partitions, for consumers).
        let current = match self.state {
            StateKind::CompletingRebalance => unchanged,
            StateKind::Stable => unchanged && !is_leader,
            _ => false,
        };
        if current {
            self.members[i].touch(now);
            out.push(Reply::Join(token, self.join_response(i, false)));
            return;
        }
        let reason = format!(
            "member {} rejoined during {}{}",
            member.id,
            self.state,
            client_reason(&req)
        );
        let member = &mut self.members[i];
        member.update(req);
        if let Some(old) = member.join.replace(token) {
            // The client gave up on its earlier request and sent this one.
            out.push(Reply::Join(
                old,
                JoinResponse::error(ResponseError::RebalanceInProgress),
            ));
        }
        self.rebalance(&reason, now, out);
    }

    /// KIP-345: a static instance restarted without its member id. It gets a
    /// new id that fences the old one, and takes over the old member's place
    /// (and, in a Stable group, its assignment with no rebalance).
    fn restart_static(
        &mut self,
        i: usize,
        req: JoinRequest,
        token: Token,
        now: u64,
        out: &mut Vec<Reply>,
    ) {
        let new_id = new_member_id(&req);
        let member = &mut self.members[i];
        let old_id = std::mem::replace(&mut member.id, new_id.clone());
        out.extend(answer_waiting(
            member.join.take(),
            member.sync.take(),
            ResponseError::FencedInstanceId,
        ));
        member.update(req);
        member.touch(now);
        if self.is_leader(&old_id) {
            self.leader = Some(new_id.clone());
        }
        // Kafka rebalances only when the selected protocol would change: the
        // metadata of a restarted consumer differs anyway (it owns nothing).
        let keeps_protocol = self.select_protocol() == self.protocol;
        if self.state == StateKind::Stable && keeps_protocol {
            let skip_assignment = self.is_leader(&new_id);
            out.push(Reply::Join(token, self.join_response(i, skip_assignment)));
            return;
        }
        self.members[i].join = Some(token);
        let reason = format!("static member {new_id} replaced {old_id}");
        self.rebalance(&reason, now, out);
    }

    fn try_sync(
        &mut self,
        token: Token,
        req: SyncRequest,
        now: u64,
        out: &mut Vec<Reply>,
    ) -> Result<(), ResponseError> {
        if self.state == StateKind::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let i = self.current_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        let type_differs = req.protocol_type.is_some() && req.protocol_type != self.protocol_type;
        let name_differs = req.protocol_name.is_some() && req.protocol_name != self.protocol;
        if type_differs || name_differs {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            StateKind::CompletingRebalance => self.sync_completing(i, token, req, now, out),
            StateKind::Stable => {
                let member = &mut self.members[i];
                member.needs_sync = false;
                member.touch(now);
                let response = self.sync_response(i);
                out.push(Reply::Sync(token, response));
                self.forget_sync_deadline_if_done();
            }
            _ => return Err(ResponseError::RebalanceInProgress),
        }
        Ok(())
    }

    /// SyncGroup while the group waits for the leader's assignment.
    fn sync_completing(
        &mut self,
        i: usize,
        token: Token,
        req: SyncRequest,
        now: u64,
        out: &mut Vec<Reply>,
    ) {
        let member = &mut self.members[i];
        member.needs_sync = false;
        if let Some(old) = member.sync.replace(token) {
            out.push(Reply::Sync(
                old,
                SyncResponse::error(ResponseError::RebalanceInProgress),
            ));
        }
        if !self.is_leader(&self.members[i].id) {
            return;
        }
        for member in &mut self.members {
            member.assignment = Bytes::new();
        }
        for (member_id, assignment) in req.assignments {
            if let Some(j) = self.index_of(&member_id) {
                self.members[j].assignment = assignment;
            }
        }
        self.state = StateKind::Stable;
        log::info!(
            "group {}: generation {} is stable with {} members",
            self.group_id,
            self.generation,
            self.members.len()
        );
        for j in 0..self.members.len() {
            if let Some(waiting) = self.members[j].sync.take() {
                self.members[j].touch(now);
                out.push(Reply::Sync(waiting, self.sync_response(j)));
            }
        }
        self.forget_sync_deadline_if_done();
    }

    fn forget_sync_deadline_if_done(&mut self) {
        if self.members.iter().all(|m| !m.needs_sync) {
            self.sync_deadline = None;
        }
    }

    fn leave_one(
        &mut self,
        leaving: &LeaveMember,
        now: u64,
        out: &mut Vec<Reply>,
    ) -> Result<(), ResponseError> {
        if self.state == StateKind::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let instance = leaving.group_instance_id.as_deref();
        let static_member = instance.and_then(|id| self.static_member(id));
        if leaving.member_id.is_empty() {
            // An administrator removes a static member by its instance id.
            let Some(i) = static_member else {
                return Err(ResponseError::UnknownMemberId);
            };
            self.remove_member(i, "left by instance id", now, out);
            return Ok(());
        }
        if let Some(p) = self.pending.iter().position(|p| p.id == leaving.member_id) {
            self.pending.remove(p);
            self.try_complete_join(now, out);
            return Ok(());
        }
        if static_member.is_some_and(|i| self.members[i].id != leaving.member_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        let Some(i) = self.index_of(&leaving.member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        self.remove_member(i, "left the group", now, out);
        Ok(())
    }

    /// Removes a member and lets the group react.
    fn remove_member(&mut self, i: usize, why: &str, now: u64, out: &mut Vec<Reply>) {
        let id = self.detach(i, out);
        self.rebalance(&format!("member {id} {why}"), now, out);
    }

    /// Removes members one by one; each removal may move the group on, so
    /// they are found by id, not position.
    fn remove_members(&mut self, ids: Vec<String>, why: &str, now: u64, out: &mut Vec<Reply>) {
        for id in ids {
            if let Some(i) = self.index_of(&id) {
                self.remove_member(i, why, now, out);
            }
        }
    }

    /// Takes a member out of the group, answering its waiting requests.
    fn detach(&mut self, i: usize, out: &mut Vec<Reply>) -> String {
        let member = self.members.remove(i);
        out.extend(answer_waiting(
            member.join,
            member.sync,
            ResponseError::UnknownMemberId,
        ));
        if self.is_leader(&member.id) {
            self.leader = None;
        }
        member.id
    }

    fn expire_pending(&mut self, now: u64, out: &mut Vec<Reply>) {
        let before = self.pending.len();
        self.pending.retain(|p| p.deadline > now);
        if self.pending.len() < before {
            self.try_complete_join(now, out);
        }
    }

    fn expire_sessions(&mut self, now: u64, out: &mut Vec<Reply>) {
        let expired = self.member_ids(|m| m.expiry().is_some_and(|d| d <= now));
        self.remove_members(expired, "timed out", now, out);
    }

    /// The join phase's deadline: extend the initial delay while members keep
    /// coming, else end the phase.
    fn end_join_window(&mut self, now: u64, out: &mut Vec<Reply>) {
        let delay = self.config.initial_rebalance_delay_ms;
        if let Some(phase) = self.join_phase.as_mut() {
            if let Some(initial) = phase.initial.as_mut() {
                if initial.new_member_joined && now < initial.until {
                    initial.new_member_joined = false;
                    phase.deadline = after(now, delay).min(initial.until);
                    return;
                }
            }
        }
        self.complete_join(now, out);
    }

    /// Members that did not sync in time after the join phase are dropped.
    fn expire_sync(&mut self, now: u64, out: &mut Vec<Reply>) {
        self.sync_deadline = None;
        let late = self.member_ids(|m| m.needs_sync);
        self.remove_members(late, "did not sync in time", now, out);
    }

    /// Starts a rebalance, or (during one) checks whether it can end.
    fn rebalance(&mut self, reason: &str, now: u64, out: &mut Vec<Reply>) {
        match self.state {
            StateKind::PreparingRebalance => self.try_complete_join(now, out),
            StateKind::Empty | StateKind::CompletingRebalance | StateKind::Stable => {
                self.prepare_rebalance(reason, now, out)
            }
            StateKind::Dead => {}
        }
    }

    fn prepare_rebalance(&mut self, reason: &str, now: u64, out: &mut Vec<Reply>) {
        if self.state == StateKind::CompletingRebalance {
            // The assignment being made is for members that are changing.
            for member in &mut self.members {
                member.assignment = Bytes::new();
                // A member's session is on hold while its SyncGroup waits;
                // answering it starts a fresh session, as Kafka does, or a
                // follower that waited long would expire on the spot.
                if let Some(sync) = member.sync.take() {
                    member.touch(now);
                    out.extend(answer_waiting(
                        None,
                        Some(sync),
                        ResponseError::RebalanceInProgress,
                    ));
                }
            }
        }
        let timeout = self.rebalance_timeout_ms();
        let delay = self.config.initial_rebalance_delay_ms;
        let from_empty = self.state == StateKind::Empty;
        self.join_phase = Some(if from_empty && delay > 0 {
            JoinPhase {
                deadline: after(now, delay),
                initial: Some(InitialDelay {
                    until: now.saturating_add(timeout.max(delay)),
                    new_member_joined: false,
                }),
            }
        } else {
            JoinPhase {
                deadline: after(now, timeout),
                initial: None,
            }
        });
        self.sync_deadline = None;
        self.state = StateKind::PreparingRebalance;
        log::info!(
            "group {}: preparing to rebalance generation {} ({reason})",
            self.group_id,
            self.generation
        );
        self.try_complete_join(now, out);
    }

    /// Ends the join phase early once every member has rejoined and every
    /// pending id has been used, unless the initial delay is running.
    fn try_complete_join(&mut self, now: u64, out: &mut Vec<Reply>) {
        let Some(phase) = &self.join_phase else {
            return;
        };
        let all_joined = self.members.iter().all(|m| m.join.is_some());
        if phase.initial.is_none() && all_joined && self.pending.is_empty() {
            self.complete_join(now, out);
        }
    }

    /// The end of the join phase: the next generation begins.
    fn complete_join(&mut self, now: u64, out: &mut Vec<Reply>) {
        // Dynamic members that did not rejoin are gone; a static member keeps
        // its place until its session expires (KIP-345).
        while let Some(i) = self
            .members
            .iter()
            .position(|m| m.join.is_none() && m.instance_id.is_none())
        {
            self.detach(i, out);
        }
        if !self.members.is_empty() && self.members.iter().all(|m| m.join.is_none()) {
            // No one to lead: wait for the static members to rejoin or expire.
            self.join_phase = Some(JoinPhase {
                deadline: after(now, self.rebalance_timeout_ms()),
                initial: None,
            });
            return;
        }
        self.join_phase = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = StateKind::Empty;
            self.protocol = None;
            self.leader = None;
            log::info!(
                "group {}: generation {} is empty",
                self.group_id,
                self.generation
            );
            return;
        }
        self.leader = self.elect_leader();
        self.protocol = self.select_protocol();
        self.state = StateKind::CompletingRebalance;
        self.sync_deadline = Some(after(now, self.rebalance_timeout_ms()));
        for i in 0..self.members.len() {
            let member = &mut self.members[i];
            member.is_new = false;
            member.needs_sync = true;
            member.touch(now);
            if let Some(token) = member.join.take() {
                out.push(Reply::Join(token, self.join_response(i, false)));
            }
        }
    }

    /// The leader stays if it rejoined, else the first member that did.
    fn elect_leader(&self) -> Option<String> {
        let rejoined = |m: &&Member| m.join.is_some();
        let current = self.leader.as_deref().and_then(|id| self.index_of(id));
        current
            .map(|i| &self.members[i])
            .filter(rejoined)
            .or_else(|| self.members.iter().find(rejoined))
            .map(|m| m.id.clone())
    }

    /// Among the protocols every member supports, each member votes for the
    /// one it prefers most; the most votes win, ties going to the first
    /// member's preference.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let votes = |candidate: &str| {
            self.members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .map(|(name, _)| name.as_str())
                        .find(|name| candidates.contains(name))
                        == Some(candidate)
                })
                .count()
        };
        candidates
            .iter()
            .enumerate()
            .max_by_key(|(rank, candidate)| (votes(candidate), Reverse(*rank)))
            .map(|(_, candidate)| candidate.to_string())
    }

    fn join_response(&self, i: usize, skip_assignment: bool) -> JoinResponse {
        let member = &self.members[i];
        let members = if self.is_leader(&member.id) {
            self.joined_members()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member.id.clone(),
            members,
        }
    }

    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    fn sync_response(&self, i: usize) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self.members[i].assignment.clone(),
        }
    }

    /// The member a request names, as Kafka checks it: a static instance id
    /// that now belongs to another member id is fenced.
    fn current_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<usize, ResponseError> {
        match instance_id {
            Some(instance) => match self.static_member(instance) {
                Some(i) if self.members[i].id == member_id => Ok(i),
                Some(_) => Err(ResponseError::FencedInstanceId),
                None => Err(ResponseError::UnknownMemberId),
            },
            None => self
                .index_of(member_id)
                .ok_or(ResponseError::UnknownMemberId),
        }
    }

    fn member_ids(&self, pick: impl Fn(&Member) -> bool) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| pick(m))
            .map(|m| m.id.clone())
            .collect()
    }

    fn index_of(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == member_id)
    }

    fn static_member(&self, instance_id: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// The group's rebalance timeout: the longest its members asked for.
    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }
}

/// Answers a removed member's waiting requests with `error`.
fn answer_waiting(join: Option<Token>, sync: Option<Token>, error: ResponseError) -> Vec<Reply> {
    let join = join.map(|t| Reply::Join(t, JoinResponse::error(error)));
    let sync = sync.map(|t| Reply::Sync(t, SyncResponse::error(error)));
    join.into_iter().chain(sync).collect()
}

/// Kafka's member ids: the instance id (else the client id), a dash, a UUID.
fn new_member_id(req: &JoinRequest) -> String {
    let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
    format!("{prefix}-{}", Uuid::new_v4())
}

fn client_reason(req: &JoinRequest) -> String {
    req.reason
        .as_deref()
        .map(|r| format!("; client reason: {r}"))
        .unwrap_or_default()
}

/// A client's timeout in milliseconds; a negative one counts as none.
fn millis(ms: i32) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// A deadline `ms` after `now`, never `now` itself, so that a zero timeout
/// from a client cannot make the owner tick without end.
fn after(now: u64, ms: u64) -> u64 {
    now.saturating_add(ms.max(1))
}

#[cfg(test)]
mod tests;
