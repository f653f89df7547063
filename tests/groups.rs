//! Consumer groups with librdkafka consumers against the broker: partitions
//! shared out, idle members beyond the partition count, hand-over when a
//! member leaves, committed offsets resumed, independent groups; each under
//! the classic protocol and under the new consumer protocol (KIP-848,
//! `group.protocol=consumer`), where the broker computes the assignment
//! (and resolves pattern subscriptions).

mod embedded_broker;

use actorlog_actors::group::consumer_protocol::decode_assignment;
use embedded_broker::{config, create_topic, eventually, produce, start};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::Message;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// What one member of a group saw.
#[derive(Default)]
struct Seen {
    partitions: BTreeSet<i32>,
    values: Vec<String>,
}

/// A group member polling on its own thread until told to stop.
struct Member {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The group protocol a member speaks.
#[derive(Clone, Copy)]
enum Protocol {
    Classic,
    /// KIP-848: timeouts are the broker's, not the client's, to set.
    Consumer,
}

impl Member {
    fn join(protocol: Protocol, bootstrap: &str, group: &str, topic: &str) -> Member {
        let mut settings = config(bootstrap);
        settings
            .set("group.id", group)
            .set("auto.offset.reset", "earliest");
        match protocol {
            Protocol::Classic => settings
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "500"),
            Protocol::Consumer => settings.set("group.protocol", "consumer"),
        };
        let consumer: BaseConsumer = settings.create().expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seen, thread_stop) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                let message = consumer.poll(Duration::from_millis(100));
                let mut seen = thread_seen.lock().expect("lock");
                if let Some(Ok(message)) = message {
                    seen.values.push(
                        String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
                    );
                }
                seen.partitions = consumer
                    .assignment()
                    .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
            }
            let _ = consumer.commit_consumer_state(CommitMode::Sync);
            drop(consumer);
        });
        Member {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn partitions(&self) -> BTreeSet<i32> {
        self.seen.lock().expect("lock").partitions.clone()
    }

    fn values(&self) -> Vec<String> {
        self.seen.lock().expect("lock").values.clone()
    }

    /// Commits, closes (leaving the group) and waits for the thread.
    fn leave(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("member thread");
        }
        self.values()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn fast_groups(config: &mut actorlog::BrokerConfig) {
    config.group_initial_rebalance_delay_ms = 500;
    config.group_consumer_heartbeat_interval_ms = 200;
    config.group_consumer_session_timeout_ms = 6000;
}

/// Waits until the members' assignments have the given sizes (sorted) and
/// cover all `partitions` exactly once.
fn wait_for_balance(members: &[&Member], partitions: i32, sizes: &[usize]) {
    eventually(LIMIT, "a balanced assignment", || {
        let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| m.partitions()).collect();
        let mut got: Vec<usize> = sets.iter().map(BTreeSet::len).collect();
        got.sort_unstable();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        got == sizes && total == partitions as usize && union == (0..partitions).collect()
    });
}

