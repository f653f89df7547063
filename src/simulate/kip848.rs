//! The consumer protocol (KIP-848): the broker's own [`ConsumerGroup`] and
//! consumers that play the client side as the Java client's new consumer
//! does. There is no join phase: a member heartbeats with its
//! subscription and what it owns, and the coordinator answers with the
//! member's assignment. A member reconciles at the end of the poll it is
//! processing: it revokes what it lost (taking `rejoin_time` to commit),
//! takes what it got, and heartbeats at once to say so; the coordinator
//! hands a partition to its new owner only once the old one has let go.
//!
//! Members choose their own ids in this protocol; the simulated ones use
//! their name and incarnation (`c1#1`), so that every run is the same.

use super::protocol::{Protocol, View};
use super::scenario::{Consumer, GroupSettings};
use actorlog_actors::group::assignor::{Assignor, TopicPartition, Topics};
use actorlog_actors::group::consumer_group::{
    ConsumerGroup, ConsumerGroupConfig, ConsumerGroupState, HeartbeatRequest, HeartbeatResponse,
    JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

const FENCED_MEMBER_EPOCH: i16 = ResponseError::FencedMemberEpoch.code();
const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
const UNRELEASED_INSTANCE_ID: i16 = ResponseError::UnreleasedInstanceId.code();

/// Heartbeats in one instant before the model gives up on convergence.
const MAX_HEARTBEATS_PER_INSTANT: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    /// The heartbeat of one chain: every heartbeat starts a new chain.
    Heartbeat(u64),
    /// The poll ended: reconcile to the latest assignment.
    Reconcile,
    /// Revocation is done: take the new assignment and say so.
    Reconciled(u64),
    MaxPoll(u64),
    Resume(u64),
}

#[derive(Debug)]
struct Client {
    name: String,
    instance_id: Option<String>,
    topics: Vec<String>,
    poll_time: u64,
    rejoin_time: u64,
    running: bool,
    incarnation: u32,
    started_at: u64,
    member_id: String,
    /// 0 to join; the coordinator's epoch for the member afterwards.
    epoch: i32,
    /// In the group: joined and not left.
    member: bool,
    /// What it fetches (and reports as owned).
    assigned: Vec<TopicPartition>,
    /// Given up but not yet confirmed: reported as owned, not fetched.
    releasing: Vec<TopicPartition>,
    /// The latest assignment from the coordinator, not yet reconciled.
    pending: Option<Vec<TopicPartition>>,
    /// The assignment being reconciled to while revoking.
    applying: Vec<TopicPartition>,
    reconciling: bool,
    reconciliations: u64,
    heartbeats: u64,
    paused_until: Option<u64>,
    pauses: u64,
    left_for_poll: bool,
    told_unreleased: bool,
}

/// The consumer protocol with its consumers.
pub struct Kip848 {
    group: ConsumerGroup,
    assignor: Assignor,
    heartbeat_interval: u64,
    max_poll_interval: u64,
    topics: Topics,
    clients: Vec<Client>,
    agenda: BTreeMap<(u64, u64), (usize, u32, Task)>,
    next_seq: u64,
    notes: Vec<String>,
    heartbeats_now: usize,
}

