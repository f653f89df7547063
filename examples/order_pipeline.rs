//! A small order pipeline: orders come in keyed by customer, a consumer
//! group keeps each customer's running total and publishes it to a
//! compacted topic, committing as it goes. Halfway through, the billing
//! service stops and starts again with fewer workers: the commits make it
//! resume where it was, and no order is counted twice.
//!
//! Keys do the heavy lifting: all orders of a customer land in the same
//! partition, so exactly one worker owns a customer's total at a time.
//!
//! cargo run --example order_pipeline

use actorlog::{Broker, Consumer, Error, ResponseError};
use std::collections::BTreeMap;

const ORDERS: &str = "orders";
const TOTALS: &str = "customer-totals";
const PARTITIONS: i32 = 6;
const GROUP: &str = "billing";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let outcome = run(120, 8).await?;
    let published: BTreeMap<&String, u64> =
        outcome.totals.iter().map(|(c, t)| (c, t.cents)).collect();
    let expected: BTreeMap<&String, u64> = outcome
        .expected_cents
        .iter()
        .map(|(c, &cents)| (c, cents))
        .collect();
    println!(
        "orders counted per session: {:?}; published totals match the orders: {}",
        outcome.counted,
        published == expected
    );
    Ok(())
}

/// A customer's total as published: the cents, and the offset (in the
/// customer's orders partition) of the last order counted, so an order
/// delivered again after a rebalance is not counted twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Total {
    cents: u64,
    last_order: i64,
}

impl Default for Total {
    fn default() -> Self {
        Total {
            cents: 0,
            last_order: -1,
        }
    }
}

impl Total {
    fn encode(&self) -> String {
        format!("{} {}", self.cents, self.last_order)
    }

    fn decode(text: &str) -> Option<Total> {
        let (cents, last_order) = text.split_once(' ')?;
        Some(Total {
            cents: cents.parse().ok()?,
            last_order: last_order.parse().ok()?,
        })
    }
}

/// What a run saw: the published totals, and the orders each billing
/// session counted.
#[derive(Debug)]
struct Outcome {
    totals: BTreeMap<String, Total>,
    expected_cents: BTreeMap<String, u64>,
    counted: [usize; 2],
}

/// Places `orders` orders of `customers` customers, in two halves, with a
/// restart of the billing service in between.
async fn run(orders: usize, customers: usize) -> Result<Outcome, Error> {
    let broker = Broker::builder()
        .in_memory()
        .config(|c| c.group_initial_rebalance_delay_ms = 300)
        .start()
        .await?;
    broker.create_topic(ORDERS, PARTITIONS).await?;
    broker
        .create_topic_with(TOTALS, PARTITIONS, [("cleanup.policy", "compact")])
        .await?;
    let mut expected_cents = BTreeMap::new();
    let half = orders / 2;

    place_orders(&broker, 0..half, customers, &mut expected_cents).await?;
    // Two workers share the partitions.
    let (a, b) = tokio::try_join!(
        broker.consumer(GROUP).subscribe([ORDERS]),
        broker.consumer(GROUP).subscribe([ORDERS]),
    )?;
    let first = bill(&broker, vec![a, b], half).await?;
    println!("first session counted {first} orders");

    place_orders(&broker, half..orders, customers, &mut expected_cents).await?;
    // After the restart one worker does it all, from the committed offsets.
    let worker = broker.consumer(GROUP).subscribe([ORDERS]).await?;
    let second = bill(&broker, vec![worker], orders - half).await?;
    println!("second session counted {second} orders");

    let totals = read_totals(&broker).await?;
    for (customer, total) in &totals {
        println!("{customer}: {}.{:02}", total.cents / 100, total.cents % 100);
    }
    broker.shutdown().await?;
    Ok(Outcome {
        totals,
        expected_cents,
        counted: [first, second],
    })
}

