//! What the README's durability table promises for a power loss, checked on
//! the real broker binary: its data directory is a FUSE filesystem
//! (`power_loss_fs`) that keeps only what was fsynced (file contents on the
//! file's fsync, names on their directory's fsync). The broker is killed,
//! the "power" goes off, and a new broker starts on what survived.
//!
//! Needs root, /dev/fuse and fusermount3 (Debian's `fuse3`, which
//! `scripts/test` installs).

mod broker_process;
mod embedded_broker;
mod power_loss_fs;

use broker_process::BrokerProcess;
use embedded_broker::{config, create_topic, eventually, read_records};
use power_loss_fs::PowerLossDisk;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Small segments, so runs cross segment rolls, and prompt cleaning.
const BROKER_CONFIG: &str = "\
segment_bytes: 16384
retention_check_interval_ms: 200
group_initial_rebalance_delay_ms: 0
";

/// The broker binary on a data directory, with [`BROKER_CONFIG`].
struct Broker {
    process: BrokerProcess,
    _config: tempfile::TempDir,
}

impl Broker {
    fn start_on(data: &Path) -> Broker {
        let config = tempfile::tempdir().expect("config dir");
        let path = config.path().join("config.yaml");
        std::fs::write(&path, BROKER_CONFIG).expect("config written");
        let process =
            BrokerProcess::start_on(data, &["--config", path.to_str().expect("utf-8 path")]);
        Broker {
            process,
            _config: config,
        }
    }

    fn bootstrap(&self) -> String {
        self.process.bootstrap()
    }
}

/// A broker on a disk that can lose power. Field order: the broker goes
/// before its disk is unmounted.
struct Machine {
    broker: Broker,
    disk: PowerLossDisk,
}

impl Machine {
    fn start() -> Machine {
        let disk = PowerLossDisk::mount();
        let broker = Broker::start_on(disk.path());
        Machine { broker, disk }
    }

    fn bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    /// Kills the broker and cuts the power; with `tear_seed`, files keep a
    /// random part of what they appended after their last fsync. Returns
    /// the broker restarted on what survived (and that directory).
    fn power_loss(self, tear_seed: Option<u64>) -> (Broker, tempfile::TempDir) {
        let Machine { mut broker, disk } = self;
        broker.process.kill9();
        let survived = disk.power_off(tear_seed);
        let broker = Broker::start_on(survived.path());
        (broker, survived)
    }
}

/// Every record of the partitions, `(partition, offset) → value`, read
/// from the start until nothing comes for two seconds.
fn stored(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<(i32, i64), String> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "power-loss-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut stored = BTreeMap::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(2) {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("fetch");
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
            stored.insert((message.partition(), message.offset()), value);
            last = Instant::now();
        }
    }
    stored
}

fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: BaseConsumer = config(bootstrap).create().expect("client");
    consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .expect("watermarks")
}

/// Produces `count` records of about 100 bytes with acks=all over
/// `partitions` partitions; returns what was acknowledged where.
async fn produce_acknowledged(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
) -> BTreeMap<(i32, i64), String> {
    let producer: FutureProducer = config(bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "50")
        .create()
        .expect("producer");
    let sends: Vec<_> = (0..count)
        .map(|i| {
            let payload = format!("record-{i:06}-{}", "p".repeat(90));
            let record = FutureRecord::<(), _>::to(topic)
                .payload(&payload)
                .partition((i % partitions as usize) as i32);
            (
                payload.clone(),
                producer.send_result(record).expect("queued"),
            )
        })
        .collect();
    let mut acknowledged = BTreeMap::new();
    for (payload, send) in sends {
        let delivered = send.await.expect("sent").expect("acknowledged");
        acknowledged.insert((delivered.partition, delivered.offset), payload);
    }
    acknowledged
}

/// Records acknowledged with acks=all are all there after a power loss,
/// at their offsets, across segment rolls and with the unsynced tail of
/// every file torn at a random byte; the broker cuts the torn batches.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_records_survive_a_power_loss() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    create_topic(&bootstrap, "durable", 2, &[]).await;
    let acknowledged = produce_acknowledged(&bootstrap, "durable", 2, 3000).await;
    let (broker, _survived) = machine.power_loss(Some(7));
    let stored = stored(&broker.bootstrap(), "durable", 2, "read_uncommitted");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(at, payload)| stored.get(at) != Some(payload))
        .map(|(at, _)| at)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged records lost or changed, first {:?}",
        lost.len(),
        acknowledged.len(),
        lost.first()
    );
}

