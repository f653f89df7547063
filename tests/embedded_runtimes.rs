//! The embedded broker under each kind of runtime — its own (driven by
//! `actorlog::block_on`), tokio's current-thread and multi-thread
//! schedulers, an actix System — and its shutdown: no thread left behind,
//! no file descriptor left open, and on disk every record and commit there
//! when a broker opens the directory again.
//!
//! This file holds a single test so that no other test's threads are
//! counted.

use actorlog::{Broker, BrokerBuilder, Error};
use std::future::Future;
use std::path::Path;

/// Names of this process's threads, sorted; sled's IO pool is left out: it
/// is process-wide, started by the first sled database and never stopped.
fn threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.starts_with("sled-io"))
        .collect();
    names.sort();
    names
}

/// Open file descriptors that are segments kept in memory.
fn memory_segments() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("/memfd:actorlog-"))
        .count()
}

/// Produces `count` keyed records to a new topic, the first half of them
/// read by a group consumer that commits: what an application does.
/// Returns what the consumer read.
async fn exercise(broker: &Broker, topic: &str, count: usize) -> Result<Vec<String>, Error> {
    broker.create_topic(topic, 3).await?;
    produce(broker, topic, 0..count / 2).await?;
    let values = read_some(broker, topic, count / 2).await?;
    produce(broker, topic, count / 2..count).await?;
    Ok(values)
}

async fn produce(broker: &Broker, topic: &str, ids: std::ops::Range<usize>) -> Result<(), Error> {
    let producer = broker.producer();
    for i in ids {
        producer
            .send(
                topic,
                Some(format!("key-{i}").as_bytes()),
                format!("value-{i}").as_bytes(),
            )
            .await?;
    }
    Ok(())
}

/// Reads at least `wanted` records as a member of group "app", commits
/// and leaves.
async fn read_some(broker: &Broker, topic: &str, wanted: usize) -> Result<Vec<String>, Error> {
    let mut consumer = broker.consumer("app").subscribe([topic]).await?;
    let mut values = Vec::new();
    while values.len() < wanted {
        for delivered in consumer.poll().await? {
            let value = delivered.record.value.unwrap_or_default();
            values.push(String::from_utf8_lossy(&value).into_owned());
        }
    }
    consumer.close().await?;
    Ok(values)
}

/// Starts an in-memory broker, exercises it and shuts it down, all inside
/// `run`'s runtime; then checks that nothing of it is left.
fn in_memory_under(
    runtime: &'static str,
    run: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()>>>),
) {
    let before = threads();
    let unused_dir = tempfile::tempdir().expect("temp dir");
    let data_dir = unused_dir.path().join("data");
    let dir = data_dir.clone();
    run(Box::pin(async move {
        let broker = in_memory(&dir).start().await.expect("started");
        let values = exercise(&broker, "events", 30).await.expect("exercised");
        assert_eq!(values.len(), 15, "{runtime}: {values:?}");
        assert!(
            memory_segments() >= 3,
            "{runtime}: segments are memory files"
        );
        broker.shutdown().await.expect("shut down");
    }));
    assert_eq!(threads(), before, "{runtime}: threads left behind");
    assert_eq!(memory_segments(), 0, "{runtime}: segments left open");
    assert!(
        !data_dir.exists(),
        "{runtime}: in memory, data_dir is not touched"
    );
}

fn in_memory(data_dir: &Path) -> BrokerBuilder {
    Broker::builder()
        .data_dir(data_dir)
        .in_memory()
        .config(|c| c.group_initial_rebalance_delay_ms = 0)
}

#[test]
fn runs_under_any_runtime_and_shuts_down_cleanly() {
    // The first broker starts sled's process-wide pool; count from there.
    actorlog::block_on(async {
        let broker = Broker::builder()
            .in_memory()
            .start()
            .await
            .expect("started");
        broker.shutdown().await.expect("shut down");
    });

    in_memory_under("no runtime", actorlog::block_on);
    in_memory_under("tokio current-thread", |f| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f);
    });
    in_memory_under("tokio multi-thread", |f| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f);
    });
    in_memory_under("actix System", |f| {
        actix_rt::System::new().block_on(f);
    });

    // On disk: what one broker wrote and committed, the next one finds.
    let before = threads();
    let dir = tempfile::tempdir().expect("temp dir");
    let on_disk = || {
        Broker::builder()
            .data_dir(dir.path())
            .config(|c| c.group_initial_rebalance_delay_ms = 0)
    };
    let first_half = actorlog::block_on(async {
        let broker = on_disk().start().await.expect("started");
        let values = exercise(&broker, "ledger", 40).await.expect("exercised");
        broker.shutdown().await.expect("shut down");
        values
    });
    assert_eq!(threads(), before, "disk: threads left behind");
    let (records, second_half) = actorlog::block_on(async {
        let broker = on_disk().start().await.expect("started again");
        let mut records = 0;
        for partition in 0..3 {
            records += broker
                .read("ledger", partition, 0)
                .await
                .expect("read")
                .len();
        }
        let rest = 40 - first_half.len();
        let second_half = read_some(&broker, "ledger", rest).await.expect("resumed");
        broker.shutdown().await.expect("shut down");
        (records, second_half)
    });
    assert_eq!(records, 40, "every record is there after a restart");
    assert_eq!((first_half.len(), second_half.len()), (20, 20));
    let mut all: Vec<&String> = first_half.iter().chain(&second_half).collect();
    all.sort();
    all.dedup();
    assert_eq!(
        (all.len(), first_half.len() + second_half.len()),
        (40, 40),
        "the group resumed at its commits: nothing read twice, nothing skipped"
    );
    assert_eq!(
        threads(),
        before,
        "disk: threads left behind after the restart"
    );
}
