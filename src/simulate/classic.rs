//! The classic group protocol: the broker's own [`GroupState`] and
//! consumers that play the client side as the Java client and librdkafka
//! do. A new dynamic member joins twice (MEMBER_ID_REQUIRED, KIP-394); the
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

use super::protocol::{Protocol, View};
use super::scenario::{Consumer, GroupSettings};
use actorlog_actors::group::assignor::{
    cooperative_step, Assignor, Subscriber, TopicPartition, Topics,
};
use actorlog_actors::group::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Subscription,
    PROTOCOL_TYPE,
};
use actorlog_actors::group::state::{
    GroupConfig, GroupState, JoinRequest, JoinResponse, JoinedMember, LeaveMember, Reply,
    StateKind, SyncRequest, SyncResponse, Token,
};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const FENCED_INSTANCE_ID: i16 = ResponseError::FencedInstanceId.code();
const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
const MEMBER_ID_REQUIRED: i16 = ResponseError::MemberIdRequired.code();
const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();
const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();

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
enum Task {
    /// Heartbeat of one chain; a new generation starts a new chain.
    Heartbeat(u64),
    /// The poll has ended: revoke (eager) and get ready to rejoin.
    Rejoin,
    SendJoin,
    /// The pause started by this pause number outlasts max.poll.interval.
    MaxPoll(u64),
    Resume(u64),
    /// A metadata refresh, every `metadata_max_age`, in which the leader
    /// notices new partitions.
    Refresh,
}

#[derive(Debug)]
struct Client {
    name: String,
    instance_id: Option<String>,
    topics: Vec<String>,
    poll_time: u64,
    rejoin_time: u64,
    running: bool,
    /// Bumped whenever the process stops: answers and timers meant for an
    /// earlier process are dropped.
    incarnation: u32,
    started_at: u64,
    member_id: String,
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
    paused_until: Option<u64>,
    pauses: u64,
    /// Left the group after exceeding max.poll.interval; rejoins on resume.
    left_for_poll: bool,
    /// Must rejoin at the end of its poll (or when the pause ends).
    rejoining: bool,
    heartbeats: u64,
}

#[derive(Debug, Clone, Copy)]
enum Waiting {
    Join,
    Sync,
}

/// The classic protocol with its consumers.
pub struct Classic {
    group: GroupState,
    assignor: Assignor,
    session_timeout: u64,
    heartbeat_interval: u64,
    max_poll_interval: u64,
    metadata_max_age: u64,
    topics: Topics,
    /// The partition counts the group's assignment was computed for: the
    /// leader compares them with its metadata (a restarted static leader
    /// that skipped the assignment, KIP-814, compares the same).
    assigned_with: Option<Topics>,
    clients: Vec<Client>,
    waiting: BTreeMap<Token, (usize, u32, Waiting)>,
    next_token: Token,
    /// Client timers in time order; the sequence number keeps ties in the
    /// order they were set.
    agenda: BTreeMap<(u64, u64), (usize, u32, Task)>,
    next_seq: u64,
    replies: VecDeque<Reply>,
    /// Member id → the label the assignor sees.
    labels: BTreeMap<String, String>,
    notes: Vec<String>,
    exchanges: usize,
}

