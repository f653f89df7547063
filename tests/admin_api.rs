//! Topic administration through librdkafka's admin client: duplicate
//! creation, growing partitions, deletion, and auto-creation turned off;
//! dynamic broker configs through confluent-kafka's.

mod broker_process;
mod embedded_broker;

use broker_process::{run, source, BrokerProcess};
use embedded_broker::{config, create_topic, start};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::process::Command;
use std::time::Duration;

fn partitions(bootstrap: &str, topic: &str) -> Option<usize> {
    let client: BaseConsumer = config(bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("client");
    let metadata = client
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
}

#[tokio::test(flavor = "multi_thread")]
async fn create_grow_and_delete_topics() {
    let (_broker, bootstrap) = start(|_| {}).await;
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let options = AdminOptions::new();
    create_topic(&bootstrap, "managed", 2, &[]).await;
    let again = admin
        .create_topics(
            [&NewTopic::new("managed", 2, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("request");
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAlreadyExists
    );
    let replicated = admin
        .create_topics(
            [&NewTopic::new("replicated", 1, TopicReplication::Fixed(3))],
            &options,
        )
        .await
        .expect("request");
    assert_eq!(
        replicated[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidReplicationFactor
    );
    let bad_name = admin
        .create_topics(
            [&NewTopic::new("no/slashes", 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("request");
    assert!(bad_name[0].is_err());

    let grown = admin
        .create_partitions([&NewPartitions::new("managed", 5)], &options)
        .await
        .expect("request");
    assert!(grown[0].is_ok());
    assert_eq!(partitions(&bootstrap, "managed"), Some(5));
    let shrink = admin
        .create_partitions([&NewPartitions::new("managed", 3)], &options)
        .await
        .expect("request");
    assert_eq!(
        shrink[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidPartitions
    );

    let deleted = admin
        .delete_topics(&["managed"], &options)
        .await
        .expect("request");
    assert!(deleted[0].is_ok());
    assert_eq!(partitions(&bootstrap, "managed"), None);
    let missing = admin
        .delete_topics(&["managed"], &options)
        .await
        .expect("request");
    assert_eq!(
        missing[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_auto_creation_unknown_topics_stay_unknown() {
    let (_broker, bootstrap) = start(|c| c.auto_create_topics = false).await;
    let producer: FutureProducer = config(&bootstrap)
        .set("message.timeout.ms", "3000")
        .create()
        .expect("producer");
    let result = producer
        .send(
            FutureRecord::<(), _>::to("nowhere").payload("x"),
            Duration::from_secs(5),
        )
        .await;
    match result {
        Err((KafkaError::MessageProduction(code), _)) => assert!(
            matches!(
                code,
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::MessageTimedOut
            ),
            "{code:?}"
        ),
        other => panic!("expected a failed delivery, got {other:?}"),
    }
    assert_eq!(partitions(&bootstrap, "nowhere"), None);
}

#[test]
fn a_config_file_turns_auto_creation_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "auto_create_topics: false\n").expect("config written");
    let broker = BrokerProcess::start_with(&["--config", path.to_str().expect("utf-8")]);
    let client: BaseConsumer = config(&broker.bootstrap())
        .set("allow.auto.create.topics", "true")
        .create()
        .expect("client");
    let metadata = client
        .fetch_metadata(Some("nowhere"), Duration::from_secs(10))
        .expect("metadata");
    let topic = &metadata.topics()[0];
    assert_eq!(topic.name(), "nowhere");
    assert_eq!(
        topic.error().map(RDKafkaErrorCode::from),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(partitions(&broker.bootstrap(), "nowhere"), None);
}

/// Dynamic broker configs (KIP-226) set with confluent-kafka's admin client
/// are in force at once (retention deletes what the new default expires)
/// and, stored durably before the answer, after the broker is killed.
#[test]
fn dynamic_broker_configs_apply_at_once_and_survive_a_restart() {
    let mut broker = BrokerProcess::start_with_config("retention_check_interval_ms: 200\n");
    let script = |broker: &BrokerProcess, phase: &str| {
        let (ok, stdout, stderr) = run(
            Command::new("python3")
                .arg(source("tests/scripts/confluent_broker_configs.py"))
                .args(["--bootstrap", &broker.bootstrap(), "--phase", phase]),
            "",
        );
        assert!(ok, "phase {phase}:\n{stdout}\n{stderr}");
    };
    script(&broker, "set");
    broker.kill9();
    broker.restart();
    script(&broker, "check");
}

/// Legacy AlterConfigs (librdkafka's `alter_configs`) on this broker's id
/// replaces that resource's whole dynamic set, as Kafka's does, and a
/// static key fails the resource (the error code is checked with
/// IncrementalAlterConfigs in the test above).
#[tokio::test(flavor = "multi_thread")]
async fn legacy_alter_configs_replaces_a_brokers_dynamic_set() {
    let (_broker, bootstrap) = start(|_| {}).await;
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let alter = |pairs: &[(&'static str, &'static str)]| {
        let admin = &admin;
        let change = pairs.iter().fold(
            AlterConfig::new(ResourceSpecifier::Broker(1)),
            |change, (key, value)| change.set(key, value),
        );
        async move {
            // rdkafka 0.39 reports every resource of an AlterConfigs as
            // altered whatever its error code: what changed is read back.
            admin
                .alter_configs([&change], &AdminOptions::new())
                .await
                .expect("request");
        }
    };
    let described = |key: &'static str| {
        let admin = &admin;
        async move {
            let resources = admin
                .describe_configs([&ResourceSpecifier::Broker(1)], &AdminOptions::new())
                .await
                .expect("describe configs");
            let resource = resources[0].as_ref().expect("described");
            let entry = resource.get(key).expect("listed");
            (
                entry.value.clone().unwrap_or_default(),
                format!("{:?}", entry.source),
            )
        }
    };
    let both = [
        ("log.segment.bytes", "1048576"),
        ("message.max.bytes", "2000000"),
    ];
    alter(&both).await;
    assert_eq!(
        described("log.segment.bytes").await,
        (
            "1048576".to_string(),
            format!("{:?}", ConfigSource::DynamicBroker)
        )
    );
    alter(&[("message.max.bytes", "3000000")]).await;
    assert_eq!(
        described("message.max.bytes").await,
        (
            "3000000".to_string(),
            format!("{:?}", ConfigSource::DynamicBroker)
        )
    );
    assert_eq!(
        described("log.segment.bytes").await,
        (
            "1073741824".to_string(),
            format!("{:?}", ConfigSource::Default)
        ),
        "a key left out of a legacy AlterConfigs is removed"
    );
    alter(&[("listeners", "PLAINTEXT://0.0.0.0:1")]).await;
    assert_eq!(
        described("message.max.bytes").await.0,
        "3000000",
        "a request with a static key changes nothing"
    );
}
