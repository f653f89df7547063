//! The embedding API: in-process group consumers share a topic's
//! partitions, resume after commits, and share a group with a librdkafka
//! consumer connected over TCP.

mod embedded_broker;

use actorlog::{Broker, Error, ResponseError};
use embedded_broker::{config, eventually, start};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

async fn fill(broker: &Broker, topic: &str, partitions: i32, count: usize) {
    broker.create_topic(topic, partitions).await.expect("topic");
    let producer = broker.producer();
    for i in 0..count {
        producer
            .send(
                topic,
                Some(format!("key-{i}").as_bytes()),
                format!("value-{i}").as_bytes(),
            )
            .await
            .expect("sent");
    }
}

/// What one in-process member saw, shared with the test.
#[derive(Default)]
struct Seen {
    partitions: Vec<(String, i32)>,
    values: Vec<String>,
}

/// A group member polling in its own task, as an application runs it,
/// until told to stop; then it closes (commits and leaves).
struct Member {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    fn start(broker: &Broker, group: &str, topic: &str) -> Member {
        let builder = broker.consumer(group);
        let topic = topic.to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (task_seen, task_stop) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut consumer = builder.subscribe([topic.as_str()]).await.expect("joined");
            while !task_stop.load(Ordering::Relaxed) {
                let delivered = consumer.poll().await.expect("poll");
                let mut seen = task_seen.lock().expect("lock");
                seen.partitions = consumer.assignment();
                for d in delivered {
                    seen.values.push(
                        String::from_utf8_lossy(&d.record.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            consumer.close().await.expect("closed");
        });
        Member { seen, stop, task }
    }

    fn partitions(&self) -> usize {
        self.seen.lock().expect("lock").partitions.len()
    }

    fn values(&self) -> Vec<String> {
        self.seen.lock().expect("lock").values.clone()
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let values = self.seen.clone();
        self.task.await.expect("member task");
        let seen = values.lock().expect("lock");
        seen.values.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_process_consumers_share_partitions_and_hand_over() {
    let (broker, _) = start(|c| c.group_initial_rebalance_delay_ms = 300).await;
    fill(&broker, "orders", 6, 120).await;
    let members: Vec<Member> = (0..3)
        .map(|_| Member::start(&broker, "billing", "orders"))
        .collect();
    eventually(
        LIMIT,
        "three members with two partitions each, all records read",
        || {
            let all: BTreeSet<String> = members.iter().flat_map(Member::values).collect();
            all.len() == 120 && members.iter().all(|m| m.partitions() == 2)
        },
    );
    let mut members = members;
    let leaving = members.pop().expect("a member");
    leaving.stop().await;
    eventually(LIMIT, "the other two take over", || {
        members.iter().all(|m| m.partitions() == 3)
    });
    broker
        .producer()
        .send("orders", Some(b"late"), b"late-record")
        .await
        .expect("sent");
    eventually(LIMIT, "the new record", || {
        members
            .iter()
            .any(|m| m.values().iter().any(|v| v == "late-record"))
    });
    let mut late = 0;
    for member in members {
        late += member
            .stop()
            .await
            .iter()
            .filter(|v| *v == "late-record")
            .count();
    }
    assert_eq!(late, 1, "the new record reached exactly one member");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_process_and_a_librdkafka_consumer_share_one_group() {
    let (broker, bootstrap) = start(|c| c.group_initial_rebalance_delay_ms = 300).await;
    fill(&broker, "mixed", 6, 60).await;
    let remote: BaseConsumer = config(&bootstrap)
        .set("group.id", "mixed-group")
        .set("partition.assignment.strategy", "range")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    remote.subscribe(&["mixed"]).expect("subscribe");
    let local = Member::start(&broker, "mixed-group", "mixed");
    let remote_partitions = || -> usize {
        remote.poll(Duration::from_millis(10));
        remote.assignment().map(|a| a.count()).unwrap_or(0)
    };
    eventually(LIMIT, "a three-three split", || {
        local.partitions() == 3 && remote_partitions() == 3
    });
    let local_partitions: BTreeSet<i32> = local
        .seen
        .lock()
        .expect("lock")
        .partitions
        .iter()
        .map(|(_, p)| *p)
        .collect();
    let remote_set: BTreeSet<i32> = remote
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    assert!(
        local_partitions.is_disjoint(&remote_set),
        "{local_partitions:?} / {remote_set:?}"
    );
    assert_eq!(local_partitions.len() + remote_set.len(), 6);
    drop(remote);
    local.stop().await;
}

#[tokio::test]
async fn keyless_records_stick_to_a_partition_then_move_on() {
    let broker = Broker::builder()
        .in_memory()
        .start()
        .await
        .expect("started");
    broker.create_topic("spread", 3).await.expect("topic");
    let producer = broker.producer();
    let mut partitions = Vec::new();
    for _ in 0..600 {
        let (partition, _) = producer
            .send("spread", None, &[7; 100])
            .await
            .expect("sent");
        partitions.push(partition);
    }
    let mut runs: Vec<(i32, usize)> = Vec::new();
    for p in partitions {
        match runs.last_mut() {
            Some((last, n)) if *last == p => *n += 1,
            _ => runs.push((p, 1)),
        }
    }
    let whole = &runs[..runs.len() - 1];
    assert!(whole.len() >= 3, "{runs:?}");
    assert!(
        whole.iter().all(|&(_, n)| n == whole[0].1 && n > 1),
        "{runs:?}"
    );
    let used: BTreeSet<i32> = runs.iter().map(|&(p, _)| p).collect();
    assert_eq!(used.len(), 3, "{runs:?}");
    broker.shutdown().await.expect("shut down");
}

#[tokio::test]
async fn errors_are_typed() {
    let broker = Broker::builder()
        .in_memory()
        .config(|c| c.auto_create_topics = false)
        .start()
        .await
        .expect("started");
    let unknown = broker.producer().send("nowhere", None, b"x").await;
    assert_eq!(
        unknown.expect_err("no topic").code(),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    let bad_config = broker
        .create_topic_with("t", 1, [("retention.ms", "soon")])
        .await;
    assert_eq!(
        bad_config.expect_err("invalid").code(),
        Some(ResponseError::InvalidConfig)
    );
    let bad_count = broker.create_topic("t", 0).await;
    assert_eq!(
        bad_count.expect_err("invalid").code(),
        Some(ResponseError::InvalidPartitions)
    );
    let listening = Broker::builder()
        .in_memory()
        .listen("127.0.0.1:0")
        .start()
        .await
        .expect("started");
    let taken = listening.local_addr().expect("listening");
    let clash = Broker::builder().in_memory().listen(taken).start().await;
    assert!(matches!(clash, Err(Error::Io(_))), "{:?}", clash.err());
    let invalid = Broker::builder()
        .in_memory()
        .config(|c| c.segment_bytes = 0)
        .start()
        .await;
    assert!(
        matches!(invalid, Err(Error::InvalidConfig(_))),
        "{:?}",
        invalid.err()
    );
    listening.shutdown().await.expect("shut down");
    broker.shutdown().await.expect("shut down");
}
