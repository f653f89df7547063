//! Fetch from the segment files (`sendfile` on plaintext connections) with
//! librdkafka: large compressed records of several partitions, read with
//! fetch budgets smaller than one batch, and transactional records read
//! with read_committed around aborted transactions, all arrive byte for
//! byte as produced. A wrong range sent from a file would break a batch's
//! framing or its CRC, or shift a value: these tests fail then.

mod embedded_broker;

use embedded_broker::{config, create_topic, start, start_in};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Per partition, `(offset, key, value)` of each record, in offset order.
type ByPartition = BTreeMap<i32, Vec<(i64, Vec<u8>, Vec<u8>)>>;

/// A value of `len` bytes, different for each `seed`, compressing poorly
/// so that batches stay large.
fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Per partition, `(offset, key, value)` of every record from the start
/// until `count` arrived, read with the given consumer settings.
fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    settings: &[(&str, &str)],
) -> ByPartition {
    let mut consumer_config = config(bootstrap);
    consumer_config
        .set("group.id", "zero-copy")
        .set("enable.auto.commit", "false");
    for (key, value) in settings {
        consumer_config.set(*key, *value);
    }
    let consumer: BaseConsumer = consumer_config.create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut received: ByPartition = BTreeMap::new();
    let mut total = 0;
    let start = Instant::now();
    while total < count {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "read {total} of {count}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("fetch");
        received.entry(message.partition()).or_default().push((
            message.offset(),
            message.key().unwrap_or_default().to_vec(),
            message.payload().unwrap_or_default().to_vec(),
        ));
        total += 1;
    }
    // Nothing more than was produced.
    let extra = (0..10).find_map(|_| consumer.poll(Duration::from_millis(100)));
    assert!(extra.is_none(), "a record beyond those produced");
    received
}

#[tokio::test(flavor = "multi_thread")]
async fn large_compressed_records_of_several_partitions_arrive_byte_for_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_broker, bootstrap) = start_in(dir.path(), |_| {}).await;
    // Small segments, so that reads span several segment files.
    create_topic(&bootstrap, "big", 3, &[("segment.bytes", "300000")]).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer");
    let count = 240;
    let sends: Vec<_> = (0..count)
        .map(|i| {
            // Mostly small records, every tenth one of 150 KB: batches
            // from a few hundred bytes to larger than the fetch budgets.
            let len = if i % 10 == 0 { 150_000 } else { 100 + i * 37 };
            let (key, payload) = (format!("key-{i}"), value(i as u64, len));
            let record = FutureRecord::to("big")
                .key(&key)
                .payload(&payload)
                .partition((i % 3) as i32);
            producer.send_result(record).expect("queued")
        })
        .collect();
    let mut produced: ByPartition = BTreeMap::new();
    for (i, send) in sends.into_iter().enumerate() {
        let delivered = send.await.expect("sent").expect("acknowledged");
        let len = if i % 10 == 0 { 150_000 } else { 100 + i * 37 };
        produced.entry(delivered.partition).or_default().push((
            delivered.offset,
            format!("key-{i}").into_bytes(),
            value(i as u64, len),
        ));
    }
    produced.values_mut().for_each(|records| records.sort());
    // Budgets far below one large batch: every fetch still makes progress
    // with the first batch whole, and the rest within the budgets.
    let received = consume(
        &bootstrap,
        "big",
        3,
        count,
        &[
            ("fetch.max.bytes", "40000"),
            ("max.partition.fetch.bytes", "20000"),
            ("message.max.bytes", "1000"),
        ],
    );
    assert_eq!(received.len(), 3, "every partition read");
    for (partition, records) in &produced {
        assert!(
            received[partition] == *records,
            "partition {partition}: the records differ from those produced"
        );
    }
    // And with the clients' default budgets, in one go per partition.
    let received = consume(&bootstrap, "big", 3, count, &[]);
    assert!(
        received == produced,
        "the records differ from those produced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_committed_reads_committed_transactions_byte_for_byte() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "txn", 2, &[]).await;
    let producer: BaseProducer = config(&bootstrap)
        .set("transactional.id", "zero-copy")
        .set("compression.type", "zstd")
        .create()
        .expect("transactional producer");
    producer.init_transactions(TIMEOUT).expect("init");
    let mut committed: BTreeMap<i32, Vec<Vec<u8>>> = BTreeMap::new();
    let mut all: BTreeMap<i32, Vec<Vec<u8>>> = BTreeMap::new();
    for round in 0..6u64 {
        producer.begin_transaction().expect("begin");
        for i in 0..20u64 {
            let partition = (i % 2) as i32;
            let payload = value(round * 100 + i, 2_000 + (i as usize) * 500);
            producer
                .send(
                    BaseRecord::<(), _>::to("txn")
                        .payload(&payload)
                        .partition(partition),
                )
                .expect("enqueued");
            all.entry(partition).or_default().push(payload.clone());
            if round % 2 == 0 {
                committed.entry(partition).or_default().push(payload);
            }
        }
        producer.flush(TIMEOUT).expect("flush");
        if round % 2 == 0 {
            producer.commit_transaction(TIMEOUT).expect("commit");
        } else {
            producer.abort_transaction(TIMEOUT).expect("abort");
        }
    }
    let values = |read: ByPartition| {
        read.into_iter()
            .map(|(p, records)| (p, records.into_iter().map(|r| r.2).collect::<Vec<_>>()))
            .collect::<BTreeMap<_, _>>()
    };
    let budgets = [
        ("fetch.max.bytes", "30000"),
        ("max.partition.fetch.bytes", "10000"),
        ("message.max.bytes", "1000"),
    ];
    let read = consume(
        &bootstrap,
        "txn",
        2,
        60,
        &[&budgets[..], &[("isolation.level", "read_committed")]].concat(),
    );
    assert!(
        values(read) == committed,
        "read_committed: not the committed records"
    );
    let read = consume(
        &bootstrap,
        "txn",
        2,
        120,
        &[&budgets[..], &[("isolation.level", "read_uncommitted")]].concat(),
    );
    assert!(values(read) == all, "read_uncommitted: not every record");
}
