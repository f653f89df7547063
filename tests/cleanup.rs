//! Retention, DeleteRecords, compaction and topic configs, through Kafka
//! clients: old segments go and offsets of what stays do not move, compacted
//! topics keep the latest value of each key, the cleaner takes a log as
//! soon as its configs ask (dirty ratio, compaction lags, segment.ms),
//! configs change at run time and survive a restart.

mod embedded_broker;

use embedded_broker::{
    assert_latest_balances, config, create_topic, eventually, produce_balances, read_records,
    start, start_in,
};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// Small segments and frequent cleaning, so the tests see them at work.
fn small_segments(config: &mut actorlog::BrokerConfig) {
    config.segment_bytes = 2048;
    config.retention_check_interval_ms = 100;
}

/// Produces one record per batch (key, value, timestamp) to partition 0.
async fn produce_each(bootstrap: &str, topic: &str, records: &[(String, Option<String>, i64)]) {
    let producer: FutureProducer = config(bootstrap)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    for (key, value, timestamp) in records {
        let mut record = FutureRecord::to(topic)
            .key(key)
            .partition(0)
            .timestamp(*timestamp);
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("acknowledged");
    }
}

fn now_ms() -> i64 {
    actorlog::actors::clock::now_ms()
}

fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    let consumer: BaseConsumer = config(bootstrap).create().expect("client");
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks")
}

