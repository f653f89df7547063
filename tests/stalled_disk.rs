//! No worker thread waits on the disk: a partition whose writes stall (a
//! FUSE disk that holds back the writes to one partition's files) delays
//! its own producers only. The broker runs one worker thread, so every
//! connection and partition shares it; if an append waited there for the
//! disk, the other topic's producer would get no answer either.
//!
//! Needs root, /dev/fuse and fusermount3 (Debian's `fuse3`, which
//! `scripts/test` installs).

mod broker_process;
mod embedded_broker;
mod power_loss_fs;

use broker_process::BrokerProcess;
use embedded_broker::{config, create_topic, eventually, read_records};
use power_loss_fs::PowerLossDisk;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A broker on a disk that can stall. Field order: the broker goes before
/// its disk is unmounted.
struct Machine {
    broker: BrokerProcess,
    _config: tempfile::TempDir,
    disk: PowerLossDisk,
}

impl Drop for Machine {
    /// A process waiting for a held write cannot even be killed: the
    /// writes go first, even when the test failed.
    fn drop(&mut self) {
        self.disk.release_writes();
    }
}

fn start() -> Machine {
    let disk = PowerLossDisk::mount();
    let config = tempfile::tempdir().expect("config dir");
    let path = config.path().join("config.yaml");
    std::fs::write(&path, "worker_threads: 1\nio_threads: 2\n").expect("config written");
    let broker = BrokerProcess::start_on(
        disk.path(),
        &["--config", path.to_str().expect("utf-8 path")],
    );
    Machine {
        broker,
        _config: config,
        disk,
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    config(bootstrap)
        .set("acks", "1")
        .set("linger.ms", "0")
        .set("message.timeout.ms", TIMEOUT.as_millis().to_string())
        .create()
        .expect("producer")
}

async fn send(producer: &FutureProducer, topic: &str, value: &str) -> Result<i64, String> {
    let record = FutureRecord::<(), _>::to(topic).payload(value).partition(0);
    producer
        .send(record, Duration::ZERO)
        .await
        .map(|delivered| delivered.offset)
        .map_err(|(e, _)| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_stalled_on_the_disk_delays_only_its_own_producers() {
    let machine = start();
    let bootstrap = machine.broker.bootstrap();
    create_topic(&bootstrap, "stalled", 1, &[]).await;
    create_topic(&bootstrap, "free", 1, &[]).await;
    let (stalled, free) = (producer(&bootstrap), producer(&bootstrap));
    assert_eq!(send(&stalled, "stalled", "before").await, Ok(0));
    assert_eq!(send(&free, "free", "before").await, Ok(0));

    machine.disk.stall_writes_under("stalled-0");
    let held = tokio::spawn(async move { send(&stalled, "stalled", "held").await });
    eventually(TIMEOUT, "the held append to reach the disk", || {
        machine.disk.stalled_writes() > 0
    });

    // The other topic's producer is answered while the append waits.
    for i in 0..3 {
        let offset = send(&free, "free", &format!("during-{i}")).await;
        assert_eq!(offset, Ok(i + 1), "an append to another partition");
    }
    assert!(!held.is_finished(), "the held append waits for its disk");

    machine.disk.release_writes();
    let held = held.await.expect("the held send");
    assert_eq!(held, Ok(1), "the held append, once its disk answers");
    let values = |topic| -> Vec<String> {
        read_records(&bootstrap, topic)
            .into_iter()
            .filter_map(|(_, _, value)| value)
            .collect()
    };
    assert_eq!(values("stalled"), ["before", "held"]);
    assert_eq!(
        values("free"),
        ["before", "during-0", "during-1", "during-2"]
    );
}
