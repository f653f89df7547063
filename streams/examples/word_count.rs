//! Word count: lines in, the running count of each word out (to the topic
//! `word-counts`, and in the store `counts`, queried while the application
//! runs). Words are regrouped by a new key, so the counts go through the
//! repartition topic `word-count-counts-repartition`, and the store's
//! changelog is `word-count-counts-changelog`.
//!
//! cargo run -p actorlog-streams --example word_count

use actorlog::Broker;
use actorlog_streams::{Guarantee, Str, StreamsBuilder, StreamsConfig, I64};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use std::collections::BTreeMap;
use std::error::Error;
use std::time::Duration;

const LINES: [&str; 3] = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let broker = Broker::builder()
        .in_memory()
        .listen("127.0.0.1:0")
        .start()
        .await?;
    let bootstrap = broker.local_addr().ok_or("no listener")?.to_string();
    let state = tempfile::tempdir()?;
    let counts = run(&broker, &bootstrap, state.path()).await?;
    for (word, count) in &counts {
        println!("{word}: {count}");
    }
    broker.shutdown().await?;
    Ok(())
}

/// Runs the application over [`LINES`] and returns the final count of each
/// word as the output topic has it.
async fn run(
    broker: &Broker,
    bootstrap: &str,
    state_dir: &std::path::Path,
) -> Result<BTreeMap<String, i64>, Box<dyn Error>> {
    broker.create_topic("lines", 2).await?;
    broker.create_topic("word-counts", 2).await?;

    let mut builder = StreamsBuilder::new("word-count");
    let counts = builder
        .stream::<String, String>("lines", Str, Str)
        .flat_map(|_, line| {
            line.split_whitespace()
                .map(|word| (word.to_lowercase(), word.to_lowercase()))
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone(), Str, Str)
        .count("counts");
    counts.to_stream().to("word-counts", Str, I64);
    let store = counts.queryable();
    let config = StreamsConfig::new(bootstrap, state_dir).guarantee(Guarantee::ExactlyOnceV2);
    let app = builder.build()?.run(&config).await?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for (i, line) in LINES.iter().enumerate() {
        let key = i.to_string();
        producer
            .send(
                FutureRecord::to("lines").key(&key).payload(*line),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }

    let words: usize = LINES.iter().map(|l| l.split_whitespace().count()).sum();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "word-count-reader")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&["word-counts"])?;
    let mut latest = BTreeMap::new();
    for _ in 0..words {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
        let word = String::from_utf8(message.key().unwrap_or_default().to_vec())?;
        let count: [u8; 8] = message.payload().unwrap_or_default().try_into()?;
        latest.insert(word, i64::from_be_bytes(count));
    }
    println!(
        "the store says \"the\" was seen {:?} times",
        app.get(&store, &"the".to_string())?
    );
    app.close().await?;
    Ok(latest)
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread")]
    async fn counts_each_word() {
        let broker = actorlog::Broker::builder()
            .in_memory()
            .listen("127.0.0.1:0")
            .start()
            .await
            .expect("a broker");
        let bootstrap = broker.local_addr().expect("a listener").to_string();
        let state = tempfile::tempdir().expect("a temp dir");
        let counts = super::run(&broker, &bootstrap, state.path())
            .await
            .expect("the example runs");
        let expected: Vec<(&str, i64)> = vec![
            ("a", 2),
            ("and", 1),
            ("cat", 2),
            ("dog", 2),
            ("log", 1),
            ("mat", 1),
            ("on", 2),
            ("sat", 2),
            ("the", 4),
        ];
        let got: Vec<(&str, i64)> = counts.iter().map(|(w, n)| (w.as_str(), *n)).collect();
        assert_eq!(got, expected);
        broker.shutdown().await.expect("the broker stops");
    }
}
