//! An embedded actorlog broker listening on a free loopback port, and
//! librdkafka clients pointed at it. Shared by the group, transaction and
//! cleanup tests; the broker and its temporary data go when it is dropped.

#![allow(dead_code)] // each test file uses its own subset

use actorlog::{Broker, BrokerBuilder};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts a broker keeping its data in memory; `edit` adjusts its config
/// (e.g. shorter intervals).
pub async fn start(edit: impl FnOnce(&mut actorlog::BrokerConfig)) -> (Broker, String) {
    launch(Broker::builder().in_memory(), edit).await
}

/// Starts a broker keeping its data in `dir`, to start it again there.
pub async fn start_in(
    dir: &Path,
    edit: impl FnOnce(&mut actorlog::BrokerConfig),
) -> (Broker, String) {
    launch(Broker::builder().data_dir(dir), edit).await
}

async fn launch(
    builder: BrokerBuilder,
    edit: impl FnOnce(&mut actorlog::BrokerConfig),
) -> (Broker, String) {
    let broker = builder
        .listen("127.0.0.1:0")
        .config(edit)
        .start()
        .await
        .expect("the embedded broker starts");
    let bootstrap = broker.local_addr().expect("listening").to_string();
    (broker, bootstrap)
}

pub fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3");
    config
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        config(bootstrap).create().expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create topics request");
    for result in results {
        result.expect("topic created");
    }
}

/// Produces `count` records `key-i` = `value-i` (acks=all), round robin
/// over `partitions` partitions.
pub async fn produce(bootstrap: &str, topic: &str, partitions: i32, count: usize) {
    let producer: FutureProducer = config(bootstrap)
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..count {
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .partition((i % partitions as usize) as i32);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("record acknowledged");
    }
}

/// Sends `count` balance updates of `accounts` accounts to partition 0,
/// `account-{i % accounts}` = `balance-{i}`, all in flight at once so that
/// `linger_ms` batches them, and waits for every acknowledgement: a log
/// that compaction has much to do on.
pub async fn produce_balances(
    bootstrap: &str,
    topic: &str,
    count: usize,
    accounts: usize,
    linger_ms: &str,
) {
    let producer: FutureProducer = config(bootstrap)
        .set("linger.ms", linger_ms)
        .create()
        .expect("producer");
    let sends: Vec<_> = (0..count)
        .map(|i| {
            let (key, value) = (format!("account-{}", i % accounts), format!("balance-{i}"));
            let record = FutureRecord::to(topic)
                .key(&key)
                .payload(&value)
                .partition(0);
            producer.send_result(record).expect("queued")
        })
        .collect();
    for send in sends {
        send.await.expect("sent").expect("acknowledged");
    }
}

/// Checks that partition 0 of `topic`, filled by [`produce_balances`],
/// holds each account's last balance at the offset it was written at.
pub fn assert_latest_balances(bootstrap: &str, topic: &str, count: usize, accounts: usize) {
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for (offset, key, value) in read_records(bootstrap, topic) {
        latest.insert(key, (offset, value));
    }
    assert_eq!(latest.len(), accounts, "every account is kept");
    for i in count - accounts..count {
        let key = format!("account-{}", i % accounts);
        let offset = i64::try_from(i).expect("offset");
        assert_eq!(
            latest[&key],
            (offset, Some(format!("balance-{i}"))),
            "{key}: its latest balance at its offset"
        );
    }
}

/// Reads every record of the partitions from the beginning with `assign`,
/// until `idle` passes without one; values as strings.
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    idle: Duration,
) -> Vec<String> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < idle {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("fetch");
            values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
            last = Instant::now();
        }
    }
    values
}

/// (offset, key, value) of every record of partition 0 from the start.
pub fn read_records(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "record-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let mut records = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(2) {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("fetch");
            let key = text(message.key()).unwrap_or_default();
            records.push((message.offset(), key, text(message.payload())));
            last = Instant::now();
        }
    }
    records
}

/// Polls `until` returns true, failing the test after `limit`.
pub fn eventually(limit: Duration, what: &str, mut until: impl FnMut() -> bool) {
    let start = Instant::now();
    while !until() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