impl Classic {
    pub fn new(group: &GroupSettings, topics: &Topics, consumers: &[Consumer]) -> Classic {
        let config = GroupConfig {
            initial_rebalance_delay_ms: group.initial_rebalance_delay.0,
            ..GroupConfig::default()
        };
        Classic {
            group: GroupState::new("simulated".to_string(), config),
            assignor: group.assignor.0,
            session_timeout: group.session_timeout.0,
            heartbeat_interval: group.heartbeat_interval.0,
            max_poll_interval: group.max_poll_interval.0,
            metadata_max_age: group.metadata_max_age.0,
            topics: topics.clone(),
            assigned_with: None,
            clients: consumers
                .iter()
                .map(|c| Client {
                    name: c.name.clone(),
                    instance_id: c.instance_id.clone(),
                    topics: c.topics.clone(),
                    poll_time: c.poll_time.0,
                    rejoin_time: c.rejoin_time.0,
                    running: false,
                    incarnation: 0,
                    started_at: 0,
                    member_id: String::new(),
                    ids: 0,
                    generation: -1,
                    is_leader: false,
                    phase: Phase::Out,
                    owned: Vec::new(),
                    previous: Vec::new(),
                    paused_until: None,
                    pauses: 0,
                    left_for_poll: false,
                    rejoining: false,
                    heartbeats: 0,
                })
                .collect(),
            waiting: BTreeMap::new(),
            next_token: 0,
            agenda: BTreeMap::new(),
            next_seq: 0,
            replies: VecDeque::new(),
            labels: BTreeMap::new(),
            notes: Vec::new(),
            exchanges: 0,
        }
    }

    fn cooperative(&self) -> bool {
        self.assignor.is_cooperative()
    }

    fn schedule(&mut self, at: u64, c: usize, task: Task) {
        self.next_seq += 1;
        let incarnation = self.clients[c].incarnation;
        self.agenda
            .insert((at, self.next_seq), (c, incarnation, task));
    }

    fn note(&mut self, c: usize, text: impl std::fmt::Display) {
        let name = &self.clients[c].name;
        self.notes.push(format!("{name}: {text}"));
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
        client.ids += 1;
        let label = format!("{}#{}", client.name, client.ids);
        self.labels.insert(member_id.to_string(), label);
    }

    /// The process stops: what it held is no longer fetched.
    fn stop(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.running = false;
        client.incarnation += 1;
        client.phase = Phase::Out;
        client.owned.clear();
        client.paused_until = None;
        client.rejoining = false;
        client.left_for_poll = false;
        client.is_leader = false;
    }

    /// Partitions lost without a revocation (the group no longer knows
    /// the member or its generation).
    fn lose(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.owned.clear();
        client.previous.clear();
    }

