//! The classic group protocol: the broker's own [`GroupState`] and
//! consumers that play the client side as the Java client and librdkafka
//! do. A new dynamic member joins twice (ResponseError::MemberIdRequired, KIP-394); the
//! leader runs the assignor and sends the assignments with SyncGroup;
//! members heartbeat and rejoin when told a rebalance is in progress, at
//! the end of the poll they are processing. Eager assignors make every
//! member revoke everything before it rejoins; cooperative ones (KIP-429)
//! keep what they own, and the leader withholds partitions still owned by
//! another member until that member has revoked them and rejoined.
//!
//! The broker's member ids end in a random UUID, so what the leader gives
//! the assignor is each member's consumer name and incarnation instead
//! (`c1#1`): the ranking of members, which decides range and round-robin
//! assignments, is then the scenario's and the same on every run.

use super::clients::{Clients, RETRY_BACKOFF};
use super::lifecycle::Model;
use super::scenario::{Consumer, GroupSettings};
use actorlog_actors::group::assignor::{
    cooperative_step, Assignor, Subscriber, TopicPartition, Topics,
};
use actorlog_actors::group::classic::{
    GroupConfig, GroupState, JoinRequest, JoinResponse, JoinedMember, LeaveMember, Reply,
    StateKind, SyncRequest, SyncResponse, Token,
};
use actorlog_actors::group::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Subscription,
    PROTOCOL_TYPE,
};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Requests answered in one instant before the model gives up: a client
/// and the group bouncing errors forever is a bug to report, not to hang on.
const MAX_EXCHANGES_PER_INSTANT: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not in the group: not started, stopped, or left after exceeding
    /// the max poll interval.
    Out,
    Joining,
    Syncing,
    Stable,
}

/// A timer of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Heartbeat of one chain; a new generation starts a new chain.
    Heartbeat(u64),
    /// The poll has ended: revoke (eager) and get ready to rejoin.
    Rejoin,
    SendJoin,
    /// A metadata refresh, every `metadata_max_age`, in which the leader
    /// notices new partitions.
    Refresh,
}

/// What a client knows of its membership in the group.
#[derive(Debug)]
struct Member {
    /// How many member ids the consumer has had: its incarnation label.
    ids: u32,
    generation: i32,
    is_leader: bool,
    phase: Phase,
    /// The partitions it fetches from (when not paused).
    owned: Vec<TopicPartition>,
    /// Its last assignment, which the subscription carries: cooperative
    /// and sticky assignors keep partitions where they are.
    previous: Vec<TopicPartition>,
    /// Must rejoin at the end of its poll (or when the pause ends).
    rejoining: bool,
}

#[derive(Debug, Clone, Copy)]
enum Waiting {
    Join,
    Sync,
}

/// The classic protocol with its consumers.
pub struct Classic {
    group: GroupState,
    group_id: String,
    config: GroupConfig,
    /// No broker coordinates the group: every request fails.
    down: bool,
    assignor: Assignor,
    session_timeout: u64,
    heartbeat_interval: u64,
    metadata_max_age: u64,
    topics: Topics,
    /// The partition counts the group's assignment was computed for: the
    /// leader compares them with its metadata (a restarted static leader
    /// that skipped the assignment, KIP-814, compares the same).
    assigned_with: Option<Topics>,
    clients: Clients<Task>,
    members: Vec<Member>,
    waiting: BTreeMap<Token, (usize, u32, Waiting)>,
    next_token: Token,
    replies: VecDeque<Reply>,
    /// Member id → the label the assignor sees.
    labels: BTreeMap<String, String>,
    exchanges: usize,
}

impl Classic {
    pub fn new(group: &GroupSettings, topics: &Topics, consumers: &[Consumer]) -> Classic {
        let config = GroupConfig {
            initial_rebalance_delay_ms: group.initial_rebalance_delay.0,
            ..GroupConfig::default()
        };
        Classic {
            group: GroupState::new(group.id.clone(), config.clone()),
            group_id: group.id.clone(),
            config,
            down: false,
            assignor: group.assignor.0,
            session_timeout: group.session_timeout.0,
            heartbeat_interval: group.heartbeat_interval.0,
            metadata_max_age: group.metadata_max_age.0,
            topics: topics.clone(),
            assigned_with: None,
            clients: Clients::new(consumers, group.max_poll_interval.0),
            members: consumers
                .iter()
                .map(|_| Member {
                    ids: 0,
                    generation: -1,
                    is_leader: false,
                    phase: Phase::Out,
                    owned: Vec::new(),
                    previous: Vec::new(),
                    rejoining: false,
                })
                .collect(),
            waiting: BTreeMap::new(),
            next_token: 0,
            replies: VecDeque::new(),
            labels: BTreeMap::new(),
            exchanges: 0,
        }
    }