async fn place_orders(
    broker: &Broker,
    ids: std::ops::Range<usize>,
    customers: usize,
    expected_cents: &mut BTreeMap<String, u64>,
) -> Result<(), Error> {
    let producer = broker.producer();
    for id in ids {
        let customer = format!("customer-{}", id % customers);
        let cents = 100 + (id as u64 * 37) % 5_000;
        let order = format!("order-{id} {cents}");
        producer
            .send(ORDERS, Some(customer.as_bytes()), order.as_bytes())
            .await?;
        *expected_cents.entry(customer).or_default() += cents;
    }
    Ok(())
}

/// Runs the workers side by side until `orders` new orders are counted,
/// then closes them (which commits). Returns how many orders were counted.
async fn bill(broker: &Broker, workers: Vec<Consumer>, orders: usize) -> Result<usize, Error> {
    let mut counted = 0;
    let mut workers: Vec<(Consumer, Option<BTreeMap<String, Total>>)> =
        workers.into_iter().map(|w| (w, None)).collect();
    while counted < orders {
        let rounds = workers
            .iter_mut()
            .map(|(worker, totals)| bill_once(broker, worker, totals));
        counted += futures_util::future::try_join_all(rounds)
            .await?
            .iter()
            .sum::<usize>();
    }
    for (worker, _) in workers {
        worker.close().await?;
    }
    Ok(counted)
}

/// One poll of one worker: counts the new orders, publishes the changed
/// totals, then commits. Returns how many orders it counted.
async fn bill_once(
    broker: &Broker,
    worker: &mut Consumer,
    totals: &mut Option<BTreeMap<String, Total>>,
) -> Result<usize, Error> {
    let owned = worker.assignment();
    let orders = worker.poll().await?;
    if worker.assignment() != owned || totals.is_none() {
        // New partitions: their customers' totals are in the totals topic.
        *totals = Some(read_totals(broker).await?);
    }
    let totals = totals.get_or_insert_with(BTreeMap::new);
    let mut changed = BTreeMap::new();
    let mut counted = 0;
    for order in orders {
        let (Some(key), Some(value)) = (&order.record.key, &order.record.value) else {
            continue;
        };
        let customer = String::from_utf8_lossy(key).into_owned();
        let Some(cents) = String::from_utf8_lossy(value)
            .split_once(' ')
            .and_then(|(_, cents)| cents.parse::<u64>().ok())
        else {
            eprintln!(
                "skipping a malformed order at offset {}",
                order.record.offset
            );
            continue;
        };
        let total = totals.entry(customer.clone()).or_default();
        if order.record.offset <= total.last_order {
            continue;
        }
        total.cents += cents;
        total.last_order = order.record.offset;
        changed.insert(customer, *total);
        counted += 1;
    }
    let producer = broker.producer();
    for (customer, total) in changed {
        producer
            .send(TOTALS, Some(customer.as_bytes()), total.encode().as_bytes())
            .await?;
    }
    match worker.commit().await {
        // The group rebalanced: whoever gets these orders again skips what
        // the published totals already count.
        Err(e)
            if matches!(
                e.code(),
                Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration)
            ) =>
        {
            eprintln!("commit refused: {e}")
        }
        other => other?,
    }
    Ok(counted)
}

/// The latest total of every customer.
async fn read_totals(broker: &Broker) -> Result<BTreeMap<String, Total>, Error> {
    let mut totals = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let mut offset = 0;
        loop {
            let records = broker.read(TOTALS, partition, offset).await?;
            let Some(last) = records.last() else {
                break;
            };
            offset = last.offset + 1;
            for record in records {
                let (Some(key), Some(value)) = (record.key, record.value) else {
                    continue;
                };
                if let Some(total) = Total::decode(&String::from_utf8_lossy(&value)) {
                    totals.insert(String::from_utf8_lossy(&key).into_owned(), total);
                }
            }
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread")]
    async fn totals_are_exact_across_a_restart() {
        let outcome = super::run(120, 8).await.expect("the example runs");
        assert_eq!(outcome.counted, [60, 60], "{outcome:?}");
        let cents: std::collections::BTreeMap<String, u64> = outcome
            .totals
            .iter()
            .map(|(customer, total)| (customer.clone(), total.cents))
            .collect();
        assert_eq!(cents, outcome.expected_cents);
    }
}
