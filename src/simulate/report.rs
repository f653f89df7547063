//! What a run shows: the observer that watches every instant of it, and
//! the report it leaves, as text or JSON.

use super::protocol::View;
use super::scenario::{fmt_millis, Protocol, Scenario};
use actorlog_actors::group::assignor::TopicPartition;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};

/// A simulation's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub description: String,
    /// `classic (eager)`, `classic (cooperative)` or `consumer (KIP-848)`.
    pub protocol: String,
    pub assignor: String,
    pub duration_ms: u64,
    pub consumers: Vec<String>,
    pub summary: Summary,
    pub events: Vec<EventReport>,
    pub generations: Vec<Generation>,
    /// Per consumer, what it fetched when.
    pub timeline: BTreeMap<String, Vec<Segment>>,
    /// Per consumer, when its process ran.
    pub running: BTreeMap<String, Vec<Window>>,
    /// When the group was rebalancing.
    pub rebalancing: Vec<Window>,
    /// How many expected partitions nobody fetched, from each time on.
    pub unowned: Vec<Level>,
    pub notes: Vec<Note>,
    /// The cluster and its broker failures, when the scenario has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
}

/// Where the group's coordinator lived and what killing brokers did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterReport {
    pub brokers: i32,
    /// The group's partition of `__consumer_offsets`.
    pub offsets_partition: u32,
    /// Its replicas, preferred leader first.
    pub replicas: Vec<i32>,
    pub failures: Vec<BrokerFailure>,
    /// When no broker coordinated the group.
    pub coordinator_unavailable: Vec<Window>,
}

/// A broker killed, and what that did to the group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerFailure {
    pub at_ms: u64,
    pub broker: i32,
    /// Whether it coordinated the group when it died; if not, the group
    /// carries on as if nothing happened.
    pub coordinator: bool,
    /// The broker that coordinated the group next, and when; none if no
    /// broker did before the end.
    pub next_coordinator: Option<i32>,
    pub next_coordinator_after_ms: Option<u64>,
    /// From the kill until the group was settled again at a coordinator
    /// (every running consumer in a stable generation, fetching); none if
    /// it never was before the end.
    pub stall_ms: Option<u64>,
    /// What became of the group's committed offsets (coordinator kills).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets: Option<Offsets>,
}

/// The fate of the committed offsets when their coordinator dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fate")]
pub enum Offsets {
    /// The next coordinator was in sync when the coordinator died, so it
    /// has every commit acknowledged before: replicated to another broker,
    /// or (`restarted`) on the broker that died, started again.
    Held { broker: i32, restarted: bool },
    /// No replica in sync ran again before the end: the group can neither
    /// read nor commit offsets.
    Unavailable,
}