    fn send_join(&mut self, c: usize, now: u64) {
        let subscription = Subscription {
            topics: self.clients[c].topics.clone(),
            owned: self.clients[c].previous.clone(),
        };
        let metadata = match encode_subscription(&subscription) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.note(c, e);
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
            rebalance_timeout_ms: clamp_i32(self.max_poll_interval),
            protocol_type: PROTOCOL_TYPE.to_string(),
            protocols: vec![(self.assignor.name().to_string(), metadata)],
            require_known_member_id: true,
            reason: None,
        };
        let client = &mut self.clients[c];
        client.phase = Phase::Joining;
        client.rejoining = false;
        let token = self.token(c, Waiting::Join);
        let replies = self.group.join(token, request, now);
        self.replies.extend(replies);
    }

    fn send_sync(&mut self, c: usize, assignments: Vec<(String, Bytes)>, now: u64) {
        let client = &mut self.clients[c];
        client.phase = Phase::Syncing;
        let request = SyncRequest {
            member_id: client.member_id.clone(),
            group_instance_id: client.instance_id.clone(),
            generation_id: client.generation,
            protocol_type: Some(PROTOCOL_TYPE.to_string()),
            protocol_name: Some(self.assignor.name().to_string()),
            assignments,
        };
        let token = self.token(c, Waiting::Sync);
        let replies = self.group.sync(token, request, now);
        self.replies.extend(replies);
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

    fn on_join(&mut self, c: usize, response: JoinResponse, now: u64) {
        match response.error {
            0 => {
                self.learn_member_id(c, &response.member_id);
                let client = &mut self.clients[c];
                client.generation = response.generation_id;
                client.is_leader = response.leader == response.member_id;
                let assignments = if client.is_leader && !response.skip_assignment {
                    self.assign(c, &response.members)
                } else {
                    Vec::new()
                };
                self.send_sync(c, assignments, now);
            }
            MEMBER_ID_REQUIRED => {
                self.learn_member_id(c, &response.member_id);
                self.send_join(c, now);
            }
            UNKNOWN_MEMBER_ID if !self.clients[c].member_id.is_empty() => {
                self.clients[c].member_id.clear();
                self.lose(c);
                self.send_join(c, now);
            }
            FENCED_INSTANCE_ID => self.fenced(c),
            // The answer to a JoinGroup this client replaced.
            REBALANCE_IN_PROGRESS => {}
            error => {
                self.note(
                    c,
                    format!("JoinGroup failed with {}; it stops", code_name(error)),
                );
                self.stop(c);
            }
        }
    }

    fn on_sync(&mut self, c: usize, response: SyncResponse, now: u64) {
        // An answer to a SyncGroup overtaken by the member's own rejoin.
        if self.clients[c].phase != Phase::Syncing {
            return;
        }
        match response.error {
            0 => {
                let assigned = match decode_assignment(response.assignment) {
                    Ok(partitions) => partitions,
                    Err(e) => {
                        self.note(c, e);
                        Vec::new()
                    }
                };
                let cooperative = self.cooperative();
                let client = &mut self.clients[c];
                let revoked = client.owned.iter().any(|tp| !assigned.contains(tp));
                client.owned = assigned.clone();
                client.previous = assigned;
                client.phase = Phase::Stable;
                client.heartbeats += 1;
                let chain = client.heartbeats;
                self.schedule(now + self.heartbeat_interval, c, Task::Heartbeat(chain));
                if self.clients[c].rejoining || (cooperative && revoked) {
                    // KIP-429: having revoked, the member rejoins at once so
                    // that the next rebalance hands the partitions over.
                    self.clients[c].rejoining = false;
                    self.request_rejoin(c, now, now);
                }
            }
            FENCED_INSTANCE_ID => self.fenced(c),
            error => {
                if error == UNKNOWN_MEMBER_ID {
                    self.clients[c].member_id.clear();
                }
                if error == UNKNOWN_MEMBER_ID || error == ILLEGAL_GENERATION {
                    self.lose(c);
                }
                let client = &mut self.clients[c];
                client.phase = Phase::Out;
                client.rejoining = false;
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
                    self.note(c, format!("member {}: {e}", label.unwrap_or_default()));
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
                    self.note(c, e);
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
        self.note(
            c,
            "fenced by a newer instance with its instance id; it stops",
        );
        self.stop(c);
    }

    /// The member must rejoin: at the end of the poll it is in (`now` when
    /// it already is between polls), when its pause ends, or, in the middle
    /// of a rebalance, once that one is over.
    fn request_rejoin(&mut self, c: usize, now: u64, boundary: u64) {
        let client = &mut self.clients[c];
        if client.rejoining || client.left_for_poll {
            return;
        }
        client.rejoining = true;
        let in_rebalance = matches!(client.phase, Phase::Joining | Phase::Syncing);
        if client.paused_until.is_none() && !in_rebalance {
            self.schedule(boundary.max(now), c, Task::Rejoin);
        }
    }

    /// The end of the poll a consumer is processing at `now`.
    fn poll_boundary(&self, c: usize, now: u64) -> u64 {
        let client = &self.clients[c];
        if client.poll_time == 0 {
            return now;
        }
        let since = now - client.started_at;
        client.started_at + since.div_ceil(client.poll_time) * client.poll_time
    }

    /// Runs a timer; false when it changed nothing anyone can see (a
    /// heartbeat the group answered with no error).
    fn run(&mut self, c: usize, task: Task, now: u64) -> bool {
        match task {
            Task::Heartbeat(chain) => return self.heartbeat(c, chain, now),
            Task::Rejoin => {
                let eager = !self.cooperative();
                let client = &mut self.clients[c];
                if !client.rejoining || client.paused_until.is_some() {
                    return false;
                }
                if eager {
                    client.owned.clear();
                }
                let at = now + client.rejoin_time;
                self.schedule(at, c, Task::SendJoin);
            }
            Task::SendJoin => {
                if self.clients[c].rejoining {
                    self.send_join(c, now);
                }
            }
            Task::MaxPoll(pause) => self.max_poll_exceeded(c, pause, now),
            Task::Resume(pause) => self.resume(c, pause, now),
            Task::Refresh => {
                self.schedule(now + self.metadata_max_age, c, Task::Refresh);
                let client = &self.clients[c];
                let stale = self
                    .assigned_with
                    .as_ref()
                    .is_some_and(|t| *t != self.topics);
                if client.is_leader && client.phase == Phase::Stable && stale {
                    self.request_rejoin(c, now, self.poll_boundary(c, now));
                }
                return stale;
            }
        }
        true
    }

    /// Whether the heartbeat's answer changes anything.
    fn heartbeat(&mut self, c: usize, chain: u64, now: u64) -> bool {
        let client = &self.clients[c];
        if client.phase != Phase::Stable || client.heartbeats != chain {
            return false;
        }
        let error = self.group.heartbeat(
            &client.member_id,
            client.instance_id.as_deref(),
            client.generation,
            now,
        );
        self.schedule(now + self.heartbeat_interval, c, Task::Heartbeat(chain));
        match error {
            0 => return false,
            REBALANCE_IN_PROGRESS => {
                let boundary = self.poll_boundary(c, now);
                self.request_rejoin(c, now, boundary);
            }
            FENCED_INSTANCE_ID => self.fenced(c),
            error => {
                if error == UNKNOWN_MEMBER_ID {
                    self.clients[c].member_id.clear();
                }
                self.lose(c);
                let boundary = self.poll_boundary(c, now);
                self.request_rejoin(c, now, boundary);
            }
        }
        true
    }

    /// The client gives up its membership, as librdkafka and the Java
    /// client do: a dynamic member sends LeaveGroup, a static one goes
    /// silent and is dropped when its session expires (if it does not come
    /// back first).
    fn max_poll_exceeded(&mut self, c: usize, pause: u64, now: u64) {
        let client = &self.clients[c];
        if client.pauses != pause || client.paused_until.is_none() {
            return;
        }
        let is_static = client.instance_id.is_some();
        let member_id = client.member_id.clone();
        self.note(c, "exceeded max.poll.interval and left the group");
        self.clients[c].incarnation += 1;
        let client = &mut self.clients[c];
        client.phase = Phase::Out;
        client.member_id.clear();
        client.left_for_poll = true;
        client.rejoining = false;
        client.is_leader = false;
        self.lose(c);
        if !is_static && !member_id.is_empty() {
            self.leave_group(member_id, now);
        }
        // The pause's resume timer and the metadata refreshes belonged to
        // the old incarnation.
        let until = self.clients[c].paused_until.unwrap_or_default();
        self.schedule(until, c, Task::Resume(pause));
        self.schedule(now + self.metadata_max_age, c, Task::Refresh);
    }

    fn resume(&mut self, c: usize, pause: u64, now: u64) {
        let client = &mut self.clients[c];
        if client.pauses != pause || client.paused_until.is_none() {
            return;
        }
        client.paused_until = None;
        if client.left_for_poll {
            client.left_for_poll = false;
            self.send_join(c, now);
        } else if client.rejoining {
            self.schedule(now, c, Task::Rejoin);
        }
    }

    fn leave_group(&mut self, member_id: String, now: u64) {
        let leaving = LeaveMember {
            member_id,
            group_instance_id: None,
        };
        let (_, replies) = self.group.leave(vec![leaving], now);
        self.replies.extend(replies);
    }

    /// Whether the group's members are exactly the running consumers, all
    /// synced in the current generation with nothing in flight.
    fn settled(&self) -> bool {
        if !matches!(self.group.state(), StateKind::Stable | StateKind::Empty) {
            return false;
        }
        let generation = self.group.generation();
        let members: BTreeSet<String> = self
            .group
            .describe()
            .members
            .into_iter()
            .map(|m| m.member_id)
            .collect();
        let running: Vec<&Client> = self.clients.iter().filter(|c| c.running).collect();
        let in_step = running.iter().all(|c| {
            c.phase == Phase::Stable
                && c.generation == generation
                && !c.rejoining
                && c.paused_until.is_none()
                && members.contains(&c.member_id)
        });
        in_step && members.len() == running.len()
    }
}

impl Protocol for Classic {
    fn start(&mut self, c: usize, now: u64) {
        if self.clients[c].running {
            self.note(c, "is already running; join ignored");
            return;
        }
        let client = &mut self.clients[c];
        client.running = true;
        client.incarnation += 1;
        client.started_at = now;
        client.member_id.clear();
        client.generation = -1;
        client.owned.clear();
        client.previous.clear();
        self.schedule(now + self.metadata_max_age, c, Task::Refresh);
        self.send_join(c, now);
    }

    fn leave(&mut self, c: usize, now: u64) {
        if !self.clients[c].running {
            self.note(c, "is not running; leave ignored");
            return;
        }
        let client = &self.clients[c];
        let member_id = client.member_id.clone();
        let sends_leave = client.instance_id.is_none() && !member_id.is_empty();
        self.stop(c);
        if sends_leave {
            self.leave_group(member_id, now);
        }
    }

    fn crash(&mut self, c: usize, _now: u64) {
        if !self.clients[c].running {
            self.note(c, "is not running; crash ignored");
            return;
        }
        self.stop(c);
    }

    fn pause(&mut self, c: usize, until: u64, now: u64) {
        if !self.clients[c].running {
            self.note(c, "is not running; pause ignored");
            return;
        }
        let client = &mut self.clients[c];
        client.pauses += 1;
        client.paused_until = Some(until);
        let pause = client.pauses;
        if until - now > self.max_poll_interval {
            self.schedule(now + self.max_poll_interval, c, Task::MaxPoll(pause));
        } else {
            self.schedule(until, c, Task::Resume(pause));
        }
    }

    fn subscribe(&mut self, c: usize, topics: Vec<String>, now: u64) {
        self.clients[c].topics = topics;
        if self.clients[c].running && self.clients[c].phase != Phase::Out {
            let boundary = self.poll_boundary(c, now);
            self.request_rejoin(c, now, boundary);
        }
    }

    fn topics_changed(&mut self, topics: &Topics, _now: u64) {
        // Clients see it at their next metadata refresh.
        self.topics = topics.clone();
    }

    fn next_due(&self) -> Option<u64> {
        let timer = self.agenda.keys().next().map(|(at, _)| *at);
        [timer, self.group.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn advance(&mut self, now: u64) -> Result<bool, String> {
        self.exchanges = 0;
        let mut changed = !self.replies.is_empty();
        self.deliver(now)?;
        loop {
            if self.group.next_deadline().is_some_and(|d| d <= now) {
                let replies = self.group.tick(now);
                self.replies.extend(replies);
                self.deliver(now)?;
                changed = true;
                continue;
            }
            let Some(entry) = self.agenda.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            let (c, incarnation, task) = entry.remove();
            if self.clients[c].incarnation == incarnation && self.clients[c].running {
                changed |= self.run(c, task, now);
                self.deliver(now)?;
            }
        }
        Ok(changed)
    }

    fn view(&self) -> View {
        View {
            generation: self.group.generation(),
            rebalancing: matches!(
                self.group.state(),
                StateKind::PreparingRebalance | StateKind::CompletingRebalance
            ),
            settled: self.settled(),
            running: self.clients.iter().map(|c| c.running).collect(),
            fetching: self
                .clients
                .iter()
                .map(|c| {
                    if c.running && c.paused_until.is_none() {
                        c.owned.clone()
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
        }
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
}

fn clamp_i32(ms: u64) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}

fn code_name(code: i16) -> String {
    ResponseError::try_from_code(code).map_or_else(|| "no error".to_string(), |e| e.to_string())
}
