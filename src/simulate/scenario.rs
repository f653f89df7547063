//! Scenario files: what the simulator plays.
//!
//! A scenario is YAML (see `examples/scenarios/`). Parsing goes twice over
//! the text: the first pass learns the consumer and topic names, the second
//! checks every reference to them inside serde, so that a wrong name is
//! reported, like a type error, with its line, column and field path.

use super::generate::{self, Generator};
use actorlog_actors::group::assignor::{Assignor, Topics};
use actorlog_actors::group::classic::GroupConfig;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Milliseconds of virtual time, written `500ms`, `30s`, `5m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// `1m30s`, `1.5s`, `250ms`: numbers with units, added up.
    pub fn parse(text: &str) -> Option<Millis> {
        let mut rest = text.trim();
        if rest.is_empty() {
            return None;
        }
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let number_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let unit_end = rest[number_end..]
                .find(|c: char| c.is_ascii_digit())
                .map_or(rest.len(), |i| number_end + i);
            let (number, unit) = (&rest[..number_end], &rest[number_end..unit_end]);
            let scale: u64 = match unit {
                "ms" => 1,
                "s" => 1000,
                "m" | "min" => 60_000,
                "h" => 3_600_000,
                _ => return None,
            };
            let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
            let whole: u64 = whole.parse().ok()?;
            let mut part = whole.checked_mul(scale)?;
            if !fraction.is_empty() {
                let digits = u32::try_from(fraction.len()).ok()?;
                let fraction: u64 = fraction.parse().ok()?;
                let divisor = 10u64.checked_pow(digits)?;
                let scaled = fraction.checked_mul(scale)?;
                if scaled % divisor != 0 {
                    return None;
                }
                part = part.checked_add(scaled / divisor)?;
            }
            total = total.checked_add(part)?;
            rest = &rest[unit_end..];
        }
        Some(Millis(total))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_millis(self.0, f)
    }
}

/// Times as people read them: `1m30.5s`, `250ms`.
pub fn fmt_millis(ms: u64, f: &mut impl fmt::Write) -> fmt::Result {
    let (hours, minutes) = (ms / 3_600_000, ms / 60_000 % 60);
    let seconds = ms % 60_000;
    if hours > 0 {
        write!(f, "{hours}h")?;
    }
    if minutes > 0 {
        write!(f, "{minutes}m")?;
    }
    match (seconds, ms) {
        (_, 0..1000) => write!(f, "{ms}ms"),
        (0, _) => Ok(()),
        (s, _) if s % 1000 == 0 => write!(f, "{}s", s / 1000),
        (s, _) => write!(f, "{}s", s as f64 / 1000.0),
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Millis::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "`{text}` is not a duration; write it like 500ms, 1.5s, 30s, 5m or 1h30m"
            ))
        })
    }
}

/// Which group protocol the consumers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// JoinGroup/SyncGroup with a client-side assignor; eager or
    /// cooperative as the assignor decides (KIP-429).
    Classic,
    /// KIP-848: the coordinator assigns, members heartbeat.
    Consumer,
}

impl Protocol {
    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "classic" => Some(Protocol::Classic),
            "consumer" => Some(Protocol::Consumer),
            _ => None,
        }
    }
}

/// An assignor by the name clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignorName(pub Assignor);

impl<'de> Deserialize<'de> for AssignorName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Assignor::from_name(&name).map(AssignorName).ok_or_else(|| {
            let known: Vec<&str> = Assignor::ALL.iter().map(|a| a.name()).collect();
            de::Error::custom(format!(
                "unknown assignor `{name}`; known: {}",
                known.join(", ")
            ))
        })
    }
}

/// The group's settings: protocol, assignor and the timeouts that decide
/// how fast it reacts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupSettings {
    /// The group id: in a cluster, its hash picks the partition of
    /// `__consumer_offsets` whose leader coordinates the group.
    pub id: String,
    pub protocol: Protocol,
    pub assignor: AssignorName,
    /// `session.timeout.ms`: silence after which a member is dropped.
    pub session_timeout: Millis,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Millis,
    /// `max.poll.interval.ms`, which classic clients also send as their
    /// rebalance timeout.
    pub max_poll_interval: Millis,
    /// The broker's `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Millis,
    /// `metadata.max.age.ms`: how soon the leader sees new partitions.
    pub metadata_max_age: Millis,
}

