//! Enriching orders with customers: a stream–table join. Customers are a
//! compacted topic (latest record per customer id) read as a global table
//! that every instance holds whole; each order, keyed by customer id, is
//! joined with its customer and written to `enriched-orders`. Orders of
//! unknown customers are dropped (an inner join; `left_join` keeps them).
//!
//! cargo run -p actorlog-streams --example enrich_orders

use actorlog::Broker;
use actorlog_streams::{Json, Str, StreamsBuilder, StreamsConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use std::error::Error;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Customer {
    name: String,
    tier: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u32,
    cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct EnrichedOrder {
    id: u32,
    cents: i64,
    customer: String,
    tier: String,
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
    for order in run(&broker, &bootstrap, state.path()).await? {
        println!("{order:?}");
    }
    broker.shutdown().await?;
    Ok(())
}

async fn send<V: Serialize>(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &V,
) -> Result<(), Box<dyn Error>> {
    let value = serde_json::to_vec(value)?;
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(&value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}

/// The enriched orders, in order.
async fn run(
    broker: &Broker,
    bootstrap: &str,
    state_dir: &std::path::Path,
) -> Result<Vec<EnrichedOrder>, Box<dyn Error>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let customers =
        NewTopic::new("customers", 2, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    for created in admin
        .create_topics([&customers], &AdminOptions::new())
        .await?
    {
        created.map_err(|(topic, code)| format!("creating {topic}: {code}"))?;
    }
    broker.create_topic("orders", 2).await?;
    broker.create_topic("enriched-orders", 1).await?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let customer = |name: &str, tier: &str| Customer {
        name: name.into(),
        tier: tier.into(),
    };
    send(&producer, "customers", "c1", &customer("Ada", "silver")).await?;
    send(&producer, "customers", "c2", &customer("Bob", "bronze")).await?;
    send(&producer, "customers", "c1", &customer("Ada", "gold")).await?;

    let mut builder = StreamsBuilder::new("enrich-orders");
    let customers = builder.global_table::<String, Customer>("customers", Str, Json, "customers");
    builder
        .stream::<String, Order>("orders", Str, Json)
        .join(&customers, |order, customer| EnrichedOrder {
            id: order.id,
            cents: order.cents,
            customer: customer.name.clone(),
            tier: customer.tier.clone(),
        })
        .to("enriched-orders", Str, Json);
    let app = builder
        .build()?
        .run(&StreamsConfig::new(bootstrap, state_dir))
        .await?;

    for (id, customer_id) in [(1, "c1"), (2, "c2"), (3, "c9"), (4, "c1")] {
        let order = Order {
            id,
            cents: 100 * i64::from(id),
        };
        send(&producer, "orders", customer_id, &order).await?;
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "enriched-reader")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&["enriched-orders"])?;
    let mut enriched = Vec::new();
    while enriched.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await??;
        enriched.push(serde_json::from_slice(
            message.payload().unwrap_or_default(),
        )?);
    }
    app.close().await?;
    enriched.sort_by_key(|o: &EnrichedOrder| o.id);
    Ok(enriched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn joins_orders_with_the_latest_customer() {
        let broker = Broker::builder()
            .in_memory()
            .listen("127.0.0.1:0")
            .start()
            .await
            .expect("a broker");
        let bootstrap = broker.local_addr().expect("a listener").to_string();
        let state = tempfile::tempdir().expect("a temp dir");
        let enriched = run(&broker, &bootstrap, state.path())
            .await
            .expect("the example runs");
        let order = |id, cents, customer: &str, tier: &str| EnrichedOrder {
            id,
            cents,
            customer: customer.into(),
            tier: tier.into(),
        };
        assert_eq!(
            enriched,
            vec![
                order(1, 100, "Ada", "gold"),
                order(2, 200, "Bob", "bronze"),
                order(4, 400, "Ada", "gold"),
            ]
        );
        broker.shutdown().await.expect("the broker stops");
    }
}
