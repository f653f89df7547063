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

use super::clients::{Clients, RETRY_BACKOFF};
use super::lifecycle::Model;
use super::scenario::{Consumer, GroupSettings};
use actorlog_actors::group::assignor::{Assignor, TopicPartition, Topics};
use actorlog_actors::group::kip848::{
    ConsumerGroup, ConsumerGroupConfig, ConsumerGroupState, HeartbeatRequest, HeartbeatResponse,
    JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};
use kafka_protocol::ResponseError;

const FENCED_MEMBER_EPOCH: ResponseError = ResponseError::FencedMemberEpoch;
const UNKNOWN_MEMBER_ID: ResponseError = ResponseError::UnknownMemberId;
const UNRELEASED_INSTANCE_ID: ResponseError = ResponseError::UnreleasedInstanceId;

/// Heartbeats in one instant before the model gives up on convergence.
const MAX_HEARTBEATS_PER_INSTANT: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The heartbeat of one chain: every heartbeat starts a new chain.
    Heartbeat(u64),
    /// The poll ended: reconcile to the latest assignment.
    Reconcile,
    /// Revocation is done: take the new assignment and say so.
    Reconciled(u64),
}

/// What a client knows of its membership in the group.
#[derive(Debug)]
struct Member {
    /// 0 to join; the coordinator's epoch for the member afterwards.
    epoch: i32,
    /// In the group: joined and not left.
    joined: bool,
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
    told_unreleased: bool,
}