impl Default for GroupSettings {
    /// The Java client's and Kafka broker's defaults.
    fn default() -> Self {
        GroupSettings {
            id: "simulated".to_string(),
            protocol: Protocol::Classic,
            assignor: AssignorName(Assignor::Range),
            session_timeout: Millis(45_000),
            heartbeat_interval: Millis(3_000),
            max_poll_interval: Millis(300_000),
            initial_rebalance_delay: Millis(3_000),
            metadata_max_age: Millis(300_000),
        }
    }
}

/// The cluster around the group's coordinator: how many brokers, how the
/// group's partition of `__consumer_offsets` is replicated, and how soon
/// the controller notices a dead broker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Brokers, with ids 1 to `brokers`.
    pub brokers: Count,
    /// Replicas of each offsets partition; the cluster's default
    /// replication factor, the smaller of 3 and `brokers`, when left out.
    pub offsets_replication_factor: Option<Count>,
    /// `offsets_topic_num_partitions` (Kafka's
    /// `offsets.topic.num.partitions`).
    pub offsets_partitions: Count,
    /// `broker_session_timeout_ms`: how long after a broker's last
    /// heartbeat the controller fences it and elects new leaders.
    pub broker_session_timeout: Millis,
}

impl Default for ClusterSettings {
    /// One broker, and actorlog's cluster defaults (its broker session
    /// timeout is 2s where Kafka's is 9s).
    fn default() -> Self {
        ClusterSettings {
            brokers: Count(1),
            offsets_replication_factor: None,
            offsets_partitions: Count(50),
            broker_session_timeout: Millis(2_000),
        }
    }
}

impl ClusterSettings {
    /// The offsets topic's replication factor.
    pub fn replication_factor(&self) -> i32 {
        self.offsets_replication_factor
            .map_or(self.brokers.0.min(3), |rf| rf.0)
    }
}

/// A consumer (or, with `count`, several named `name1`, `name2`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub name: String,
    #[serde(default)]
    pub count: Option<Count>,
    /// Static membership (KIP-345): the instance id is the consumer's name.
    #[serde(default, rename = "static")]
    pub is_static: bool,
    /// Topics it subscribes to; all topics when left out.
    #[serde(default)]
    pub topics: Option<Vec<TopicRef>>,
    /// How long one poll's records take to process: a member notices a
    /// rebalance at the end of the poll it is in.
    #[serde(default = "default_poll_time")]
    pub poll_time: Millis,
    /// How long revoking (committing, the rebalance listener) takes before
    /// the member sends JoinGroup.
    #[serde(default = "default_rejoin_time")]
    pub rejoin_time: Millis,
}

fn default_poll_time() -> Millis {
    Millis(100)
}

fn default_rejoin_time() -> Millis {
    Millis(50)
}

/// A positive number of consumers or partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub i32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(deserializer)?;
        match i32::try_from(n) {
            Ok(n) if (1..=100_000).contains(&n) => Ok(Count(n)),
            _ => Err(de::Error::custom(format!(
                "{n} is out of range: between 1 and 100000"
            ))),
        }
    }
}

/// What the second pass checks references against.
struct Known {
    consumers: BTreeSet<String>,
    topics: Topics,
    brokers: i32,
}

thread_local! {
    static KNOWN: RefCell<Option<Known>> = const { RefCell::new(None) };
}

/// The name of a declared consumer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConsumerRef(pub String);

impl<'de> Deserialize<'de> for ConsumerRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        known_consumer(String::deserialize(deserializer)?).map(ConsumerRef)
    }
}

fn known_consumer<E: de::Error>(name: String) -> Result<String, E> {
    KNOWN.with_borrow(|known| match known {
        Some(k) if !k.consumers.contains(&name) => Err(E::custom(format!(
            "no consumer named `{name}` (declared: {})",
            k.consumers.iter().cloned().collect::<Vec<_>>().join(", ")
        ))),
        _ => Ok(name),
    })
}

/// The name of a declared topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicRef(pub String);

