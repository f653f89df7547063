//! An embedded broker that also listens for Kafka clients: a librdkafka
//! producer writes over TCP, and the in-process reader sees the records.
//!
//! cargo run --example embedded_with_kafka_clients

use actorlog::{Broker, Error};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let broker = Broker::builder()
        .temporary()
        .listen("127.0.0.1:0".parse().expect("a valid address"))
        .start()
        .await?;
    let addr = broker.local_addr().ok_or(Error::Stopped)?;
    broker.create_topic("events", 1).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .create()
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    for i in 0..5 {
        let payload = format!("event {i}");
        producer
            .send(
                FutureRecord::<(), _>::to("events").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| Error::Io(std::io::Error::other(e)))?;
    }
    let records = broker.read("events", 0, 0).await?;
    for record in &records {
        println!(
            "offset {}: {}",
            record.offset,
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default())
        );
    }
    assert_eq!(
        records.len(),
        5,
        "every record written over TCP is visible in process"
    );
    broker.shutdown().await
}