/// The consumer protocol with its consumers.
pub struct Kip848 {
    group: ConsumerGroup,
    config: ConsumerGroupConfig,
    /// No broker coordinates the group: every heartbeat fails.
    down: bool,
    assignor: Assignor,
    heartbeat_interval: u64,
    topics: Topics,
    clients: Clients<Task>,
    members: Vec<Member>,
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
            group: ConsumerGroup::new(config.clone()),
            config,
            down: false,
            assignor: group.assignor.0,
            heartbeat_interval: group.heartbeat_interval.0,
            topics: topics.clone(),
            clients: Clients::new(consumers, group.max_poll_interval.0),
            members: consumers
                .iter()
                .map(|_| Member {
                    epoch: JOIN_EPOCH,
                    joined: false,
                    assigned: Vec::new(),
                    releasing: Vec::new(),
                    pending: None,
                    applying: Vec::new(),
                    reconciling: false,
                    reconciliations: 0,
                    told_unreleased: false,
                })
                .collect(),
            heartbeats_now: 0,
        }
    }

    fn forget_assignment(&mut self, c: usize) {
        let member = &mut self.members[c];
        member.assigned.clear();
        member.releasing.clear();
        member.pending = None;
        member.applying.clear();
        member.reconciling = false;
        member.reconciliations += 1;
    }

    fn request(&self, c: usize, epoch: i32) -> HeartbeatRequest {
        let client = &self.clients[c];
        let member = &self.members[c];
        let mut owned = member.assigned.clone();
        owned.extend(member.releasing.iter().cloned());
        owned.sort();
        HeartbeatRequest {
            member_id: client.member_id.clone(),
            member_epoch: epoch,
            instance_id: client.instance_id.clone(),
            rack_id: None,
            rebalance_timeout_ms: i32::try_from(self.clients.max_poll_interval())
                .unwrap_or(i32::MAX),
            subscribed_topics: Some(client.topics.clone()),
            subscribed_regex: None,
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
        let client = &mut self.clients[c];
        client.heartbeats += 1;
        let chain = client.heartbeats;
        if self.down {
            // Unanswered: the member looks the coordinator up again and
            // retries, keeping its epoch and what it was assigned.
            self.clients
                .schedule(now + RETRY_BACKOFF, c, Task::Heartbeat(chain));
            return Ok(());
        }
        self.clients
            .schedule(now + self.heartbeat_interval, c, Task::Heartbeat(chain));
        let request = self.request(c, self.members[c].epoch);
        let response = self.group.heartbeat(request, &self.topics, now);
        self.on_response(c, response, now)
    }

    fn on_response(
        &mut self,
        c: usize,
        response: HeartbeatResponse,
        now: u64,
    ) -> Result<(), String> {
        match response.error {
            None => {
                let member = &mut self.members[c];
                member.joined = true;
                member.epoch = response.member_epoch;
                if let Some(assignment) = response.assignment {
                    let mut assignment = assignment;
                    assignment.sort();
                    self.assigned_by_group(c, assignment, now);
                }
                Ok(())
            }
            Some(FENCED_MEMBER_EPOCH | UNKNOWN_MEMBER_ID) => {
                // The member lost its partitions: it joins again at once.
                self.forget_assignment(c);
                self.members[c].epoch = JOIN_EPOCH;
                self.members[c].joined = false;
                self.heartbeat(c, now)
            }
            Some(UNRELEASED_INSTANCE_ID) => {
                if !self.members[c].told_unreleased {
                    self.members[c].told_unreleased = true;
                    self.clients.note(
                        c,
                        "its instance id is still held by its previous process; \
                         it retries every heartbeat until that session expires",
                    );
                }
                Ok(())
            }
            Some(error) => {
                self.clients
                    .note(c, format!("heartbeat failed with {error}; it stops"));
                self.stop(c);
                Ok(())
            }
        }
    }

    fn assigned_by_group(&mut self, c: usize, assignment: Vec<TopicPartition>, now: u64) {
        let member = &mut self.members[c];
        let current = match (&member.pending, member.reconciling) {
            (Some(pending), _) => pending,
            (None, true) => &member.applying,
            (None, false) => &member.assigned,
        };
        if *current == assignment {
            return;
        }
        member.pending = Some(assignment);
        if member.reconciling {
            return;
        }
        member.reconciling = true;
        if self.clients[c].paused_until.is_none() {
            let at = self.clients.poll_boundary(c, now);
            self.clients.schedule(at, c, Task::Reconcile);
        }
    }

    /// Revokes what the new assignment lacks; the rest when revoked.
    fn reconcile(&mut self, c: usize, now: u64) -> Result<(), String> {
        let client = &self.clients[c];
        let member = &mut self.members[c];
        if !member.reconciling || client.paused_until.is_some() {
            return Ok(());
        }
        let Some(target) = member.pending.take() else {
            member.reconciling = false;
            return Ok(());
        };
        let lost: Vec<TopicPartition> = member
            .assigned
            .iter()
            .filter(|tp| !target.contains(tp))
            .cloned()
            .collect();
        member.reconciliations += 1;
        let reconciliation = member.reconciliations;
        member.applying = target;
        if lost.is_empty() {
            return self.reconciled(c, reconciliation, now);
        }
        member.assigned.retain(|tp| !lost.contains(tp));
        member.releasing = lost;
        let at = now + client.rejoin_time;
        self.clients
            .schedule(at, c, Task::Reconciled(reconciliation));
        Ok(())
    }

    fn reconciled(&mut self, c: usize, reconciliation: u64, now: u64) -> Result<(), String> {
        let member = &mut self.members[c];
        if member.reconciliations != reconciliation {
            return Ok(());
        }
        member.releasing.clear();
        member.assigned = std::mem::take(&mut member.applying);
        // A newer assignment came while revoking: reconcile again.
        member.reconciling = member.pending.is_some();
        if member.reconciling {
            self.clients.schedule(now, c, Task::Reconcile);
        }
        self.heartbeat(c, now)
    }
}

impl Model for Kip848 {
    type Task = Task;

    fn clients(&self) -> &Clients<Task> {
        &self.clients
    }

    fn clients_mut(&mut self) -> &mut Clients<Task> {
        &mut self.clients
    }

    fn started(&mut self, c: usize, now: u64) {
        let client = &mut self.clients[c];
        client.member_id = format!("{}#{}", client.name, client.incarnation);
        let member = &mut self.members[c];
        member.epoch = JOIN_EPOCH;
        member.told_unreleased = false;
        self.forget_assignment(c);
        let chain = self.clients[c].heartbeats;
        self.clients.schedule(now, c, Task::Heartbeat(chain));
    }

