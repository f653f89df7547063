//! A data directory the broker cannot use: a missing parent or a read-only
//! file system stops `serve` at start with a message naming `data_dir`; a
//! full disk gives producers KAFKA_STORAGE_ERROR, and once space returns
//! the broker takes writes again and has lost none it acknowledged.
//!
//! Read-only and full file systems are small tmpfs mounts, which needs root
//! (as in CI's container); without it these two tests fail.

mod broker_process;
mod embedded_broker;

use broker_process::{actorlog, free_port, BrokerProcess};
use embedded_broker::{config, create_topic, read_records};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs at {} (needs root): {status}",
            at.display()
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the broker may still hold files open while it is killed.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Runs `serve` on `data_dir`, which must fail; its stderr.
fn serve_fails(data_dir: &Path) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    let (ok, _, stderr) = actorlog(
        &[
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            data_dir.to_str().expect("utf-8"),
        ],
        "",
    );
    assert!(!ok, "serve on {} must fail", data_dir.display());
    stderr
}

#[test]
fn a_data_dir_without_its_parent_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("no-such-parent").join("data");
    let stderr = serve_fails(&data_dir);
    assert!(
        stderr.contains("data_dir") && stderr.contains("parent directory does not exist"),
        "{stderr}"
    );
    assert!(!data_dir.exists(), "nothing was created");
}

#[test]
fn a_read_only_data_dir_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _read_only = Tmpfs::mount(dir.path(), "ro,size=1m");
    let stderr = serve_fails(dir.path());
    assert!(
        stderr.contains("data_dir") && stderr.contains("not writable"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_produce_requests_until_space_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = Tmpfs::mount(dir.path(), "size=8m");
    let mut broker = BrokerProcess::start_on(&disk.0, &[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "filling", 1, &[]).await;
    // Space to give back once the disk is full.
    let reserve = disk.0.join("reserve");
    std::fs::write(&reserve, vec![0u8; 1 << 20]).expect("reserve written");
    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "all")
        .set("retries", "0")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let payload = |i: usize| format!("{i:06}:{}", "x".repeat(64 * 1024));
    let send = |i: usize| {
        let producer = producer.clone();
        async move {
            let value = payload(i);
            let record = FutureRecord::<(), _>::to("filling")
                .payload(&value)
                .partition(0);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .map(|delivered| delivered.offset)
                .map_err(|(e, _)| e)
        }
    };
    let mut acknowledged = Vec::new();
    let error = loop {
        assert!(acknowledged.len() < 1000, "8 MiB filled without an error");
        match send(acknowledged.len()).await {
            Ok(offset) => acknowledged.push((offset, payload(acknowledged.len()))),
            Err(e) => break e,
        }
    };
    assert_eq!(
        error,
        KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError),
        "a full disk is a storage error"
    );
    assert!(broker.is_running(), "the broker did not crash");
    std::fs::remove_file(&reserve).expect("space given back");
    let offset = send(acknowledged.len()).await.expect("writes work again");
    acknowledged.push((offset, payload(acknowledged.len())));
    broker.terminate();
    broker.restart();
    let stored: Vec<(i64, String)> = read_records(&bootstrap, "filling")
        .into_iter()
        .map(|(offset, _, value)| (offset, value.unwrap_or_default()))
        .collect();
    assert_eq!(
        stored, acknowledged,
        "every acknowledged record, nothing torn"
    );
}