/// acks=1 records are fsynced in the background once their segment is
/// closed (rolled), before any later acks=all write is acknowledged: after
/// one, those in closed segments survive a power loss, whole and at their
/// offsets.
#[tokio::test(flavor = "multi_thread")]
async fn leader_acknowledged_records_in_closed_segments_survive_a_power_loss() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    create_topic(&bootstrap, "rolled", 1, &[]).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "1")
        .set("linger.ms", "2")
        .set("batch.num.messages", "50")
        .create()
        .expect("producer");
    let sends: Vec<_> = (0..2000)
        .map(|i| {
            let payload = format!("rolled-{i:06}-{}", "r".repeat(90));
            let record = FutureRecord::<(), _>::to("rolled")
                .payload(&payload)
                .partition(0);
            (
                payload.clone(),
                producer.send_result(record).expect("queued"),
            )
        })
        .collect();
    let mut acknowledged = BTreeMap::new();
    for (payload, send) in sends {
        let delivered = send.await.expect("sent").expect("acknowledged");
        acknowledged.insert(delivered.offset, payload);
    }
    produce_acknowledged(&bootstrap, "rolled", 1, 1).await;
    let (broker, _survived) = machine.power_loss(Some(11));
    let stored = stored(&broker.bootstrap(), "rolled", 1, "read_uncommitted");
    // The active segment (16 KiB, under 200 of these records) may lose
    // its unsynced tail; everything before it was in closed segments.
    for (offset, payload) in acknowledged.range(..1500) {
        assert_eq!(
            stored.get(&(0, *offset)),
            Some(payload),
            "record at {offset}, in a closed segment"
        );
    }
}

/// What the README says consumers see: up to the log end, fsynced or not.
/// Records produced with acks=1 are read at once, and a power loss before
/// anything fsyncs them takes them away again.
#[tokio::test(flavor = "multi_thread")]
async fn consumers_read_records_a_power_loss_can_still_take() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    create_topic(&bootstrap, "unsynced", 1, &[]).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "1")
        .create()
        .expect("producer");
    for i in 0..5 {
        let payload = format!("leader-only-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to("unsynced")
                    .payload(&payload)
                    .partition(0),
                TIMEOUT,
            )
            .await
            .expect("acknowledged by the leader");
    }
    let seen = stored(&bootstrap, "unsynced", 1, "read_uncommitted");
    assert_eq!(seen.len(), 5, "consumers read records not yet fsynced");
    let (broker, _survived) = machine.power_loss(None);
    assert_eq!(
        watermarks(&broker.bootstrap(), "unsynced", 0),
        (0, 0),
        "nothing fsynced them, so the power loss took them"
    );
}

/// Offsets committed (OffsetCommit answered) survive a power loss: sled's
/// own flush does not fsync, the broker's store does.
#[tokio::test(flavor = "multi_thread")]
async fn committed_offsets_survive_a_power_loss() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    create_topic(&bootstrap, "consumed", 2, &[]).await;
    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "committer")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    for round in 1..=20 {
        let mut offsets = TopicPartitionList::new();
        for partition in 0..2 {
            offsets
                .add_partition_offset(
                    "consumed",
                    partition,
                    Offset::Offset(round * 10 + partition as i64),
                )
                .expect("offset");
        }
        consumer
            .commit(&offsets, CommitMode::Sync)
            .expect("commit acknowledged");
    }
    drop(consumer);
    let (broker, _survived) = machine.power_loss(None);
    let consumer: BaseConsumer = config(&broker.bootstrap())
        .set("group.id", "committer")
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("consumed", 0);
    wanted.add_partition("consumed", 1);
    let committed = consumer
        .committed_offsets(wanted, TIMEOUT)
        .expect("committed offsets");
    let offsets: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(offsets, vec![Offset::Offset(200), Offset::Offset(201)]);
}

fn transactional(bootstrap: &str, id: &str) -> BaseProducer {
    let producer: BaseProducer = config(bootstrap)
        .set("transactional.id", id)
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(TIMEOUT)
        .expect("init transactions");
    producer
}

