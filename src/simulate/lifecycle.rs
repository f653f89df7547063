//! The consumer lifecycle every group protocol shares: processes start,
//! close, crash, pause and change their subscription the same way, and
//! an instant runs the group's deadlines and the clients' timers in the
//! same order. What a protocol's clients do differently is a [`Model`];
//! every model is a [`Protocol`] the runner can play.

use super::clients::{Clients, Timer};
use super::protocol::{Protocol, View};
use actorlog_actors::group::assignor::{TopicPartition, Topics};

/// A group protocol's state machine and what its clients do in it.
pub trait Model {
    /// What the protocol's clients set timers for.
    type Task;

    fn clients(&self) -> &Clients<Self::Task>;
    fn clients_mut(&mut self) -> &mut Clients<Self::Task>;

    /// The client's process has started (a new incarnation): it joins.
    fn started(&mut self, c: usize, now: u64);
    /// The client's process has stopped: what it held of the group goes.
    fn stopped(&mut self, c: usize);
    /// A client closing cleanly says goodbye, as far as its protocol does.
    fn leave_group(&mut self, c: usize, now: u64);
    /// A running client's subscription changed.
    fn resubscribed(&mut self, c: usize, now: u64);
    /// Partitions were added; `topics` is what exists now.
    fn new_topics(&mut self, topics: &Topics);
    /// The client's pause has outlasted max.poll.interval: it gives up its
    /// membership and, through [`Clients::left_in_pause`], comes back when
    /// the pause ends.
    fn exceeded_max_poll(&mut self, c: usize, pause: u64, now: u64) -> Result<(), String>;
    /// The pause of a client that left the group is over: it joins again.
    fn rejoin(&mut self, c: usize, now: u64) -> Result<(), String>;
    /// The pause of a client still in the group is over: it does what the
    /// pause held back.
    fn resumed(&mut self, c: usize, now: u64);
    /// Runs one of the protocol's timers; false when nothing that
    /// [`View`] shows can have changed.
    fn run(&mut self, c: usize, task: Self::Task, now: u64) -> Result<bool, String>;

    /// The coordinator died (see [`Protocol::coordinator_lost`]).
    fn lose_coordinator(&mut self, now: u64);
    /// A new coordinator answers (see [`Protocol::coordinator_found`]).
    fn find_coordinator(&mut self, now: u64);

    /// Starts an instant: limits per instant start again, and what the
    /// group answered outside [`Protocol::advance`] is delivered; true when
    /// there was such an answer.
    fn begin(&mut self, now: u64) -> Result<bool, String>;
    /// Answers what the group has sent back; after every deadline and timer.
    fn deliver(&mut self, now: u64) -> Result<(), String>;
    /// When the group's next timeout is due.
    fn group_deadline(&self) -> Option<u64>;
    /// Runs the group's timeouts due by `now`.
    fn tick(&mut self, now: u64);

    fn generation(&self) -> i32;
    /// A rebalance is under way (see [`View::rebalancing`]).
    fn rebalancing(&self) -> bool;
    /// Nothing is in flight (see [`View::settled`]).
    fn settled(&self) -> bool;
    /// The partitions the client holds, fetched while it polls.
    fn holds(&self, c: usize) -> &[TopicPartition];

    /// The process stops, whatever it was doing.
    fn stop(&mut self, c: usize) {
        self.clients_mut().stop(c);
        self.stopped(c);
    }
}

impl<M: Model> Protocol for M {
    fn start(&mut self, c: usize, now: u64) {
        let clients = self.clients_mut();
        if clients[c].running {
            clients.note(c, "is already running; join ignored");
            return;
        }
        clients.start(c, now);
        self.started(c, now);
    }

    fn leave(&mut self, c: usize, now: u64) {
        if self.clients_mut().ignores(c, "leave") {
            return;
        }
        self.leave_group(c, now);
        self.stop(c);
    }

    fn crash(&mut self, c: usize, _now: u64) {
        if !self.clients_mut().ignores(c, "crash") {
            self.stop(c);
        }
    }

    fn pause(&mut self, c: usize, until: u64, now: u64) {
        let clients = self.clients_mut();
        if !clients.ignores(c, "pause") {
            clients.pause(c, until, now);
        }
    }

    fn subscribe(&mut self, c: usize, topics: Vec<String>, now: u64) {
        let client = &mut self.clients_mut()[c];
        client.topics = topics;
        if client.running {
            self.resubscribed(c, now);
        }
    }

    fn topics_changed(&mut self, topics: &Topics, _now: u64) {
        self.new_topics(topics);
    }

    fn coordinator_lost(&mut self, now: u64) {
        self.lose_coordinator(now);
    }

    fn coordinator_found(&mut self, now: u64) {
        self.find_coordinator(now);
    }

    fn next_due(&self) -> Option<u64> {
        [self.clients().next_timer(), self.group_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn advance(&mut self, now: u64) -> Result<bool, String> {
        let mut changed = self.begin(now)?;
        loop {
            if self.group_deadline().is_some_and(|d| d <= now) {
                self.tick(now);
                self.deliver(now)?;
                changed = true;
                continue;
            }
            let Some((c, timer)) = self.clients_mut().due(now) else {
                break;
            };
            changed |= fire(self, c, timer, now)?;
            self.deliver(now)?;
        }
        Ok(changed)
    }

    fn view(&self) -> View {
        let clients = self.clients();
        View {
            generation: self.generation(),
            rebalancing: self.rebalancing(),
            settled: self.settled(),
            running: clients.iter().map(|c| c.running).collect(),
            fetching: clients
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if c.running && c.paused_until.is_none() {
                        self.holds(i).to_vec()
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
        }
    }

    fn take_notes(&mut self) -> Vec<String> {
        self.clients_mut().take_notes()
    }
}

/// Runs a timer of a running client; false as [`Model::run`] says.
fn fire<M: Model>(
    model: &mut M,
    c: usize,
    timer: Timer<M::Task>,
    now: u64,
) -> Result<bool, String> {
    match timer {
        Timer::Protocol(task) => return model.run(c, task, now),
        Timer::MaxPoll(pause) => {
            let clients = model.clients_mut();
            if clients.in_pause(c, pause) {
                clients.note(c, "exceeded max.poll.interval and left the group");
                model.exceeded_max_poll(c, pause, now)?;
            }
        }
        Timer::Resume(pause) => {
            let clients = model.clients_mut();
            if clients.in_pause(c, pause) {
                let client = &mut clients[c];
                client.paused_until = None;
                if client.left_for_poll {
                    client.left_for_poll = false;
                    model.rejoin(c, now)?;
                } else {
                    model.resumed(c, now);
                }
            }
        }
    }
    Ok(true)
}