fn numbered(count: usize, timestamp: i64) -> Vec<(String, Option<String>, i64)> {
    (0..count)
        .map(|i| {
            (
                format!("k{i}"),
                Some(format!("value-{i:04}-{}", "x".repeat(80))),
                timestamp,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_by_size_deletes_old_segments_and_keeps_offsets() {
    let (_broker, bootstrap) = start(small_segments).await;
    create_topic(&bootstrap, "sized", 1, &[("retention.bytes", "4000")]).await;
    produce_each(&bootstrap, "sized", &numbered(100, now_ms())).await;
    eventually(LIMIT, "old segments deleted", || {
        watermarks(&bootstrap, "sized").0 > 0
    });
    let (low, high) = watermarks(&bootstrap, "sized");
    assert_eq!(high, 100);
    let records = read_records(&bootstrap, "sized");
    assert_eq!(
        records.first().map(|r| r.0),
        Some(low),
        "a consumer from earliest starts at the new start"
    );
    for (offset, key, _) in &records {
        assert_eq!(
            *key,
            format!("k{offset}"),
            "offsets of what remains are unchanged"
        );
    }
    assert_eq!(records.len() as i64, high - low);
}

/// A roll that takes a partition past its limits applies retention and
/// compaction at once, without waiting for the periodic check (five
/// minutes by default, left as it is here).
#[tokio::test(flavor = "multi_thread")]
async fn a_segment_roll_applies_retention_and_compaction_at_once() {
    let (_broker, bootstrap) = start(|c| c.segment_bytes = 2048).await;
    create_topic(&bootstrap, "sized-now", 1, &[("retention.bytes", "4000")]).await;
    create_topic(&bootstrap, "timed-now", 1, &[("retention.ms", "60000")]).await;
    create_topic(
        &bootstrap,
        "compacted-now",
        1,
        &[("cleanup.policy", "compact")],
    )
    .await;
    produce_each(&bootstrap, "sized-now", &numbered(100, now_ms())).await;
    produce_each(&bootstrap, "timed-now", &numbered(60, now_ms() - 3_600_000)).await;
    produce_each(&bootstrap, "timed-now", &numbered(1, now_ms())).await;
    let updates: Vec<(String, Option<String>, i64)> = (0..400)
        .map(|i| {
            (
                format!("key-{}", i % 20),
                Some(format!("update-{i}")),
                now_ms(),
            )
        })
        .collect();
    produce_each(&bootstrap, "compacted-now", &updates).await;
    eventually(LIMIT, "retention by size after a roll", || {
        watermarks(&bootstrap, "sized-now").0 > 0
    });
    eventually(LIMIT, "retention by time after a roll", || {
        watermarks(&bootstrap, "timed-now").0 > 0
    });
    eventually(LIMIT, "compaction after a roll", || {
        read_records(&bootstrap, "compacted-now").len() < 200
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_by_time_deletes_expired_segments() {
    let (_broker, bootstrap) = start(small_segments).await;
    create_topic(&bootstrap, "timed", 1, &[("retention.ms", "60000")]).await;
    let hour_ago = now_ms() - 3_600_000;
    produce_each(&bootstrap, "timed", &numbered(60, hour_ago)).await;
    produce_each(&bootstrap, "timed", &numbered(1, now_ms())).await;
    eventually(LIMIT, "expired segments deleted", || {
        watermarks(&bootstrap, "timed").0 > 0
    });
    let (low, _) = watermarks(&bootstrap, "timed");
    let records = read_records(&bootstrap, "timed");
    assert_eq!(records.first().map(|r| r.0), Some(low));
    assert_eq!(
        records.last().map(|r| r.0),
        Some(60),
        "the fresh record stays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_records_moves_the_log_start() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "trimmed", 1, &[]).await;
    produce_each(&bootstrap, "trimmed", &numbered(10, now_ms())).await;
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("trimmed", 0, Offset::Offset(4))
        .expect("offset");
    let result = admin
        .delete_records(&offsets, &AdminOptions::new())
        .await
        .expect("delete records");
    assert_eq!(result.elements()[0].offset(), Offset::Offset(4));
    assert_eq!(watermarks(&bootstrap, "trimmed"), (4, 10));
    let records = read_records(&bootstrap, "trimmed");
    assert_eq!(records.first().map(|r| r.0), Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_topic_refuses_records_without_a_key() {
    let (_broker, bootstrap) = start(|_| {}).await;
    create_topic(&bootstrap, "keyed", 1, &[("cleanup.policy", "compact")]).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let keyless = producer
        .send(
            FutureRecord::<(), str>::to("keyed").payload("no key"),
            Duration::from_secs(10),
        )
        .await;
    let (error, _) = keyless.expect_err("a record without a key is refused");
    assert_eq!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::InvalidRecord),
        "{error}"
    );
    let keyed = producer
        .send(
            FutureRecord::to("keyed").key("k").payload("with a key"),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(keyed.expect("a keyed record is written").offset, 0);
    let records = read_records(&bootstrap, "keyed");
    assert_eq!(records.len(), 1, "only the keyed record was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_keeps_the_latest_value_of_each_key() {
    let (_broker, bootstrap) = start(small_segments).await;
    create_topic(&bootstrap, "compacted", 1, &[("cleanup.policy", "compact")]).await;
    let now = now_ms();
    let updates: Vec<(String, Option<String>, i64)> = (0..400)
        .map(|i| (format!("key-{}", i % 20), Some(format!("update-{i}")), now))
        .collect();
    produce_each(&bootstrap, "compacted", &updates).await;
    eventually(LIMIT, "compaction", || {
        read_records(&bootstrap, "compacted").len() < 200
    });
    let records = read_records(&bootstrap, "compacted");
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for (offset, key, value) in &records {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    assert_eq!(latest.len(), 20, "every key keeps a value");
    for i in 380..400 {
        let key = format!("key-{}", i % 20);
        let expected = (i as i64, Some(format!("update-{i}")));
        assert_eq!(
            latest[&key], expected,
            "{key}: the latest value at its original offset"
        );
    }
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "order is unchanged"
    );
}

/// Deleted keys: the tombstone stays while a consumer may still need it
/// (`delete.retention.ms`), then goes with the values it deleted.
#[tokio::test(flavor = "multi_thread")]
async fn tombstones_vanish_after_their_retention() {
    let (_broker, bootstrap) = start(small_segments).await;
    create_topic(
        &bootstrap,
        "deletions",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "1500"),
        ],
    )
    .await;
    let now = now_ms();
    let mut records: Vec<(String, Option<String>, i64)> = (0..200)
        .map(|i| {
            (
                format!("key-{}", i % 10),
                Some(format!("value-{i}-{}", "x".repeat(40))),
                now,
            )
        })
        .collect();
    // Delete the even keys, then write enough to close the segment holding
    // the tombstones.
    records.extend((0..10).step_by(2).map(|k| (format!("key-{k}"), None, now)));
    records.extend((0..100).map(|i| (format!("filler-{}", i % 5), Some("y".repeat(60)), now)));
    produce_each(&bootstrap, "deletions", &records).await;
    let keys = |records: &[(i64, String, Option<String>)]| {
        let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (_, key, value) in records {
            latest.insert(key.clone(), value.clone());
        }
        latest
    };
    eventually(LIMIT, "compaction that keeps the tombstones", || {
        let records = read_records(&bootstrap, "deletions");
        records.len() < 200 && keys(&records).values().filter(|v| v.is_none()).count() == 5
    });
    eventually(LIMIT, "the tombstones expiring", || {
        let latest = keys(&read_records(&bootstrap, "deletions"));
        (0..10).all(|k| latest.contains_key(&format!("key-{k}")) == (k % 2 == 1))
    });
    let latest = keys(&read_records(&bootstrap, "deletions"));
    for k in (1..10).step_by(2) {
        assert_eq!(
            latest[&format!("key-{k}")]
                .as_deref()
                .map(|v| v.starts_with(&format!("value-{}", 190 + k))),
            Some(true),
            "key-{k} keeps its latest value"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_thousand_updates_compact_to_the_latest_per_key() {
    let (_broker, bootstrap) = start(|c| {
        c.segment_bytes = 64 * 1024;
        c.retention_check_interval_ms = 200;
    })
    .await;
    create_topic(&bootstrap, "ledger", 1, &[("cleanup.policy", "compact")]).await;
    produce_balances(&bootstrap, "ledger", 100_000, 1000, "20").await;
    eventually(
        Duration::from_secs(60),
        "compaction of the closed segments",
        || read_records(&bootstrap, "ledger").len() < 20_000,
    );
    assert_latest_balances(&bootstrap, "ledger", 100_000, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_compression_and_log_append_time_apply_on_the_way_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_broker, bootstrap) = start_in(dir.path(), |_| {}).await;
    let configs = [
        ("compression.type", "zstd"),
        ("message.timestamp.type", "LogAppendTime"),
    ];
    create_topic(&bootstrap, "stamped", 1, &configs).await;
    let before = now_ms();
    produce_each(&bootstrap, "stamped", &numbered(3, 1_000)).await;
    let consumer: BaseConsumer = config(&bootstrap)
        .set("group.id", "stamps")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("stamped", 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let mut stamps = Vec::new();
    let started = Instant::now();
    while stamps.len() < 3 {
        assert!(
            started.elapsed() < LIMIT,
            "read {} of 3 records",
            stamps.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            stamps.push(message.expect("fetch").timestamp());
        }
    }
    for stamp in stamps {
        let rdkafka::Timestamp::LogAppendTime(ms) = stamp else {
            panic!("expected a log append time, got {stamp:?}");
        };
        assert!(
            ms >= before,
            "stamped by the broker, not the producer's 1000"
        );
    }
    let log = std::fs::read(dir.path().join("stamped-0").join(format!("{:020}.log", 0)))
        .expect("segment file");
    let attributes = u16::from_be_bytes([log[21], log[22]]);
    assert_eq!(
        attributes & 0b111,
        4,
        "stored zstd-compressed, as sent uncompressed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configs_change_at_run_time_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, bootstrap) = start_in(dir.path(), |_| {}).await;
    create_topic(&bootstrap, "configured", 1, &[("retention.ms", "1234")]).await;
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let change = AlterConfig::new(ResourceSpecifier::Topic("configured"))
        .set("retention.ms", "5678")
        .set("cleanup.policy", "compact");
    for result in admin
        .alter_configs([&change], &AdminOptions::new())
        .await
        .expect("alter configs")
    {
        result.expect("altered");
    }
    assert_eq!(describe(&admin, "retention.ms").await, "5678");
    // The rdkafka crate drops per-resource errors of AlterConfigs, so the
    // refusal shows as nothing having changed.
    let bad = AlterConfig::new(ResourceSpecifier::Topic("configured")).set("retention.ms", "soon");
    admin
        .alter_configs([&bad], &AdminOptions::new())
        .await
        .expect("request");
    assert_eq!(
        describe(&admin, "retention.ms").await,
        "5678",
        "a bad value is refused"
    );
    drop(admin);
    broker.shutdown().await.expect("shutdown");
    let (_broker, bootstrap) = start_in(dir.path(), |_| {}).await;
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    assert_eq!(describe(&admin, "retention.ms").await, "5678");
    assert_eq!(describe(&admin, "cleanup.policy").await, "compact");
}

async fn describe(admin: &AdminClient<DefaultClientContext>, key: &str) -> String {
    let resources = admin
        .describe_configs(
            [&ResourceSpecifier::Topic("configured")],
            &AdminOptions::new(),
        )
        .await
        .expect("describe configs");
    let resource = resources
        .into_iter()
        .next()
        .expect("one resource")
        .expect("described");
    resource
        .get(key)
        .and_then(|entry| entry.value.clone())
        .unwrap_or_default()
}

/// The cleaner looks every few hundred milliseconds; the retention check
/// keeps its five-minute default, so it never cleans anything in these
/// tests.
fn prompt_cleaner(config: &mut actorlog::BrokerConfig) {
    config.log_cleaner_backoff_ms = 200;
}

/// A compacted topic asking for prompt cleaning: its active segment rolls
/// after a second, any dirt is enough, records are cleanable at once.
const PROMPT: [(&str, &str); 4] = [
    ("cleanup.policy", "compact"),
    ("segment.ms", "1000"),
    ("min.cleanable.dirty.ratio", "0.01"),
    ("min.compaction.lag.ms", "0"),
];

/// `rounds` updates of each of `keys` keys, `key-K` = `round-R`, from round
/// `first` on.
fn rounds(keys: usize, first: usize, rounds: usize) -> Vec<(String, Option<String>, i64)> {
    (first..first + rounds)
        .flat_map(|round| {
            (0..keys).map(move |key| {
                (
                    format!("key-{key}"),
                    Some(format!("round-{round}")),
                    now_ms(),
                )
            })
        })
        .collect()
}

/// The value of each key, checking that none appears twice.
fn one_value_per_key(records: &[(i64, String, Option<String>)]) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for (offset, key, value) in records {
        let previous = values.insert(key.clone(), value.clone().unwrap_or_default());
        assert!(previous.is_none(), "{key} twice, again at offset {offset}");
    }
    values
}

/// A compacted topic whose configs ask for prompt cleaning is compacted
/// within seconds: its idle active segment rolls once past segment.ms and
/// the cleaner, checking every log_cleaner_backoff_ms, finds it dirty.
#[tokio::test(flavor = "multi_thread")]
async fn a_topic_asking_for_prompt_cleaning_is_compacted_within_seconds() {
    let (_broker, bootstrap) = start(prompt_cleaner).await;
    create_topic(&bootstrap, "prompt", 1, &PROMPT).await;
    produce_each(&bootstrap, "prompt", &rounds(10, 0, 10)).await;
    eventually(LIMIT, "only the latest value of each key", || {
        read_records(&bootstrap, "prompt").len() == 10
    });
    let records = read_records(&bootstrap, "prompt");
    let values = one_value_per_key(&records);
    assert!(values.values().all(|v| v == "round-9"), "{values:?}");
    assert_eq!(watermarks(&bootstrap, "prompt"), (0, 100), "offsets stay");
}

/// Records younger than min.compaction.lag.ms stay as they are, however
/// dirty their log: a topic without the lag, written just after, is
/// compacted meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn records_younger_than_the_compaction_lag_are_not_compacted() {
    let (_broker, bootstrap) = start(prompt_cleaner).await;
    let mut lagged = PROMPT;
    lagged[3] = ("min.compaction.lag.ms", "3600000");
    create_topic(&bootstrap, "young", 1, &lagged).await;
    create_topic(&bootstrap, "control", 1, &PROMPT).await;
    produce_each(&bootstrap, "young", &rounds(10, 0, 10)).await;
    produce_each(&bootstrap, "control", &rounds(10, 0, 10)).await;
    eventually(LIMIT, "compaction of the topic without a lag", || {
        read_records(&bootstrap, "control").len() == 10
    });
    assert_eq!(
        read_records(&bootstrap, "young").len(),
        100,
        "nothing compacted within min.compaction.lag.ms"
    );
}

/// max.compaction.lag.ms cleans a log whose dirty ratio stays below
/// min.cleanable.dirty.ratio: a few updates after a cleaning make it only
/// a few percent dirty, yet they are compacted once they are that old.
#[tokio::test(flavor = "multi_thread")]
async fn max_compaction_lag_cleans_a_log_below_its_dirty_ratio() {
    let (_broker, bootstrap) = start(prompt_cleaner).await;
    create_topic(&bootstrap, "overdue", 1, &PROMPT).await;
    produce_each(&bootstrap, "overdue", &rounds(20, 0, 2)).await;
    eventually(LIMIT, "the first cleaning", || {
        read_records(&bootstrap, "overdue").len() == 20
    });
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let strict = AlterConfig::new(ResourceSpecifier::Topic("overdue"))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "1000")
        .set("min.compaction.lag.ms", "0")
        .set("min.cleanable.dirty.ratio", "0.9")
        .set("max.compaction.lag.ms", "2000");
    for result in admin
        .alter_configs([&strict], &AdminOptions::new())
        .await
        .expect("alter configs")
    {
        result.expect("altered");
    }
    // Two updates over twenty cleaned records: a dirty ratio near 0.1.
    produce_each(&bootstrap, "overdue", &rounds(2, 2, 1)).await;
    eventually(LIMIT, "compaction of the overdue updates", || {
        read_records(&bootstrap, "overdue").len() == 20
    });
    let values = one_value_per_key(&read_records(&bootstrap, "overdue"));
    assert_eq!(values["key-0"], "round-2");
    assert_eq!(values["key-19"], "round-1");
}

/// The cleaner checkpoint survives a restart: a few updates after it are a
/// small share of the log, below `min.cleanable.dirty.ratio`, and stay
/// uncompacted while a twin topic, written later, is compacted. A restart
/// that forgot the checkpoint would find the whole log dirty.
#[tokio::test(flavor = "multi_thread")]
async fn the_cleaner_checkpoint_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, bootstrap) = start_in(dir.path(), prompt_cleaner).await;
    create_topic(&bootstrap, "checkpointed", 1, &PROMPT).await;
    produce_each(&bootstrap, "checkpointed", &rounds(20, 0, 2)).await;
    eventually(LIMIT, "the first cleaning", || {
        read_records(&bootstrap, "checkpointed").len() == 20
    });
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let half = AlterConfig::new(ResourceSpecifier::Topic("checkpointed"))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "1000")
        .set("min.compaction.lag.ms", "0")
        .set("min.cleanable.dirty.ratio", "0.5");
    for result in admin
        .alter_configs([&half], &AdminOptions::new())
        .await
        .expect("alter configs")
    {
        result.expect("altered");
    }
    drop(admin);
    broker.shutdown().await.expect("shutdown");
    let (_broker, bootstrap) = start_in(dir.path(), prompt_cleaner).await;
    create_topic(&bootstrap, "twin", 1, &PROMPT).await;
    produce_each(&bootstrap, "checkpointed", &rounds(2, 2, 1)).await;
    produce_each(&bootstrap, "twin", &rounds(2, 0, 2)).await;
    eventually(LIMIT, "compaction of the twin", || {
        read_records(&bootstrap, "twin").len() == 2
    });
    assert_eq!(
        read_records(&bootstrap, "checkpointed").len(),
        22,
        "two updates over twenty clean records are not enough to clean"
    );
}

/// The cleaner's keys under Kafka's names and defaults, and their values
/// checked at CreateTopics.
#[tokio::test(flavor = "multi_thread")]
async fn cleaner_configs_are_described_and_validated() {
    let (_broker, bootstrap) = start(prompt_cleaner).await;
    create_topic(&bootstrap, "configured", 1, &[]).await;
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    for (key, default) in [
        ("min.cleanable.dirty.ratio", "0.5"),
        ("min.compaction.lag.ms", "0"),
        ("max.compaction.lag.ms", "9223372036854775807"),
        ("delete.retention.ms", "86400000"),
        ("segment.ms", "604800000"),
    ] {
        assert_eq!(describe(&admin, key).await, default, "{key}");
    }
    let brokers = admin
        .describe_configs([&ResourceSpecifier::Broker(1)], &AdminOptions::new())
        .await
        .expect("describe configs");
    let broker = brokers
        .into_iter()
        .next()
        .expect("one resource")
        .expect("described");
    assert_eq!(
        broker
            .get("log.cleaner.backoff.ms")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("200")
    );
    for (key, value) in [
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.compaction.lag.ms", "-1"),
        ("max.compaction.lag.ms", "0"),
    ] {
        let topic = NewTopic::new("refused", 1, TopicReplication::Fixed(1)).set(key, value);
        let results = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .expect("create topics request");
        let refused = results.into_iter().next().expect("one result");
        assert!(
            matches!(refused, Err((_, RDKafkaErrorCode::InvalidConfig))),
            "{key}={value}: {refused:?}"
        );
    }
}