impl<'de> Deserialize<'de> for TopicRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        KNOWN.with_borrow(|known| match known {
            Some(k) if !k.topics.contains_key(&name) => Err(de::Error::custom(format!(
                "no topic named `{name}` under `topics`"
            ))),
            _ => Ok(TopicRef(name)),
        })
    }
}

/// The id of a broker of the cluster.
struct BrokerRef(i32);

impl<'de> Deserialize<'de> for BrokerRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = i64::deserialize(deserializer)?;
        let brokers = KNOWN.with_borrow(|k| k.as_ref().map(|k| k.brokers));
        match (i32::try_from(id), brokers) {
            (Ok(id), Some(n)) if (1..=n).contains(&id) => Ok(BrokerRef(id)),
            (Ok(id), None) => Ok(BrokerRef(id)),
            (_, Some(1)) => Err(de::Error::custom(format!(
                "no broker {id}: the cluster has one broker, 1 (set `cluster.brokers`)"
            ))),
            (_, n) => Err(de::Error::custom(format!(
                "no broker {id}: the cluster has brokers 1 to {}",
                n.unwrap_or_default()
            ))),
        }
    }
}

/// One consumer or a list of them.
struct ConsumerList(Vec<String>);

impl<'de> Deserialize<'de> for ConsumerList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ConsumerListVisitor)
    }
}

struct ConsumerListVisitor;

impl<'de> Visitor<'de> for ConsumerListVisitor {
    type Value = ConsumerList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a consumer name or a list of them")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<ConsumerList, E> {
        Ok(ConsumerList(vec![known_consumer(name.to_string())?]))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ConsumerList, A::Error> {
        let mut names = Vec::new();
        while let Some(ConsumerRef(name)) = seq.next_element()? {
            names.push(name);
        }
        Ok(ConsumerList(names))
    }
}

/// What happens at an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start consumers: they join the group.
    Join(Vec<String>),
    /// Close cleanly: a dynamic member sends LeaveGroup, a static one
    /// does not (as clients do).
    Leave(String),
    /// The process dies: no more heartbeats.
    Crash(String),
    /// Close cleanly and start again after `down`.
    Restart { consumer: String, down: Millis },
    /// Stop polling for `duration` (a long GC, a slow batch), still
    /// heartbeating from the background.
    Pause { consumer: String, duration: Millis },
    /// Change the consumer's subscription.
    Subscribe {
        consumer: String,
        topics: Vec<String>,
    },
    /// Grow a topic to `count` partitions.
    AddPartitions { topic: String, count: i32 },
    /// A broker's process dies (its consumers' connections drop at once).
    KillBroker(i32),
    /// A killed broker starts again.
    RestartBroker(i32),
}

impl Action {
    /// The consumers the event is about.
    pub fn subjects(&self) -> Vec<String> {
        match self {
            Action::Join(names) => names.clone(),
            Action::Leave(c) | Action::Crash(c) => vec![c.clone()],
            Action::Restart { consumer, .. }
            | Action::Pause { consumer, .. }
            | Action::Subscribe { consumer, .. } => vec![consumer.clone()],
            Action::AddPartitions { .. } | Action::KillBroker(_) | Action::RestartBroker(_) => {
                Vec::new()
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Join(names) => write!(f, "join {}", names.join(", ")),
            Action::Leave(c) => write!(f, "leave {c}"),
            Action::Crash(c) => write!(f, "crash {c}"),
            Action::Restart { consumer, down } => write!(f, "restart {consumer} (down {down})"),
            Action::Pause { consumer, duration } => write!(f, "pause {consumer} for {duration}"),
            Action::Subscribe { consumer, topics } => {
                write!(f, "subscribe {consumer} to {}", topics.join(", "))
            }
            Action::AddPartitions { topic, count } => {
                write!(f, "add partitions: {topic} to {count}")
            }
            Action::KillBroker(id) => write!(f, "kill broker {id}"),
            Action::RestartBroker(id) => write!(f, "restart broker {id}"),
        }
    }
}

/// An action at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Millis,
    pub action: Action,
}

const ACTIONS: &str =
    "join, leave, crash, restart, pause, subscribe, add_partitions, kill_broker, restart_broker";

