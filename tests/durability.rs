//! What the README promises about durability, checked by stopping the real
//! broker process: topics and records survive a clean restart at the same
//! offsets, and every record acknowledged with acks=all survives SIGKILL and
//! SIGTERM.

mod broker_process;
mod embedded_broker;

use broker_process::BrokerProcess;
use embedded_broker::{assert_latest_balances, config, create_topic, produce_balances, read_all};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn topics_and_records_survive_a_clean_restart() {
    let mut broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "kept", 3, &[]).await;
    embedded_broker::produce(&bootstrap, "kept", 3, 300).await;
    let before = read_all(
        &bootstrap,
        "kept",
        3,
        "read_uncommitted",
        Duration::from_secs(2),
    );
    broker.terminate();
    broker.restart();
    let consumer: BaseConsumer = config(&bootstrap).create().expect("client");
    let metadata = consumer
        .fetch_metadata(Some("kept"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 3);
    for partition in 0..3 {
        let (low, high) = consumer
            .fetch_watermarks("kept", partition, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!((low, high), (0, 100));
    }
    let mut after = read_all(
        &bootstrap,
        "kept",
        3,
        "read_uncommitted",
        Duration::from_secs(2),
    );
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(after.len(), 300);
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_records_survive_sigkill() {
    acknowledged_records_survive(BrokerProcess::kill9).await;
}

/// SIGTERM in the middle of the run: the broker finishes what it read,
/// exits with status 0 (`terminate` checks it) and loses nothing it
/// acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_records_survive_sigterm() {
    acknowledged_records_survive(BrokerProcess::terminate).await;
}

/// Produces with acks=all without pause, stops the broker with `stop` while
/// requests are in flight, starts it again and checks that every
/// acknowledged record is there at its acknowledged offset.
async fn acknowledged_records_survive(stop: fn(&mut BrokerProcess)) {
    let mut broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "durable", 2, &[]).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");
    // Produce without pause; stop the broker while requests are in flight.
    let mut acknowledged: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let mut in_flight = Vec::new();
    let started = Instant::now();
    for i in 0..20_000 {
        let payload = format!("record-{i}");
        let record = FutureRecord::<(), _>::to("durable")
            .payload(&payload)
            .partition(i % 2);
        in_flight.push((
            payload.clone(),
            producer.send_result(record).expect("queued"),
        ));
        if i == 10_000 {
            // Let part of the run be acknowledged, then stop the broker.
            while started.elapsed() < Duration::from_millis(200) {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop(&mut broker);
        }
    }
    for (payload, delivery) in in_flight {
        if let Ok(Ok(delivered)) = delivery.await {
            acknowledged.insert((delivered.partition, delivered.offset), payload);
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "some records were acknowledged before the kill"
    );
    broker.restart();
    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "durability-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..2 {
        assignment
            .add_partition_offset("durable", partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut stored: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let payload =
                String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
            stored.insert((message.partition(), message.offset()), payload);
            last = Instant::now();
        }
    }
    for (at, payload) in &acknowledged {
        assert_eq!(
            stored.get(at),
            Some(payload),
            "acknowledged record at {at:?} is there"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_producer_survives_a_broker_kill_without_duplicates() {
    let mut broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "exactly-once", 1, &[]).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    const COUNT: usize = 20_000;
    let mut deliveries = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        let payload = format!("{i:06}");
        let record = FutureRecord::<(), _>::to("exactly-once")
            .payload(&payload)
            .partition(0);
        deliveries.push(producer.send_result(record).expect("queued"));
        if i == COUNT / 2 {
            // Kill the broker with requests in flight, start it again: the
            // producer retries, and the broker must not write anything twice.
            std::thread::sleep(Duration::from_millis(100));
            broker.kill9();
            std::thread::sleep(Duration::from_millis(500));
            broker.restart();
        }
    }
    for delivery in deliveries {
        delivery
            .await
            .expect("not cancelled")
            .expect("delivered in the end");
    }
    let values = read_all(
        &bootstrap,
        "exactly-once",
        1,
        "read_uncommitted",
        Duration::from_secs(3),
    );
    let expected: Vec<String> = (0..COUNT).map(|i| format!("{i:06}")).collect();
    assert_eq!(values.len(), COUNT, "no record lost or written twice");
    assert!(values == expected, "every record exactly once, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_interrupted_between_prepare_and_markers_completes_at_restart() {
    use actorlog::actors::txn::state::{Status, Txn};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mut broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "half", 2, &[]).await;
    let producer: BaseProducer = config(&bootstrap)
        .set("transactional.id", "interrupted")
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(20))
        .expect("init");
    producer.begin_transaction().expect("begin");
    for partition in 0..2 {
        producer
            .send(
                BaseRecord::<(), _>::to("half")
                    .payload("pending")
                    .partition(partition),
            )
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    assert!(read_all(
        &bootstrap,
        "half",
        2,
        "read_committed",
        Duration::from_secs(1)
    )
    .is_empty());
    // Crash, and leave the state a crash after the prepare step leaves: the
    // commit decided and stored, no marker written yet.
    broker.kill9();
    drop(producer);
    {
        let db = sled::open(broker.data_dir().join("state.sled")).expect("state database");
        let tree = db.open_tree("transactions").expect("tree");
        let stored = tree
            .get("interrupted")
            .expect("read")
            .expect("the transaction");
        let mut txn: Txn = bincode::deserialize(&stored).expect("decode");
        assert_eq!(txn.status, Status::Ongoing);
        txn.status = Status::PrepareCommit;
        tree.insert("interrupted", bincode::serialize(&txn).expect("encode"))
            .expect("write");
        db.flush().expect("flush");
    }
    broker.restart();
    let committed = read_all(
        &bootstrap,
        "half",
        2,
        "read_committed",
        Duration::from_secs(3),
    );
    assert_eq!(
        committed,
        ["pending", "pending"],
        "the commit was finished at start"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_during_compaction_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_file = dir.path().join("config.yaml");
    // Small segments, frequent and slow compaction: a kill lands mid-job.
    std::fs::write(
        &config_file,
        "segment_bytes: 65536\nretention_check_interval_ms: 100\ncompaction_bytes_per_sec: 300000\n",
    )
    .expect("config");
    let file = config_file.to_str().expect("utf-8");
    let mut broker = BrokerProcess::start_with(&["--config", file]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "accounts", 1, &[("cleanup.policy", "compact")]).await;
    produce_balances(&bootstrap, "accounts", 30_000, 300, "5").await;
    let partition_dir = broker.data_dir().join("accounts-0");
    let cleaning = || {
        std::fs::read_dir(&partition_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".cleaned"))
            })
            .unwrap_or(false)
    };
    let started = Instant::now();
    while !cleaning() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cleaning(), "the kill comes in the middle of a compaction");
    broker.kill9();
    broker.restart();
    assert_latest_balances(&bootstrap, "accounts", 30_000, 300);
}

/// A synchronous OffsetCommit is answered only once sled has flushed it, so
/// a SIGKILL right after the answer keeps it.
#[tokio::test(flavor = "multi_thread")]
async fn committed_offsets_survive_sigkill() {
    let mut broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "committed", 3, &[]).await;
    embedded_broker::produce(&bootstrap, "committed", 3, 30).await;
    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "kept-offsets")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    for partition in 0..3 {
        offsets
            .add_partition_offset(
                "committed",
                partition,
                Offset::Offset(3 + i64::from(partition)),
            )
            .expect("offset");
    }
    consumer
        .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
        .expect("committed");
    drop(consumer);
    broker.kill9();
    broker.restart();
    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "kept-offsets")
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    for partition in 0..3 {
        wanted.add_partition("committed", partition);
    }
    let found = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("offset fetch");
    let got: Vec<(i32, Offset)> = found
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    let expected: Vec<(i32, Offset)> = (0..3)
        .map(|p| (p, Offset::Offset(3 + i64::from(p))))
        .collect();
    assert_eq!(got, expected);
}