    fn cooperative(&self) -> bool {
        self.assignor.is_cooperative()
    }

    fn token(&mut self, c: usize, kind: Waiting) -> Token {
        self.next_token += 1;
        let incarnation = self.clients[c].incarnation;
        self.waiting.insert(self.next_token, (c, incarnation, kind));
        self.next_token
    }

    fn learn_member_id(&mut self, c: usize, member_id: &str) {
        let client = &mut self.clients[c];
        if client.member_id == member_id {
            return;
        }
        client.member_id = member_id.to_string();
        let member = &mut self.members[c];
        member.ids += 1;
        let label = format!("{}#{}", client.name, member.ids);
        self.labels.insert(member_id.to_string(), label);
    }

    /// Partitions lost without a revocation (the group no longer knows
    /// the member or its generation).
    fn lose(&mut self, c: usize) {
        let member = &mut self.members[c];
        member.owned.clear();
        member.previous.clear();
    }

    fn send_join(&mut self, c: usize, now: u64) {
        if self.down {
            // The JoinGroup does not reach a coordinator: the client looks
            // the coordinator up again and resends it.
            let member = &mut self.members[c];
            member.phase = Phase::Joining;
            member.rejoining = true;
            self.clients
                .schedule(now + RETRY_BACKOFF, c, Task::SendJoin);
            return;
        }
        let subscription = Subscription {
            topics: self.clients[c].topics.clone(),
            owned: self.members[c].previous.clone(),
        };
        let metadata = match encode_subscription(&subscription) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.clients.note(c, e);
                Bytes::new()
            }
        };
        let client = &self.clients[c];
        let request = JoinRequest {
            member_id: client.member_id.clone(),
            group_instance_id: client.instance_id.clone(),
            client_id: client.name.clone(),
            client_host: "/simulated".to_string(),
            session_timeout_ms: clamp_i32(self.session_timeout),
            rebalance_timeout_ms: clamp_i32(self.clients.max_poll_interval()),
            protocol_type: PROTOCOL_TYPE.to_string(),
            protocols: vec![(self.assignor.name().to_string(), metadata)],
            require_known_member_id: true,
            reason: None,
        };
        let member = &mut self.members[c];
        member.phase = Phase::Joining;
        member.rejoining = false;
        let token = self.token(c, Waiting::Join);
        let replies = self.group.join(token, request, now);
        self.replies.extend(replies);
    }

    fn send_sync(&mut self, c: usize, assignments: Vec<(String, Bytes)>, now: u64) {
        let client = &self.clients[c];
        let member = &mut self.members[c];
        member.phase = Phase::Syncing;
        let request = SyncRequest {
            member_id: client.member_id.clone(),
            group_instance_id: client.instance_id.clone(),
            generation_id: member.generation,
            protocol_type: Some(PROTOCOL_TYPE.to_string()),
            protocol_name: Some(self.assignor.name().to_string()),
            assignments,
        };
        let token = self.token(c, Waiting::Sync);
        let replies = self.group.sync(token, request, now);
        self.replies.extend(replies);
    }

    fn on_join(&mut self, c: usize, response: JoinResponse, now: u64) {
        match response.error {
            None => {
                self.learn_member_id(c, &response.member_id);
                let member = &mut self.members[c];
                member.generation = response.generation_id;
                member.is_leader = response.leader == response.member_id;
                let assignments = if member.is_leader && !response.skip_assignment {
                    self.assign(c, &response.members)
                } else {
                    Vec::new()
                };
                self.send_sync(c, assignments, now);
            }
            Some(ResponseError::MemberIdRequired) => {
                self.learn_member_id(c, &response.member_id);
                self.send_join(c, now);
            }
            Some(ResponseError::UnknownMemberId) if !self.clients[c].member_id.is_empty() => {
                self.clients[c].member_id.clear();
                self.lose(c);
                self.send_join(c, now);
            }
            Some(ResponseError::FencedInstanceId) => self.fenced(c),
            // The answer to a JoinGroup this client replaced.
            Some(ResponseError::RebalanceInProgress) => {}
            Some(error) => {
                self.clients
                    .note(c, format!("JoinGroup failed with {}; it stops", error));
                self.stop(c);
            }
        }
    }

    fn on_sync(&mut self, c: usize, response: SyncResponse, now: u64) {
        // An answer to a SyncGroup overtaken by the member's own rejoin.
        if self.members[c].phase != Phase::Syncing {
            return;
        }
        match response.error {
            None => {
                let assigned = match decode_assignment(response.assignment) {
                    Ok(partitions) => partitions,
                    Err(e) => {
                        self.clients.note(c, e);
                        Vec::new()
                    }
                };
                let cooperative = self.cooperative();
                let member = &mut self.members[c];
                let revoked = member.owned.iter().any(|tp| !assigned.contains(tp));
                member.owned = assigned.clone();
                member.previous = assigned;
                member.phase = Phase::Stable;
                let client = &mut self.clients[c];
                client.heartbeats += 1;
                let chain = client.heartbeats;
                self.clients
                    .schedule(now + self.heartbeat_interval, c, Task::Heartbeat(chain));
                if self.members[c].rejoining || (cooperative && revoked) {
                    // KIP-429: having revoked, the member rejoins at once so
                    // that the next rebalance hands the partitions over.
                    self.members[c].rejoining = false;
                    self.request_rejoin(c, now, now);
                }
            }
            Some(ResponseError::FencedInstanceId) => self.fenced(c),
            Some(error) => {
                if error == ResponseError::UnknownMemberId {
                    self.clients[c].member_id.clear();
                }
                if error == ResponseError::UnknownMemberId
                    || error == ResponseError::IllegalGeneration
                {
                    self.lose(c);
                }
                let member = &mut self.members[c];
                member.phase = Phase::Out;
                member.rejoining = false;
                self.request_rejoin(c, now, now);
            }
        }
    }

    /// The leader's part: the assignor's answer over the members'
    /// subscriptions, one cooperative step of it when cooperative.
    fn assign(&mut self, c: usize, members: &[JoinedMember]) -> Vec<(String, Bytes)> {
        let mut subscribers = Vec::new();
        let mut ids = BTreeMap::new();
        for member in members {
            let subscription = match decode_subscription(member.metadata.clone()) {
                Ok(s) => s,
                Err(e) => {
                    let label = self.labels.get(&member.member_id).cloned();
                    self.clients
                        .note(c, format!("member {}: {e}", label.unwrap_or_default()));
                    Subscription::default()
                }
            };
            let label = self
                .labels
                .get(&member.member_id)
                .cloned()
                .unwrap_or_else(|| member.member_id.clone());
            ids.insert(label.clone(), member.member_id.clone());
            subscribers.push(Subscriber {
                member_id: label,
                instance_id: member.group_instance_id.clone(),
                topics: subscription.topics.into_iter().collect(),
                owned: subscription.owned,
            });
        }
        let target = self.assignor.assign(&subscribers, &self.topics);
        let assignment = if self.cooperative() {
            cooperative_step(&target, &subscribers)
        } else {
            target
        };
        self.assigned_with = Some(self.topics.clone());
        let mut out = Vec::new();
        for (label, partitions) in assignment {
            let bytes = match encode_assignment(&partitions) {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.clients.note(c, e);
                    Bytes::new()
                }
            };
            if let Some(id) = ids.get(&label) {
                out.push((id.clone(), bytes));
            }
        }
        out
    }

    fn fenced(&mut self, c: usize) {
        self.clients.note(
            c,
            "fenced by a newer instance with its instance id; it stops",
        );
        self.stop(c);
    }

    /// The member must rejoin: at the end of the poll it is in (`now` when
    /// it already is between polls), when its pause ends, or, in the middle
    /// of a rebalance, once that one is over.
    fn request_rejoin(&mut self, c: usize, now: u64, boundary: u64) {
        let client = &self.clients[c];
        let member = &mut self.members[c];
        if member.rejoining || client.left_for_poll {
            return;
        }
        member.rejoining = true;
        let in_rebalance = matches!(member.phase, Phase::Joining | Phase::Syncing);
        if client.paused_until.is_none() && !in_rebalance {
            self.clients.schedule(boundary.max(now), c, Task::Rejoin);
        }
    }

    /// Whether the heartbeat's answer changes anything.
    fn heartbeat(&mut self, c: usize, chain: u64, now: u64) -> bool {
        let client = &self.clients[c];
        let member = &self.members[c];
        if member.phase != Phase::Stable || client.heartbeats != chain {
            return false;
        }
        if self.down {
            // Unanswered: the client looks the coordinator up again and
            // keeps fetching what it was assigned, as the Java client does.
            self.clients
                .schedule(now + RETRY_BACKOFF, c, Task::Heartbeat(chain));
            return false;
        }
        let error = self.group.heartbeat(
            &client.member_id,
            client.instance_id.as_deref(),
            member.generation,
            now,
        );
        self.clients
            .schedule(now + self.heartbeat_interval, c, Task::Heartbeat(chain));
        match error {
            Ok(()) => return false,
            Err(ResponseError::RebalanceInProgress) => {
                let boundary = self.clients.poll_boundary(c, now);
                self.request_rejoin(c, now, boundary);
            }
            Err(ResponseError::FencedInstanceId) => self.fenced(c),
            Err(error) => {
                if error == ResponseError::UnknownMemberId {
                    self.clients[c].member_id.clear();
                }
                self.lose(c);
                let boundary = self.clients.poll_boundary(c, now);
                self.request_rejoin(c, now, boundary);
            }
        }
        true
    }
}

