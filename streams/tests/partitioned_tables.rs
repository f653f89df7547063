//! Tables read from a compacted topic and partitioned as it is
//! (`StreamsBuilder::table`), joined and left-joined with a co-partitioned
//! stream: the join sees the table as it is when each record is processed
//! (an update arriving after a record changes only later records, a
//! tombstone deletes a row), a restart with a wiped state directory
//! restores the table from its topic, and topics that are not
//! co-partitioned, or tables no stream can hold, are refused.

mod common;

use actorlog_streams::{
    Guarantee, KafkaStreams, StoreRef, Str, StreamsBuilder, StreamsConfig, StreamsError,
};
use common::{broker, eventually, produce, read_to_end, wait_for_commits, Record};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const APP: &str = "enrich";

/// Orders (key = customer) joined with the customers table: `enriched`
/// only for known customers, `annotated` for all.
fn topology(orders: &str, customers: &str) -> (StreamsBuilder, StoreRef<String, String>) {
    let mut b = StreamsBuilder::new(APP);
    let table = b.table::<String, String>(customers, Str, Str, "customers");
    let stream = b.stream::<String, String>(orders, Str, Str);
    stream
        .join_table(&table, |order, name| format!("{order} by {name}"))
        .to("enriched", Str, Str);
    stream
        .left_join_table(&table, |order, name| {
            format!("{order} by {}", name.map_or("nobody", String::as_str))
        })
        .to("annotated", Str, Str);
    (b, table.queryable())
}

async fn start(bootstrap: &str, dir: &Path) -> (KafkaStreams, StoreRef<String, String>) {
    let (builder, store) = topology("orders", "customers");
    let config = StreamsConfig::new(bootstrap, dir).guarantee(Guarantee::ExactlyOnceV2);
    let app = builder
        .build()
        .expect("a valid topology")
        .run(&config)
        .await
        .expect("the app starts");
    (app, store)
}

/// Deletes `key` from the table: a record without a value.
async fn tombstone(bootstrap: &str, key: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("a producer");
    producer
        .send(
            FutureRecord::<str, [u8]>::to("customers").key(key),
            Duration::from_secs(30),
        )
        .await
        .expect("the tombstone is written");
}

fn orders(round: &str, customers: &[&str]) -> Vec<Record> {
    customers
        .iter()
        .map(|c| Record::text(c, &format!("{round}-{c}"), 0))
        .collect()
}

/// Each customer's records of `topic`, in order.
fn by_customer(bootstrap: &str, topic: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in read_to_end(bootstrap, topic) {
        out.entry(String::from_utf8(r.key).expect("utf-8"))
            .or_default()
            .push(String::from_utf8(r.value).expect("utf-8"));
    }
    out
}

