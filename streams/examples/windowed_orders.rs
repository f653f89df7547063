//! Orders per customer per minute of event time: orders carry their own
//! time (`placed_at`, used through `timestamp_by` instead of the record
//! timestamp), are grouped by customer and summed in tumbling one-minute
//! windows with 10 seconds of grace. An order arriving after its window
//! closed (stream time past the window's end plus grace) is dropped.
//! Results go to `order-stats` keyed by customer and window, and the
//! store `stats` answers window queries while the application runs.
//!
//! cargo run -p actorlog-streams --example windowed_orders

use actorlog::Broker;
use actorlog_streams::{
    Json, Str, StreamsBuilder, StreamsConfig, TimeWindows, Window, WindowedSerde,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use std::error::Error;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    customer: String,
    cents: i64,
    /// Event time, milliseconds.
    placed_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stats {
    orders: u32,
    cents: i64,
}

impl Stats {
    fn add(self, order: Order) -> Self {
        Stats {
            orders: self.orders + 1,
            cents: self.cents + order.cents,
        }
    }
}

const MINUTE: i64 = 60_000;

/// The orders, in the order they arrive: the fourth is 5 s late for the
/// first minute (within grace); the last is 15 s late (dropped).
fn orders() -> Vec<Order> {
    let order = |customer: &str, cents, placed_at| Order {
        customer: customer.into(),
        cents,
        placed_at,
    };
    vec![
        order("ada", 1_000, 1_000),
        order("bob", 500, 20_000),
        order("ada", 250, 59_000),
        order("ada", 100, MINUTE + 5_000),
        order("ada", 40, 55_000),
        order("bob", 700, 2 * MINUTE + 15_000),
        order("bob", 9_999, 50_000),
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let broker = Broker::builder()
        .in_memory()
        .listen("127.0.0.1:0")
        .start()
        .await?;
    let bootstrap = broker.local_addr().ok_or("no listener")?.to_string();
    let state = tempfile::tempdir()?;
    let (updates, ada) = run(&broker, &bootstrap, state.path()).await?;
    for (customer, window, stats) in &updates {
        println!("{customer} {window:?}: {stats:?}");
    }
    println!("the store's windows of ada: {ada:?}");
    broker.shutdown().await?;
    Ok(())
}

/// Every update written to `order-stats`, and ada's windows as the store
/// has them at the end.
type Results = (Vec<(String, Window, Stats)>, Vec<(Window, Stats)>);

async fn run(
    broker: &Broker,
    bootstrap: &str,
    state_dir: &std::path::Path,
) -> Result<Results, Box<dyn Error>> {
    broker.create_topic("orders", 1).await?;
    broker.create_topic("order-stats", 1).await?;

    let mut builder = StreamsBuilder::new("order-stats");
    let stats = builder
        .stream::<String, Order>("orders", Str, Json)
        .filter(|_, order| order.cents > 0)
        .timestamp_by(|_, order| order.placed_at)
        .group_by(|_, order| order.customer.clone(), Str, Json)
        .window(TimeWindows::tumbling(Duration::from_secs(60)).grace(Duration::from_secs(10)))
        .aggregate(Stats::default, Stats::add, "stats", Json);
    stats
        .to_stream()
        .to("order-stats", WindowedSerde(Str), Json);
    let store = stats.queryable();
    let app = builder
        .build()?
        .run(&StreamsConfig::new(bootstrap, state_dir))
        .await?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for order in orders() {
        let value = serde_json::to_vec(&order)?;
        producer
            .send(
                FutureRecord::to("orders")
                    .key(&order.customer)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "order-stats-reader")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&["order-stats"])?;
    let mut updates = Vec::new();
    // Six orders count (the last is too late): six updates.
    while updates.len() < 6 {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
        let key = message.key().unwrap_or_default();
        let split = key.len().checked_sub(16).ok_or("a windowed key")?;
        let customer = String::from_utf8(key[..split].to_vec())?;
        let start = i64::from_be_bytes(key[split..split + 8].try_into()?);
        let end = i64::from_be_bytes(key[split + 8..].try_into()?);
        let stats: Stats = serde_json::from_slice(message.payload().unwrap_or_default())?;
        updates.push((customer, Window { start, end }, stats));
    }
    let ada = app.fetch_windows(&store, &"ada".to_string(), 0, 10 * MINUTE)?;
    app.close().await?;
    Ok((updates, ada))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn sums_per_minute_and_drops_what_is_too_late() {
        let broker = Broker::builder()
            .in_memory()
            .listen("127.0.0.1:0")
            .start()
            .await
            .expect("a broker");
        let bootstrap = broker.local_addr().expect("a listener").to_string();
        let state = tempfile::tempdir().expect("a temp dir");
        let (updates, ada) = run(&broker, &bootstrap, state.path())
            .await
            .expect("the example runs");
        let first = Window {
            start: 0,
            end: MINUTE,
        };
        let second = Window {
            start: MINUTE,
            end: 2 * MINUTE,
        };
        let third = Window {
            start: 2 * MINUTE,
            end: 3 * MINUTE,
        };
        let stats = |orders, cents| Stats { orders, cents };
        let expected = vec![
            ("ada".to_string(), first, stats(1, 1_000)),
            ("bob".to_string(), first, stats(1, 500)),
            ("ada".to_string(), first, stats(2, 1_250)),
            ("ada".to_string(), second, stats(1, 100)),
            ("ada".to_string(), first, stats(3, 1_290)),
            ("bob".to_string(), third, stats(1, 700)),
        ];
        assert_eq!(updates, expected);
        assert_eq!(ada, vec![(first, stats(3, 1_290)), (second, stats(1, 100))]);
        broker.shutdown().await.expect("the broker stops");
    }
}
