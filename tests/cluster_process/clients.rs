//! librdkafka clients for the cluster tests: a partition's leader, replicas
//! and ISR as the brokers report them, topic creation that waits until
//! every replica is in sync, a producer that remembers each delivery
//! report, and reading a partition back up to its high watermark.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wait_until;

/// How long one metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);

/// librdkafka settings every client here shares.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3");
    config
}

/// The cluster metadata as one of the brokers in `bootstrap` answers it,
/// or `None` when none answers in time. A new client each time, so the
/// answer comes from a broker the caller named and not from one an older
/// client happens to hold a connection to.
pub fn metadata(bootstrap: &str) -> Option<Metadata> {
    let client: BaseConsumer = client_config(bootstrap).create().ok()?;
    client.fetch_metadata(None, METADATA_TIMEOUT).ok()
}

/// The node ids of the brokers in the metadata, sorted.
pub fn broker_ids(metadata: &Metadata) -> Vec<i32> {
    let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
    ids.sort_unstable();
    ids
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionView {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl PartitionView {
    /// Whether the partition has a leader and every replica is in sync.
    pub fn fully_in_sync(&self, replication_factor: usize) -> bool {
        let mut replicas = self.replicas.clone();
        let mut isr = self.isr.clone();
        replicas.sort_unstable();
        isr.sort_unstable();
        self.leader >= 0 && replicas.len() == replication_factor && isr == replicas
    }
}

/// The partitions of `topic`, by partition id, as one broker in
/// `bootstrap` reports them; `None` if no answer or no such topic.
pub fn topic_view(bootstrap: &str, topic: &str) -> Option<Vec<PartitionView>> {
    let metadata = metadata(bootstrap)?;
    let topic = metadata.topics().iter().find(|t| t.name() == topic)?;
    if topic.error().is_some() {
        return None;
    }
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    Some(
        partitions
            .into_iter()
            .map(|p| PartitionView {
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect(),
    )
}

/// Partition `partition` of `topic`, as [`topic_view`].
pub fn partition_view(bootstrap: &str, topic: &str, partition: usize) -> Option<PartitionView> {
    topic_view(bootstrap, topic)?.into_iter().nth(partition)
}

/// Whether every broker in `brokers`, each asked on its own, reports a
/// leader and all 3 replicas of `topic`'s partition in sync. Asking them
/// all keeps a broker that has just restarted, and may not have caught up
/// with the metadata yet, from vouching alone for an ISR it left.
pub fn in_sync_everywhere(brokers: &[String], topic: &str, partition: usize) -> bool {
    brokers
        .iter()
        .all(|broker| partition_view(broker, topic, partition).is_some_and(|p| p.fully_in_sync(3)))
}

/// Creates `topic` with replication factor 3 and `min.insync.replicas=2`,
/// then waits until every partition has a leader and three in-sync
/// replicas; returns that view.
pub fn create_replicated_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> Vec<PartitionView> {
    create_topic(
        bootstrap,
        &NewTopic::new(topic, partitions, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2"),
    );
    let mut view = Vec::new();
    wait_until(
        Duration::from_secs(60),
        &format!("every partition of {topic} has a leader and 3 in-sync replicas"),
        || {
            view = topic_view(bootstrap, topic).unwrap_or_default();
            view.len() == partitions as usize && view.iter().all(|p| p.fully_in_sync(3))
        },
    );
    view
}

/// Creates a one-partition `topic` on exactly these `replicas` (the first
/// leads), with `min.insync.replicas=2`; does not wait for its ISR.
pub fn create_assigned_topic(bootstrap: &str, topic: &str, replicas: &[i32]) {
    create_topic(
        bootstrap,
        &NewTopic::new(topic, 1, TopicReplication::Variable(&[replicas]))
            .set("min.insync.replicas", "2"),
    );
}

/// CreateTopics with librdkafka's admin client; panics on any error.
fn create_topic(bootstrap: &str, new_topic: &NewTopic<'_>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = runtime
        .block_on(admin.create_topics([new_topic], &options))
        .expect("CreateTopics answered");
    for result in results {
        if let Err((name, code)) = result {
            panic!("creating topic {name}: {code}");
        }
    }
}

/// A record the cluster acknowledged: its value (a number), where it went
/// and when the delivery report came.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub value: u64,
    pub partition: i32,
    pub offset: i64,
    pub at: Instant,
}

/// Delivery reports, kept: acknowledged records and failed ones.
#[derive(Default, Clone)]
pub struct Recorder {
    pub acks: Arc<Mutex<Vec<Ack>>>,
    pub failures: Arc<Mutex<Vec<(u64, KafkaError)>>>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let value = |payload: Option<&[u8]>| -> u64 {
            std::str::from_utf8(payload.expect("a payload"))
                .expect("utf-8")
                .parse()
                .expect("a number")
        };
        match result {
            Ok(message) => self.acks.lock().unwrap().push(Ack {
                value: value(message.payload()),
                partition: message.partition(),
                offset: message.offset(),
                at: Instant::now(),
            }),
            Err((error, message)) => self
                .failures
                .lock()
                .unwrap()
                .push((value(message.payload()), error.clone())),
        }
    }
}

/// A producer with `acks=all` and idempotence, recording delivery reports;
/// `settings` are extra librdkafka properties.
pub fn recording_producer(
    bootstrap: &str,
    settings: &[(&str, &str)],
) -> (ThreadedProducer<Recorder>, Recorder) {
    let recorder = Recorder::default();
    let mut config = client_config(bootstrap);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let producer = config
        .create_with_context(recorder.clone())
        .expect("producer");
    (producer, recorder)
}

/// Sends `value` to partition 0 of `topic` with `acks=all` and waits for
/// its delivery report: the acknowledged offset, or the error. Without
/// idempotence, so the producer needs no producer id from the controller
/// quorum first: whatever the answer, it is the partition leader's.
pub fn produce_one(
    bootstrap: &str,
    topic: &str,
    value: u64,
    message_timeout: Duration,
) -> Result<i64, String> {
    let timeout_ms = message_timeout.as_millis().to_string();
    let (producer, recorder) = recording_producer(
        bootstrap,
        &[
            ("enable.idempotence", "false"),
            ("message.timeout.ms", timeout_ms.as_str()),
        ],
    );
    let payload = value.to_string();
    producer
        .send(
            BaseRecord::<(), _>::to(topic)
                .partition(0)
                .payload(&payload),
        )
        .map_err(|(e, _)| format!("send: {e}"))?;
    // The delivery report comes at the latest when the message times out.
    let _ = producer.flush(message_timeout + Duration::from_secs(10));
    if let Some(ack) = recorder.acks.lock().unwrap().first() {
        return Ok(ack.offset);
    }
    let failure = recorder.failures.lock().unwrap().first().cloned();
    match failure {
        Some((_, error)) => Err(error.to_string()),
        None => panic!("no delivery report for record {value} after its message timeout"),
    }
}

/// Sends numbered records (0, 1, 2, ...) to partition 0 of a topic from
/// its own thread, a few hundred a second, until stopped.
pub struct ContinuousProducer {
    recorder: Recorder,
    /// The number the next record will carry.
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<(RDKafkaErrorCode, String)>>>,
}

/// What a [`ContinuousProducer`] saw: every acknowledged record, every
/// failed one, and the producer's fatal error if it had one.
pub struct Produced {
    pub acks: Vec<Ack>,
    pub failures: Vec<(u64, KafkaError)>,
    pub fatal: Option<(RDKafkaErrorCode, String)>,
}

impl ContinuousProducer {
    pub fn start(bootstrap: &str, topic: &str) -> ContinuousProducer {
        // Long enough that records wait through a failover instead of
        // failing: losing availability is not what the tests look for.
        let (producer, recorder) =
            recording_producer(bootstrap, &[("message.timeout.ms", "60000")]);
        let next = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (next, stop, topic) = (next.clone(), stop.clone(), topic.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let value = next.load(Ordering::SeqCst);
                    let payload = value.to_string();
                    let record = BaseRecord::<(), _>::to(&topic)
                        .partition(0)
                        .payload(&payload);
                    match producer.send(record) {
                        Ok(()) => {
                            next.store(value + 1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err((error, _)) => panic!("sending record {value}: {error}"),
                    }
                }
                let _ = producer.flush(Duration::from_secs(90));
                producer.client().fatal_error()
            })
        };
        ContinuousProducer {
            recorder,
            next,
            stop,
            thread: Some(thread),
        }
    }

    /// The number the next record will carry: every record with this
    /// number or more is sent after this call.
    pub fn next_value(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// When the first record numbered `value` or more was acknowledged.
    pub fn first_ack_from(&self, value: u64) -> Option<Instant> {
        let acks = self.recorder.acks.lock().unwrap();
        // An idempotent producer's acknowledgements of one partition come
        // in the order of the records.
        acks.iter()
            .rev()
            .take_while(|a| a.value >= value)
            .last()
            .map(|a| a.at)
    }

    pub fn acknowledged(&self) -> usize {
        self.recorder.acks.lock().unwrap().len()
    }

    /// Stops sending, waits for the records in flight, and reports.
    pub fn stop(mut self) -> Produced {
        self.stop.store(true, Ordering::SeqCst);
        let fatal = self
            .thread
            .take()
            .expect("the producer thread")
            .join()
            .expect("the producer thread ends");
        let acks = self.recorder.acks.lock().unwrap().clone();
        let failures = self.recorder.failures.lock().unwrap().clone();
        Produced {
            acks,
            failures,
            fatal,
        }
    }
}

impl Drop for ContinuousProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Every record of a partition from its start up to its high watermark,
/// as (offset, value).
pub fn read_partition(bootstrap: &str, topic: &str, partition: i32) -> Vec<(i64, u64)> {
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", "cluster-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(30))
        .expect("the high watermark");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let mut records: Vec<(i64, u64)> = Vec::new();
    wait_until(
        Duration::from_secs(120),
        &format!("{topic}/{partition} is read up to its high watermark {high}"),
        || {
            while let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                let value = std::str::from_utf8(message.payload().unwrap_or_default())
                    .expect("utf-8")
                    .parse()
                    .expect("a number");
                records.push((message.offset(), value));
            }
            records.last().map_or(0, |(offset, _)| offset + 1) >= high
        },
    );
    records
}

/// A consumer of `group` that commits only when told (no subscription: its
/// commits carry generation -1, as an assigning consumer's do).
pub fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// The group's committed offset of partition 0 of `topic` as its
/// coordinator answers OffsetFetch (`Offset::Invalid`: none), or `None`
/// when no coordinator answers in time.
pub fn committed_offset(consumer: &BaseConsumer, topic: &str) -> Option<Offset> {
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, 0);
    let found = consumer
        .committed_offsets(wanted, Duration::from_secs(5))
        .ok()?;
    Some(found.find_partition(topic, 0)?.offset())
}

/// Commits `offset` of partition 0 of `topic`, retried until a coordinator
/// acknowledges it.
pub fn commit_until_acknowledged(
    consumer: &BaseConsumer,
    topic: &str,
    offset: i64,
    within: Duration,
) {
    use rdkafka::consumer::CommitMode;
    let mut position = TopicPartitionList::new();
    position
        .add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("offset");
    wait_until(within, &format!("commit of {offset} acknowledged"), || {
        consumer.commit(&position, CommitMode::Sync).is_ok()
    });
}
