//! What the runner asks of a group protocol's model: the broker's group
//! state machine together with the clients that talk to it. Each protocol
//! is one module implementing [`Model`](super::lifecycle::Model), which
//! makes it a [`Protocol`].

use actorlog_actors::group::assignor::{TopicPartition, Topics};

/// A group protocol with its simulated consumers, indexed as the scenario
/// declares them. Times are virtual milliseconds.
pub trait Protocol {
    /// The consumer's process starts and joins the group.
    fn start(&mut self, consumer: usize, now: u64);
    /// The consumer closes cleanly.
    fn leave(&mut self, consumer: usize, now: u64);
    /// The consumer's process dies.
    fn crash(&mut self, consumer: usize, now: u64);
    /// The consumer stops polling until `until`.
    fn pause(&mut self, consumer: usize, until: u64, now: u64);
    fn subscribe(&mut self, consumer: usize, topics: Vec<String>, now: u64);
    /// Partitions were added; `topics` is what exists now.
    fn topics_changed(&mut self, topics: &Topics, now: u64);
    /// The coordinator's process died: the group's state goes with it (a
    /// coordinator keeps membership in memory only), requests in flight
    /// fail, and every request fails until [`Protocol::coordinator_found`].
    fn coordinator_lost(&mut self, now: u64);
    /// A broker coordinates the group again, from an empty group with the
    /// committed offsets it replayed; clients find it at their next retry.
    fn coordinator_found(&mut self, now: u64);
    /// When something is next due (a timer of the group or of a client).
    fn next_due(&self) -> Option<u64>;
    /// Does everything due at `now`; false when nothing that [`View`]
    /// shows can have changed (most instants are quiet heartbeats).
    fn advance(&mut self, now: u64) -> Result<bool, String>;
    /// What an observer sees now.
    fn view(&self) -> View;
    /// What happened that a reader should know about (fenced members,
    /// failed requests), since the last call.
    fn take_notes(&mut self) -> Vec<String>;
}

/// The group and its consumers at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub generation: i32,
    /// A rebalance is under way (the classic join and sync phases, or
    /// KIP-848 members still reconciling).
    pub rebalancing: bool,
    /// Nothing is in flight: every group member is a running consumer in
    /// the current generation holding its assignment, and every running
    /// consumer is such a member.
    pub settled: bool,
    /// Per consumer, whether its process runs.
    pub running: Vec<bool>,
    /// Per consumer, the partitions it is fetching.
    pub fetching: Vec<Vec<TopicPartition>>,
}
