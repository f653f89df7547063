//! The in-process producer: builds a record batch and sends it to the
//! partition actor, partitioning as the Java client does.

use super::checks::Checks;
use super::{partition_for_key, Error};
use actorlog_actors::clock::now_ms;
use actorlog_actors::partition::batch;
use actorlog_actors::partition::Append;
use actorlog_actors::security::{Operation, Principal};
use bytes::Bytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Bytes of keyless records that go to one partition before the next takes
/// over: the Java client's default `batch.size`.
const STICKY_BYTES: usize = 16 * 1024;

/// Where a topic's keyless records go now.
#[derive(Debug, Clone, Copy)]
struct Sticky {
    partition: usize,
    bytes: usize,
}

/// Sends records to an embedded broker; clones share one sticky partition
/// per topic.
///
/// ```
/// # actorlog::block_on(async {
/// # let broker = actorlog::Broker::builder().in_memory().start().await?;
/// broker.create_topic("orders", 6).await?;
/// let producer = broker.producer();
/// let (partition, offset) = producer.send("orders", Some(b"customer-7"), b"42.50").await?;
/// // The Java client would have picked the same partition for this key.
/// assert_eq!(partition, actorlog::partition_for_key(b"customer-7", 6));
/// assert_eq!(offset, 0);
/// # broker.shutdown().await
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Producer {
    broker: Arc<actorlog_actors::Broker>,
    sticky: Arc<Mutex<HashMap<String, Sticky>>>,
    checks: Checks,
}

impl Producer {
    pub(super) fn new(broker: Arc<actorlog_actors::Broker>) -> Self {
        Producer {
            broker,
            sticky: Arc::default(),
            checks: Checks::default(),
        }
    }

    /// This producer, writing as `principal`: with `authorizer: acl` each
    /// send needs WRITE on the topic (and CREATE to auto-create it), as a
    /// Kafka client of that principal from 127.0.0.1 would; without it,
    /// [`ResponseError::TopicAuthorizationFailed`] and nothing is written.
    /// A producer without a principal acts for the application and is not
    /// checked.
    ///
    /// ```
    /// # actorlog::block_on(async {
    /// use actorlog::{Principal, ResponseError};
    /// let broker = actorlog::Broker::builder()
    ///     .in_memory()
    ///     .config(|c| c.authorizer = actorlog::actors::config::AuthorizerKind::Acl)
    ///     .start()
    ///     .await?;
    /// broker.create_topic("orders", 1).await?;
    /// let guest = broker.producer().as_principal(Principal::user("guest"));
    /// let refused = guest.send("orders", None, b"hi").await.unwrap_err();
    /// assert_eq!(refused.code(), Some(ResponseError::TopicAuthorizationFailed));
    /// # broker.shutdown().await
    /// # }).unwrap();
    /// ```
    pub fn as_principal(self, principal: Principal) -> Producer {
        Producer {
            checks: Checks::as_principal(&self.broker, principal),
            ..self
        }
    }

    /// Writes one record durably (as `acks=all`: fsynced before this
    /// returns, unless the broker is in memory) and returns its partition
    /// and offset.
    ///
    /// A keyed record goes where the Java client would put it (murmur2 of
    /// the key, see [`partition_for_key`]); keyless records stick to one
    /// partition for about 16 KiB, then move to the next, as the Java
    /// client's default partitioner spreads them. An unknown topic is
    /// created if `auto_create_topics` is on (the default), else refused
    /// with [`ResponseError::UnknownTopicOrPartition`].
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(i32, i64), Error> {
        self.checks.topic(Operation::Write, topic)?;
        if self.broker.topic(topic).is_none() {
            self.checks.create_topic(topic)?;
        }
        let topic_handle = self.broker.topic_or_create(topic).await?.ok_or_else(|| {
            Error::kafka(
                ResponseError::UnknownTopicOrPartition,
                format!("no topic {topic}"),
            )
        })?;
        let batch = encode(key, value)?;
        let partitions = topic_handle.partitions.len();
        let partition = match key {
            Some(key) => partition_for_key(key, partitions),
            None => self.sticky_partition(topic, partitions, batch.len()),
        };
        let handle = topic_handle.partition(partition).ok_or_else(|| {
            Error::kafka(
                ResponseError::UnknownTopicOrPartition,
                format!("no partition {topic}-{partition}"),
            )
        })?;
        let appended = handle
            .addr
            .send(Append {
                batches: vec![batch],
                durable: true,
            })
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(|code| Error::kafka(code, format!("appending to {topic}-{partition}")))?;
        Ok((partition, appended.base_offset))
    }

    /// The partition of a keyless record of `bytes`, moving on once the
    /// current one has had its share.
    fn sticky_partition(&self, topic: &str, partitions: usize, bytes: usize) -> i32 {
        // Nothing panics while holding the lock, so a poisoned one is sound.
        let mut sticky = self.sticky.lock().unwrap_or_else(PoisonError::into_inner);
        let now = sticky.entry(topic.to_string()).or_insert(Sticky {
            partition: 0,
            bytes: 0,
        });
        if now.bytes >= STICKY_BYTES || now.partition >= partitions {
            now.partition = (now.partition + 1) % partitions.max(1);
            now.bytes = 0;
        }
        now.bytes += bytes;
        now.partition as i32
    }
}

fn encode(key: Option<&[u8]>, value: &[u8]) -> Result<Bytes, Error> {
    let record = batch::record(
        0,
        now_ms(),
        key.map(Bytes::copy_from_slice),
        Some(Bytes::copy_from_slice(value)),
    );
    batch::encode_records(&[record], Compression::None)
        .map_err(|e| Error::kafka(ResponseError::CorruptMessage, e.to_string()))
}
