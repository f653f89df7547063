//! Topic administration through librdkafka's admin client: duplicate
//! creation, growing partitions, deletion, and auto-creation turned off;
//! dynamic broker configs through confluent-kafka's.

mod broker_process;
mod embedded_broker;

use broker_process::{run, source, BrokerProcess};
use embedded_broker::{config, create_topic, start};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
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