/// `{at: 30s, crash: c2}`: `at`, one action key, and that action's options.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

#[derive(Default)]
struct EventFields {
    at: Option<Millis>,
    action: Option<(String, ActionTarget)>,
    down: Option<Millis>,
    duration: Option<Millis>,
    topics: Option<Vec<TopicRef>>,
    count: Option<Count>,
}

enum ActionTarget {
    Consumers(Vec<String>),
    Topic(String),
    Broker(i32),
}

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an event such as {{at: 30s, crash: c1}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut fields = EventFields::default();
        while let Some(key) = map.next_key::<String>()? {
            let field = |e: A::Error| de::Error::custom(format!("field `{key}`: {e}"));
            let target = match key.as_str() {
                "at" => {
                    fields.at = Some(map.next_value().map_err(field)?);
                    continue;
                }
                "down" => {
                    fields.down = Some(map.next_value().map_err(field)?);
                    continue;
                }
                "for" => {
                    fields.duration = Some(map.next_value().map_err(field)?);
                    continue;
                }
                "topics" => {
                    fields.topics = Some(map.next_value().map_err(field)?);
                    continue;
                }
                "count" => {
                    fields.count = Some(map.next_value().map_err(field)?);
                    continue;
                }
                "join" => {
                    ActionTarget::Consumers(map.next_value::<ConsumerList>().map_err(field)?.0)
                }
                "leave" | "crash" | "restart" | "pause" | "subscribe" => {
                    ActionTarget::Consumers(vec![map.next_value::<ConsumerRef>().map_err(field)?.0])
                }
                "add_partitions" => {
                    ActionTarget::Topic(map.next_value::<TopicRef>().map_err(field)?.0)
                }
                "kill_broker" | "restart_broker" => {
                    ActionTarget::Broker(map.next_value::<BrokerRef>().map_err(field)?.0)
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown event field `{other}`; an event has `at` and one of {ACTIONS}"
                    )))
                }
            };
            if let Some((first, _)) = &fields.action {
                return Err(de::Error::custom(format!(
                    "one action per event: `{first}` and `{key}`"
                )));
            }
            fields.action = Some((key, target));
        }
        fields.build()
    }
}

impl EventFields {
    fn build<E: de::Error>(self) -> Result<Event, E> {
        let at = self.at.ok_or_else(|| E::missing_field("at"))?;
        let Some((kind, target)) = self.action else {
            return Err(E::custom(format!("an event needs one of {ACTIONS}")));
        };
        let allowed: &[&str] = match kind.as_str() {
            "restart" => &["down"],
            "pause" => &["for"],
            "subscribe" => &["topics"],
            "add_partitions" => &["count"],
            _ => &[],
        };
        let given = [
            ("down", self.down.is_some()),
            ("for", self.duration.is_some()),
            ("topics", self.topics.is_some()),
            ("count", self.count.is_some()),
        ];
        if let Some((extra, _)) = given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            return Err(E::custom(format!("`{extra}` does not go with `{kind}`")));
        }
        let one = |target: ActionTarget| match target {
            ActionTarget::Consumers(mut names) => names.pop().unwrap_or_default(),
            ActionTarget::Topic(topic) => topic,
            ActionTarget::Broker(id) => id.to_string(),
        };
        if let ActionTarget::Broker(id) = target {
            return Ok(Event {
                at,
                action: if kind == "kill_broker" {
                    Action::KillBroker(id)
                } else {
                    Action::RestartBroker(id)
                },
            });
        }
        let action = match kind.as_str() {
            "join" => match target {
                ActionTarget::Consumers(names) if !names.is_empty() => Action::Join(names),
                _ => return Err(E::custom("`join` needs at least one consumer")),
            },
            "leave" => Action::Leave(one(target)),
            "crash" => Action::Crash(one(target)),
            "restart" => Action::Restart {
                consumer: one(target),
                down: self.down.unwrap_or(Millis(5_000)),
            },
            "pause" => Action::Pause {
                consumer: one(target),
                duration: self.duration.ok_or_else(|| E::missing_field("for"))?,
            },
            "subscribe" => Action::Subscribe {
                consumer: one(target),
                topics: self
                    .topics
                    .ok_or_else(|| E::missing_field("topics"))?
                    .into_iter()
                    .map(|t| t.0)
                    .collect(),
            },
            _ => {
                let topic = one(target);
                let count = self.count.ok_or_else(|| E::missing_field("count"))?.0;
                let now =
                    KNOWN.with_borrow(|k| k.as_ref().and_then(|k| k.topics.get(&topic).copied()));
                if now.is_some_and(|n| count <= n) {
                    return Err(E::custom(format!(
                        "`{topic}` already has {} partitions; add_partitions must grow it",
                        now.unwrap_or_default()
                    )));
                }
                Action::AddPartitions { topic, count }
            }
        };
        Ok(Event { at, action })
    }
}

