//! Kafka's RangeAssignor: per topic, the subscribed members in order each
//! take a contiguous run, the first `partitions % members` one more.

use super::{Assignment, Subscriber, Topics};
use std::collections::BTreeMap;

pub(super) fn assign(members: &[Subscriber], topics: &Topics, out: &mut Assignment) {
    let mut by_topic: BTreeMap<&String, Vec<&Subscriber>> = BTreeMap::new();
    for member in members {
        for topic in &member.topics {
            by_topic.entry(topic).or_default().push(member);
        }
    }
    for (topic, mut subscribers) in by_topic {
        let Some(&count) = topics.get(topic) else {
            continue;
        };
        // Static members sort by instance id (KIP-345), so a restart that
        // changes the member id does not shift the ranges.
        subscribers.sort_by(|a, b| {
            let key = |m: &Subscriber| (m.instance_id.is_none(), m.instance_id.clone());
            key(a)
                .cmp(&key(b))
                .then_with(|| a.member_id.cmp(&b.member_id))
        });
        let count = count.max(0) as usize;
        let (each, extra) = (count / subscribers.len(), count % subscribers.len());
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = each + usize::from(i < extra);
            let slot = out.entry(member.member_id.clone()).or_default();
            slot.extend((next..next + take).map(|p| (topic.clone(), p as i32)));
            next += take;
        }
    }
}