impl Model for Classic {
    type Task = Task;

    fn clients(&self) -> &Clients<Task> {
        &self.clients
    }

    fn clients_mut(&mut self) -> &mut Clients<Task> {
        &mut self.clients
    }

    fn started(&mut self, c: usize, now: u64) {
        self.clients[c].member_id.clear();
        let member = &mut self.members[c];
        member.generation = -1;
        member.owned.clear();
        member.previous.clear();
        self.clients
            .schedule(now + self.metadata_max_age, c, Task::Refresh);
        self.send_join(c, now);
    }

    /// What it held is no longer fetched.
    fn stopped(&mut self, c: usize) {
        let member = &mut self.members[c];
        member.phase = Phase::Out;
        member.owned.clear();
        member.rejoining = false;
        member.is_leader = false;
    }

    /// As librdkafka and the Java client do: a dynamic member sends
    /// LeaveGroup, a static one goes silent and is dropped when its session
    /// expires (if it does not come back first).
    fn leave_group(&mut self, c: usize, now: u64) {
        let client = &self.clients[c];
        // Without a coordinator the LeaveGroup fails and the client closes
        // all the same.
        if self.down || client.instance_id.is_some() || client.member_id.is_empty() {
            return;
        }
        let leaving = LeaveMember {
            member_id: client.member_id.clone(),
            group_instance_id: None,
        };
        let (_, replies) = self.group.leave(vec![leaving], now);
        self.replies.extend(replies);
    }

