//! Produce and fetch with librdkafka: 100,000 keyed records with headers
//! round-trip exactly and in order per partition, keys land where the Java
//! client would put them, offsets are found by timestamp, and a long-polling
//! fetch wakes up when a record arrives.

mod embedded_broker;

use actorlog::embedded::partition_for_key;
use embedded_broker::{config, create_topic, start};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const COUNT: usize = 100_000;

fn assigned(
    bootstrap: &str,
    topic: &str,
    partitions: &[(i32, Offset)],
    wait_ms: &str,
) -> BaseConsumer {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "roundtrip")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", wait_ms)
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for (partition, offset) in partitions {
        assignment
            .add_partition_offset(topic, *partition, *offset)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    consumer
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_records_with_headers_round_trip_in_order() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "orders", 3, &[]).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut deliveries = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        let (key, value) = (format!("customer-{}", i % 997), format!("order-{i}"));
        let headers = OwnedHeaders::new().insert(Header {
            key: "seq",
            value: Some(i.to_string().as_bytes()),
        });
        let record = FutureRecord::to("orders")
            .key(&key)
            .payload(&value)
            .headers(headers);
        deliveries.push(producer.send_result(record).expect("queued"));
    }
    // Per partition, in production order: (offset, key, value, seq header).
    let mut sent: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for delivery in deliveries {
        let delivered = delivery
            .await
            .expect("not cancelled")
            .expect("acknowledged");
        sent.entry(delivered.partition)
            .or_default()
            .push(delivered.offset);
    }
    for (partition, offsets) in &sent {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {partition}: dense offsets in order"
        );
    }
    let consumer = assigned(
        &bootstrap,
        "orders",
        &[
            (0, Offset::Beginning),
            (1, Offset::Beginning),
            (2, Offset::Beginning),
        ],
        "100",
    );
    let mut received: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    let mut total = 0;
    let start = Instant::now();
    while total < COUNT {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "read {total} of {COUNT}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("fetch");
        let key = std::str::from_utf8(message.key().expect("key")).expect("utf-8");
        let value = std::str::from_utf8(message.payload().expect("value")).expect("utf-8");
        let i: usize = value
            .trim_start_matches("order-")
            .parse()
            .expect("numbered");
        assert_eq!(key, format!("customer-{}", i % 997));
        let headers = message.headers().expect("headers");
        assert_eq!(headers.count(), 1, "exactly the headers sent");
        let seq = headers.get(0);
        assert_eq!(
            (seq.key, seq.value),
            ("seq", Some(i.to_string().as_bytes()))
        );
        assert_eq!(
            message.partition(),
            partition_for_key(key.as_bytes(), 3),
            "the Java client's murmur2 partitioning"
        );
        received
            .entry(message.partition())
            .or_default()
            .push((message.offset(), i));
        total += 1;
    }
    for (partition, records) in &received {
        let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
        assert_eq!(
            offsets,
            (0..records.len() as i64).collect::<Vec<_>>(),
            "partition {partition}"
        );
        assert!(
            records.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {partition} keeps production order"
        );
    }
    for partition in 0..3 {
        let (low, high) = consumer
            .fetch_watermarks("orders", partition, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!((low, high), (0, received[&partition].len() as i64));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_are_found_by_timestamp() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "timeline", 1, &[]).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("linger.ms", "50")
        .create()
        .expect("producer");
    // Twenty records 10 ms apart, batched together by the linger.
    let base = 1_700_000_000_000i64;
    let sends: Vec<_> = (0..20)
        .map(|i| {
            let value = format!("t{i}");
            let record = FutureRecord::<(), _>::to("timeline")
                .payload(&value)
                .partition(0)
                .timestamp(base + 10 * i);
            producer.send_result(record).expect("queued")
        })
        .collect();
    for send in sends {
        send.await.expect("sent").expect("acknowledged");
    }
    let consumer = assigned(&bootstrap, "timeline", &[(0, Offset::Beginning)], "100");
    for (timestamp, expected) in [
        (base, Offset::Offset(0)),
        (base + 55, Offset::Offset(6)),
        (base + 190, Offset::Offset(19)),
        (base + 1000, Offset::End),
    ] {
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset("timeline", 0, Offset::Offset(timestamp))
            .expect("query");
        let found = consumer
            .offsets_for_times(query, Duration::from_secs(10))
            .expect("offsets for times");
        assert_eq!(
            found.elements()[0].offset(),
            expected,
            "timestamp {timestamp}"
        );
    }
    let from_middle = assigned(&bootstrap, "timeline", &[(0, Offset::Offset(6))], "100");
    let mut values = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if let Some(message) = from_middle.poll(Duration::from_millis(100)) {
            let message = message.expect("fetch");
            values.push((
                message.offset(),
                String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    let expected: Vec<(i64, String)> = (6..20).map(|i| (i, format!("t{i}"))).collect();
    assert_eq!(
        values, expected,
        "consuming from the found offset yields exactly the later records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_wakes_up_when_a_record_arrives() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "quiet", 1, &[]).await;
    let consumer = assigned(&bootstrap, "quiet", &[(0, Offset::End)], "10000");
    // Let the consumer reach the end and start waiting.
    let _ = consumer.poll(Duration::from_secs(2));
    let producer: FutureProducer = config(&bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let sent = Instant::now();
    producer
        .send(
            FutureRecord::<(), _>::to("quiet")
                .payload("wake up")
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .expect("acknowledged");
    loop {
        match consumer.poll(Duration::from_millis(50)) {
            Some(message) => {
                assert_eq!(message.expect("fetch").payload(), Some(&b"wake up"[..]));
                break;
            }
            None => assert!(
                sent.elapsed() < Duration::from_secs(5),
                "the fetch waiting up to 10 s should have answered at once"
            ),
        }
    }
}
