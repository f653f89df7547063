//! The virtual clock: plays a scenario's events and the protocol's timers
//! in time order, jumping from one instant to the next.

use super::classic::Classic;
use super::kip848::Kip848;
use super::protocol::Protocol as GroupProtocol;
use super::report::{Observer, PlayedEvent, Report};
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
    observer.observe(0, &protocol.view(), &BTreeSet::new(), &BTreeSet::new());
    // Bumped when topics or subscriptions change.
    let mut version = 0u64;
    let mut wanted = Wanted::default();
    let mut next = 0;
    let mut instants = 0;
    loop {
        let event_due = steps.get(next).map(|(at, _)| *at);
        let Some(now) = [event_due, protocol.next_due()].into_iter().flatten().min() else {
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
            }
            next += 1;
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
    let report = observer.finish(end, &protocol.view(), &played);
    Ok(report)
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