    fn resubscribed(&mut self, c: usize, now: u64) {
        if self.members[c].phase != Phase::Out {
            let boundary = self.clients.poll_boundary(c, now);
            self.request_rejoin(c, now, boundary);
        }
    }

    fn new_topics(&mut self, topics: &Topics) {
        // Clients see it at their next metadata refresh.
        self.topics = topics.clone();
    }

    fn exceeded_max_poll(&mut self, c: usize, pause: u64, now: u64) -> Result<(), String> {
        self.leave_group(c, now);
        // A new incarnation: the timers of the membership it gave up are
        // dropped, and the pause's resume and the metadata refreshes are
        // set again.
        let client = &mut self.clients[c];
        client.incarnation += 1;
        client.member_id.clear();
        let member = &mut self.members[c];
        member.phase = Phase::Out;
        member.rejoining = false;
        member.is_leader = false;
        self.lose(c);
        self.clients.left_in_pause(c, pause);
        self.clients
            .schedule(now + self.metadata_max_age, c, Task::Refresh);
        Ok(())
    }

    fn rejoin(&mut self, c: usize, now: u64) -> Result<(), String> {
        self.send_join(c, now);
        Ok(())
    }

    fn resumed(&mut self, c: usize, now: u64) {
        if self.members[c].rejoining {
            self.clients.schedule(now, c, Task::Rejoin);
        }
    }