/// A scenario file as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    description: String,
    topics: BTreeMap<String, Count>,
    #[serde(default)]
    group: GroupSettings,
    #[serde(default)]
    cluster: Option<ClusterSettings>,
    /// How much virtual time to play.
    duration: Millis,
    consumers: Vec<ConsumerSpec>,
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default)]
    generators: Vec<Generator>,
}

/// A consumer with its settings resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub name: String,
    pub instance_id: Option<String>,
    pub topics: Vec<String>,
    pub poll_time: Millis,
    pub rejoin_time: Millis,
}

/// A scenario ready to play: consumers expanded, generators turned into
/// events, events in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub description: String,
    pub topics: Topics,
    pub group: GroupSettings,
    /// The cluster, when the file describes one or kills brokers; without
    /// it the coordinator never fails.
    pub cluster: Option<ClusterSettings>,
    pub duration: Millis,
    pub consumers: Vec<Consumer>,
    pub events: Vec<Event>,
}

/// A scenario that cannot be played, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Parses and checks a scenario; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Scenario, ScenarioError> {
        let fail = |e: serde_yaml_ng::Error| ScenarioError(format!("{source}: {e}"));
        let names: File = serde_yaml_ng::from_str(text).map_err(fail)?;
        let known = Known {
            consumers: expand(&names.consumers).map(|(name, _)| name).collect(),
            topics: names.topics.iter().map(|(t, c)| (t.clone(), c.0)).collect(),
            brokers: names.cluster.as_ref().map_or(1, |c| c.brokers.0),
        };
        KNOWN.set(Some(known));
        let checked = serde_yaml_ng::from_str::<File>(text);
        KNOWN.set(None);
        let file = checked.map_err(fail)?;
        Scenario::resolve(file).map_err(|e| ScenarioError(format!("{source}: {e}")))
    }

    /// Checks the group settings, as after changing them.
    pub fn check(&self) -> Result<(), String> {
        check_group(&self.group)
    }

    fn resolve(file: File) -> Result<Scenario, String> {
        let topics: Topics = file.topics.iter().map(|(t, c)| (t.clone(), c.0)).collect();
        let mut consumers: Vec<Consumer> = Vec::new();
        for (name, spec) in expand(&file.consumers) {
            if consumers.iter().any(|c| c.name == name) {
                return Err(format!("consumers: `{name}` is declared twice"));
            }
            consumers.push(Consumer {
                instance_id: spec.is_static.then(|| name.clone()),
                topics: match &spec.topics {
                    Some(list) => list.iter().map(|t| t.0.clone()).collect(),
                    None => topics.keys().cloned().collect(),
                },
                name,
                poll_time: spec.poll_time,
                rejoin_time: spec.rejoin_time,
            });
        }
        check_group(&file.group)?;
        let names: Vec<String> = consumers.iter().map(|c| c.name.clone()).collect();
        let mut events = file.events;
        for (i, generator) in file.generators.iter().enumerate() {
            let generated =
                generate::expand(generator, &names).map_err(|e| format!("generators[{i}]: {e}"))?;
            events.extend(generated);
        }
        // Stable: events at the same time keep their order in the file.
        events.sort_by_key(|e| e.at);
        if let Some(late) = events.iter().find(|e| e.at > file.duration) {
            return Err(format!(
                "events: `{}` at {} is after the end of the scenario (duration {})",
                late.action, late.at, file.duration
            ));
        }
        check_partition_growth(&events, &topics)?;
        let broker_events = events
            .iter()
            .any(|e| matches!(e.action, Action::KillBroker(_) | Action::RestartBroker(_)));
        let cluster = file
            .cluster
            .or_else(|| broker_events.then(ClusterSettings::default));
        if let Some(cluster) = &cluster {
            check_cluster(cluster)?;
            check_brokers(&events)?;
        }
        Ok(Scenario {
            description: file.description,
            topics,
            group: file.group,
            cluster,
            duration: file.duration,
            consumers,
            events,
        })
    }
}

