//! An embedded broker that also listens for Kafka clients: a librdkafka
//! producer writes over TCP, the in-process consumer reads the records, and
//! a record the in-process producer writes reaches a librdkafka consumer.
//!
//! cargo run --example embedded_with_kafka_clients

use actorlog::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::error::Error;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    run().await?;
    Ok(())
}

/// What each side read: the in-process consumer's values, then the one the
/// librdkafka consumer got.
async fn run() -> Result<(Vec<String>, String), Box<dyn Error>> {
    let broker = Broker::builder()
        .in_memory()
        .listen("127.0.0.1:0")
        .start()
        .await?;
    let bootstrap = broker
        .local_addr()
        .ok_or("the broker has no listener")?
        .to_string();
    println!("Kafka clients connect to {bootstrap}");
    broker.create_topic("events", 1).await?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    for i in 0..5 {
        let payload = format!("event {i}");
        producer
            .send(
                FutureRecord::<(), _>::to("events").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }

    let mut consumer = broker.consumer("in-process").subscribe(["events"]).await?;
    let mut read = Vec::new();
    while read.len() < 5 {
        for delivered in consumer.poll().await? {
            let value = delivered.record.value.unwrap_or_default();
            read.push(String::from_utf8_lossy(&value).into_owned());
        }
    }
    println!("in process: {read:?}");
    consumer.close().await?;

    broker
        .producer()
        .send("replies", None, b"written in process")
        .await?;
    let remote: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "remote")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset("replies", 0, Offset::Beginning)?;
    remote.assign(&partitions)?;
    let message = tokio::time::timeout(Duration::from_secs(30), remote.recv()).await??;
    let reply = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
    println!("over TCP: {reply}");
    drop(message);
    drop(remote);
    broker.shutdown().await?;
    Ok((read, reply))
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread")]
    async fn records_cross_both_ways() {
        let (read, reply) = super::run().await.expect("the example runs");
        let expected: Vec<String> = (0..5).map(|i| format!("event {i}")).collect();
        assert_eq!(read, expected);
        assert_eq!(reply, "written in process");
    }
}
