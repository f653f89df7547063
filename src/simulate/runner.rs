//! The virtual clock: plays a scenario's events and the protocol's timers
//! in time order, jumping from one instant to the next.

use super::classic::Classic;
use super::cluster::Cluster;
use super::kip848::Kip848;
use super::protocol::Protocol as GroupProtocol;
use super::report::{BrokerFailure, ClusterReport, Observer, Offsets, PlayedEvent, Report, Window};
use super::scenario::{Action, Protocol, Scenario};
use actorlog_actors::group::assignor::{TopicPartition, Topics};
use std::collections::{BTreeMap, BTreeSet};

/// Instants a run may have before it is stopped as runaway (a group that
/// heartbeats every 10 ms for a day has under ten million).
const MAX_INSTANTS: usize = 20_000_000;

/// One thing the runner does to a consumer or topic.
#[derive(Debug, Clone)]
enum Step {
    Start(usize),
    /// `returns`: a restart, whose consumer is still expected to read.
    Leave {
        consumer: usize,
        returns: bool,
    },
    Crash(usize),
    Pause {
        consumer: usize,
        until: u64,
    },
    Subscribe(usize, Vec<String>),
    Grow(String, i32),
    KillBroker(i32),
    RestartBroker(i32),
}

/// Plays `scenario` to its end.
pub fn run(scenario: &Scenario) -> Result<Report, String> {
    let (group, topics, consumers) = (&scenario.group, &scenario.topics, &scenario.consumers);
    let mut protocol: Box<dyn GroupProtocol> = match scenario.group.protocol {
        Protocol::Classic => Box::new(Classic::new(group, topics, consumers)),
        Protocol::Consumer => Box::new(Kip848::new(group, topics, consumers)),
    };
    let index: BTreeMap<&str, usize> = scenario
        .consumers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let consumer = |name: &str| {
        index
            .get(name)
            .copied()
            .ok_or_else(|| format!("no consumer named `{name}`"))
    };
    let mut steps: Vec<(u64, Step)> = Vec::new();
    let mut played = Vec::new();
    for event in &scenario.events {
        let at = event.at.0;
        let mut last = at;
        match &event.action {
            Action::Join(names) => {
                for name in names {
                    steps.push((at, Step::Start(consumer(name)?)));
                }
            }
            Action::Leave(name) => steps.push((
                at,
                Step::Leave {
                    consumer: consumer(name)?,
                    returns: false,
                },
            )),
            Action::Crash(name) => steps.push((at, Step::Crash(consumer(name)?))),
            Action::Restart {
                consumer: name,
                down,
            } => {
                let c = consumer(name)?;
                last = at + down.0;
                steps.push((
                    at,
                    Step::Leave {
                        consumer: c,
                        returns: true,
                    },
                ));
                steps.push((last, Step::Start(c)));
            }
            Action::Pause {
                consumer: name,
                duration,
            } => {
                last = at + duration.0;
                steps.push((
                    at,
                    Step::Pause {
                        consumer: consumer(name)?,
                        until: last,
                    },
                ));
            }
            Action::Subscribe {
                consumer: name,
                topics,
            } => steps.push((at, Step::Subscribe(consumer(name)?, topics.clone()))),
            Action::AddPartitions { topic, count } => {
                steps.push((at, Step::Grow(topic.clone(), *count)))
            }
            Action::KillBroker(id) => steps.push((at, Step::KillBroker(*id))),
            Action::RestartBroker(id) => steps.push((at, Step::RestartBroker(*id))),
        }
        played.push(PlayedEvent {
            at,
            last,
            text: event.action.to_string(),
            subjects: event.action.subjects(),
        });
    }
    // Stable: what happens at the same instant happens in file order.
    steps.sort_by_key(|(at, _)| *at);

    let end = scenario.duration.0;
    let mut topics = scenario.topics.clone();
    let mut subscriptions: Vec<Vec<String>> = scenario
        .consumers
        .iter()
        .map(|c| c.topics.clone())
        .collect();
    let mut expected = vec![false; scenario.consumers.len()];
    let mut observer = Observer::new(scenario);
    let mut cluster = match &scenario.cluster {
        Some(settings) => Some(Failover::new(Cluster::new(settings, &group.id)?)),
        None => None,
    };
    observer.coordinator(cluster.as_ref().and_then(|c| c.coordinator));
    observer.observe(0, &protocol.view(), &BTreeSet::new(), &BTreeSet::new());
    // Bumped when topics or subscriptions change.
    let mut version = 0u64;
    let mut wanted = Wanted::default();
    let mut next = 0;
    let mut instants = 0;
    loop {
        let event_due = steps.get(next).map(|(at, _)| *at);
        let fence_due = cluster.as_ref().and_then(|c| c.cluster.next_due());
        let Some(now) = [event_due, protocol.next_due(), fence_due]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        if now > end {
            break;
        }
        instants += 1;
        if instants > MAX_INSTANTS {
            return Err(format!(
                "more than {MAX_INSTANTS} instants by {now} ms; the run does not progress"
            ));
        }
        let mut changed = false;
        if let Some(cluster) = &mut cluster {
            cluster.cluster.advance(now)?;
        }
        while let Some((_, step)) = steps.get(next).filter(|(at, _)| *at == now) {
            changed = true;
            match step.clone() {
                Step::Start(c) => {
                    expected[c] = true;
                    protocol.start(c, now);
                }
                Step::Leave { consumer, returns } => {
                    expected[consumer] = returns;
                    protocol.leave(consumer, now);
                }
                Step::Crash(c) => protocol.crash(c, now),
                Step::Pause { consumer, until } => protocol.pause(consumer, until, now),
                Step::Subscribe(c, list) => {
                    subscriptions[c] = list.clone();
                    version += 1;
                    protocol.subscribe(c, list, now);
                }
                Step::Grow(topic, count) => {
                    topics.insert(topic, count);
                    version += 1;
                    protocol.topics_changed(&topics, now);
                }
                Step::KillBroker(id) => in_cluster(&mut cluster, id)?.kill(id, now),
                Step::RestartBroker(id) => in_cluster(&mut cluster, id)?.cluster.restart(id)?,
            }
            next += 1;
        }
        if let Some(cluster) = &mut cluster {
            if cluster.follow(protocol.as_mut(), now) {
                observer.coordinator(cluster.coordinator);
                changed = true;
            }
        }
        changed |= protocol.advance(now)?;
        for text in protocol.take_notes() {
            observer.note(now, text);
        }
        if changed {
            let view = protocol.view();
            let inputs = (version, expected.clone(), view.running.clone());
            if wanted.inputs != inputs {
                wanted = Wanted {
                    expected: expected_partitions(&topics, &subscriptions, &expected),
                    running: expected_partitions(&topics, &subscriptions, &view.running),
                    inputs,
                };
            }
            observer.observe(now, &view, &wanted.expected, &wanted.running);
        }
    }
    let cluster = cluster.map(|c| c.report(end));
    let report = observer.finish(end, &protocol.view(), &played, cluster);
    Ok(report)
}

