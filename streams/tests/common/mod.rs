//! What the integration tests share: an embedded broker serving Kafka
//! clients on loopback, producing input with librdkafka, waiting for an
//! application to commit its input, and reading a topic to its end.

#![allow(dead_code)]

use actorlog::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// How long a test waits for something before it fails.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// An in-memory broker listening on a free loopback port.
pub async fn broker() -> (Broker, String) {
    let broker = Broker::builder()
        .in_memory()
        .listen("127.0.0.1:0")
        .start()
        .await
        .expect("the broker starts");
    let bootstrap = broker.local_addr().expect("a listener").to_string();
    (broker, bootstrap)
}

/// A record as the tests write and read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub timestamp: i64,
}

impl Record {
    pub fn text(key: &str, value: &str, timestamp: i64) -> Self {
        Self {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            timestamp,
        }
    }
}

/// An idempotent producer partitioning keys as the Java client does.
pub fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("a producer")
}

/// Writes `records` to `topic` in order (idempotent, acks=all).
pub async fn produce(bootstrap: &str, topic: &str, records: &[Record]) {
    send(&producer(bootstrap), topic, records).await;
}

/// Writes `records` to `topic` with `producer`, waiting for each.
pub async fn send(producer: &FutureProducer, topic: &str, records: &[Record]) {
    let sends = records.iter().map(|r| {
        producer.send(
            FutureRecord::to(topic)
                .key(&r.key)
                .payload(&r.value)
                .timestamp(r.timestamp),
            Duration::from_secs(30),
        )
    });
    for sent in futures_util::future::join_all(sends).await {
        sent.expect("a record is written");
    }
}

fn reader(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("a consumer")
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> i32 {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata.topics()[0].partitions().len() as i32
}

/// Blocks until group `group` committed offsets past every committed
/// record of `topic`: then everything written to it was processed and its
/// results committed. (Compared with records, not with the end offset,
/// which transaction markers move past the last record.)
pub fn wait_for_commits(bootstrap: &str, group: &str, topic: &str) {
    let offsets = reader(bootstrap, group);
    let n = partitions(&offsets, topic);
    let started = Instant::now();
    loop {
        let mut list = TopicPartitionList::new();
        for p in 0..n {
            list.add_partition(topic, p);
        }
        let committed = offsets
            .committed_offsets(list, Duration::from_secs(10))
            .expect("committed offsets");
        let mut from = TopicPartitionList::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            from.add_partition_offset(topic, e.partition(), offset)
                .expect("a partition");
        }
        if records_from(bootstrap, topic, &from).is_empty() {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{group} did not commit all of {topic}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The committed records of `topic` from the positions in `from` to the end.
fn records_from(bootstrap: &str, topic: &str, from: &TopicPartitionList) -> Vec<Record> {
    let consumer = reader(bootstrap, "streams-test-reader");
    consumer.assign(from).expect("assign");
    let mut pending: std::collections::HashSet<i32> =
        from.elements().iter().map(|e| e.partition()).collect();
    let mut records = Vec::new();
    let started = Instant::now();
    while !pending.is_empty() {
        assert!(started.elapsed() < PATIENCE, "reading {topic} to its end");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => records.push(Record {
                key: m.key().unwrap_or_default().to_vec(),
                value: m.payload().unwrap_or_default().to_vec(),
                timestamp: m.timestamp().to_millis().unwrap_or(0),
            }),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    records
}

/// Every committed record of `topic`, partition by partition in offset order.
pub fn read_to_end(bootstrap: &str, topic: &str) -> Vec<Record> {
    let consumer = reader(bootstrap, "streams-test-reader");
    let mut from = TopicPartitionList::new();
    for p in 0..partitions(&consumer, topic) {
        from.add_partition_offset(topic, p, Offset::Beginning)
            .expect("a partition");
    }
    records_from(bootstrap, topic, &from)
}

/// Waits until `done` holds.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
