//! Three in-process consumers of one group share a topic's six partitions;
//! when one leaves, the other two take its partitions over and read what
//! is written next.
//!
//! cargo run --example embedded_group

use actorlog::{Broker, Consumer, Error};
use std::collections::BTreeSet;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let outcome = run().await?;
    println!(
        "jobs per worker: {:?}; after the leave the two own {} and {} partitions and read {} new jobs",
        outcome.first_round,
        outcome.after_leave[0].len(),
        outcome.after_leave[1].len(),
        outcome.second_round
    );
    Ok(())
}

/// What the example saw.
#[derive(Debug)]
struct Outcome {
    /// Jobs read by each worker while all three were in the group.
    first_round: [usize; 3],
    /// Partitions of the two that stayed, after the third left.
    after_leave: [Vec<(String, i32)>; 2],
    /// Jobs written after the third left, as read by the two.
    second_round: usize,
}

async fn run() -> Result<Outcome, Error> {
    let broker = Broker::builder()
        .in_memory()
        // The first rebalance waits this long for the other members.
        .config(|c| c.group_initial_rebalance_delay_ms = 500)
        .start()
        .await?;
    broker.create_topic("jobs", 6).await?;
    produce(&broker, 0..30).await?;

    // The three join at once, so they form one generation.
    let (a, b, c) = tokio::try_join!(
        broker.consumer("workers").subscribe(["jobs"]),
        broker.consumer("workers").subscribe(["jobs"]),
        broker.consumer("workers").subscribe(["jobs"]),
    )?;
    let mut workers = [a, b, c];
    for (i, worker) in workers.iter().enumerate() {
        println!("worker {i} owns {:?}", worker.assignment());
    }
    let first_round = drain(&mut workers, 30).await?;

    let [a, b, c] = workers;
    c.close().await?;
    println!("worker 2 left");
    let mut two = [a, b];
    // The next polls see the rebalance and rejoin; wait until the two
    // share all six partitions.
    while two.iter().map(|w| w.assignment().len()).sum::<usize>() < 6 {
        let (x, y) = two.split_at_mut(1);
        tokio::try_join!(x[0].poll(), y[0].poll())?;
    }
    let after_leave = [two[0].assignment(), two[1].assignment()];
    println!("after the leave: {after_leave:?}");
    produce(&broker, 30..36).await?;
    let second_round = drain(&mut two, 6).await?.iter().sum();
    for worker in two {
        worker.close().await?;
    }
    broker.shutdown().await?;
    Ok(Outcome {
        first_round,
        after_leave,
        second_round,
    })
}

async fn produce(broker: &Broker, jobs: std::ops::Range<usize>) -> Result<(), Error> {
    let producer = broker.producer();
    for i in jobs {
        producer
            .send("jobs", Some(format!("job-{i}").as_bytes()), b"work")
            .await?;
    }
    Ok(())
}

/// Polls every worker (all at once, as separate tasks would) and commits,
/// until `jobs` distinct jobs are read; returns how many each read.
async fn drain<const N: usize>(
    workers: &mut [Consumer; N],
    jobs: usize,
) -> Result<[usize; N], Error> {
    let mut seen = BTreeSet::new();
    let mut counts = [0; N];
    while seen.len() < jobs {
        let polls = workers.iter_mut().map(|w| async move {
            let batch = w.poll().await?;
            w.commit().await?;
            Ok::<_, Error>(batch)
        });
        for (i, batch) in futures_util::future::try_join_all(polls)
            .await?
            .into_iter()
            .enumerate()
        {
            counts[i] += batch.len();
            seen.extend(batch.into_iter().map(|d| (d.partition, d.record.offset)));
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread")]
    async fn the_two_left_take_over() {
        let outcome = super::run().await.expect("the example runs");
        assert_eq!(outcome.first_round.iter().sum::<usize>(), 30, "{outcome:?}");
        assert!(outcome.first_round.iter().all(|&n| n > 0), "{outcome:?}");
        let [a, b] = &outcome.after_leave;
        assert_eq!((a.len(), b.len()), (3, 3), "{outcome:?}");
        assert!(a.iter().all(|p| !b.contains(p)), "{outcome:?}");
        assert_eq!(outcome.second_round, 6, "{outcome:?}");
    }
}
