//! The librdkafka clients of the runtime: how each is configured, and the
//! internal topics created at start (the compacted offsets topic, the
//! source tasks topic the workers of a group share).

use crate::config::{ConnectConfig, ConnectorConfig};
use crate::error::ConnectError;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use std::time::Duration;

/// How long a metadata, admin or transaction request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The bootstrap servers, then the user's `client` settings, which win.
fn client(config: &ConnectConfig, set: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("log_level", "3");
    for (key, value) in set {
        client.set(*key, *value);
    }
    for (key, value) in &config.client {
        client.set(key, value);
    }
    client
}

/// A source task's producer: transactional with a stable id per
/// connector, so a restarted task fences the one before it and aborts its
/// open transaction; keys partitioned by murmur2 as the Java client does.
pub fn source_producer(
    config: &ConnectConfig,
    connector: &ConnectorConfig,
) -> Result<ThreadedProducer<DefaultProducerContext>, KafkaError> {
    let id = format!("connect-{}-0", connector.name);
    client(
        config,
        &[
            ("transactional.id", &id),
            ("partitioner", "murmur2_random"),
            ("linger.ms", "5"),
        ],
    )
    .create()
}

/// A sink's dead-letter producer: idempotent, flushed before the sink
/// commits the offsets of the records it dead-lettered.
pub fn dead_letter_producer(
    config: &ConnectConfig,
) -> Result<ThreadedProducer<DefaultProducerContext>, KafkaError> {
    client(config, &[("enable.idempotence", "true")]).create()
}

/// A sink task's group member: group `connect-<name>` as Kafka Connect
/// names it, offsets committed by the task after its write, and only
/// committed records read.
pub fn sink_consumer(
    config: &ConnectConfig,
    connector: &ConnectorConfig,
) -> Result<BaseConsumer, KafkaError> {
    let group = format!("connect-{}", connector.name);
    client(
        config,
        &[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
        ],
    )
    .create()
}

/// A consumer outside any group reading the offsets topic.
pub fn offsets_reader(config: &ConnectConfig, isolation: &str) -> Result<BaseConsumer, KafkaError> {
    client(
        config,
        &[
            ("group.id", "actorlog-connect-offsets-reader"),
            ("enable.auto.commit", "false"),
            ("isolation.level", isolation),
        ],
    )
    .create()
}

/// A worker's member of the group sharing the source tasks
/// (`<group.id>-sources`): cooperative-sticky, so a rebalance moves only
/// the tasks that must move; named by the worker's id for the group's
/// member list. It never reads a record, so it commits nothing.
pub fn source_group_consumer<C: ConsumerContext>(
    config: &ConnectConfig,
    context: C,
) -> Result<BaseConsumer<C>, KafkaError> {
    let group = format!("{}-sources", config.group);
    client(
        config,
        &[
            ("group.id", &group),
            ("client.id", &config.rest_listen.to_string()),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.auto.commit", "false"),
        ],
    )
    .create_with_context(context)
}

/// Creates `topic` with `partitions` partitions at least: creates it if
/// missing, adds partitions if it has fewer (a config that grew).
pub async fn create_source_tasks_topic(
    config: &ConnectConfig,
    topic: &str,
    partitions: usize,
) -> Result<(), ConnectError> {
    let admin: AdminClient<DefaultClientContext> = client(config, &[]).create()?;
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let fail = |code| ConnectError::Config(format!("cannot create {topic}: {code}"));
    let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(-1));
    for result in admin.create_topics([&new], &options).await? {
        match result {
            Ok(_) => return Ok(()),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(fail(code)),
        }
    }
    let metadata = admin.inner().fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let existing = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    if existing >= partitions {
        return Ok(());
    }
    let more = NewPartitions::new(topic, partitions);
    for result in admin.create_partitions([&more], &options).await? {
        if let Err((_, code)) = result {
            return Err(fail(code));
        }
    }
    Ok(())
}

/// Creates the compacted offsets topic unless it exists. One partition:
/// a task reads all of it once at start, and positions are small.
pub async fn create_offsets_topic(config: &ConnectConfig) -> Result<(), ConnectError> {
    let admin: AdminClient<DefaultClientContext> = client(config, &[]).create()?;
    let topic = NewTopic::new(&config.offsets_topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    for result in admin.create_topics([&topic], &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(ConnectError::Config(format!(
                    "offset.storage.topic: cannot create {name}: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// Queues a record, waiting while librdkafka's queue is full.
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), String> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(format!("cannot produce: {e}")),
        }
    }
}
