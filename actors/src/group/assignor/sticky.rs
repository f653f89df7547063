//! The sticky strategies (`sticky`, `cooperative-sticky`, `uniform`):
//! balanced first, then as few moves as balance allows.
//!
//! Members keep what they own and may still have; free partitions go to
//! the least-loaded member that subscribed to them (the partitions with the
//! fewest candidates first, so narrow subscriptions are served); then, while
//! some member holds two or more partitions more than a member that could
//! take one of them, one moves. Each move lowers the sum of squared loads,
//! so this ends; with equal subscriptions it ends balanced within one, and
//! only members above their share ever give a partition away.

use super::{partitions_of, Assignment, Subscriber, TopicPartition, Topics};
use std::collections::BTreeMap;

pub(super) fn assign(members: &[Subscriber], topics: &Topics, out: &mut Assignment) {
    let mut sorted: Vec<&Subscriber> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));

    let mut candidates: BTreeMap<TopicPartition, Vec<&str>> = BTreeMap::new();
    for member in &sorted {
        for tp in partitions_of(&member.topics, topics) {
            candidates.entry(tp).or_default().push(&member.member_id);
        }
    }

    let mut load: BTreeMap<&str, usize> =
        sorted.iter().map(|m| (m.member_id.as_str(), 0)).collect();
    let mut owner: BTreeMap<&TopicPartition, &str> = BTreeMap::new();
    for member in &sorted {
        let mut owned: Vec<&TopicPartition> = member.owned.iter().collect();
        owned.sort();
        for tp in owned {
            let allowed = candidates
                .get(tp)
                .is_some_and(|c| c.contains(&member.member_id.as_str()));
            if allowed && !owner.contains_key(tp) {
                owner.insert(tp, &member.member_id);
                *load.entry(&member.member_id).or_default() += 1;
            }
        }
    }

    let mut free: Vec<(&TopicPartition, &Vec<&str>)> = candidates
        .iter()
        .filter(|(tp, _)| !owner.contains_key(tp))
        .collect();
    free.sort_by_key(|(tp, c)| (c.len(), *tp));
    for (tp, members) in free {
        let least = least_loaded(members, &load);
        owner.insert(tp, least);
        *load.entry(least).or_default() += 1;
    }

    while let Some((tp, to)) = next_move(&owner, &candidates, &load) {
        let from = owner[tp];
        *load.entry(from).or_default() -= 1;
        *load.entry(to).or_default() += 1;
        owner.insert(tp, to);
    }

    for (tp, member) in owner {
        out.entry(member.to_string()).or_default().push(tp.clone());
    }
}

fn least_loaded<'a>(members: &[&'a str], load: &BTreeMap<&str, usize>) -> &'a str {
    members
        .iter()
        .min_by_key(|m| (load.get(**m).copied().unwrap_or(0), **m))
        .copied()
        .expect("every candidate list has a member")
}

/// The move that relieves the most loaded member: its last partition that a
/// member at least two lighter could take, to the lightest such member.
fn next_move<'a>(
    owner: &BTreeMap<&'a TopicPartition, &'a str>,
    candidates: &'a BTreeMap<TopicPartition, Vec<&'a str>>,
    load: &BTreeMap<&'a str, usize>,
) -> Option<(&'a TopicPartition, &'a str)> {
    let mut heaviest: Vec<(&str, usize)> = load.iter().map(|(m, l)| (*m, *l)).collect();
    heaviest.sort_by_key(|(m, l)| (std::cmp::Reverse(*l), *m));
    for (from, from_load) in heaviest {
        let held = owner.iter().rev().filter(|(_, o)| **o == from);
        for (tp, _) in held {
            let lighter = candidates[*tp]
                .iter()
                .filter(|m| load.get(**m).copied().unwrap_or(0) + 1 < from_load)
                .min_by_key(|m| (load.get(**m).copied().unwrap_or(0), **m));
            if let Some(to) = lighter {
                return Some((*tp, *to));
            }
        }
    }
    None
}