impl Kip848 {
    pub fn new(group: &GroupSettings, topics: &Topics, consumers: &[Consumer]) -> Kip848 {
        let config = ConsumerGroupConfig {
            session_timeout_ms: group.session_timeout.0,
            heartbeat_interval_ms: i32::try_from(group.heartbeat_interval.0).unwrap_or(i32::MAX),
            ..ConsumerGroupConfig::default()
        };
        Kip848 {
            group: ConsumerGroup::new(config),
            assignor: group.assignor.0,
            heartbeat_interval: group.heartbeat_interval.0,
            max_poll_interval: group.max_poll_interval.0,
            topics: topics.clone(),
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
                    epoch: JOIN_EPOCH,
                    member: false,
                    assigned: Vec::new(),
                    releasing: Vec::new(),
                    pending: None,
                    applying: Vec::new(),
                    reconciling: false,
                    reconciliations: 0,
                    heartbeats: 0,
                    paused_until: None,
                    pauses: 0,
                    left_for_poll: false,
                    told_unreleased: false,
                })
                .collect(),
            agenda: BTreeMap::new(),
            next_seq: 0,
            notes: Vec::new(),
            heartbeats_now: 0,
        }
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

    fn stop(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.running = false;
        client.incarnation += 1;
        client.member = false;
        client.paused_until = None;
        client.left_for_poll = false;
        self.forget_assignment(c);
    }

    fn forget_assignment(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.assigned.clear();
        client.releasing.clear();
        client.pending = None;
        client.applying.clear();
        client.reconciling = false;
        client.reconciliations += 1;
    }

    fn request(&self, c: usize, epoch: i32) -> HeartbeatRequest {
        let client = &self.clients[c];
        let mut owned = client.assigned.clone();
        owned.extend(client.releasing.iter().cloned());
        owned.sort();
        HeartbeatRequest {
            member_id: client.member_id.clone(),
            member_epoch: epoch,
            instance_id: client.instance_id.clone(),
            rack_id: None,
            rebalance_timeout_ms: i32::try_from(self.max_poll_interval).unwrap_or(i32::MAX),
            subscribed_topics: Some(client.topics.clone()),
            server_assignor: Some(self.assignor.name().to_string()),
            owned: Some(owned),
            client_id: client.name.clone(),
            client_host: "/simulated".to_string(),
        }
    }

    /// Sends a heartbeat now; the next one follows an interval later.
    fn heartbeat(&mut self, c: usize, now: u64) -> Result<(), String> {
        self.heartbeats_now += 1;
        if self.heartbeats_now > MAX_HEARTBEATS_PER_INSTANT {
            return Err(format!(
                "more than {MAX_HEARTBEATS_PER_INSTANT} heartbeats at {now} ms: \
                 the members and the group do not converge"
            ));
        }
        let request = self.request(c, self.clients[c].epoch);
        let response = self.group.heartbeat(request, &self.topics, now);
        let client = &mut self.clients[c];
        client.heartbeats += 1;
        let chain = client.heartbeats;
        self.schedule(now + self.heartbeat_interval, c, Task::Heartbeat(chain));
        self.on_response(c, response, now)
    }

    fn on_response(
        &mut self,
        c: usize,
        response: HeartbeatResponse,
        now: u64,
    ) -> Result<(), String> {
        match response.error {
            0 => {
                let client = &mut self.clients[c];
                client.member = true;
                client.epoch = response.member_epoch;
                if let Some(assignment) = response.assignment {
                    let mut assignment = assignment;
                    assignment.sort();
                    self.assigned_by_group(c, assignment, now);
                }
                Ok(())
            }
            FENCED_MEMBER_EPOCH | UNKNOWN_MEMBER_ID => {
                // The member lost its partitions: it joins again at once.
                self.forget_assignment(c);
                self.clients[c].epoch = JOIN_EPOCH;
                self.clients[c].member = false;
                self.heartbeat(c, now)
            }
            UNRELEASED_INSTANCE_ID => {
                if !self.clients[c].told_unreleased {
                    self.clients[c].told_unreleased = true;
                    self.note(
                        c,
                        "its instance id is still held by its previous process; \
                         it retries every heartbeat until that session expires",
                    );
                }
                Ok(())
            }
            error => {
                let name = ResponseError::try_from_code(error)
                    .map_or_else(|| error.to_string(), |e| e.to_string());
                self.note(c, format!("heartbeat failed with {name}; it stops"));
                self.stop(c);
                Ok(())
            }
        }
    }

    fn assigned_by_group(&mut self, c: usize, assignment: Vec<TopicPartition>, now: u64) {
        let client = &mut self.clients[c];
        let current = match (&client.pending, client.reconciling) {
            (Some(pending), _) => pending,
            (None, true) => &client.applying,
            (None, false) => &client.assigned,
        };
        if *current == assignment {
            return;
        }
        client.pending = Some(assignment);
        if client.reconciling {
            return;
        }
        client.reconciling = true;
        if client.paused_until.is_none() {
            let at = self.poll_boundary(c, now);
            self.schedule(at, c, Task::Reconcile);
        }
    }

    fn poll_boundary(&self, c: usize, now: u64) -> u64 {
        let client = &self.clients[c];
        if client.poll_time == 0 {
            return now;
        }
        let since = now - client.started_at;
        client.started_at + since.div_ceil(client.poll_time) * client.poll_time
    }

    /// Revokes what the new assignment lacks; the rest when revoked.
    fn reconcile(&mut self, c: usize, now: u64) -> Result<(), String> {
        let client = &mut self.clients[c];
        if !client.reconciling || client.paused_until.is_some() {
            return Ok(());
        }
        let Some(target) = client.pending.take() else {
            client.reconciling = false;
            return Ok(());
        };
        let lost: Vec<TopicPartition> = client
            .assigned
            .iter()
            .filter(|tp| !target.contains(tp))
            .cloned()
            .collect();
        client.reconciliations += 1;
        let reconciliation = client.reconciliations;
        client.applying = target;
        if lost.is_empty() {
            return self.reconciled(c, reconciliation, now);
        }
        client.assigned.retain(|tp| !lost.contains(tp));
        client.releasing = lost;
        let at = now + client.rejoin_time;
        self.schedule(at, c, Task::Reconciled(reconciliation));
        Ok(())
    }

    fn reconciled(&mut self, c: usize, reconciliation: u64, now: u64) -> Result<(), String> {
        let client = &mut self.clients[c];
        if client.reconciliations != reconciliation {
            return Ok(());
        }
        client.releasing.clear();
        client.assigned = std::mem::take(&mut client.applying);
        // A newer assignment came while revoking: reconcile again.
        client.reconciling = client.pending.is_some();
        if client.reconciling {
            self.schedule(now, c, Task::Reconcile);
        }
        self.heartbeat(c, now)
    }

    fn max_poll_exceeded(&mut self, c: usize, pause: u64, now: u64) -> Result<(), String> {
        let client = &self.clients[c];
        if client.pauses != pause || client.paused_until.is_none() {
            return Ok(());
        }
        self.note(c, "exceeded max.poll.interval and left the group");
        self.leave_group(c, now);
        let client = &mut self.clients[c];
        client.left_for_poll = true;
        let until = client.paused_until.unwrap_or(now);
        self.schedule(until, c, Task::Resume(pause));
        Ok(())
    }

    /// LeaveGroup by heartbeat: a static member says it will be back.
    fn leave_group(&mut self, c: usize, now: u64) {
        let client = &self.clients[c];
        if client.member {
            let epoch = if client.instance_id.is_some() {
                STATIC_LEAVE_EPOCH
            } else {
                LEAVE_EPOCH
            };
            let request = self.request(c, epoch);
            self.group.heartbeat(request, &self.topics, now);
        }
        let client = &mut self.clients[c];
        client.member = false;
        client.epoch = JOIN_EPOCH;
        client.heartbeats += 1;
        self.forget_assignment(c);
    }

    fn resume(&mut self, c: usize, pause: u64, now: u64) -> Result<(), String> {
        let client = &mut self.clients[c];
        if client.pauses != pause || client.paused_until.is_none() {
            return Ok(());
        }
        client.paused_until = None;
        if client.left_for_poll {
            client.left_for_poll = false;
            return self.heartbeat(c, now);
        }
        if client.reconciling {
            self.schedule(now, c, Task::Reconcile);
        }
        Ok(())
    }

    fn run(&mut self, c: usize, task: Task, now: u64) -> Result<bool, String> {
        match task {
            Task::Heartbeat(chain) => {
                let client = &self.clients[c];
                if client.heartbeats != chain || client.left_for_poll {
                    return Ok(false);
                }
                let seen = |this: &Self| {
                    let client = &this.clients[c];
                    let group = (this.group.group_epoch(), this.group.state());
                    (group, client.epoch, client.member, client.pending.clone())
                };
                let before = seen(self);
                self.heartbeat(c, now)?;
                Ok(seen(self) != before)
            }
            Task::Reconcile => self.reconcile(c, now).map(|()| true),
            Task::Reconciled(n) => self.reconciled(c, n, now).map(|()| true),
            Task::MaxPoll(pause) => self.max_poll_exceeded(c, pause, now).map(|()| true),
            Task::Resume(pause) => self.resume(c, pause, now).map(|()| true),
        }
    }

    fn settled(&self) -> bool {
        let description = self.group.describe();
        if description.state == ConsumerGroupState::Reconciling {
            return false;
        }
        let members: BTreeSet<&str> = description
            .members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect();
        let running: Vec<&Client> = self.clients.iter().filter(|c| c.running).collect();
        let in_step = running.iter().all(|c| {
            c.member
                && !c.reconciling
                && c.paused_until.is_none()
                && members.contains(c.member_id.as_str())
        });
        in_step && members.len() == running.len()
    }
}