/// A committed transaction stays committed and an aborted one aborted.
#[tokio::test(flavor = "multi_thread")]
async fn transaction_outcomes_survive_a_power_loss() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    create_topic(&bootstrap, "txn", 2, &[]).await;
    let producer = transactional(&bootstrap, "power-loss-writer");
    for (round, commit) in [(0, true), (1, false), (2, true), (3, false)] {
        producer.begin_transaction().expect("begin");
        for i in 0..20 {
            let outcome = if commit { "committed" } else { "aborted" };
            let payload = format!("{outcome}-{round}-{i}");
            producer
                .send(
                    BaseRecord::<(), _>::to("txn")
                        .payload(&payload)
                        .partition(i % 2),
                )
                .expect("enqueued");
        }
        producer.flush(TIMEOUT).expect("flush");
        if commit {
            producer.commit_transaction(TIMEOUT).expect("commit");
        } else {
            producer.abort_transaction(TIMEOUT).expect("abort");
        }
    }
    drop(producer);
    let (broker, _survived) = machine.power_loss(None);
    let committed = stored(&broker.bootstrap(), "txn", 2, "read_committed");
    let mut values: Vec<&String> = committed.values().collect();
    values.sort();
    assert_eq!(
        values.len(),
        40,
        "both committed transactions, whole: {values:?}"
    );
    assert!(
        values.iter().all(|v| v.starts_with("committed")),
        "no aborted record reads as committed: {values:?}"
    );
    let everything = stored(&broker.bootstrap(), "txn", 2, "read_uncommitted");
    assert_eq!(everything.len(), 80, "every record and none twice");
}

async fn describe_config(bootstrap: &str, topic: &str, key: &str) -> Option<String> {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().expect("admin");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe configs");
    let resource = described.into_iter().next()?.ok()?;
    resource.get(key).and_then(|entry| entry.value.clone())
}

/// A topic whose creation was answered is there after a power loss, with
/// its partitions and configs.
#[tokio::test(flavor = "multi_thread")]
async fn created_topics_and_their_configs_survive_a_power_loss() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    create_topic(
        &bootstrap,
        "cataloged",
        3,
        &[("cleanup.policy", "compact"), ("retention.ms", "123456")],
    )
    .await;
    let (broker, _survived) = machine.power_loss(None);
    let bootstrap = broker.bootstrap();
    let client: BaseConsumer = config(&bootstrap).create().expect("client");
    let metadata = client
        .fetch_metadata(Some("cataloged"), TIMEOUT)
        .expect("metadata");
    let topic = &metadata.topics()[0];
    assert!(
        topic.error().is_none(),
        "the topic exists: {:?}",
        topic.error()
    );
    assert_eq!(topic.partitions().len(), 3);
    assert_eq!(
        describe_config(&bootstrap, "cataloged", "cleanup.policy")
            .await
            .as_deref(),
        Some("compact")
    );
    assert_eq!(
        describe_config(&bootstrap, "cataloged", "retention.ms")
            .await
            .as_deref(),
        Some("123456")
    );
}

/// DeleteRecords' new log start is durable once answered.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_start_of_delete_records_survives_a_power_loss() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    create_topic(&bootstrap, "trimmed", 1, &[]).await;
    produce_acknowledged(&bootstrap, "trimmed", 1, 10).await;
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("trimmed", 0, Offset::Offset(4))
        .expect("offset");
    admin
        .delete_records(&offsets, &AdminOptions::new())
        .await
        .expect("delete records");
    drop(admin);
    let (broker, _survived) = machine.power_loss(None);
    assert_eq!(watermarks(&broker.bootstrap(), "trimmed", 0), (4, 10));
}

/// A topic to compact: first `STATIC` keys written once (so the oldest
/// segments, which compaction rewrites, hold their only values), then
/// `UPDATES` balance updates of `ACCOUNTS` accounts over many segments. It
/// is made compacted only once all are acknowledged ([`compact_now`]): a
/// power cut during the run would make later acknowledgements void.
const STATIC: usize = 100;
const UPDATES: usize = 3000;
const ACCOUNTS: usize = 50;

