//! Transactions with librdkafka: committed records are visible to
//! read_committed consumers and aborted ones are not, a second producer with
//! the same transactional id fences the first, and offsets sent with a
//! transaction count only once it commits.

mod broker_process;
mod embedded_broker;

use embedded_broker::{config, create_topic, read_all, start};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);
const IDLE: Duration = Duration::from_secs(2);

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

fn send(producer: &BaseProducer, topic: &str, partition: i32, value: &str) {
    producer
        .send(
            BaseRecord::<(), _>::to(topic)
                .payload(value)
                .partition(partition),
        )
        .expect("enqueued");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_committed_sees_only_committed_transactions() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "txn", 3, &[]).await;
    let producer = transactional(&bootstrap, "writer");
    producer.begin_transaction().expect("begin");
    for i in 0..30 {
        send(&producer, "txn", i % 3, &format!("committed-{i}"));
    }
    producer.commit_transaction(TIMEOUT).expect("commit");
    producer.begin_transaction().expect("begin");
    for i in 0..30 {
        send(&producer, "txn", i % 3, &format!("aborted-{i}"));
    }
    producer.flush(TIMEOUT).expect("flush");
    producer.abort_transaction(TIMEOUT).expect("abort");
    producer.begin_transaction().expect("begin");
    send(&producer, "txn", 0, "committed-last");
    producer.commit_transaction(TIMEOUT).expect("commit");

    let committed = read_all(&bootstrap, "txn", 3, "read_committed", IDLE);
    assert_eq!(committed.len(), 31);
    assert!(
        committed.iter().all(|v| v.starts_with("committed")),
        "{committed:?}"
    );
    let everything = read_all(&bootstrap, "txn", 3, "read_uncommitted", IDLE);
    assert_eq!(everything.len(), 61);
    assert_eq!(
        everything
            .iter()
            .filter(|v| v.starts_with("aborted"))
            .count(),
        30
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_transaction_holds_read_committed_consumers_back() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "pending", 1, &[]).await;
    let producer = transactional(&bootstrap, "slow-writer");
    producer.begin_transaction().expect("begin");
    send(&producer, "pending", 0, "not yet");
    producer.flush(TIMEOUT).expect("flush");
    assert!(read_all(&bootstrap, "pending", 1, "read_committed", IDLE).is_empty());
    assert_eq!(
        read_all(&bootstrap, "pending", 1, "read_uncommitted", IDLE),
        ["not yet"]
    );
    producer.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(
        read_all(&bootstrap, "pending", 1, "read_committed", IDLE),
        ["not yet"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_producer_with_the_same_id_fences_the_old_one() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "fenced", 1, &[]).await;
    let old = transactional(&bootstrap, "same-id");
    old.begin_transaction().expect("begin");
    send(&old, "fenced", 0, "zombie");
    old.flush(TIMEOUT).expect("flush");
    let new = transactional(&bootstrap, "same-id");
    let error = old
        .commit_transaction(TIMEOUT)
        .expect_err("the old producer is fenced");
    assert_eq!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fenced),
        "{error}"
    );
    new.begin_transaction().expect("begin");
    send(&new, "fenced", 0, "alive");
    new.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(
        read_all(&bootstrap, "fenced", 1, "read_committed", IDLE),
        ["alive"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_sent_with_a_transaction_count_only_when_it_commits() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "input", 1, &[]).await;
    create_topic(&bootstrap, "output", 1, &[]).await;
    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "pipeline")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.group_metadata().expect("group metadata");
    let producer = transactional(&bootstrap, "pipeline-writer");
    let offsets_at = |offset: i64| {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("input", 0, Offset::Offset(offset))
            .expect("offset");
        offsets
    };
    producer.begin_transaction().expect("begin");
    send(&producer, "output", 0, "result-1");
    producer
        .send_offsets_to_transaction(&offsets_at(10), &metadata, TIMEOUT)
        .expect("send offsets");
    producer.flush(TIMEOUT).expect("flush");
    producer.abort_transaction(TIMEOUT).expect("abort");
    assert_eq!(
        committed_offset(&consumer),
        None,
        "aborted offsets are not stored"
    );
    producer.begin_transaction().expect("begin");
    send(&producer, "output", 0, "result-2");
    producer
        .send_offsets_to_transaction(&offsets_at(20), &metadata, TIMEOUT)
        .expect("send offsets");
    producer.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(committed_offset(&consumer), Some(20));
    assert_eq!(
        read_all(&bootstrap, "output", 1, "read_committed", IDLE),
        ["result-2"]
    );
}