    /// False when the timer changed nothing anyone can see (a heartbeat
    /// the group answered with no error).
    fn run(&mut self, c: usize, task: Task, now: u64) -> Result<bool, String> {
        match task {
            Task::Heartbeat(chain) => return Ok(self.heartbeat(c, chain, now)),
            Task::Rejoin => {
                let eager = !self.cooperative();
                let client = &self.clients[c];
                let member = &mut self.members[c];
                if !member.rejoining || client.paused_until.is_some() {
                    return Ok(false);
                }
                if eager {
                    member.owned.clear();
                }
                let at = now + client.rejoin_time;
                self.clients.schedule(at, c, Task::SendJoin);
            }
            Task::SendJoin => {
                if self.members[c].rejoining {
                    self.send_join(c, now);
                }
            }
            Task::Refresh => {
                self.clients
                    .schedule(now + self.metadata_max_age, c, Task::Refresh);
                let member = &self.members[c];
                let stale = self
                    .assigned_with
                    .as_ref()
                    .is_some_and(|t| *t != self.topics);
                if member.is_leader && member.phase == Phase::Stable && stale {
                    let boundary = self.clients.poll_boundary(c, now);
                    self.request_rejoin(c, now, boundary);
                }
                return Ok(stale);
            }
        }
        Ok(true)
    }

    fn lose_coordinator(&mut self, now: u64) {
        self.down = true;
        self.group = GroupState::new(self.group_id.clone(), self.config.clone());
        self.replies.clear();
        // The connection drops: a JoinGroup or SyncGroup in flight fails at
        // once, and its client joins again once it finds a coordinator.
        let waiting = std::mem::take(&mut self.waiting);
        let failed: BTreeSet<usize> = waiting
            .into_values()
            .filter(|(c, incarnation, _)| {
                let client = &self.clients[*c];
                client.running && client.incarnation == *incarnation
            })
            .map(|(c, _, _)| c)
            .collect();
        for c in failed {
            self.send_join(c, now);
        }
    }

    /// The new coordinator starts from an empty group: a member's next
    /// heartbeat or JoinGroup learns that its member id is unknown.
    fn find_coordinator(&mut self, _now: u64) {
        self.down = false;
    }

    fn begin(&mut self, now: u64) -> Result<bool, String> {
        self.exchanges = 0;
        let answered = !self.replies.is_empty();
        self.deliver(now)?;
        Ok(answered)
    }

    /// Answers every reply, and the replies those answers cause.
    fn deliver(&mut self, now: u64) -> Result<(), String> {
        while let Some(reply) = self.replies.pop_front() {
            self.exchanges += 1;
            if self.exchanges > MAX_EXCHANGES_PER_INSTANT {
                return Err(format!(
                    "more than {MAX_EXCHANGES_PER_INSTANT} group requests at {now} ms: \
                     the clients and the group do not converge"
                ));
            }
            let token = match &reply {
                Reply::Join(token, _) | Reply::Sync(token, _) => *token,
            };
            let Some((c, incarnation, _)) = self.waiting.remove(&token) else {
                continue;
            };
            let client = &self.clients[c];
            if !client.running || client.incarnation != incarnation {
                continue;
            }
            match reply {
                Reply::Join(_, response) => self.on_join(c, response, now),
                Reply::Sync(_, response) => self.on_sync(c, response, now),
            }
        }
        Ok(())
    }

    fn group_deadline(&self) -> Option<u64> {
        self.group.next_deadline()
    }

    fn tick(&mut self, now: u64) {
        let replies = self.group.tick(now);
        self.replies.extend(replies);
    }

    fn generation(&self) -> i32 {
        self.group.generation()
    }

    fn rebalancing(&self) -> bool {
        matches!(
            self.group.state(),
            StateKind::PreparingRebalance | StateKind::CompletingRebalance
        )
    }

    /// Whether the group's members are exactly the running consumers, all
    /// synced in the current generation with nothing in flight.
    fn settled(&self) -> bool {
        if !matches!(self.group.state(), StateKind::Stable | StateKind::Empty) {
            return false;
        }
        let generation = self.group.generation();
        let description = self.group.describe();
        let members = description.members.iter().map(|m| m.member_id.as_str());
        self.clients.in_step(members, |c| {
            let member = &self.members[c];
            member.phase == Phase::Stable && member.generation == generation && !member.rejoining
        })
    }

    fn holds(&self, c: usize) -> &[TopicPartition] {
        &self.members[c].owned
    }
}

fn clamp_i32(ms: u64) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}
