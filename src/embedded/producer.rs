//! The in-process producer: builds a record batch and sends it to the
//! partition actor, with the partitioning of the Java client.

use super::{partition_for_key, Error};
use actorlog_actors::clock::now_ms;
use actorlog_actors::partition::batch;
use actorlog_actors::partition::Append;
use bytes::Bytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Sends records to an embedded broker; cheap to clone.
#[derive(Clone)]
pub struct Producer {
    broker: Arc<actorlog_actors::Broker>,
    /// Round robin for records without a key.
    next: Arc<AtomicUsize>,
}

impl Producer {
    pub(super) fn new(broker: Arc<actorlog_actors::Broker>) -> Self {
        Producer {
            broker,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Writes one record durably (as `acks=all`) and returns its partition
    /// and offset. Keyed records go where the Java client would put them.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(i32, i64), Error> {
        let topic_handle = self.broker.topic_or_create(topic).await?.ok_or_else(|| {
            Error::Kafka(
                ResponseError::UnknownTopicOrPartition,
                format!("no topic {topic}"),
            )
        })?;
        let partitions = topic_handle.partitions.len();
        let partition = match key {
            Some(key) => partition_for_key(key, partitions),
            None => (self.next.fetch_add(1, Ordering::Relaxed) % partitions.max(1)) as i32,
        };
        let handle = topic_handle.partition(partition).ok_or_else(|| {
            Error::Kafka(
                ResponseError::UnknownTopicOrPartition,
                format!("{topic}-{partition}"),
            )
        })?;
        let batch = encode(key, value)?;
        let appended = handle
            .addr
            .send(Append {
                batches: vec![batch],
                durable: true,
            })
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(|code| Error::Kafka(code, format!("appending to {topic}-{partition}")))?;
        Ok((partition, appended.base_offset))
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
        .map_err(|e| Error::Kafka(ResponseError::CorruptMessage, e.to_string()))
}
