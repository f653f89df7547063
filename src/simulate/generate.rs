//! Generators: the common scenarios as a few lines instead of many events.

use super::scenario::{Action, ConsumerRef, Count, Event, Millis};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Written as a map with one key: `{rolling_restart: {at: 1m, gap: 30s}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generator {
    /// Restarts consumers one after the other.
    RollingRestart(RollingRestart),
    /// Starts the first `from` declared consumers at 0s, then from `at`
    /// starts (scale out) or stops (scale in, last first) one per `gap`
    /// until `to` run.
    Scale(Scale),
    /// Crashes `count` consumers at random times in `between`, reproducibly
    /// for a `seed`.
    RandomCrashes(RandomCrashes),
}

const GENERATORS: &str = "rolling_restart, scale, random_crashes";

impl<'de> Deserialize<'de> for Generator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(GeneratorVisitor)
    }
}

struct GeneratorVisitor;

impl<'de> Visitor<'de> for GeneratorVisitor {
    type Value = Generator;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a generator: one of {GENERATORS}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Generator, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!(
                "a generator needs one of {GENERATORS}"
            )));
        };
        let generator = match key.as_str() {
            "rolling_restart" => Generator::RollingRestart(map.next_value()?),
            "scale" => Generator::Scale(map.next_value()?),
            "random_crashes" => Generator::RandomCrashes(map.next_value()?),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown generator `{other}`; known: {GENERATORS}"
                )))
            }
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "one generator per entry: `{key}` and `{extra}`"
            )));
        }
        Ok(generator)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollingRestart {
    pub at: Millis,
    /// From one restart to the next.
    pub gap: Millis,
    /// How long each consumer is down.
    #[serde(default = "default_down")]
    pub down: Millis,
    /// Which consumers, in order; all declared ones when left out.
    #[serde(default)]
    pub consumers: Option<Vec<ConsumerRef>>,
}

fn default_down() -> Millis {
    Millis(5_000)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub from: Count,
    pub to: Count,
    pub at: Millis,
    pub gap: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomCrashes {
    pub seed: u64,
    pub count: Count,
    /// `[from, to]`: the crash times are drawn from this window.
    pub between: (Millis, Millis),
    /// Each crashed consumer starts again this much later.
    #[serde(default)]
    pub restart_after: Option<Millis>,
    /// Which consumers may crash; all declared ones when left out.
    #[serde(default)]
    pub consumers: Option<Vec<ConsumerRef>>,
}

/// The events of a generator; `declared` are the consumer names in order.
pub fn expand(generator: &Generator, declared: &[String]) -> Result<Vec<Event>, String> {
    let chosen = |list: &Option<Vec<ConsumerRef>>| -> Vec<String> {
        match list {
            Some(list) => list.iter().map(|c| c.0.clone()).collect(),
            None => declared.to_vec(),
        }
    };
    match generator {
        Generator::RollingRestart(r) => Ok(chosen(&r.consumers)
            .into_iter()
            .enumerate()
            .map(|(i, consumer)| Event {
                at: Millis(r.at.0 + i as u64 * r.gap.0),
                action: Action::Restart {
                    consumer,
                    down: r.down,
                },
            })
            .collect()),
        Generator::Scale(s) => scale(s, declared),
        Generator::RandomCrashes(r) => random_crashes(r, &chosen(&r.consumers)),
    }
}

fn scale(s: &Scale, declared: &[String]) -> Result<Vec<Event>, String> {
    let (from, to) = (s.from.0 as usize, s.to.0 as usize);
    if from.max(to) > declared.len() {
        return Err(format!(
            "scale to {} consumers, but {} are declared",
            from.max(to),
            declared.len()
        ));
    }
    let mut events = vec![Event {
        at: Millis(0),
        action: Action::Join(declared[..from].to_vec()),
    }];
    let changed: Vec<Action> = if to > from {
        declared[from..to]
            .iter()
            .map(|c| Action::Join(vec![c.clone()]))
            .collect()
    } else {
        declared[to..from]
            .iter()
            .rev()
            .map(|c| Action::Leave(c.clone()))
            .collect()
    };
    events.extend(changed.into_iter().enumerate().map(|(i, action)| Event {
        at: Millis(s.at.0 + i as u64 * s.gap.0),
        action,
    }));
    Ok(events)
}

fn random_crashes(r: &RandomCrashes, candidates: &[String]) -> Result<Vec<Event>, String> {
    let (from, to) = (r.between.0 .0, r.between.1 .0);
    if to < from {
        return Err("between: the window ends before it starts".into());
    }
    if candidates.is_empty() {
        return Err("consumers: no consumer to crash".into());
    }
    let mut random = SplitMix64(r.seed);
    let mut events = Vec::new();
    for _ in 0..r.count.0 {
        let at = from + random.below(to - from + 1);
        let consumer = candidates[random.below(candidates.len() as u64) as usize].clone();
        events.push(Event {
            at: Millis(at),
            action: Action::Crash(consumer.clone()),
        });
        if let Some(after) = r.restart_after {
            events.push(Event {
                at: Millis(at + after.0),
                action: Action::Join(vec![consumer]),
            });
        }
    }
    Ok(events)
}

/// SplitMix64: a small generator whose sequence for a seed never changes,
/// so a seeded scenario gives the same crashes in every version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