fn committed_offset(consumer: &BaseConsumer) -> Option<i64> {
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition("input", 0);
    let committed = consumer
        .committed_offsets(wanted, TIMEOUT)
        .expect("committed offsets");
    committed
        .elements()
        .first()
        .and_then(|e| e.offset().to_raw())
        .filter(|o| *o >= 0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_pipeline_restarted_writes_each_result_exactly_once() {
    use std::process::{Command, Stdio};
    let broker = broker_process::BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "input", 1, &[]).await;
    create_topic(&bootstrap, "output", 1, &[]).await;
    embedded_broker::produce(&bootstrap, "input", 1, 2000).await;
    let script = broker_process::source("tests/scripts/transform_pipeline.py");
    let pipeline = || {
        Command::new("python3")
            .arg(&script)
            .args(["--bootstrap", &bootstrap])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pipeline starts")
    };
    // First run: kill it once it has committed some transactions.
    let mut first = pipeline();
    let stdout = first.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    for _ in 0..5 {
        lines
            .next()
            .expect("a committed transaction")
            .expect("line");
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("exit");
    // Second run: it resumes from the committed offsets and drains the input.
    let second = pipeline().wait_with_output().expect("second run");
    assert!(second.status.success(), "the restarted pipeline finishes");
    let output = read_all(&bootstrap, "output", 1, "read_committed", IDLE);
    let mut expected: Vec<String> = (0..2000).map(|i| format!("VALUE-{i}")).collect();
    let mut got = output.clone();
    expected.sort();
    got.sort();
    assert_eq!(got.len(), 2000, "each input exactly once in the output");
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_drops_aborted_records() {
    let (_broker, bootstrap) = start(|c| {
        c.segment_bytes = 4096;
        c.retention_check_interval_ms = 100;
    })
    .await;
    create_topic(
        &bootstrap,
        "compacted-txn",
        1,
        &[("cleanup.policy", "compact")],
    )
    .await;
    let producer = transactional(&bootstrap, "compactor");
    producer.begin_transaction().expect("begin");
    for i in 0..20 {
        let key = format!("aborted-{i}");
        producer
            .send(
                BaseRecord::to("compacted-txn")
                    .key(&key)
                    .payload("dropped")
                    .partition(0),
            )
            .expect("enqueued");
    }
    producer.flush(TIMEOUT).expect("flush");
    producer.abort_transaction(TIMEOUT).expect("abort");
    // Enough committed data after it to close the segments it is in.
    producer.begin_transaction().expect("begin");
    for i in 0..200 {
        let key = format!("kept-{i}");
        producer
            .send(
                BaseRecord::to("compacted-txn")
                    .key(&key)
                    .payload("kept")
                    .partition(0),
            )
            .expect("enqueued");
    }
    producer.commit_transaction(TIMEOUT).expect("commit");
    embedded_broker::eventually(
        Duration::from_secs(30),
        "aborted records compacted away",
        || {
            !read_all(&bootstrap, "compacted-txn", 1, "read_uncommitted", IDLE)
                .iter()
                .any(|v| v == "dropped")
        },
    );
    let committed = read_all(&bootstrap, "compacted-txn", 1, "read_committed", IDLE);
    assert_eq!(committed.len(), 200);
}