fn expect(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    entries
        .iter()
        .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_table_joins_see_the_table_when_each_record_is_processed() {
    let (broker, bootstrap) = broker().await;
    broker
        .create_topic_with("customers", 3, [("cleanup.policy", "compact")])
        .await
        .expect("a topic");
    for topic in ["orders", "enriched", "annotated"] {
        broker.create_topic(topic, 3).await.expect("a topic");
    }
    let customers: Vec<Record> = ["ada", "bob", "cy", "dee"]
        .iter()
        .map(|c| Record::text(c, &c.to_uppercase(), 0))
        .collect();
    produce(&bootstrap, "customers", &customers).await;
    let state = tempfile::tempdir().expect("a temp dir");
    let (app, store) = start(&bootstrap, state.path()).await;

    produce(
        &bootstrap,
        "orders",
        &orders("o1", &["ada", "bob", "cy", "dee", "eve"]),
    )
    .await;
    wait_for_commits(&bootstrap, APP, "orders");

    // After eve's first order: she arrives, ada is renamed, bob is deleted.
    produce(
        &bootstrap,
        "customers",
        &[
            Record::text("eve", "EVE", 0),
            Record::text("ada", "ADA2", 0),
        ],
    )
    .await;
    tombstone(&bootstrap, "bob").await;
    let row = |key: &str| app.get(&store, &key.to_string()).expect("a query");
    eventually("the table follows its topic", || {
        row("eve").as_deref() == Some("EVE")
            && row("ada").as_deref() == Some("ADA2")
            && row("bob").is_none()
    })
    .await;
    produce(&bootstrap, "orders", &orders("o2", &["ada", "bob", "eve"])).await;
    wait_for_commits(&bootstrap, APP, "orders");

    let enriched = expect(&[
        ("ada", &["o1-ada by ADA", "o2-ada by ADA2"]),
        ("bob", &["o1-bob by BOB"]),
        ("cy", &["o1-cy by CY"]),
        ("dee", &["o1-dee by DEE"]),
        ("eve", &["o2-eve by EVE"]),
    ]);
    let annotated = expect(&[
        ("ada", &["o1-ada by ADA", "o2-ada by ADA2"]),
        ("bob", &["o1-bob by BOB", "o2-bob by nobody"]),
        ("cy", &["o1-cy by CY"]),
        ("dee", &["o1-dee by DEE"]),
        ("eve", &["o1-eve by nobody", "o2-eve by EVE"]),
    ]);
    assert_eq!(by_customer(&bootstrap, "enriched"), enriched);
    assert_eq!(by_customer(&bootstrap, "annotated"), annotated);
    app.close().await.expect("a clean close");

    // A wiped state directory: the table comes back from its topic.
    std::fs::remove_dir_all(state.path()).expect("the state is wiped");
    let (app, store) = start(&bootstrap, state.path()).await;
    produce(&bootstrap, "orders", &orders("o3", &["ada", "bob", "cy"])).await;
    wait_for_commits(&bootstrap, APP, "orders");
    assert_eq!(
        app.get(&store, &"ada".to_string()).expect("a query"),
        Some("ADA2".to_string())
    );
    let mut enriched = enriched;
    enriched
        .get_mut("ada")
        .unwrap()
        .push("o3-ada by ADA2".into());
    enriched.get_mut("cy").unwrap().push("o3-cy by CY".into());
    let mut annotated = annotated;
    annotated
        .get_mut("ada")
        .unwrap()
        .push("o3-ada by ADA2".into());
    annotated
        .get_mut("bob")
        .unwrap()
        .push("o3-bob by nobody".into());
    annotated.get_mut("cy").unwrap().push("o3-cy by CY".into());
    assert_eq!(by_customer(&bootstrap, "enriched"), enriched);
    assert_eq!(by_customer(&bootstrap, "annotated"), annotated);
    app.close().await.expect("a clean close");
    broker.shutdown().await.expect("the broker stops");
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_that_are_not_co_partitioned_are_refused_at_start() {
    let (broker, bootstrap) = broker().await;
    broker.create_topic("orders", 3).await.expect("a topic");
    broker.create_topic("customers", 2).await.expect("a topic");
    let state = tempfile::tempdir().expect("a temp dir");
    let (builder, _) = topology("orders", "customers");
    let started = builder
        .build()
        .expect("a valid topology")
        .run(&StreamsConfig::new(&bootstrap, state.path()))
        .await;
    match started {
        Err(StreamsError::Topology(why)) => assert!(
            why.contains("co-partitioned") && why.contains("2 partitions"),
            "{why}"
        ),
        Err(e) => panic!("another error: {e}"),
        Ok(app) => {
            let _ = app.close().await;
            panic!("the app started");
        }
    }
    broker.shutdown().await.expect("the broker stops");
}

#[test]
fn tables_no_stream_can_hold_are_refused_when_built() {
    let mut b = StreamsBuilder::new(APP);
    b.table::<String, String>("customers", Str, Str, "customers");
    let refused = b.build().err().expect("an unjoined table is refused");
    assert!(
        refused.to_string().contains("joined with no stream"),
        "{refused}"
    );

    let mut b = StreamsBuilder::new(APP);
    let orders = b.stream::<String, String>("orders", Str, Str);
    let counts = orders.group_by_key(Str, Str).count("counts");
    orders
        .join_table(&counts, |order, n| format!("{order} {n}"))
        .to("out", Str, Str);
    let refused = b.build().err().expect("an aggregation's table is refused");
    assert!(refused.to_string().contains("aggregation"), "{refused}");

    let mut b = StreamsBuilder::new(APP);
    let table = b.table::<String, String>("customers", Str, Str, "customers");
    b.stream::<String, String>("orders", Str, Str)
        .map(|k, v| (v, k))
        .join_table(&table, |order, name| format!("{order} {name}"))
        .to("out", Str, Str);
    let refused = b.build().err().expect("a rekeyed stream is refused");
    assert!(refused.to_string().contains("repartition"), "{refused}");
}
