//! Kafka's RoundRobinAssignor: every partition of every subscribed topic,
//! in order, dealt to the members in turn, skipping members that did not
//! subscribe to its topic.

use super::{partitions_of, Assignment, Subscriber, Topics};
use std::collections::BTreeSet;

pub(super) fn assign(members: &[Subscriber], topics: &Topics, out: &mut Assignment) {
    let mut ring: Vec<&Subscriber> = members.iter().collect();
    ring.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    if ring.is_empty() {
        return;
    }
    let all: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
    let mut turn = 0;
    for tp in partitions_of(all, topics) {
        // Some member subscribed to this topic, so the search ends.
        while !ring[turn % ring.len()].topics.contains(&tp.0) {
            turn += 1;
        }
        let member = ring[turn % ring.len()];
        out.entry(member.member_id.clone()).or_default().push(tp);
        turn += 1;
    }
}
