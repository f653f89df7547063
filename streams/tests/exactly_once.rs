//! Exactly-once with crashes: two instances of an application, one a child
//! process killed with SIGKILL while its work is open (input processed,
//! results and changelog records written, the input offsets not yet
//! committed), twice; the survivor and a replacement take over (restoring
//! the dead one's stores from their changelogs, reading from its committed
//! offsets) and the output equals processing every input record once,
//! checked record by record against an in-memory reference of the same
//! topology.
//!
//! The commit interval is long (2 s) and the input steady, and each kill
//! waits for one of the worker's commits and then for its changelog to grow
//! with records of the next interval, so it lands inside open work. At
//! least once, such a kill replays that work (audit lines twice, payments
//! summed twice into the restored balances): the control runs the same
//! scenario at least once and requires the output to be wrong.

mod common;

use actorlog_streams::{Guarantee, KafkaStreams, Str, StreamsBuilder, StreamsConfig, I64};
use common::{broker, eventually, producer, read_to_end, send, wait_for_commits, Record, PATIENCE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Long enough that a kill can be aimed inside the open work.
const COMMIT_INTERVAL: Duration = Duration::from_secs(2);
const CHANGELOG: &str = "balances-sums-changelog";
const APP: &str = "balances";
/// Tells a test process to be a worker instance: `bootstrap state-dir
/// guarantee` (`exactly_once` or `at_least_once`). The
/// worker writes its partitions to `<state-dir>.assigned` as they change.
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

fn config(bootstrap: &str, dir: &Path, guarantee: Guarantee) -> StreamsConfig {
    StreamsConfig::new(bootstrap, dir)
        .guarantee(guarantee)
        .commit_interval(COMMIT_INTERVAL)
        .client_config("transaction.timeout.ms", "6000")
        .client_config("session.timeout.ms", "6000")
        .client_config("heartbeat.interval.ms", "1000")
}

async fn start(bootstrap: &str, dir: &Path, guarantee: Guarantee) -> KafkaStreams {
    topology()
        .run(&config(bootstrap, dir, guarantee))
        .await
        .expect("the app starts")
}

/// Not a test of its own: the instance the exactly-once test runs in a
/// child process (and kills). Without the environment variable it does nothing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by the kill tests as a child process"]
async fn worker_instance() {
    let Ok(args) = std::env::var(WORKER) else {
        return;
    };
    let [bootstrap, dir, guarantee] = args.split(' ').collect::<Vec<_>>()[..] else {
        panic!("expected bootstrap, state dir and guarantee, not {args}");
    };
    let app = start(bootstrap, Path::new(dir), guarantee_named(guarantee)).await;
    let report = assignment_file(Path::new(dir));
    let written = report.with_extension("writing");
    loop {
        let partitions: Vec<String> = app
            .assigned_partitions()
            .iter()
            .map(|(_, p)| p.to_string())
            .collect();
        std::fs::write(&written, partitions.join(",")).expect("the assignment is written");
        std::fs::rename(&written, &report).expect("the assignment is published");
        tokio::time::sleep(Duration::from_millis(100)).await;
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

fn guarantee_name(guarantee: Guarantee) -> &'static str {
    match guarantee {
        Guarantee::AtLeastOnce => "at_least_once",
        Guarantee::ExactlyOnceV2 => "exactly_once",
    }
}

fn guarantee_named(name: &str) -> Guarantee {
    match name {
        "at_least_once" => Guarantee::AtLeastOnce,
        _ => Guarantee::ExactlyOnceV2,
    }
}

fn assignment_file(state_dir: &Path) -> PathBuf {
    state_dir.with_extension("assigned")
}

/// The partitions the worker with `state_dir` last said it holds.
fn worker_partitions(state_dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(assignment_file(state_dir))
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect()
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

/// The end of the changelog's `partitions` counting records of open
/// transactions (`watch` reads uncommitted).
fn changelog_end(watch: &BaseConsumer, partitions: &[i32]) -> i64 {
    partitions
        .iter()
        .map(|p| {
            watch
                .fetch_watermarks(CHANGELOG, *p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

/// SIGKILLs `worker`, which holds `partitions`, inside open work: right
/// after one of its commits, once its changelog grew with records of the
/// next interval and well before that interval ends.
async fn kill_in_open_work(worker: &mut KillOnDrop, watch: &BaseConsumer, partitions: &[i32]) {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < PATIENCE,
            "the worker had no open work to kill"
        );
        let before = committed(watch, partitions);
        while committed(watch, partitions) == before {
            assert!(started.elapsed() < PATIENCE, "the worker does not commit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let commit = committed(watch, partitions);
        let committed_at = Instant::now();
        // Past the commit's transaction markers, then records of the next interval.
        tokio::time::sleep(COMMIT_INTERVAL / 8).await;
        let end = changelog_end(watch, partitions);
        tokio::time::sleep(COMMIT_INTERVAL / 4).await;
        if changelog_end(watch, partitions) > end
            && committed(watch, partitions) == commit
            && committed_at.elapsed() < COMMIT_INTERVAL / 2
        {
            worker.0.kill().expect("SIGKILL the worker");
            worker.0.wait().expect("the worker is gone");
            return;
        }
    }
}

/// Starts a worker instance in a child process of this test binary.
fn spawn_worker(bootstrap: &str, state_dir: &Path, guarantee: Guarantee) -> KillOnDrop {
    KillOnDrop(
        Command::new(std::env::current_exe().expect("the test binary"))
            .args(["worker_instance", "--exact", "--ignored", "--nocapture"])
            .env(
                WORKER,
                format!(
                    "{bootstrap} {} {}",
                    state_dir.display(),
                    guarantee_name(guarantee)
                ),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("the worker starts"),
    )
}

/// Waits until the worker with `state_dir` and the survivor split the
/// four partitions two and two; the worker's.
async fn split(survivor: &KafkaStreams, state_dir: &Path) -> Vec<i32> {
    let mut partitions = Vec::new();
    eventually("the worker and the survivor share the 4 partitions", || {
        partitions = worker_partitions(state_dir);
        let mine = survivor.assigned_partitions();
        partitions.len() == 2
            && mine.len() == 2
            && partitions
                .iter()
                .all(|p| !mine.contains(&("payments".to_string(), *p)))
    })
    .await;
    partitions
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

/// Fails naming how many accounts differ and the first record that does,
/// rather than printing thousands of records.
fn assert_same<T: PartialEq + std::fmt::Debug>(
    topic: &str,
    got: &BTreeMap<String, Vec<T>>,
    expected: &BTreeMap<String, Vec<T>>,
) {
    let differing: BTreeSet<&String> = expected
        .keys()
        .chain(got.keys())
        .filter(|account| got.get(*account) != expected.get(*account))
        .collect();
    let Some(account) = differing.first() else {
        return;
    };
    let got = got.get(*account).map(Vec::as_slice).unwrap_or_default();
    let expected = expected
        .get(*account)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let at = got
        .iter()
        .zip(expected)
        .position(|(g, e)| g != e)
        .unwrap_or(got.len().min(expected.len()));
    panic!(
        "{topic}: {} accounts differ; {account} has {} records for {} expected, \
         first different at {at}: {:?} for {:?}",
        differing.len(),
        got.len(),
        expected.len(),
        got.get(at),
        expected.get(at),
    );
}

/// The worker process, killed if the test ends early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the balance-updates and audit topics hold after the scenario, and
/// what they should hold.
struct Outcome {
    updates: BTreeMap<String, Vec<i64>>,
    expected_updates: BTreeMap<String, Vec<i64>>,
    audit: BTreeMap<String, Vec<String>>,
    expected_audit: BTreeMap<String, Vec<String>>,
}

/// Two instances under `guarantee`, the worker killed inside open work,
/// replaced, and the replacement killed the same way, while payments
/// stream in; what the survivor leaves once it has processed them all.
async fn kill_twice_mid_interval(guarantee: Guarantee) -> Outcome {
    let (broker, bootstrap) = broker().await;
    for topic in ["payments", "audit", "balance-updates"] {
        broker.create_topic(topic, 4).await.expect("a topic");
    }
    let state = tempfile::tempdir().expect("a temp dir");
    let first_dir = state.path().join("worker-1");
    let mut worker = spawn_worker(&bootstrap, &first_dir, guarantee);
    let survivor = start(&bootstrap, &state.path().join("survivor"), guarantee).await;
    let partitions = split(&survivor, &first_dir).await;

    // Payments keep coming, 20 every 50 ms, until the kills are done.
    let stop = Arc::new(AtomicBool::new(false));
    let producing = {
        let (bootstrap, stop) = (bootstrap.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let producer = producer(&bootstrap);
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                send(&producer, "payments", &payments(next, next + 20)).await;
                next += 20;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            next
        })
    };

    let watch: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", APP)
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("a consumer");
    kill_in_open_work(&mut worker, &watch, &partitions).await;

    let second_dir = state.path().join("worker-2");
    let mut worker = spawn_worker(&bootstrap, &second_dir, guarantee);
    let partitions = split(&survivor, &second_dir).await;
    kill_in_open_work(&mut worker, &watch, &partitions).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let produced = producing.await.expect("the payments are written");
    eventually("the survivor takes over all 4 partitions", || {
        survivor.assigned_partitions().len() == 4
    })
    .await;
    wait_for_commits(&bootstrap, APP, "payments");

    let (expected_updates, expected_audit) = reference(&payments(0, produced));
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
    survivor.close().await.expect("a clean close");
    broker.shutdown().await.expect("the broker stops");
    Outcome {
        updates,
        expected_updates,
        audit,
        expected_audit,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_despite_instances_killed_mid_transaction() {
    let outcome = kill_twice_mid_interval(Guarantee::ExactlyOnceV2).await;
    assert_same(
        "balance-updates",
        &outcome.updates,
        &outcome.expected_updates,
    );
    assert_same("audit", &outcome.audit, &outcome.expected_audit);
}

/// The control: the same kills at least once replay work, which shows.
#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_replays_the_work_a_kill_interrupts() {
    let outcome = kill_twice_mid_interval(Guarantee::AtLeastOnce).await;
    assert!(
        outcome.updates != outcome.expected_updates && outcome.audit != outcome.expected_audit,
        "killed inside open work, at least once repeats it: the output cannot equal the reference"
    );
}
