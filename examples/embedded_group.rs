//! Three in-process consumers of one group share a topic's partitions; when
//! one leaves, the other two take its partitions over.
//!
//! cargo run --example embedded_group

use actorlog::{Broker, Error};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let broker = Broker::builder()
        .temporary()
        .config(|c| c.group_initial_rebalance_delay_ms = 300)
        .start()
        .await?;
    broker.create_topic("jobs", 6).await?;
    let producer = broker.producer();
    for i in 0..30 {
        producer
            .send("jobs", Some(format!("job-{i}").as_bytes()), b"work")
            .await?;
    }
    let mut workers = Vec::new();
    for worker in 0..3 {
        let builder = broker.consumer("workers");
        workers.push(tokio::spawn(async move {
            let mut consumer = builder.subscribe(["jobs"]).await?;
            // The last worker stops early, to show the hand-over.
            let rounds = if worker == 2 { 20 } else { 60 };
            let mut done = 0;
            for _ in 0..rounds {
                done += consumer.poll().await?.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            println!(
                "worker {worker}: {done} jobs, owns {:?} at the end",
                consumer.assignment()
            );
            consumer.close().await
        }));
    }
    for worker in workers {
        worker
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
    }
    broker.shutdown().await
}
