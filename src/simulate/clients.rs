//! The simulated consumers as every group protocol has them: what the
//! scenario declares of each, its process (running, incarnation, pauses),
//! the timers it has set and what a reader should be told about it.

use super::scenario::Consumer;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Index, IndexMut};

/// `retry.backoff.ms` (the Java client's and librdkafka's default): how
/// soon a client whose coordinator did not answer looks it up again
/// (FindCoordinator) and retries.
pub const RETRY_BACKOFF: u64 = 100;

/// One consumer and its process.
#[derive(Debug)]
pub struct Client {
    pub name: String,
    pub instance_id: Option<String>,
    pub topics: Vec<String>,
    pub poll_time: u64,
    pub rejoin_time: u64,
    pub running: bool,
    /// Bumped whenever the process stops: answers and timers meant for an
    /// earlier process are dropped.
    pub incarnation: u32,
    pub started_at: u64,
    pub member_id: String,
    /// The current heartbeat chain: a heartbeat timer of an older chain
    /// does nothing.
    pub heartbeats: u64,
    pub paused_until: Option<u64>,
    pub pauses: u64,
    /// Left the group after exceeding max.poll.interval; rejoins on resume.
    pub left_for_poll: bool,
}

/// A timer of a client: one of the pauses every protocol's clients take,
/// or one of the protocol's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer<T> {
    /// The pause started by this pause number outlasts max.poll.interval.
    MaxPoll(u64),
    /// The pause started by this pause number ends.
    Resume(u64),
    Protocol(T),
}

/// The consumers, indexed as the scenario declares them, with their
/// timers; `T` is what the protocol's clients set timers for.
pub struct Clients<T> {
    clients: Vec<Client>,
    max_poll_interval: u64,
    /// Timers in time order; the sequence number keeps ties in the order
    /// they were set.
    agenda: BTreeMap<(u64, u64), (usize, u32, Timer<T>)>,
    next_seq: u64,
    notes: Vec<String>,
}

impl<T> Clients<T> {
    pub fn new(consumers: &[Consumer], max_poll_interval: u64) -> Clients<T> {
        Clients {
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
                    heartbeats: 0,
                    paused_until: None,
                    pauses: 0,
                    left_for_poll: false,
                })
                .collect(),
            max_poll_interval,
            agenda: BTreeMap::new(),
            next_seq: 0,
            notes: Vec::new(),
        }
    }

    pub fn max_poll_interval(&self) -> u64 {
        self.max_poll_interval
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Client> {
        self.clients.iter()
    }

    /// Sets one of the protocol's timers for the client's current process.
    pub fn schedule(&mut self, at: u64, c: usize, task: T) {
        self.set(at, c, Timer::Protocol(task));
    }

    fn set(&mut self, at: u64, c: usize, timer: Timer<T>) {
        self.next_seq += 1;
        let incarnation = self.clients[c].incarnation;
        self.agenda
            .insert((at, self.next_seq), (c, incarnation, timer));
    }

    /// When the first timer is due.
    pub fn next_timer(&self) -> Option<u64> {
        self.agenda.keys().next().map(|(at, _)| *at)
    }

    /// Takes the first timer due by `now`, passing over those of processes
    /// that have since stopped.
    pub fn due(&mut self, now: u64) -> Option<(usize, Timer<T>)> {
        while let Some(entry) = self.agenda.first_entry() {
            if entry.key().0 > now {
                return None;
            }
            let (c, incarnation, timer) = entry.remove();
            let client = &self.clients[c];
            if client.incarnation == incarnation && client.running {
                return Some((c, timer));
            }
        }
        None
    }

    /// The end of the poll the client is processing at `now`.
    pub fn poll_boundary(&self, c: usize, now: u64) -> u64 {
        let client = &self.clients[c];
        if client.poll_time == 0 {
            return now;
        }
        let since = now - client.started_at;
        client.started_at + since.div_ceil(client.poll_time) * client.poll_time
    }

    pub fn note(&mut self, c: usize, text: impl std::fmt::Display) {
        let name = &self.clients[c].name;
        self.notes.push(format!("{name}: {text}"));
    }

    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Whether the client is not running, in which case `what` is ignored
    /// and the reader told so.
    pub fn ignores(&mut self, c: usize, what: &str) -> bool {
        if self.clients[c].running {
            return false;
        }
        self.note(c, format!("is not running; {what} ignored"));
        true
    }

    /// The process starts: a new incarnation.
    pub fn start(&mut self, c: usize, now: u64) {
        let client = &mut self.clients[c];
        client.running = true;
        client.incarnation += 1;
        client.started_at = now;
    }

    /// The process stops, and with it its pause.
    pub fn stop(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.running = false;
        client.incarnation += 1;
        client.paused_until = None;
        client.left_for_poll = false;
    }

    /// The client stops polling until `until`: it gives up its membership
    /// once that outlasts max.poll.interval.
    pub fn pause(&mut self, c: usize, until: u64, now: u64) {
        let client = &mut self.clients[c];
        client.pauses += 1;
        client.paused_until = Some(until);
        let pause = client.pauses;
        if until - now > self.max_poll_interval {
            self.set(now + self.max_poll_interval, c, Timer::MaxPoll(pause));
        } else {
            self.set(until, c, Timer::Resume(pause));
        }
    }

    /// Whether the client is still in the pause with this number.
    pub fn in_pause(&self, c: usize, pause: u64) -> bool {
        let client = &self.clients[c];
        client.pauses == pause && client.paused_until.is_some()
    }

    /// The client has left the group in the middle of its pause: it joins
    /// again when the pause ends.
    pub fn left_in_pause(&mut self, c: usize, pause: u64) {
        let client = &mut self.clients[c];
        client.left_for_poll = true;
        let until = client.paused_until.unwrap_or_default();
        self.set(until, c, Timer::Resume(pause));
    }

    /// Whether the group's `members` are exactly the running clients, each
    /// polling and, as its protocol judges by `agrees`, caught up with the
    /// group.
    pub fn in_step<'a>(
        &self,
        members: impl IntoIterator<Item = &'a str>,
        agrees: impl Fn(usize) -> bool,
    ) -> bool {
        let members: BTreeSet<&str> = members.into_iter().collect();
        let running: Vec<usize> = (0..self.clients.len())
            .filter(|c| self.clients[*c].running)
            .collect();
        let in_step = running.iter().all(|c| {
            let client = &self.clients[*c];
            agrees(*c)
                && client.paused_until.is_none()
                && members.contains(client.member_id.as_str())
        });
        in_step && members.len() == running.len()
    }
}

impl<T> Index<usize> for Clients<T> {
    type Output = Client;

    fn index(&self, c: usize) -> &Client {
        &self.clients[c]
    }
}

impl<T> IndexMut<usize> for Clients<T> {
    fn index_mut(&mut self, c: usize) -> &mut Client {
        &mut self.clients[c]
    }
}
