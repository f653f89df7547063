//! Properties every strategy must have, over many generated groups, and
//! the exact layouts Kafka's clients produce.

use super::*;

/// The strategies that promise balance and the fewest moves.
const STICKY: [Assignor; 3] = [
    Assignor::Sticky,
    Assignor::CooperativeSticky,
    Assignor::Uniform,
];

/// xorshift64*: a small deterministic generator, so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn member(id: &str, topics: &[&str]) -> Subscriber {
    Subscriber {
        member_id: id.to_string(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..Subscriber::default()
    }
}

fn topics(counts: &[(&str, i32)]) -> Topics {
    counts.iter().map(|(t, c)| (t.to_string(), *c)).collect()
}

fn tps(topic: &str, partitions: &[i32]) -> Vec<TopicPartition> {
    partitions.iter().map(|p| (topic.to_string(), *p)).collect()
}

/// A random group: up to 8 members over up to 3 topics, with equal
/// subscriptions when `homogeneous`, and random (possibly stale) ownership.
fn random_group(rng: &mut Rng, homogeneous: bool) -> (Vec<Subscriber>, Topics) {
    let names = ["a", "b", "c"];
    let topic_count = 1 + rng.below(3) as usize;
    let topics: Topics = names[..topic_count]
        .iter()
        .map(|t| (t.to_string(), 1 + rng.below(12) as i32))
        .collect();
    let all: Vec<&str> = names[..topic_count].to_vec();
    let members = (0..1 + rng.below(8))
        .map(|i| {
            let subscribed: Vec<&str> = if homogeneous {
                all.clone()
            } else {
                let picked: Vec<&str> = all.iter().copied().filter(|_| rng.below(2) == 0).collect();
                if picked.is_empty() {
                    vec![all[0]]
                } else {
                    picked
                }
            };
            let mut m = member(&format!("m{i}"), &subscribed);
            m.owned = (0..rng.below(6))
                .map(|_| {
                    let t = all[rng.below(all.len() as u64) as usize];
                    (t.to_string(), rng.below(14) as i32)
                })
                .collect();
            m
        })
        .collect();
    (members, topics)
}

fn check_complete(members: &[Subscriber], topics: &Topics, out: &Assignment) {
    let mut seen = BTreeMap::new();
    for (member, partitions) in out {
        let m = members.iter().find(|m| &m.member_id == member).unwrap();
        for tp in partitions {
            assert!(m.topics.contains(&tp.0), "{member} got unsubscribed {tp:?}");
            assert!(seen.insert(tp.clone(), member).is_none(), "{tp:?} twice");
        }
    }
    let wanted: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
    assert_eq!(seen.len(), partitions_of(wanted, topics).len());
    assert_eq!(out.len(), members.len());
}

fn spread(out: &Assignment) -> usize {
    let loads = out.values().map(Vec::len);
    loads.clone().max().unwrap_or(0) - loads.min().unwrap_or(0)
}

#[test]
fn every_strategy_assigns_each_partition_once() {
    let mut rng = Rng(0x5eed);
    for round in 0..500 {
        let (members, topics) = random_group(&mut rng, round % 2 == 0);
        for assignor in Assignor::ALL {
            let out = assignor.assign(&members, &topics);
            check_complete(&members, &topics, &out);
            assert_eq!(out, assignor.assign(&members, &topics), "deterministic");
        }
    }
}

#[test]
fn sticky_strategies_balance_equal_subscriptions_within_one() {
    let mut rng = Rng(42);
    for _ in 0..500 {
        let (members, topics) = random_group(&mut rng, true);
        for assignor in STICKY {
            let out = assignor.assign(&members, &topics);
            assert!(spread(&out) <= 1, "{assignor}: {out:?}");
        }
    }
}

#[test]
fn roundrobin_balances_equal_subscriptions_within_one() {
    let mut rng = Rng(7);
    for _ in 0..500 {
        let (members, topics) = random_group(&mut rng, true);
        assert!(spread(&Assignor::RoundRobin.assign(&members, &topics)) <= 1);
    }
}

/// Who validly owns what before the rebalance: the first claimant, in
/// member order, of each partition that exists.
fn valid_owners(members: &[Subscriber], topics: &Topics) -> BTreeMap<TopicPartition, String> {
    let mut sorted: Vec<&Subscriber> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let mut owners = BTreeMap::new();
    for m in sorted {
        let mut owned = m.owned.clone();
        owned.sort();
        for tp in owned {
            if topics.get(&tp.0).is_some_and(|c| tp.1 < *c) {
                owners.entry(tp).or_insert_with(|| m.member_id.clone());
            }
        }
    }
    owners
}