async fn three_members_share_six_partitions_and_read_everything_once(protocol: Protocol) {
    let (_broker, bootstrap) = start(fast_groups).await;
    create_topic(&bootstrap, "shared", 6, &[]).await;
    produce(&bootstrap, "shared", 6, 600).await;
    let members: Vec<Member> = (0..3)
        .map(|_| Member::join(protocol, &bootstrap, "g3", "shared"))
        .collect();
    wait_for_balance(&members.iter().collect::<Vec<_>>(), 6, &[2, 2, 2]);
    eventually(LIMIT, "every record consumed", || {
        members.iter().map(|m| m.values().len()).sum::<usize>() >= 600
    });
    // DescribeGroups shows the group, whichever protocol it speaks, with
    // each member's two partitions in consumer-protocol bytes.
    let admin: BaseConsumer = config(&bootstrap).create().expect("client");
    let groups = admin
        .fetch_group_list(Some("g3"), Duration::from_secs(10))
        .expect("describe groups");
    let group = &groups.groups()[0];
    assert_eq!(
        (group.state(), group.protocol_type()),
        ("Stable", "consumer")
    );
    assert_eq!(group.members().len(), 3);
    for member in group.members() {
        let bytes = member.assignment().expect("an assignment");
        let assignment = decode_assignment(bytes::Bytes::copy_from_slice(bytes));
        assert_eq!(assignment.map(|a| a.len()), Ok(2));
    }
    let mut all: Vec<String> = members.into_iter().flat_map(Member::leave).collect();
    all.sort();
    let mut expected: Vec<String> = (0..600).map(|i| format!("value-{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "each record exactly once across the group");
}

async fn members_beyond_the_partition_count_stay_idle(protocol: Protocol) {
    let (_broker, bootstrap) = start(fast_groups).await;
    create_topic(&bootstrap, "six", 6, &[]).await;
    let members: Vec<Member> = (0..7)
        .map(|_| Member::join(protocol, &bootstrap, "g7", "six"))
        .collect();
    wait_for_balance(
        &members.iter().collect::<Vec<_>>(),
        6,
        &[0, 1, 1, 1, 1, 1, 1],
    );
}

async fn a_member_that_leaves_hands_its_partitions_over(protocol: Protocol) {
    let (_broker, bootstrap) = start(fast_groups).await;
    create_topic(&bootstrap, "handover", 4, &[]).await;
    let stays = Member::join(protocol, &bootstrap, "g2", "handover");
    let goes = Member::join(protocol, &bootstrap, "g2", "handover");
    wait_for_balance(&[&stays, &goes], 4, &[2, 2]);
    goes.leave();
    wait_for_balance(&[&stays], 4, &[4]);
}

async fn a_restarted_member_resumes_after_the_committed_offset(protocol: Protocol) {
    let (_broker, bootstrap) = start(fast_groups).await;
    create_topic(&bootstrap, "resume", 1, &[]).await;
    produce(&bootstrap, "resume", 1, 100).await;
    let first = Member::join(protocol, &bootstrap, "resumers", "resume");
    eventually(LIMIT, "the first 100 records", || {
        first.values().len() >= 100
    });
    assert_eq!(first.leave().len(), 100);
    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "resumers")
        .create()
        .expect("consumer");
    let mut wanted = rdkafka::TopicPartitionList::new();
    wanted.add_partition("resume", 0);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("committed offsets");
    let offsets: HashMap<i32, i64> = committed
        .elements()
        .iter()
        .filter_map(|e| e.offset().to_raw().map(|o| (e.partition(), o)))
        .collect();
    assert_eq!(
        offsets.get(&0),
        Some(&100),
        "the commit covers what was read"
    );
    drop(consumer);
    produce_from(&bootstrap, "resume", 100, 150).await;
    let second = Member::join(protocol, &bootstrap, "resumers", "resume");
    eventually(LIMIT, "the 50 new records", || second.values().len() >= 50);
    std::thread::sleep(Duration::from_secs(1));
    let values = second.leave();
    let expected: Vec<String> = (100..150).map(|i| format!("value-{i}")).collect();
    assert_eq!(
        values, expected,
        "nothing before the committed offset, nothing twice"
    );
}

async fn two_groups_each_receive_every_record(protocol: Protocol) {
    let (_broker, bootstrap) = start(fast_groups).await;
    create_topic(&bootstrap, "fanout", 2, &[]).await;
    produce(&bootstrap, "fanout", 2, 40).await;
    let a = Member::join(protocol, &bootstrap, "group-a", "fanout");
    let b = Member::join(protocol, &bootstrap, "group-b", "fanout");
    eventually(LIMIT, "both groups reading everything", || {
        a.values().len() >= 40 && b.values().len() >= 40
    });
    let (mut a, mut b) = (a.leave(), b.leave());
    a.sort();
    b.sort();
    assert_eq!(a.len(), 40);
    assert_eq!(a, b);
}

/// A subscription by pattern takes every matching topic, and a matching
/// topic created later too (by the client's metadata refresh under the
/// classic protocol, by the coordinator under KIP-848).
async fn a_pattern_subscription_follows_new_topics(protocol: Protocol) {
    let (_broker, bootstrap) = start(fast_groups).await;
    create_topic(&bootstrap, "pattern-a", 2, &[]).await;
    create_topic(&bootstrap, "pattern-b", 1, &[]).await;
    create_topic(&bootstrap, "unpatterned", 2, &[]).await;
    let mut settings = config(&bootstrap);
    settings
        .set("group.id", "by-pattern")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "500");
    if let Protocol::Consumer = protocol {
        settings.set("group.protocol", "consumer");
    }
    let consumer: BaseConsumer = settings.create().expect("consumer");
    consumer.subscribe(&["^pattern-.*"]).expect("subscribe");
    let assigned = |consumer: &BaseConsumer| -> BTreeSet<(String, i32)> {
        consumer
            .assignment()
            .map(|a| {
                a.elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let expect = |topics: &[(&str, i32)]| -> BTreeSet<(String, i32)> {
        topics.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    };
    eventually(LIMIT, "the matching topics assigned", || {
        consumer.poll(Duration::from_millis(100));
        assigned(&consumer) == expect(&[("pattern-a", 0), ("pattern-a", 1), ("pattern-b", 0)])
    });
    create_topic(&bootstrap, "pattern-c", 1, &[]).await;
    produce(&bootstrap, "pattern-c", 1, 1).await;
    let mut got = None;
    eventually(LIMIT, "a record of the new matching topic", || {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            got = Some(message.topic().to_string());
        }
        got.is_some()
    });
    assert_eq!(got.as_deref(), Some("pattern-c"));
    assert_eq!(
        assigned(&consumer),
        expect(&[
            ("pattern-a", 0),
            ("pattern-a", 1),
            ("pattern-b", 0),
            ("pattern-c", 0)
        ])
    );
}

/// A consumer that never joins its group (it assigns partitions itself, or
/// none) commits to the empty group and reads the commit back.
async fn a_consumer_outside_the_group_commits_to_it_while_empty(protocol: Protocol) {
    use rdkafka::{Offset, TopicPartitionList};
    let (_broker, bootstrap) = start(fast_groups).await;
    create_topic(&bootstrap, "self-assigned", 1, &[]).await;
    produce(&bootstrap, "self-assigned", 1, 3).await;
    let mut settings = config(&bootstrap);
    settings
        .set("group.id", "manual")
        .set("enable.auto.commit", "false");
    if let Protocol::Consumer = protocol {
        settings.set("group.protocol", "consumer");
    }
    let consumer: BaseConsumer = settings.create().expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("self-assigned", 0, Offset::Offset(2))
        .expect("offset");
    consumer
        .commit(&offsets, CommitMode::Sync)
        .expect("a commit outside group management is accepted");
    let committed = consumer
        .committed_offsets(offsets, Duration::from_secs(10))
        .expect("committed offsets");
    assert_eq!(
        committed.elements()[0].offset(),
        Offset::Offset(2),
        "{committed:?}"
    );
}

/// Each scenario runs once per group protocol, as its own test.
macro_rules! under_both_protocols {
    ($($scenario:ident),* $(,)?) => {
        mod classic {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $scenario() {
                    super::$scenario(super::Protocol::Classic).await
                }
            )*
        }
        mod consumer_protocol {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $scenario() {
                    super::$scenario(super::Protocol::Consumer).await
                }
            )*
        }
    };
}

