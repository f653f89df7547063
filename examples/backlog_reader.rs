//! A consumer reading a cold backlog must not slow a producer of another
//! topic. This writes a backlog of `--backlog-mb` to one topic, drops its
//! files from the page cache (`posix_fadvise(DONTNEED)`), and measures the
//! acknowledgement latency of an `acks=all` producer on another topic
//! twice: alone, then while a consumer reads the whole backlog from disk.
//! The broker runs with one worker thread, so both partitions share it:
//! the case where a read on the worker would stall the producer.
//!
//! cargo build --release && cargo run --release --example backlog_reader -- --backlog-mb 2048

#[path = "chaos/broker.rs"]
mod broker;

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The broker binary (default: target/release/actorlog).
    #[arg(long)]
    broker: Option<PathBuf>,
    /// Size of the backlog written to topic `backlog`.
    #[arg(long, default_value_t = 2048)]
    backlog_mb: u64,
    /// How long each latency phase lasts.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
}

#[tokio::main(worker_threads = 2)]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backlog_reader: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let binary = args.broker.unwrap_or_else(broker::default_binary);
    let config = "worker_threads: 1\nauto_create_topics: true\nsegment_bytes: 268435456\n";
    let broker = broker::Broker::start(&binary, config)?;
    let bootstrap = broker.bootstrap();
    println!("broker {} at {bootstrap}", binary.display());

    let written = write_backlog(&bootstrap, args.backlog_mb << 20).await?;
    println!("backlog: {} MiB written", written >> 20);
    let phase = Duration::from_secs(args.seconds);
    let backlog_dir = broker.data_dir().join("backlog-0");

    evict(&backlog_dir)?;
    let alone = produce_latencies(&bootstrap, phase).await?;
    report("producer alone", &alone);

    evict(&backlog_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let reader = {
        let (bootstrap, stop, read) = (bootstrap.clone(), stop.clone(), read.clone());
        std::thread::spawn(move || read_backlog(&bootstrap, &stop, &read))
    };
    let started = Instant::now();
    let with_reader = produce_latencies(&bootstrap, phase).await?;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    reader
        .join()
        .map_err(|_| "the backlog reader panicked".to_string())??;
    report("producer with the backlog reader", &with_reader);
    let mib = read.load(Ordering::Relaxed) as f64 / (1 << 20) as f64;
    println!(
        "backlog reader: {mib:.0} MiB in {elapsed:.1} s ({:.0} MiB/s, from disk)",
        mib / elapsed
    );
    Ok(())
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Fills topic `backlog` with `bytes` of 1 KiB records, as fast as the
/// broker takes them.
async fn write_backlog(bootstrap: &str, bytes: u64) -> Result<u64, String> {
    let producer: FutureProducer = client(bootstrap)
        .set("acks", "1")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .map_err(|e| format!("producer: {e}"))?;
    let value = vec![b'x'; 1024];
    let mut written = 0;
    let mut pending = Vec::new();
    while written < bytes {
        let record = FutureRecord::<(), _>::to("backlog").payload(&value);
        match producer.send_result(record) {
            Ok(delivery) => {
                pending.push(delivery);
                written += value.len() as u64;
            }
            Err(_) => {
                // The queue is full: let deliveries drain.
                producer.poll(Duration::from_millis(10));
            }
        }
        if pending.len() >= 100_000 {
            for delivery in pending.drain(..) {
                check_delivery(delivery.await)?;
            }
        }
    }
    for delivery in pending {
        check_delivery(delivery.await)?;
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| format!("flush: {e}"))?;
    Ok(written)
}

fn check_delivery<Lost>(
    result: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Lost>,
) -> Result<(), String> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(format!("backlog record refused: {e}")),
        Err(_) => Err("backlog delivery lost".to_string()),
    }
}

/// Writes back and drops from the page cache every log file of `dir`, so
/// the reader has to go to the disk.
fn evict(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        file.sync_all()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(|e| format!("posix_fadvise {}: {e}", path.display()))?;
    }
    Ok(())
}

/// One `acks=all` record at a time to topic `live` for `phase`: the time
/// from send to acknowledgement of each.
async fn produce_latencies(bootstrap: &str, phase: Duration) -> Result<Vec<Duration>, String> {
    let producer: FutureProducer = client(bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .map_err(|e| format!("producer: {e}"))?;
    // The topic's creation is not part of the measurement.
    send(&producer).await?;
    let mut latencies = Vec::new();
    let end = Instant::now() + phase;
    while Instant::now() < end {
        let sent = Instant::now();
        send(&producer).await?;
        latencies.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(latencies)
}

async fn send(producer: &FutureProducer) -> Result<(), String> {
    let record = FutureRecord::<(), _>::to("live").payload("ping");
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| format!("live record refused: {e}"))
}

/// Reads topic `backlog` from the start until told to stop or at its end.
fn read_backlog(bootstrap: &str, stop: &AtomicBool, read: &AtomicU64) -> Result<(), String> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "backlog-reader")
        .set("enable.auto.commit", "false")
        .set("max.partition.fetch.bytes", "4194304")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("backlog", 0, Offset::Beginning)
        .map_err(|e| format!("assignment: {e}"))?;
    consumer
        .assign(&assignment)
        .map_err(|e| format!("assign: {e}"))?;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                read.fetch_add(message.payload_len() as u64, Ordering::Relaxed);
            }
            Some(Err(e)) => return Err(format!("backlog read: {e}")),
            None => {}
        }
    }
    Ok(())
}

fn report(what: &str, latencies: &[Duration]) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
        sorted.get(i).copied().unwrap_or_default().as_secs_f64() * 1000.0
    };
    println!(
        "{what}: {} acks, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        sorted.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
