//! Exactly-once with a crash: two instances of an application, one a child
//! process killed with SIGKILL mid-stream; the surviving instance takes
//! over (restoring the dead one's stores from their changelogs, reading
//! from its committed offsets) and the output equals processing every
//! input record once, checked record by record against an in-memory
//! reference of the same topology.

mod common;

use actorlog_streams::{Guarantee, KafkaStreams, Str, StreamsBuilder, StreamsConfig, I64};
use common::{broker, eventually, produce, read_to_end, wait_for_commits, Record, PATIENCE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const APP: &str = "balances";
/// Tells a test process to be a worker instance: `bootstrap state-dir`.
const WORKER: &str = "ACTORLOG_STREAMS_EOS_WORKER";

/// Payments (key = account, value = cents) → positive ones summed per
/// account (`aggregate` into store `sums`) → every new balance to
/// `balance-updates`; and every payment, tagged, to `audit`.
fn topology() -> actorlog_streams::Topology {
    let mut b = StreamsBuilder::new(APP);
    let payments = b
        .stream::<String, String>("payments", Str, Str)
        .map_values(|cents| cents.parse::<i64>().unwrap_or(0));
    payments
        .map_values(|cents| format!("seen {cents}"))
        .to("audit", Str, Str);
    payments
        .filter(|_, cents| *cents > 0)
        .group_by_key(Str, I64)
        .aggregate(|| 0, |sum, cents| sum + cents, "sums", I64)
        .to_stream()
        .to("balance-updates", Str, I64);
    b.build().expect("a valid topology")
}

fn config(bootstrap: &str, dir: &Path) -> StreamsConfig {
    StreamsConfig::new(bootstrap, dir)
        .guarantee(Guarantee::ExactlyOnceV2)
        .client_config("session.timeout.ms", "6000")
        .client_config("heartbeat.interval.ms", "1000")
}

async fn start(bootstrap: &str, dir: &Path) -> KafkaStreams {
    topology()
        .run(&config(bootstrap, dir))
        .await
        .expect("the app starts")
}

/// Not a test of its own: the instance the exactly-once test runs in a
/// child process (and kills). Without the environment variable it does nothing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by exactly_once_despite_a_killed_instance as a child process"]
async fn worker_instance() {
    let Ok(args) = std::env::var(WORKER) else {
        return;
    };
    let (bootstrap, dir) = args.split_once(' ').expect("bootstrap and state dir");
    let _app = start(bootstrap, Path::new(dir)).await;
    println!("worker started");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

fn payments(from: i64, to: i64) -> Vec<Record> {
    (from..to)
        .map(|i| {
            let cents = (i * 37) % 1000 - 100;
            Record::text(&format!("account-{}", i % 29), &cents.to_string(), i)
        })
        .collect()
}

/// The topology over a list: the balance updates per account in order,
/// and the audit lines per account in order.
fn reference(input: &[Record]) -> (BTreeMap<String, Vec<i64>>, BTreeMap<String, Vec<String>>) {
    let mut sums: BTreeMap<String, i64> = BTreeMap::new();
    let mut updates: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut audit: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in input {
        let account = String::from_utf8(r.key.clone()).unwrap();
        let cents: i64 = String::from_utf8(r.value.clone()).unwrap().parse().unwrap();
        audit
            .entry(account.clone())
            .or_default()
            .push(format!("seen {cents}"));
        if cents > 0 {
            let sum = sums.entry(account.clone()).or_insert(0);
            *sum += cents;
            updates.entry(account).or_default().push(*sum);
        }
    }
    (updates, audit)
}

/// The committed offset of the group on each partition of `payments`.
fn committed(consumer: &BaseConsumer, partitions: &[i32]) -> Vec<i64> {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition("payments", *p);
    }
    let list = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    list.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .collect()
}

/// Reads `topic` until it holds at least `n` committed records and every
/// partition was read to its end: more than `n` records is a duplicate.
fn read_at_least(bootstrap: &str, topic: &str, n: usize) -> Vec<Record> {
    let started = Instant::now();
    loop {
        let records = read_to_end(bootstrap, topic);
        if records.len() >= n {
            return records;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{topic} has {} of {n} records",
            records.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The worker process, killed if the test ends early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_despite_a_killed_instance() {
    let (broker, bootstrap) = broker().await;
    for topic in ["payments", "audit", "balance-updates"] {
        broker.create_topic(topic, 4).await.expect("a topic");
    }
    let state = tempfile::tempdir().expect("a temp dir");
    let worker_dir = state.path().join("worker");
    let mut worker = KillOnDrop(
        Command::new(std::env::current_exe().expect("the test binary"))
            .args(["worker_instance", "--exact", "--ignored", "--nocapture"])
            .env(WORKER, format!("{bootstrap} {}", worker_dir.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("the worker starts"),
    );

    let survivor = start(&bootstrap, &state.path().join("survivor")).await;
    eventually("the instances share the 4 partitions", || {
        survivor.assigned_partitions().len() == 2
    })
    .await;
    let worker_partitions: Vec<i32> = (0..4)
        .filter(|p| {
            !survivor
                .assigned_partitions()
                .contains(&("payments".to_string(), *p))
        })
        .collect();

    let first = payments(0, 3000);
    produce(&bootstrap, "payments", &first).await;
    wait_for_commits(&bootstrap, APP, "payments");

    let offsets: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", APP)
        .create()
        .expect("a consumer");
    let before = committed(&offsets, &worker_partitions);
    let second = payments(3000, 12_000);
    // Written a slice at a time, so the worker is busy when it is killed.
    let producing = {
        let bootstrap = bootstrap.clone();
        let second = second.clone();
        tokio::spawn(async move {
            for slice in second.chunks(100) {
                produce(&bootstrap, "payments", slice).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    eventually("the worker commits some of the second part", || {
        committed(&offsets, &worker_partitions) > before
    })
    .await;
    worker.0.kill().expect("SIGKILL the worker");
    worker.0.wait().expect("the worker is gone");
    producing.await.expect("the second part is written");

    eventually("the survivor takes over all 4 partitions", || {
        survivor.assigned_partitions().len() == 4
    })
    .await;
    wait_for_commits(&bootstrap, APP, "payments");

    let input: Vec<Record> = first.into_iter().chain(second).collect();
    let (expected_updates, expected_audit) = reference(&input);
    let update_count = expected_updates.values().map(Vec::len).sum();
    let audit_count = expected_audit.values().map(Vec::len).sum();

    let mut updates: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in read_at_least(&bootstrap, "balance-updates", update_count) {
        let value: [u8; 8] = r.value.as_slice().try_into().expect("8 bytes");
        updates
            .entry(String::from_utf8(r.key).expect("utf-8"))
            .or_default()
            .push(i64::from_be_bytes(value));
    }
    let mut audit: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in read_at_least(&bootstrap, "audit", audit_count) {
        audit
            .entry(String::from_utf8(r.key).expect("utf-8"))
            .or_default()
            .push(String::from_utf8(r.value).expect("utf-8"));
    }
    assert_eq!(updates, expected_updates);
    assert_eq!(audit, expected_audit);

    survivor.close().await.expect("a clean close");
    broker.shutdown().await.expect("the broker stops");
}