impl Protocol for Kip848 {
    fn start(&mut self, c: usize, now: u64) {
        if self.clients[c].running {
            self.note(c, "is already running; join ignored");
            return;
        }
        let client = &mut self.clients[c];
        client.running = true;
        client.incarnation += 1;
        client.started_at = now;
        client.member_id = format!("{}#{}", client.name, client.incarnation);
        client.epoch = JOIN_EPOCH;
        client.told_unreleased = false;
        self.forget_assignment(c);
        self.schedule(now, c, Task::Heartbeat(self.clients[c].heartbeats));
    }

    fn leave(&mut self, c: usize, now: u64) {
        if !self.clients[c].running {
            self.note(c, "is not running; leave ignored");
            return;
        }
        self.leave_group(c, now);
        self.stop(c);
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
        if self.clients[c].running && self.clients[c].member {
            let chain = self.clients[c].heartbeats;
            self.schedule(now, c, Task::Heartbeat(chain));
        }
    }

    fn topics_changed(&mut self, topics: &Topics, _now: u64) {
        // The coordinator sees new partitions at the next heartbeat.
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
        self.heartbeats_now = 0;
        let mut changed = false;
        loop {
            if self.group.next_deadline().is_some_and(|d| d <= now) {
                self.group.tick(now);
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
                changed |= self.run(c, task, now)?;
            }
        }
        Ok(changed)
    }

    fn view(&self) -> View {
        View {
            generation: self.group.group_epoch(),
            rebalancing: self.group.state() == ConsumerGroupState::Reconciling,
            settled: self.settled(),
            running: self.clients.iter().map(|c| c.running).collect(),
            fetching: self
                .clients
                .iter()
                .map(|c| {
                    if c.running && c.paused_until.is_none() {
                        c.assigned.clone()
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