/// The consumers of the specs, by name: `count` makes `name1`, `name2`...
fn expand(specs: &[ConsumerSpec]) -> impl Iterator<Item = (String, &ConsumerSpec)> {
    specs.iter().flat_map(|spec| {
        let names: Vec<String> = match spec.count {
            None => vec![spec.name.clone()],
            Some(Count(n)) => (1..=n).map(|i| format!("{}{i}", spec.name)).collect(),
        };
        names.into_iter().map(move |name| (name, spec))
    })
}

fn check_group(group: &GroupSettings) -> Result<(), String> {
    let assignor = group.assignor.0;
    match (group.protocol, assignor) {
        (Protocol::Classic, Assignor::Uniform) => {
            return Err(
                "group.assignor: `uniform` is a KIP-848 server-side assignor; classic \
                 groups use range, roundrobin, sticky or cooperative-sticky"
                    .into(),
            )
        }
        (Protocol::Consumer, Assignor::Uniform | Assignor::Range) | (Protocol::Classic, _) => {}
        (Protocol::Consumer, other) => {
            return Err(format!(
                "group.assignor: the consumer protocol (KIP-848) assigns on the broker with \
                 uniform or range, not {other}"
            ))
        }
    }
    let session = group.session_timeout.0;
    let broker = GroupConfig::default();
    let (min, max) = (broker.min_session_timeout_ms, broker.max_session_timeout_ms);
    let accepted = u64::try_from(min).unwrap_or(0)..=u64::try_from(max).unwrap_or(u64::MAX);
    if group.protocol == Protocol::Classic && !accepted.contains(&session) {
        return Err(format!(
            "group.session_timeout: the broker accepts {} to {} \
             (group.min.session.timeout.ms, group.max.session.timeout.ms)",
            Millis(*accepted.start()),
            Millis(*accepted.end())
        ));
    }
    if group.heartbeat_interval >= group.session_timeout {
        return Err("group.heartbeat_interval: must be below session_timeout".into());
    }
    if group.heartbeat_interval.0 == 0 || group.metadata_max_age.0 == 0 {
        return Err("group: heartbeat_interval and metadata_max_age must be above 0".into());
    }
    Ok(())
}

fn check_cluster(cluster: &ClusterSettings) -> Result<(), String> {
    let (rf, brokers) = (cluster.replication_factor(), cluster.brokers.0);
    if rf > brokers {
        return Err(format!(
            "cluster.offsets_replication_factor: {rf} replicas need {rf} brokers, \
             but the cluster has {brokers}"
        ));
    }
    if cluster.broker_session_timeout.0 == 0 {
        return Err("cluster.broker_session_timeout: must be above 0".into());
    }
    Ok(())
}

/// Only a running broker is killed and only a killed one restarts, in time
/// order.
fn check_brokers(events: &[Event]) -> Result<(), String> {
    let mut killed: BTreeMap<i32, Millis> = BTreeMap::new();
    for event in events {
        match event.action {
            Action::KillBroker(id) => {
                if let Some(when) = killed.insert(id, event.at) {
                    return Err(format!(
                        "events: kill_broker {id} at {}: broker {id} is already down \
                         (killed at {when})",
                        event.at
                    ));
                }
            }
            Action::RestartBroker(id) => {
                let Some(_) = killed.remove(&id) else {
                    return Err(format!(
                        "events: restart_broker {id} at {}: broker {id} is running; \
                         only a killed broker restarts",
                        event.at
                    ));
                };
            }
            _ => {}
        }
    }
    Ok(())
}