/// The cluster a broker event is about: a parsed scenario with broker
/// events always has one, one put together in code may not.
fn in_cluster(cluster: &mut Option<Failover>, broker: i32) -> Result<&mut Failover, String> {
    cluster
        .as_mut()
        .ok_or_else(|| format!("broker {broker}: the scenario has no cluster"))
}

/// The cluster as the group sees it: which broker coordinates it, and the
/// broker failures with what they did.
struct Failover {
    cluster: Cluster,
    /// The broker the group's clients can reach as coordinator.
    coordinator: Option<i32>,
    replicas: Vec<i32>,
    failures: Vec<BrokerFailure>,
    /// The failure that took the coordinator, until another one answers.
    open: Option<usize>,
    down_since: Option<u64>,
    unavailable: Vec<Window>,
}

impl Failover {
    fn new(cluster: Cluster) -> Failover {
        Failover {
            coordinator: cluster.coordinator(),
            replicas: cluster.replicas(),
            cluster,
            failures: Vec::new(),
            open: None,
            down_since: None,
            unavailable: Vec::new(),
        }
    }

    fn kill(&mut self, broker: i32, now: u64) {
        let coordinator = self.coordinator == Some(broker);
        if coordinator {
            self.open = Some(self.failures.len());
        }
        self.failures.push(BrokerFailure {
            at_ms: now,
            broker,
            coordinator,
            next_coordinator: None,
            next_coordinator_after_ms: None,
            stall_ms: None,
            offsets: coordinator.then_some(Offsets::Unavailable),
        });
        self.cluster.kill(broker, now);
    }

    /// Tells the group what changed of its coordinator at `now`; true when
    /// something did.
    fn follow(&mut self, protocol: &mut dyn GroupProtocol, now: u64) -> bool {
        let now_coordinating = self.cluster.coordinator();
        if now_coordinating == self.coordinator {
            return false;
        }
        if self.coordinator.is_some() {
            protocol.coordinator_lost(now);
            self.down_since = Some(now);
        }
        if let Some(broker) = now_coordinating {
            protocol.coordinator_found(now);
            if let Some(from) = self.down_since.take() {
                self.unavailable.push(Window {
                    from_ms: from,
                    to_ms: now,
                });
            }
            if let Some(failure) = self.open.take().and_then(|i| self.failures.get_mut(i)) {
                failure.next_coordinator = Some(broker);
                failure.next_coordinator_after_ms = Some(now - failure.at_ms);
                // Elected from the ISR, so in sync when the coordinator
                // died: every commit acknowledged before the kill is there.
                failure.offsets = Some(Offsets::Held {
                    broker,
                    restarted: broker == failure.broker,
                });
            }
        }
        self.coordinator = now_coordinating;
        true
    }

    fn report(mut self, end: u64) -> ClusterReport {
        if let Some(from) = self.down_since {
            self.unavailable.push(Window {
                from_ms: from,
                to_ms: end,
            });
        }
        ClusterReport {
            brokers: self.cluster.brokers(),
            offsets_partition: self.cluster.partition(),
            replicas: self.replicas,
            failures: self.failures,
            coordinator_unavailable: self.unavailable,
        }
    }
}

/// The partitions someone should fetch, kept while their inputs stay.
#[derive(Default)]
struct Wanted {
    /// The topics-and-subscriptions version, who is expected, who runs.
    inputs: (u64, Vec<bool>, Vec<bool>),
    /// Of the consumers expected to run (crashed ones included).
    expected: BTreeSet<TopicPartition>,
    /// Of the running consumers.
    running: BTreeSet<TopicPartition>,
}

/// The partitions of the topics that the `chosen` consumers subscribe to.
fn expected_partitions(
    topics: &Topics,
    subscriptions: &[Vec<String>],
    chosen: &[bool],
) -> BTreeSet<TopicPartition> {
    subscriptions
        .iter()
        .zip(chosen)
        .filter(|(_, e)| **e)
        .flat_map(|(s, _)| s.iter())
        .filter_map(|t| topics.get(t).map(|n| (t, *n)))
        .flat_map(|(t, n)| (0..n).map(move |p| (t.clone(), p)))
        .collect()
}
