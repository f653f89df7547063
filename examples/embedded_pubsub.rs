//! Start a broker inside this process, produce keyed records with the
//! in-process producer and read them back: no TCP, no files.
//!
//! cargo run --example embedded_pubsub

use actorlog::{Broker, ConsumedRecord, Error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run().await?;
    Ok(())
}

/// Writes four greetings keyed by language and returns each partition's
/// records.
async fn run() -> Result<Vec<Vec<ConsumedRecord>>, Error> {
    let broker = Broker::builder().in_memory().start().await?;
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
    let mut partitions = Vec::new();
    for partition in 0..3 {
        let records = broker.read("greetings", partition, 0).await?;
        for record in &records {
            println!(
                "partition {partition} offset {}: {}={}",
                record.offset,
                text(&record.key),
                text(&record.value)
            );
        }
        partitions.push(records);
    }
    broker.shutdown().await?;
    Ok(partitions)
}

fn text(bytes: &Option<bytes::Bytes>) -> String {
    String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_key_keeps_its_partition_and_order() {
        let partitions = super::run().await.expect("the example runs");
        let all: Vec<(usize, String, String)> = partitions
            .iter()
            .enumerate()
            .flat_map(|(p, records)| {
                records
                    .iter()
                    .map(move |r| (p, super::text(&r.key), super::text(&r.value)))
            })
            .collect();
        assert_eq!(all.len(), 4, "{all:?}");
        let english: Vec<_> = all.iter().filter(|(_, k, _)| k == "en").collect();
        assert_eq!(english.len(), 2);
        assert_eq!(english[0].0, english[1].0, "one key, one partition");
        assert_eq!((&*english[0].2, &*english[1].2), ("hello", "hi"));
        let expected = actorlog::partition_for_key(b"en", 3) as usize;
        assert_eq!(english[0].0, expected, "the Java client's partition");
    }
}