/// Partition counts only grow, in time order.
fn check_partition_growth(events: &[Event], topics: &Topics) -> Result<(), String> {
    let mut counts = topics.clone();
    for event in events {
        if let Action::AddPartitions { topic, count } = &event.action {
            let now = counts.entry(topic.clone()).or_default();
            if *count <= *now {
                return Err(format!(
                    "events: add_partitions at {} sets `{topic}` to {count} partitions, \
                     but it has {now} by then",
                    event.at
                ));
            }
            *now = *count;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "topics: {t: 4}\nduration: 1m\nconsumers: [{name: a}]\n";

    fn refused(yaml: &str, expected: &[&str]) {
        let error = Scenario::parse(yaml, "bad.yaml").expect_err("the scenario is refused");
        for part in expected {
            assert!(error.0.contains(part), "`{error}` does not say `{part}`");
        }
    }

    #[test]
    fn broker_events_parse_and_bring_a_cluster() {
        let yaml = format!(
            "{HEAD}cluster: {{brokers: 3}}\nevents:\n  - {{at: 5s, kill_broker: 2}}\n  \
             - {{at: 10s, restart_broker: 2}}\n"
        );
        let scenario = Scenario::parse(&yaml, "ok.yaml").expect("parses");
        let cluster = scenario.cluster.expect("a cluster");
        assert_eq!(cluster.brokers, Count(3));
        assert_eq!(cluster.replication_factor(), 3);
        assert_eq!(cluster.broker_session_timeout, Millis(2_000));
        let actions: Vec<&Action> = scenario.events.iter().map(|e| &e.action).collect();
        assert_eq!(actions, [&Action::KillBroker(2), &Action::RestartBroker(2)]);
        assert_eq!(Action::KillBroker(2).to_string(), "kill broker 2");

        // A kill without a cluster section: one broker, one replica.
        let yaml = format!("{HEAD}events: [{{at: 5s, kill_broker: 1}}]\n");
        let cluster = Scenario::parse(&yaml, "ok.yaml").unwrap().cluster.unwrap();
        assert_eq!(
            (cluster.brokers, cluster.replication_factor()),
            (Count(1), 1)
        );
        // Neither a section nor broker events: no cluster at all.
        let plain = Scenario::parse(HEAD, "ok.yaml").unwrap();
        assert_eq!(plain.cluster, None);
    }

    #[test]
    fn broker_event_mistakes_are_refused_with_their_place() {
        refused(
            &format!("{HEAD}cluster: {{brokers: 3}}\nevents:\n  - {{at: 5s, kill_broker: 4}}\n"),
            &[
                "events[0]",
                "field `kill_broker`",
                "no broker 4: the cluster has brokers 1 to 3",
                "line 6",
            ],
        );
        refused(
            &format!("{HEAD}events:\n  - {{at: 5s, restart_broker: 2}}\n"),
            &["no broker 2: the cluster has one broker, 1 (set `cluster.brokers`)"],
        );
        refused(
            &format!(
                "{HEAD}cluster: {{brokers: 3}}\nevents:\n  - {{at: 5s, kill_broker: 2}}\n  \
                 - {{at: 9s, kill_broker: 2}}\n"
            ),
            &["kill_broker 2 at 9s: broker 2 is already down (killed at 5s)"],
        );
        refused(
            &format!("{HEAD}cluster: {{brokers: 3}}\nevents:\n  - {{at: 5s, restart_broker: 3}}\n"),
            &["restart_broker 3 at 5s: broker 3 is running"],
        );
        refused(
            &format!("{HEAD}events:\n  - {{at: 5s, kill_broker: 1, down: 5s}}\n"),
            &["`down` does not go with `kill_broker`", "line 5"],
        );
        refused(
            &format!("{HEAD}cluster: {{brokers: 3, offsets_replication_factor: 4}}\n"),
            &["cluster.offsets_replication_factor: 4 replicas need 4 brokers"],
        );
        refused(
            &format!("{HEAD}cluster: {{brokers: 2, broker_session_timeout: 0s}}\n"),
            &["cluster.broker_session_timeout: must be above 0"],
        );
        refused(
            &format!("{HEAD}cluster: {{brokerz: 2}}\n"),
            &["unknown field `brokerz`", "line 4"],
        );
        refused(
            &format!("{HEAD}cluster: {{brokers: 0}}\n"),
            &["0 is out of range", "line 4"],
        );
    }
}