    fn stopped(&mut self, c: usize) {
        self.members[c].joined = false;
        self.forget_assignment(c);
    }

    /// LeaveGroup by heartbeat: a static member says it will be back.
    fn leave_group(&mut self, c: usize, now: u64) {
        // Without a coordinator the leave heartbeat fails and the member
        // closes all the same.
        if self.members[c].joined && !self.down {
            let epoch = if self.clients[c].instance_id.is_some() {
                STATIC_LEAVE_EPOCH
            } else {
                LEAVE_EPOCH
            };
            let request = self.request(c, epoch);
            self.group.heartbeat(request, &self.topics, now);
        }
        let member = &mut self.members[c];
        member.joined = false;
        member.epoch = JOIN_EPOCH;
        self.clients[c].heartbeats += 1;
        self.forget_assignment(c);
    }

    fn resubscribed(&mut self, c: usize, now: u64) {
        if self.members[c].joined {
            let chain = self.clients[c].heartbeats;
            self.clients.schedule(now, c, Task::Heartbeat(chain));
        }
    }

    fn new_topics(&mut self, topics: &Topics) {
        // The coordinator sees new partitions at the next heartbeat.
        self.topics = topics.clone();
    }

    fn exceeded_max_poll(&mut self, c: usize, pause: u64, now: u64) -> Result<(), String> {
        self.leave_group(c, now);
        self.clients.left_in_pause(c, pause);
        Ok(())
    }

    fn rejoin(&mut self, c: usize, now: u64) -> Result<(), String> {
        self.heartbeat(c, now)
    }

    fn resumed(&mut self, c: usize, now: u64) {
        if self.members[c].reconciling {
            self.clients.schedule(now, c, Task::Reconcile);
        }
    }

    fn run(&mut self, c: usize, task: Task, now: u64) -> Result<bool, String> {
        match task {
            Task::Heartbeat(chain) => {
                let client = &self.clients[c];
                if client.heartbeats != chain || client.left_for_poll {
                    return Ok(false);
                }
                let seen = |this: &Self| {
                    let member = &this.members[c];
                    let group = (this.group.group_epoch(), this.group.state());
                    (group, member.epoch, member.joined, member.pending.clone())
                };
                let before = seen(self);
                self.heartbeat(c, now)?;
                Ok(seen(self) != before)
            }
            Task::Reconcile => self.reconcile(c, now).map(|()| true),
            Task::Reconciled(n) => self.reconciled(c, n, now).map(|()| true),
        }
    }

    fn lose_coordinator(&mut self, _now: u64) {
        self.down = true;
        self.group = ConsumerGroup::new(self.config.clone());
    }

    /// The new coordinator starts from an empty group: a member's next
    /// heartbeat is answered UNKNOWN_MEMBER_ID, and it joins again with
    /// epoch 0.
    fn find_coordinator(&mut self, _now: u64) {
        self.down = false;
    }

    fn begin(&mut self, _now: u64) -> Result<bool, String> {
        self.heartbeats_now = 0;
        Ok(false)
    }

    /// Heartbeats are answered as they are sent: nothing waits.
    fn deliver(&mut self, _now: u64) -> Result<(), String> {
        Ok(())
    }

    fn group_deadline(&self) -> Option<u64> {
        self.group.next_deadline()
    }

    fn tick(&mut self, now: u64) {
        self.group.tick(now);
    }

    fn generation(&self) -> i32 {
        self.group.group_epoch()
    }

    fn rebalancing(&self) -> bool {
        self.group.state() == ConsumerGroupState::Reconciling
    }

    fn settled(&self) -> bool {
        let description = self.group.describe();
        if description.state == ConsumerGroupState::Reconciling {
            return false;
        }
        let members = description.members.iter().map(|m| m.member_id.as_str());
        self.clients.in_step(members, |c| {
            let member = &self.members[c];
            member.joined && !member.reconciling
        })
    }

    fn holds(&self, c: usize) -> &[TopicPartition] {
        &self.members[c].assigned
    }
}