impl fmt::Display for Offsets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offsets::Held {
                broker,
                restarted: false,
            } => write!(f, "held (replicated to broker {broker})"),
            Offsets::Held {
                broker,
                restarted: true,
            } => write!(f, "held (on broker {broker}, once restarted)"),
            Offsets::Unavailable => write!(f, "unavailable (no in-sync replica runs)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The group's generation at the end.
    pub generations: i32,
    /// Partition-seconds during which a partition some consumer is
    /// expected to read had no running consumer fetching it.
    pub unavailable_partition_seconds: f64,
    /// Times a partition went to a different consumer than had it before.
    pub moves: usize,
    pub rebalancing_ms: u64,
    /// Partitions per running consumer at the end.
    pub final_assignment: BTreeMap<String, Vec<String>>,
    /// The most minus the fewest partitions a running consumer has.
    pub final_skew: usize,
    pub settled_at_end: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventReport {
    pub at_ms: u64,
    pub event: String,
    /// From the event until the group was settled again (for a restart or
    /// a pause: settled after the consumer came back); none if it never
    /// was before the end.
    pub settled_after_ms: Option<u64>,
    pub unavailable_partition_seconds: f64,
    pub moves: usize,
    /// Other consumers that stopped fetching altogether meanwhile.
    pub stopped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub generation: i32,
    /// When the rebalance that made it began.
    pub started_ms: u64,
    /// When the rebalance that made it ended.
    pub stable_ms: Option<u64>,
    /// What each consumer fetched then.
    pub assignment: BTreeMap<String, Vec<String>>,
    /// The broker coordinating the group then (in a cluster): a new
    /// coordinator numbers generations from 1 again, as it starts from an
    /// empty group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub from_ms: u64,
    pub to_ms: u64,
    pub partitions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from_ms: u64,
    pub to_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Level {
    pub from_ms: u64,
    pub partitions: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub at_ms: u64,
    pub text: String,
}

/// A scenario event as the runner played it.
pub struct PlayedEvent {
    pub at: u64,
    /// Settling is measured from here: when the consumer came back.
    pub last: u64,
    pub text: String,
    pub subjects: Vec<String>,
}

/// A partition's name in reports: `orders-3`.
pub fn tp_name((topic, partition): &TopicPartition) -> String {
    format!("{topic}-{partition}")
}

fn names(partitions: &[TopicPartition]) -> Vec<String> {
    partitions.iter().map(tp_name).collect()
}

/// Watches the run instant by instant.
pub struct Observer {
    description: String,
    protocol: String,
    assignor: String,
    consumers: Vec<String>,
    fetching: Vec<Vec<TopicPartition>>,
    since: Vec<u64>,
    running: Vec<Option<u64>>,
    timeline: BTreeMap<String, Vec<Segment>>,
    running_windows: BTreeMap<String, Vec<Window>>,
    last_owner: BTreeMap<TopicPartition, usize>,
    moves: Vec<u64>,
    stops: Vec<(u64, usize)>,
    unowned: Vec<Level>,
    settled: Vec<(u64, bool)>,
    rebalancing_since: Option<u64>,
    rebalancing: Vec<Window>,
    generations: Vec<Generation>,
    notes: Vec<Note>,
    coordinator: Option<i32>,
    /// Partitions fetched by several consumers, with who fetches them.
    shared: BTreeMap<TopicPartition, Vec<usize>>,
    /// The coordinator changed since the last generation was seen: the
    /// next one is new even if its number and broker are the last one's.
    new_coordinator: bool,
}

impl Observer {
    pub fn new(scenario: &Scenario) -> Observer {
        let consumers: Vec<String> = scenario.consumers.iter().map(|c| c.name.clone()).collect();
        let n = consumers.len();
        let assignor = scenario.group.assignor.0;
        let protocol = match scenario.group.protocol {
            Protocol::Classic if assignor.is_cooperative() => "classic (cooperative)",
            Protocol::Classic => "classic (eager)",
            Protocol::Consumer => "consumer (KIP-848)",
        };
        Observer {
            description: scenario.description.clone(),
            protocol: protocol.to_string(),
            assignor: assignor.name().to_string(),
            timeline: consumers.iter().map(|c| (c.clone(), Vec::new())).collect(),
            running_windows: consumers.iter().map(|c| (c.clone(), Vec::new())).collect(),
            consumers,
            fetching: vec![Vec::new(); n],
            since: vec![0; n],
            running: vec![None; n],
            last_owner: BTreeMap::new(),
            moves: Vec::new(),
            stops: Vec::new(),
            unowned: Vec::new(),
            settled: Vec::new(),
            rebalancing_since: None,
            rebalancing: Vec::new(),
            generations: Vec::new(),
            notes: Vec::new(),
            coordinator: None,
            shared: BTreeMap::new(),
            new_coordinator: false,
        }
    }

    /// The broker that coordinates the group from now on, in a cluster.
    pub fn coordinator(&mut self, broker: Option<i32>) {
        self.new_coordinator |= self.coordinator != broker;
        self.coordinator = broker;
    }

    pub fn note(&mut self, now: u64, text: String) {
        self.notes.push(Note { at_ms: now, text });
    }

    /// Takes in the view after everything at `now` happened. `expected`
    /// are the partitions someone should be fetching; the group is settled
    /// only when the running consumers fetch all of `subscribed`, theirs.
    pub fn observe(
        &mut self,
        now: u64,
        view: &View,
        expected: &BTreeSet<TopicPartition>,
        subscribed: &BTreeSet<TopicPartition>,
    ) {
        for c in 0..self.consumers.len() {
            self.consumer(now, c, view.running[c], &view.fetching[c]);
        }
        self.shared(now, view);
        let fetched: BTreeSet<&TopicPartition> = view.fetching.iter().flatten().collect();
        let missing = expected.iter().filter(|tp| !fetched.contains(tp)).count();
        if self.unowned.last().is_none_or(|l| l.partitions != missing) {
            self.unowned.push(Level {
                from_ms: now,
                partitions: missing,
            });
        }
        let settled = view.settled && subscribed.iter().all(|tp| fetched.contains(tp));
        if self.settled.last().is_none_or(|(_, s)| *s != settled) {
            self.settled.push((now, settled));
        }
        self.generation(now, view);
        match (self.rebalancing_since, view.rebalancing) {
            (None, true) => self.rebalancing_since = Some(now),
            (Some(from), false) => {
                self.rebalancing.push(Window {
                    from_ms: from,
                    to_ms: now,
                });
                self.rebalancing_since = None;
            }
            _ => {}
        }
    }

    /// Notes partitions that more than one consumer fetches from now on.
    /// The group protocols never allow it, but a new coordinator that
    /// starts from an empty group hands out partitions whose owners have
    /// not yet heard that they lost them.
    fn shared(&mut self, now: u64, view: &View) {
        let mut owners: BTreeMap<&TopicPartition, Vec<usize>> = BTreeMap::new();
        for (c, partitions) in view.fetching.iter().enumerate() {
            for tp in partitions {
                owners.entry(tp).or_default().push(c);
            }
        }
        let shared: BTreeMap<TopicPartition, Vec<usize>> = owners
            .into_iter()
            .filter(|(_, cs)| cs.len() > 1)
            .map(|(tp, cs)| (tp.clone(), cs))
            .collect();
        let new: Vec<String> = shared
            .iter()
            .filter(|(tp, cs)| self.shared.get(*tp) != Some(cs))
            .map(|(tp, cs)| {
                let names: Vec<&str> = cs.iter().map(|c| self.consumers[*c].as_str()).collect();
                format!("{} ({})", tp_name(tp), names.join(", "))
            })
            .collect();
        if !new.is_empty() {
            self.note(
                now,
                format!(
                    "fetched by more than one consumer at once: {}",
                    new.join("; ")
                ),
            );
        }
        self.shared = shared;
    }

    fn consumer(&mut self, now: u64, c: usize, running: bool, fetching: &[TopicPartition]) {
        let name = &self.consumers[c];
        match (self.running[c], running) {
            (None, true) => self.running[c] = Some(now),
            (Some(from), false) => {
                if let Some(windows) = self.running_windows.get_mut(name) {
                    windows.push(Window {
                        from_ms: from,
                        to_ms: now,
                    });
                }
                self.running[c] = None;
            }
            _ => {}
        }
        if self.fetching[c] == fetching {
            return;
        }
        let old = std::mem::replace(&mut self.fetching[c], fetching.to_vec());
        if !old.is_empty() && now > self.since[c] {
            if let Some(segments) = self.timeline.get_mut(name) {
                segments.push(Segment {
                    from_ms: self.since[c],
                    to_ms: now,
                    partitions: names(&old),
                });
            }
        }
        self.since[c] = now;
        if running && fetching.is_empty() && !old.is_empty() {
            self.stops.push((now, c));
        }
        for tp in fetching {
            if !old.contains(tp) {
                let previous = self.last_owner.insert(tp.clone(), c);
                if previous.is_some_and(|p| p != c) {
                    self.moves.push(now);
                }
            }
        }
    }

    fn generation(&mut self, now: u64, view: &View) {
        if view.generation <= 0 {
            return;
        }
        let last = self.generations.last().map(|g| g.generation);
        if self.new_coordinator || last != Some(view.generation) {
            self.new_coordinator = false;
            self.generations.push(Generation {
                generation: view.generation,
                started_ms: self.rebalancing_since.unwrap_or(now),
                stable_ms: None,
                assignment: BTreeMap::new(),
                coordinator: self.coordinator,
            });
        }
        let Some(current) = self.generations.last_mut() else {
            return;
        };
        if current.stable_ms.is_none() && !view.rebalancing {
            current.stable_ms = Some(now);
            current.assignment = (0..self.consumers.len())
                .filter(|c| view.running[*c])
                .map(|c| (self.consumers[c].clone(), names(&view.fetching[c])))
                .collect();
        }
    }

    /// Closes the run at `end` and measures each event.
    /// `cluster`, when there is one, gets each failure's stall measured.
    pub fn finish(
        mut self,
        end: u64,
        view: &View,
        events: &[PlayedEvent],
        mut cluster: Option<ClusterReport>,
    ) -> Report {
        for c in 0..self.consumers.len() {
            let name = self.consumers[c].clone();
            if !self.fetching[c].is_empty() && end > self.since[c] {
                if let Some(segments) = self.timeline.get_mut(&name) {
                    segments.push(Segment {
                        from_ms: self.since[c],
                        to_ms: end,
                        partitions: names(&self.fetching[c]),
                    });
                }
            }
            if let (Some(from), Some(windows)) =
                (self.running[c], self.running_windows.get_mut(&name))
            {
                windows.push(Window {
                    from_ms: from,
                    to_ms: end,
                });
            }
        }
        if let Some(from) = self.rebalancing_since {
            self.rebalancing.push(Window {
                from_ms: from,
                to_ms: end,
            });
        }
        let event_reports = events.iter().map(|e| self.measure(e, end)).collect();
        for failure in cluster.iter_mut().flat_map(|c| c.failures.iter_mut()) {
            failure.stall_ms = self.settled_from(failure.at_ms).map(|t| t - failure.at_ms);
        }
        let final_assignment: BTreeMap<String, Vec<String>> = (0..self.consumers.len())
            .filter(|c| view.running[*c])
            .map(|c| (self.consumers[c].clone(), names(&view.fetching[c])))
            .collect();
        let sizes = final_assignment.values().map(Vec::len);
        let final_skew = sizes.clone().max().unwrap_or(0) - sizes.min().unwrap_or(0);
        let summary = Summary {
            generations: view.generation,
            unavailable_partition_seconds: self.unavailable(0, end),
            moves: self.moves.len(),
            rebalancing_ms: self.rebalancing.iter().map(|w| w.to_ms - w.from_ms).sum(),
            final_assignment,
            final_skew,
            settled_at_end: self.settled.last().is_some_and(|(_, s)| *s),
        };
        Report {
            description: self.description,
            protocol: self.protocol,
            assignor: self.assignor,
            duration_ms: end,
            consumers: self.consumers,
            summary,
            events: event_reports,
            generations: self.generations,
            timeline: self.timeline,
            running: self.running_windows,
            rebalancing: self.rebalancing,
            unowned: self.unowned,
            notes: self.notes,
            cluster,
        }
    }

    fn measure(&self, event: &PlayedEvent, end: u64) -> EventReport {
        let settled_at = self.settled_from(event.last);
        let until = settled_at.unwrap_or(end);
        let in_window = |t: u64| t >= event.at && t <= until;
        let mut stopped: Vec<String> = self
            .stops
            .iter()
            .filter(|(t, _)| in_window(*t))
            .map(|(_, c)| self.consumers[*c].clone())
            .filter(|name| !event.subjects.contains(name))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        stopped.sort();
        EventReport {
            at_ms: event.at,
            event: event.text.clone(),
            settled_after_ms: settled_at.map(|t| t - event.at),
            unavailable_partition_seconds: self.unavailable(event.at, until),
            moves: self.moves.iter().filter(|t| in_window(**t)).count(),
            stopped,
        }
    }

    /// The first time at or after `from` at which the group was settled.
    fn settled_from(&self, from: u64) -> Option<u64> {
        let at_from = self.settled.iter().rev().find(|(t, _)| *t <= from);
        if at_from.is_some_and(|(_, settled)| *settled) {
            return Some(from);
        }
        self.settled
            .iter()
            .find(|(t, settled)| *t > from && *settled)
            .map(|(t, _)| *t)
    }

    /// Partition-seconds unowned between `from` and `to`.
    fn unavailable(&self, from: u64, to: u64) -> f64 {
        let mut total: u64 = 0;
        for (i, level) in self.unowned.iter().enumerate() {
            let next = self.unowned.get(i + 1).map_or(u64::MAX, |l| l.from_ms);
            let (start, stop) = (level.from_ms.max(from), next.min(to));
            if stop > start {
                total += (stop - start) * level.partitions as u64;
            }
        }
        total as f64 / 1000.0
    }
}

/// A duration for people.
pub fn millis(ms: u64) -> String {
    let mut out = String::new();
    let _ = fmt_millis(ms, &mut out);
    out
}

/// `orders 0-3,7; payments 1`: partitions as ranges per topic.
pub fn ranges(partitions: &[String]) -> String {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for name in partitions {
        if let Some((topic, p)) = name.rsplit_once('-') {
            if let Ok(p) = p.parse() {
                topics.entry(topic).or_default().push(p);
            }
        }
    }
    let mut out = Vec::new();
    for (topic, mut ps) in topics {
        ps.sort_unstable();
        let mut runs: Vec<String> = Vec::new();
        let mut i = 0;
        while i < ps.len() {
            let mut j = i;
            while j + 1 < ps.len() && ps[j + 1] == ps[j] + 1 {
                j += 1;
            }
            runs.push(if i == j {
                ps[i].to_string()
            } else {
                format!("{}-{}", ps[i], ps[j])
            });
            i = j + 1;
        }
        out.push(format!("{topic} {}", runs.join(",")));
    }
    if out.is_empty() {
        "-".to_string()
    } else {
        out.join("; ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.description.is_empty() {
            writeln!(f, "{}", self.description.trim_end())?;
        }
        writeln!(
            f,
            "protocol {}, assignor {}, {} of virtual time",
            self.protocol,
            self.assignor,
            millis(self.duration_ms)
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:>9}  {:<34} {:>10} {:>12} {:>6}  stopped",
            "at", "event", "settled in", "unowned p·s", "moves"
        )?;
        for e in &self.events {
            let settled = e
                .settled_after_ms
                .map_or_else(|| "never".to_string(), millis);
            let stopped = if e.stopped.is_empty() {
                "-".to_string()
            } else {
                e.stopped.join(", ")
            };
            writeln!(
                f,
                "{:>9}  {:<34} {:>10} {:>12.1} {:>6}  {stopped}",
                millis(e.at_ms),
                e.event,
                settled,
                e.unavailable_partition_seconds,
                e.moves
            )?;
        }
        if let Some(cluster) = &self.cluster {
            writeln!(f)?;
            cluster.fmt(f)?;
        }
        writeln!(f)?;
        // In a cluster, which broker coordinated each generation.
        let on = |g: &Generation| match g.coordinator {
            Some(broker) => format!(" {broker:>6}"),
            None => String::new(),
        };
        let on_header = if self.cluster.is_some() {
            format!(" {:>6}", "broker")
        } else {
            String::new()
        };
        writeln!(
            f,
            "{:>5}{on_header} {:>9} {:>9}  assignment",
            "gen", "from", "stable"
        )?;
        for g in &self.generations {
            let stable = g.stable_ms.map_or_else(|| "-".to_string(), millis);
            let mut line = String::new();
            for (member, partitions) in &g.assignment {
                let _ = write!(line, "{member}: {}  ", ranges(partitions));
            }
            writeln!(
                f,
                "{:>5}{} {:>9} {:>9}  {}",
                g.generation,
                on(g),
                millis(g.started_ms),
                stable,
                line.trim_end()
            )?;
        }
        writeln!(f)?;
        let s = &self.summary;
        writeln!(f, "generations:  {}", s.generations)?;
        writeln!(
            f,
            "unavailable:  {:.1} partition-seconds",
            s.unavailable_partition_seconds
        )?;
        writeln!(f, "moves:        {}", s.moves)?;
        writeln!(f, "rebalancing:  {}", millis(s.rebalancing_ms))?;
        writeln!(
            f,
            "final:        {} (skew {}){}",
            s.final_assignment
                .iter()
                .map(|(m, p)| format!("{m} {}", p.len()))
                .collect::<Vec<_>>()
                .join(", "),
            s.final_skew,
            if s.settled_at_end {
                ""
            } else {
                ", not settled at the end"
            }
        )?;
        if !self.notes.is_empty() {
            writeln!(f)?;
            for note in &self.notes {
                writeln!(f, "{:>9}  {}", millis(note.at_ms), note.text)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for ClusterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replicas: Vec<String> = self.replicas.iter().map(i32::to_string).collect();
        writeln!(
            f,
            "cluster: {} brokers; the group's __consumer_offsets-{} is on brokers {} \
             (preferred leader first)",
            self.brokers,
            self.offsets_partition,
            replicas.join(", ")
        )?;
        for failure in &self.failures {
            let stall = failure.stall_ms.map_or_else(
                || "never settled again".to_string(),
                |ms| format!("settled again after {}", millis(ms)),
            );
            if !failure.coordinator {
                writeln!(
                    f,
                    "{:>9}  broker {} killed: not the coordinator; {stall}",
                    millis(failure.at_ms),
                    failure.broker
                )?;
                continue;
            }
            let next = match (failure.next_coordinator, failure.next_coordinator_after_ms) {
                (Some(broker), Some(after)) => {
                    format!("broker {broker} coordinates {} later", millis(after))
                }
                _ => "no broker coordinates the group again".to_string(),
            };
            let offsets = failure
                .offsets
                .map_or_else(String::new, |o| format!("; offsets {o}"));
            writeln!(
                f,
                "{:>9}  broker {} killed: the coordinator; {next}{offsets}; {stall}",
                millis(failure.at_ms),
                failure.broker
            )?;
        }
        Ok(())
    }
}

/// Two runs of the same events side by side.
pub fn compare(a: &Report, b: &Report) -> String {
    let label = |r: &Report| format!("{} / {}", r.protocol, r.assignor);
    let rows: Vec<(&str, f64, f64)> = vec![
        (
            "generations",
            a.summary.generations as f64,
            b.summary.generations as f64,
        ),
        (
            "unavailable partition-s",
            a.summary.unavailable_partition_seconds,
            b.summary.unavailable_partition_seconds,
        ),
        ("moves", a.summary.moves as f64, b.summary.moves as f64),
        (
            "rebalancing s",
            a.summary.rebalancing_ms as f64 / 1000.0,
            b.summary.rebalancing_ms as f64 / 1000.0,
        ),
        (
            "final skew",
            a.summary.final_skew as f64,
            b.summary.final_skew as f64,
        ),
    ];
    let mut out = String::new();
    let (la, lb) = (label(a), label(b));
    let w = la.len().max(lb.len()).max(10);
    let _ = writeln!(out, "{:<24} {la:>w$} {lb:>w$} {:>10}", "", "delta");
    for (name, x, y) in rows {
        let _ = writeln!(out, "{name:<24} {x:>w$.1} {y:>w$.1} {:>+10.1}", y - x);
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<34} {:>14} {:>14} {:>12} {:>12}",
        "event", "settled in A", "settled in B", "unowned A", "unowned B"
    );
    for (x, y) in a.events.iter().zip(&b.events) {
        let settled = |e: &EventReport| e.settled_after_ms.map_or_else(|| "never".into(), millis);
        let _ = writeln!(
            out,
            "{:<34} {:>14} {:>14} {:>12.1} {:>12.1}",
            format!("{} {}", millis(x.at_ms), x.event),
            settled(x),
            settled(y),
            x.unavailable_partition_seconds,
            y.unavailable_partition_seconds
        );
    }
    out
}
