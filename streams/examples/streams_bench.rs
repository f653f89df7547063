//! Throughput of a streams application on this machine: records per second
//! through a stateless map and through a windowed count, at least once and
//! exactly once, against an embedded broker over loopback TCP.
//!
//! cargo run --release -p actorlog-streams --example streams_bench -- [RECORDS]
//!
//! The input is written first; each run is a fresh application (its own
//! group) reading it from the start, timed from `run` until the group has
//! committed the end of every input partition.

use actorlog::Broker;
use actorlog_streams::{
    Bytes, Guarantee, StreamsBuilder, StreamsConfig, TimeWindows, Topology, WindowedSerde, I64,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::error::Error;
use std::time::{Duration, Instant};

const INPUT: &str = "bench-input";
const PARTITIONS: i32 = 4;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let records: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 500_000,
    };
    let broker = Broker::builder()
        .in_memory()
        .listen("127.0.0.1:0")
        .start()
        .await?;
    let bootstrap = broker.local_addr().ok_or("no listener")?.to_string();
    broker.create_topic(INPUT, PARTITIONS).await?;
    broker.create_topic("bench-mapped", PARTITIONS).await?;
    broker.create_topic("bench-windows", PARTITIONS).await?;
    write_input(&bootstrap, records).await?;
    println!("{records} input records of 100 bytes, {PARTITIONS} partitions");

    for guarantee in [Guarantee::AtLeastOnce, Guarantee::ExactlyOnceV2] {
        for (name, topology) in [
            ("stateless map", stateless(guarantee)),
            ("windowed count", windowed(guarantee)),
        ] {
            let app_id = app_id(name, guarantee);
            let state = tempfile::tempdir()?;
            let config = StreamsConfig::new(&bootstrap, state.path()).guarantee(guarantee);
            let started = Instant::now();
            let app = topology?.run(&config).await?;
            wait_for_end(&bootstrap, &app_id)?;
            let elapsed = started.elapsed();
            app.close().await?;
            println!(
                "{name:15} {guarantee:?}: {:>9.0} records/s ({elapsed:.2?})",
                records as f64 / elapsed.as_secs_f64()
            );
        }
    }
    broker.shutdown().await?;
    Ok(())
}

fn app_id(name: &str, guarantee: Guarantee) -> String {
    format!("bench-{}-{guarantee:?}", name.replace(' ', "-")).to_lowercase()
}

/// Values upper-cased (a copy per record) to `bench-mapped`.
fn stateless(guarantee: Guarantee) -> Result<Topology, Box<dyn Error>> {
    let mut b = StreamsBuilder::new(&app_id("stateless map", guarantee));
    b.stream::<Vec<u8>, Vec<u8>>(INPUT, Bytes, Bytes)
        .map_values(|v| v.to_ascii_uppercase())
        .to("bench-mapped", Bytes, Bytes);
    Ok(b.build()?)
}

/// Records per key in one-second tumbling windows (1,000 keys), each
/// update to `bench-windows`.
fn windowed(guarantee: Guarantee) -> Result<Topology, Box<dyn Error>> {
    let mut b = StreamsBuilder::new(&app_id("windowed count", guarantee));
    b.stream::<Vec<u8>, Vec<u8>>(INPUT, Bytes, Bytes)
        .group_by_key(Bytes, Bytes)
        .window(TimeWindows::tumbling(Duration::from_secs(1)))
        .count("counts")
        .to_stream()
        .to("bench-windows", WindowedSerde(Bytes), I64);
    Ok(b.build()?)
}

async fn write_input(bootstrap: &str, records: usize) -> Result<(), Box<dyn Error>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()?;
    let value = [b'x'; 100];
    let mut pending = Vec::new();
    for i in 0..records {
        let key = format!("key-{}", i % 1000);
        // Ten records per millisecond of event time.
        let timestamp = i64::try_from(i / 10)?;
        let record = FutureRecord::to(INPUT)
            .key(&key)
            .payload(&value[..])
            .timestamp(timestamp);
        pending.push(producer.send_result(record).map_err(|(e, _)| e)?);
        if pending.len() == 10_000 {
            confirm(pending.drain(..)).await?;
        }
    }
    confirm(pending.into_iter()).await
}

/// Waits for the broker's acknowledgement of each record.
async fn confirm(
    sent: impl Iterator<Item = rdkafka::producer::DeliveryFuture>,
) -> Result<(), Box<dyn Error>> {
    for delivery in futures_util::future::join_all(sent).await {
        delivery?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Blocks until group `group` has committed the end of every input partition.
fn wait_for_end(bootstrap: &str, group: &str) -> Result<(), Box<dyn Error>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()?;
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        ends.push(
            consumer
                .fetch_watermarks(INPUT, p, Duration::from_secs(10))?
                .1,
        );
    }
    loop {
        let mut list = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            list.add_partition(INPUT, p);
        }
        let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
        let done = committed
            .elements()
            .iter()
            .zip(&ends)
            .all(|(e, end)| matches!(e.offset(), Offset::Offset(o) if o >= *end));
        if done {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
