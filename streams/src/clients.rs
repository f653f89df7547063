//! The librdkafka clients of an instance: how each is configured, the
//! contexts that report rebalances and failed deliveries, and creating the
//! internal topics.

use crate::config::{Guarantee, StreamsConfig};
use crate::error::StreamsError;
use crate::graph::Graph;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a metadata or admin request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings every client of the instance shares.
fn base(config: &StreamsConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.bootstrap_servers);
    client
}

/// Applies the user's settings last, so they win.
fn with_overrides(mut client: ClientConfig, config: &StreamsConfig) -> ClientConfig {
    for (key, value) in &config.client {
        client.set(key, value);
    }
    client
}

fn isolation(config: &StreamsConfig) -> &'static str {
    match config.guarantee {
        Guarantee::AtLeastOnce => "read_uncommitted",
        Guarantee::ExactlyOnceV2 => "read_committed",
    }
}

/// The partitions assigned to an instance, shared with its handle.
pub(crate) type Assignment = Arc<Mutex<BTreeSet<(String, i32)>>>;

/// Follows the instance's assignment, and collects the partitions a
/// rebalance takes away for the driver to drop their tasks and
/// unprocessed records after the poll.
#[derive(Default)]
pub(crate) struct GroupContext {
    revoked: Mutex<Vec<(String, i32)>>,
    assigned: Assignment,
}

impl GroupContext {
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
                let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
                for element in list.elements() {
                    let id = (element.topic().to_string(), element.partition());
                    assigned.remove(&id);
                    revoked.push(id);
                }
                log::info!("partitions revoked: {}", list.count());
            }
            Rebalance::Assign(list) => {
                let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
                for element in list.elements() {
                    assigned.insert((element.topic().to_string(), element.partition()));
                }
                log::info!("partitions assigned: {}", list.count());
            }
            Rebalance::Error(e) => log::warn!("rebalance error: {e}"),
        }
    }
}

/// The group member reading the source topics: one per instance, group id
/// = application id, cooperative-sticky so instances trade only the
/// partitions that move.
pub(crate) fn group_consumer(
    config: &StreamsConfig,
    app_id: &str,
    assigned: &Assignment,
) -> Result<BaseConsumer<GroupContext>, StreamsError> {
    let mut client = base(config);
    client
        .set("group.id", app_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation(config));
    let context = GroupContext {
        revoked: Mutex::default(),
        assigned: Arc::clone(assigned),
    };
    Ok(with_overrides(client, config).create_with_context(context)?)
}

/// A consumer outside any group that reads assigned partitions to their
/// end: restoring a changelog, loading a global table.
pub(crate) fn reader(config: &StreamsConfig) -> Result<BaseConsumer, StreamsError> {
    let mut client = base(config);
    client
        .set("group.id", "actorlog-streams-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation(config));
    Ok(with_overrides(client, config).create()?)
}

/// Counts records the broker did not take, so a commit can refuse to
/// commit past them.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    failed: AtomicU64,
}

impl DeliveryContext {
    pub fn take_failures(&self) -> u64 {
        self.failed.swap(0, Ordering::Relaxed)
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            log::warn!("a record was not delivered: {e}");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The instance's producer: idempotent, keys partitioned by murmur2 as the
/// Java client does (so repartition topics agree with Kafka Streams), and
/// transactional under exactly-once with id `transactional_id`.
pub(crate) fn producer(
    config: &StreamsConfig,
    transactional_id: &str,
) -> Result<ThreadedProducer<DeliveryContext>, StreamsError> {
    let mut client = base(config);
    client
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5");
    if config.guarantee == Guarantee::ExactlyOnceV2 {
        client
            .set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", "10000");
    }
    Ok(with_overrides(client, config).create_with_context(DeliveryContext::default())?)
}

/// The partition count of `topic`.
pub(crate) fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<usize, StreamsError> {
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
        .ok_or_else(|| StreamsError::MissingTopic(topic.to_string()))
}

/// Creates the repartition and changelog topics `graph` needs, each with
/// as many partitions as the topics it follows; existing ones are kept.
pub(crate) async fn create_internal_topics(
    config: &StreamsConfig,
    graph: &Graph,
) -> Result<(), StreamsError> {
    let probe = reader(config)?;
    let admin: AdminClient<DefaultClientContext> = with_overrides(base(config), config).create()?;
    let mut counts = std::collections::HashMap::new();
    for topic in &graph.internal_topics {
        let mut partitions = 0;
        for source in &topic.partitions_of {
            let n = match counts.get(source) {
                Some(n) => *n,
                None => partition_count(&probe, source)?,
            };
            partitions = partitions.max(n);
        }
        counts.insert(topic.name.clone(), partitions);
        let partitions = i32::try_from(partitions).map_err(|_| {
            StreamsError::Topology(format!("{} has too many partitions", topic.name))
        })?;
        let mut new = NewTopic::new(
            &topic.name,
            partitions,
            TopicReplication::Fixed(config.replication_factor),
        );
        if topic.compacted {
            new = new.set("cleanup.policy", "compact");
        }
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        for result in admin.create_topics([&new], &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(StreamsError::CreateTopic {
                        topic: name,
                        reason: code.to_string(),
                    })
                }
            }
        }
    }
    Ok(())
}

/// Refuses to start when a partitioned table's topic and the topic of the
/// stream joining it differ in partition count: partition p of one would
/// not hold the keys of partition p of the other.
pub(crate) fn check_copartitioned(
    config: &StreamsConfig,
    graph: &Graph,
) -> Result<(), StreamsError> {
    let probe = reader(config)?;
    for table in &graph.partitioned_tables {
        let Some(stream) = &table.joined_by else {
            continue;
        };
        let ours = partition_count(&probe, stream)?;
        let theirs = partition_count(&probe, &table.topic)?;
        if ours != theirs {
            return Err(StreamsError::Topology(format!(
                "table {} (topic {}, {theirs} partitions) is joined by a stream of {stream} ({ours} partitions): the topics must be co-partitioned, with as many partitions and keys partitioned alike",
                table.store, table.topic
            )));
        }
    }
    Ok(())
}