async fn compacted_balances(bootstrap: &str) {
    create_topic(bootstrap, "balances", 1, &[]).await;
    // Small batches, so the log rolls many segments for compaction to clean.
    let producer: FutureProducer = config(bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "20")
        .create()
        .expect("producer");
    let records = (0..STATIC)
        .map(|i| (format!("static-{i}"), format!("kept-{i}")))
        .chain((0..UPDATES).map(|i| (format!("account-{}", i % ACCOUNTS), format!("balance-{i}"))));
    let sends: Vec<_> = records
        .map(|(key, value)| {
            let record = FutureRecord::to("balances")
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

/// Makes the topic of [`compacted_balances`] compacted, which starts its
/// compaction at once.
async fn compact_now(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().expect("admin");
    let change = AlterConfig::new(ResourceSpecifier::Topic("balances"))
        .set("cleanup.policy", "compact")
        .set("min.cleanable.dirty.ratio", "0.01");
    for result in admin
        .alter_configs([&change], &AdminOptions::new())
        .await
        .expect("alter configs")
    {
        result.expect("altered");
    }
}

/// Every key of [`compacted_balances`] keeps its latest value at the
/// offset it was written at.
fn assert_latest_values(bootstrap: &str) {
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for (offset, key, value) in read_records(bootstrap, "balances") {
        latest.insert(key, (offset, value));
    }
    for i in 0..STATIC {
        assert_eq!(
            latest.get(&format!("static-{i}")),
            Some(&(i as i64, Some(format!("kept-{i}")))),
            "static-{i}, written once in the oldest segment"
        );
    }
    for i in UPDATES - ACCOUNTS..UPDATES {
        let key = format!("account-{}", i % ACCOUNTS);
        assert_eq!(
            latest.get(&key),
            Some(&((STATIC + i) as i64, Some(format!("balance-{i}")))),
            "{key}: its latest balance"
        );
    }
}

/// Power lost in the middle of a compaction's swap, after the cleaned file
/// was fsynced and before the rename over the segment was: the old segment
/// is whole, nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_compaction_cut_in_the_middle_of_its_swap_loses_nothing() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    compacted_balances(&bootstrap).await;
    machine.disk.cut_power_after_sync_of(".cleaned");
    compact_now(&bootstrap).await;
    eventually(
        Duration::from_secs(60),
        "a compaction's cleaned file",
        || machine.disk.power_was_cut(),
    );
    let (broker, _survived) = machine.power_loss(None);
    assert_latest_values(&broker.bootstrap());
}

/// Power lost right after a compaction's swap became durable (the rename
/// over the segment and its directory's fsync): the compacted segment is
/// on disk whole, so nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread")]
async fn power_lost_right_after_a_compaction_swap_keeps_the_compacted_segment() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    compacted_balances(&bootstrap).await;
    machine.disk.cut_power_after_rename_of(".cleaned");
    compact_now(&bootstrap).await;
    eventually(Duration::from_secs(60), "a compaction's swap", || {
        machine.disk.power_was_cut()
    });
    let (broker, _survived) = machine.power_loss(None);
    assert_latest_values(&broker.bootstrap());
}

/// Prints the offline replicas of `doomed` partition 0, with kafka-python.
const OFFLINE_REPLICAS: &str = "import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
print(admin.describe_topics(['doomed'])[0]['partitions'][0]['offline_replicas'])";

/// An fsync that fails takes the log directory offline: produce and
/// ListOffsets answer KAFKA_STORAGE_ERROR from then on, even once the disk
/// works again (nothing is retried), while metadata (naming the replica
/// offline) and group commits are still served. A restart recovers what
/// reached the disk.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_fsync_takes_the_log_directory_offline() {
    let machine = Machine::start();
    let bootstrap = machine.bootstrap();
    create_topic(&bootstrap, "doomed", 1, &[]).await;
    let acknowledged = produce_acknowledged(&bootstrap, "doomed", 1, 10).await;
    machine.disk.fail_fsyncs_under("doomed-0");
    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "all")
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let send = |payload: &'static str| {
        producer.send(
            FutureRecord::<(), _>::to("doomed")
                .payload(payload)
                .partition(0),
            TIMEOUT,
        )
    };
    match send("lost").await {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::KafkaStorageError)
        }
        other => panic!("a produce whose fsync failed: {other:?}"),
    }
    machine.disk.fail_fsyncs_under("no-such-file");
    match send("after").await {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::KafkaStorageError)
        }
        other => panic!("a produce to an offline log directory: {other:?}"),
    }
    let client: BaseConsumer = config(&bootstrap)
        .set("group.id", "still-served")
        .set("enable.auto.commit", "false")
        .create()
        .expect("client");
    assert!(
        client
            .fetch_watermarks("doomed", 0, Duration::from_secs(5))
            .is_err(),
        "ListOffsets of an offline partition fails"
    );
    let metadata = client
        .fetch_metadata(Some("doomed"), TIMEOUT)
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 1);
    // Metadata names the replica offline (librdkafka does not show the
    // field; kafka-python does).
    let listed = std::process::Command::new("python3")
        .args(["-c", OFFLINE_REPLICAS, &bootstrap])
        .output()
        .expect("python3 runs (scripts/test installs kafka-python)");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "[1]",
        "offline replicas of doomed/0: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("doomed", 0, Offset::Offset(3))
        .expect("offset");
    client
        .commit(&offsets, CommitMode::Sync)
        .expect("group commits are still served");
    drop(client);
    let (broker, _survived) = machine.power_loss(None);
    let stored = stored(&broker.bootstrap(), "doomed", 1, "read_uncommitted");
    for (at, payload) in &acknowledged {
        assert_eq!(
            stored.get(at),
            Some(payload),
            "acknowledged record at {at:?}"
        );
    }
}
