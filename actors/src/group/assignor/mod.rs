//! Partition assignors: who in a group gets which partition.
//!
//! Plain functions over plain data, shared by everything that assigns: the
//! KIP-848 coordinator (server-side `uniform` and `range`), the embedded
//! consumer when it leads a classic group, and the rebalance simulator,
//! which plays the leader of a classic group with the assignor the client
//! would run. Every strategy assigns each subscribed, existing partition to
//! exactly one subscribed member and is deterministic: members and
//! partitions are visited in sorted order.

mod range;
mod round_robin;
mod sticky;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A topic name and partition index.
pub type TopicPartition = (String, i32);

/// Member id → the partitions it gets, sorted. Every member is present,
/// idle ones with an empty list.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Topic name → partition count: what exists.
pub type Topics = BTreeMap<String, i32>;

/// A group member as an assignor sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriber {
    pub member_id: String,
    /// `group.instance.id` of a static member: the range assignor orders
    /// static members by it, so a restarted member keeps its place.
    pub instance_id: Option<String>,
    pub topics: BTreeSet<String>,
    /// What the member holds now; the sticky strategies keep as much of it
    /// as balance allows.
    pub owned: Vec<TopicPartition>,
}

/// The assignment strategies, by the names clients and KIP-848 use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignor {
    /// `range`: per topic, contiguous runs of partitions.
    Range,
    /// `roundrobin`: all partitions dealt out in turn.
    RoundRobin,
    /// `sticky`: balanced, keeping owned partitions (eager protocol).
    Sticky,
    /// `cooperative-sticky`: as sticky; the classic cooperative protocol
    /// then withholds partitions until their old owner revoked them.
    CooperativeSticky,
    /// `uniform`: KIP-848's server-side default, balanced and sticky.
    Uniform,
}

impl Assignor {
    pub const ALL: [Assignor; 5] = [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::Sticky,
        Assignor::CooperativeSticky,
        Assignor::Uniform,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky => "sticky",
            Assignor::CooperativeSticky => "cooperative-sticky",
            Assignor::Uniform => "uniform",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        Assignor::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether the classic protocol runs this strategy cooperatively
    /// (incremental rebalances, KIP-429).
    pub fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky | Assignor::Uniform)
    }

    /// The target assignment of `members` over `topics`.
    pub fn assign(self, members: &[Subscriber], topics: &Topics) -> Assignment {
        let mut out: Assignment = members
            .iter()
            .map(|m| (m.member_id.clone(), Vec::new()))
            .collect();
        match self {
            Assignor::Range => range::assign(members, topics, &mut out),
            Assignor::RoundRobin => round_robin::assign(members, topics, &mut out),
            Assignor::Sticky | Assignor::CooperativeSticky | Assignor::Uniform => {
                sticky::assign(members, topics, &mut out)
            }
        }
        for partitions in out.values_mut() {
            partitions.sort();
        }
        out
    }
}

impl fmt::Display for Assignor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The partitions of `topics` that a member subscribed to `subscribed`
/// may get, in order.
fn partitions_of<'a>(
    subscribed: impl IntoIterator<Item = &'a String>,
    topics: &Topics,
) -> Vec<TopicPartition> {
    subscribed
        .into_iter()
        .filter_map(|t| topics.get(t).map(|&count| (t, count)))
        .flat_map(|(t, count)| (0..count.max(0)).map(move |p| (t.clone(), p)))
        .collect()
}

/// Partitions grouped by topic, each list in the given order.
pub fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<String, Vec<i32>> {
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic.clone()).or_default().push(*partition);
    }
    topics
}

/// One incremental step towards `target`, as the classic cooperative
/// protocol takes it: a partition that another member still owns is held
/// back this round. Its owner sees it missing from its own assignment,
/// revokes it and rejoins, and the next rebalance hands it over.
pub fn cooperative_step(target: &Assignment, members: &[Subscriber]) -> Assignment {
    let owner: BTreeMap<&TopicPartition, &str> = members
        .iter()
        .flat_map(|m| m.owned.iter().map(move |tp| (tp, m.member_id.as_str())))
        .collect();
    target
        .iter()
        .map(|(member, partitions)| {
            let kept = partitions
                .iter()
                .filter(|tp| owner.get(tp).is_none_or(|o| *o == member))
                .cloned()
                .collect();
            (member.clone(), kept)
        })
        .collect()
}

#[cfg(test)]
mod tests;