under_both_protocols!(
    three_members_share_six_partitions_and_read_everything_once,
    members_beyond_the_partition_count_stay_idle,
    a_member_that_leaves_hands_its_partitions_over,
    a_restarted_member_resumes_after_the_committed_offset,
    two_groups_each_receive_every_record,
    a_pattern_subscription_follows_new_topics,
    a_consumer_outside_the_group_commits_to_it_while_empty
);

/// Produces `value-i` for i in `from..to` to partition 0.
async fn produce_from(bootstrap: &str, topic: &str, from: usize, to: usize) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = config(bootstrap).create().expect("producer");
    for i in from..to {
        let value = format!("value-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .payload(&value)
                    .partition(0),
                Duration::from_secs(10),
            )
            .await
            .expect("acknowledged");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_of_an_empty_group_expire() {
    let (_broker, bootstrap) = start(|c| {
        c.offsets_retention_ms = 500;
        c.retention_check_interval_ms = 100;
    })
    .await;
    create_topic(&bootstrap, "expiring", 1, &[]).await;
    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "gone")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut offsets = rdkafka::TopicPartitionList::new();
    offsets
        .add_partition_offset("expiring", 0, rdkafka::Offset::Offset(0))
        .expect("offset");
    consumer
        .commit(&offsets, CommitMode::Sync)
        .expect("committed");
    let committed = || {
        let mut wanted = rdkafka::TopicPartitionList::new();
        wanted.add_partition("expiring", 0);
        consumer
            .committed_offsets(wanted, Duration::from_secs(10))
            .expect("offset fetch")
            .elements()[0]
            .offset()
    };
    assert_eq!(committed(), rdkafka::Offset::Offset(0));
    eventually(LIMIT, "the offsets expired", || {
        committed() == rdkafka::Offset::Invalid
    });
}