/// The fewest moves that reach a balanced assignment: every member above
/// its share gives up exactly the excess, the members keeping the most
/// getting the larger shares.
fn fewest_moves(members: &[Subscriber], topics: &Topics) -> usize {
    let total = partitions_of(members[0].topics.iter(), topics).len();
    let n = members.len();
    let owners = valid_owners(members, topics);
    let mut kept: Vec<usize> = members
        .iter()
        .map(|m| owners.values().filter(|o| **o == m.member_id).count())
        .collect();
    kept.sort_unstable_by(|a, b| b.cmp(a));
    kept.iter()
        .enumerate()
        .map(|(i, k)| k.saturating_sub(total / n + usize::from(i < total % n)))
        .sum()
}

#[test]
fn sticky_strategies_move_only_what_balance_requires() {
    let mut rng = Rng(1234);
    for _ in 0..500 {
        let (members, topics) = random_group(&mut rng, true);
        for assignor in STICKY {
            let out = assignor.assign(&members, &topics);
            let moved = valid_owners(&members, &topics)
                .into_iter()
                .filter(|(tp, owner)| !out[owner].contains(tp))
                .count();
            assert!(
                moved <= fewest_moves(&members, &topics),
                "{assignor}: {members:?} -> {out:?}"
            );
        }
    }
}

#[test]
fn a_new_member_takes_only_its_share() {
    let topics = topics(&[("t", 6)]);
    let mut members = vec![member("a", &["t"]), member("b", &["t"])];
    members[0].owned = tps("t", &[0, 1, 2]);
    members[1].owned = tps("t", &[3, 4, 5]);
    members.push(member("c", &["t"]));
    let out = Assignor::CooperativeSticky.assign(&members, &topics);
    assert_eq!(out["a"], tps("t", &[0, 1]));
    assert_eq!(out["b"], tps("t", &[3, 4]));
    assert_eq!(out["c"], tps("t", &[2, 5]));
    // Cooperatively, c waits for a and b to let go first.
    let step = cooperative_step(&out, &members);
    assert!(step["c"].is_empty());
    assert_eq!(step["a"], tps("t", &[0, 1]));
}

#[test]
fn range_matches_kafka() {
    let topics = topics(&[("t", 7), ("u", 2)]);
    let members = vec![
        member("c", &["t", "u"]),
        member("a", &["t", "u"]),
        member("b", &["t"]),
    ];
    let out = Assignor::Range.assign(&members, &topics);
    assert_eq!(out["a"], [tps("t", &[0, 1, 2]), tps("u", &[0])].concat());
    assert_eq!(out["b"], tps("t", &[3, 4]));
    assert_eq!(out["c"], [tps("t", &[5, 6]), tps("u", &[1])].concat());
}

#[test]
fn range_orders_static_members_by_instance_id() {
    let topics = topics(&[("t", 2)]);
    let mut first = member("z-new-id", &["t"]);
    first.instance_id = Some("i1".into());
    let mut second = member("a-new-id", &["t"]);
    second.instance_id = Some("i2".into());
    let out = Assignor::Range.assign(&[second, first], &topics);
    assert_eq!(out["z-new-id"], tps("t", &[0]));
    assert_eq!(out["a-new-id"], tps("t", &[1]));
}

#[test]
fn roundrobin_matches_kafka() {
    let topics = topics(&[("t", 3), ("u", 2)]);
    let members = vec![member("a", &["t", "u"]), member("b", &["t", "u"])];
    let out = Assignor::RoundRobin.assign(&members, &topics);
    assert_eq!(out["a"], [tps("t", &[0, 2]), tps("u", &[1])].concat());
    assert_eq!(out["b"], [tps("t", &[1]), tps("u", &[0])].concat());
}

#[test]
fn members_beyond_the_partition_count_stay_idle() {
    let topics = topics(&[("t", 6)]);
    let members: Vec<Subscriber> = (0..7).map(|i| member(&format!("m{i}"), &["t"])).collect();
    for assignor in Assignor::ALL {
        let out = assignor.assign(&members, &topics);
        assert_eq!(
            out.values().filter(|p| p.is_empty()).count(),
            1,
            "{assignor}"
        );
    }
}

#[test]
fn names_round_trip() {
    for assignor in Assignor::ALL {
        assert_eq!(Assignor::from_name(assignor.name()), Some(assignor));
    }
    assert_eq!(Assignor::from_name("nope"), None);
}
