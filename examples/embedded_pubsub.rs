//! Start a broker inside this process, produce keyed records with the
//! in-process producer and read them back: no TCP anywhere.
//!
//! cargo run --example embedded_pubsub

use actorlog::{Broker, Error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let broker = Broker::builder().temporary().start().await?;
    broker.create_topic("greetings", 3).await?;
    let producer = broker.producer();
    for (key, value) in [
        ("en", "hello"),
        ("fr", "bonjour"),
        ("de", "hallo"),
        ("en", "hi"),
    ] {
        let (partition, offset) = producer
            .send("greetings", Some(key.as_bytes()), value.as_bytes())
            .await?;
        println!("{key}={value} -> partition {partition} offset {offset}");
    }
    for partition in 0..3 {
        for record in broker.read("greetings", partition, 0).await? {
            let text = |b: Option<bytes::Bytes>| {
                String::from_utf8_lossy(&b.unwrap_or_default()).into_owned()
            };
            println!(
                "partition {partition} offset {}: {}={}",
                record.offset,
                text(record.key),
                text(record.value)
            );
        }
    }
    broker.shutdown().await
}
