//! Transaction markers across the cluster, and the transactional offsets
//! they settle.
//!
//! The transaction coordinator writes a transaction's markers to each of
//! its partitions: to a partition this broker leads directly, to one led
//! elsewhere with WriteTxnMarkers to its leader, as Kafka's coordinator
//! does. Until the marker is written it retries, following leadership as
//! it moves, for as long as this broker runs: a transaction is never left
//! half visible.
//!
//! A transaction's consumer offsets (TxnOffsetCommit) wait at their group's
//! coordinator as pending entries of the offsets topic; the marker for the
//! group's offsets partition settles them: a commit appends them as
//! ordinary commits, either outcome appends the producer's end.

use super::offsets_topic::{self, Entry, OFFSETS_TOPIC};
use super::Broker;
use crate::partition::WriteMarker;
use crate::replication::client::Client;
use crate::store::offsets::PartitionOffset;
use crate::txn::Participants;
use futures_util::future::BoxFuture;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::sync::Weak;
use std::time::Duration;

/// The WriteTxnMarkers version sent to other brokers.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// How long connecting to another broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first pause before a marker is tried again, doubled up to the
/// longest.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LONGEST_RETRY: Duration = Duration::from_secs(1);
/// How long one attempt to write a marker may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Writes markers for the broker's transaction coordinator.
pub struct Markers {
    pub broker: Weak<Broker>,
}

impl Participants for Markers {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: WriteMarker,
    ) -> BoxFuture<'static, Result<(), ResponseError>> {
        Box::pin(write_anywhere(
            self.broker.clone(),
            topic.to_string(),
            partition,
            marker,
        ))
    }

    fn end_group_offsets(
        &self,
        group: &str,
        marker: WriteMarker,
    ) -> BoxFuture<'static, Result<(), ResponseError>> {
        let Some(broker) = self.broker.upgrade() else {
            return Box::pin(async { Err(ResponseError::CoordinatorNotAvailable) });
        };
        let Some(topic) = broker.cluster().and(broker.topic(OFFSETS_TOPIC)) else {
            // A single broker commits them from the transaction's plan.
            return Box::pin(async { Ok(()) });
        };
        let index = offsets_topic::partition_for(group, topic.partitions.len() as i32);
        self.write_marker(OFFSETS_TOPIC, index, marker)
    }
}

/// Whether writing a marker failed for a reason that passes: leadership
/// moving, a broker away, replicas catching up.
fn retriable(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::NotLeaderOrFollower
            | ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::NotEnoughReplicas
            | ResponseError::NotEnoughReplicasAfterAppend
            | ResponseError::RequestTimedOut
            | ResponseError::LeaderNotAvailable
    )
}

/// Writes `marker` to a partition wherever it is led, retrying until it is
/// written, the partition is gone, or this broker stops.
async fn write_anywhere(
    broker: Weak<Broker>,
    topic: String,
    partition: i32,
    marker: WriteMarker,
) -> Result<(), ResponseError> {
    let mut pause = FIRST_RETRY;
    loop {
        let Some(local) = broker.upgrade() else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        let Some(leader) = leader_of(&local, &topic, partition) else {
            // Deleted meanwhile: nothing to mark.
            return Ok(());
        };
        let attempt = async {
            if leader == local.config().node_id {
                write_local(&local, &topic, partition, marker).await
            } else {
                write_remote(&local, leader, &topic, partition, marker).await
            }
        };
        // A leader whose followers stopped answering would hold an attempt
        // until it leaves the ISR; the next attempt finds out again.
        let written = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .unwrap_or(Err(ResponseError::RequestTimedOut));
        match written {
            Ok(()) | Err(ResponseError::UnknownTopicOrPartition) => return Ok(()),
            Err(e) if retriable(e) => {
                log::debug!("marker for {topic}-{partition}: {e:?}, retrying");
            }
            Err(e) => return Err(e),
        }
        drop(local);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_RETRY);
    }
}

/// The partition's leader: `None` if the topic or partition is gone, -1
/// while it has none.
fn leader_of(broker: &Broker, topic: &str, partition: i32) -> Option<i32> {
    let topic = broker.topic(topic)?;
    topic.partition(partition)?;
    Some(
        broker
            .partition_view(&topic, partition)
            .map_or(-1, |v| v.leader),
    )
}

/// Writes a marker to a partition this broker leads (from the coordinator
/// here or from WriteTxnMarkers): on the offsets topic of a cluster it
/// settles the producer's pending offsets; elsewhere it goes into the log.
pub async fn write_local(
    broker: &Broker,
    topic: &str,
    partition: i32,
    marker: WriteMarker,
) -> Result<(), ResponseError> {
    if topic == OFFSETS_TOPIC && broker.cluster().is_some() {
        return settle(broker, partition, marker).await;
    }
    let handle = broker
        .topic(topic)
        .ok_or(ResponseError::UnknownTopicOrPartition)?
        .replica(partition)?
        .clone();
    handle
        .addr
        .send(marker)
        .await
        .unwrap_or(Err(ResponseError::UnknownTopicOrPartition))
}

/// Sends one marker to the broker that leads its partition.
async fn write_remote(
    broker: &Broker,
    leader: i32,
    topic: &str,
    partition: i32,
    marker: WriteMarker,
) -> Result<(), ResponseError> {
    // Where followers reach it too: its inter-broker listener.
    let peer = broker
        .cluster()
        .and_then(|node| {
            let image = node.image().borrow().clone();
            let info = image.brokers.get(&leader)?;
            Some(format!("{}:{}", info.host, info.port))
        })
        .ok_or(ResponseError::NotLeaderOrFollower)?;
    let client_id = format!("actorlog-txn-coordinator-{}", broker.config().node_id);
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(vec![partition])])]);
    let answered = async {
        let mut client =
            Client::connect(&peer, client_id, CONNECT_TIMEOUT, broker.peer_security()).await?;
        client.request(WRITE_TXN_MARKERS_VERSION, &request).await
    };
    let response = answered.await.map_err(|e| {
        log::debug!("writing a transaction marker to broker {leader}: {e}");
        ResponseError::NotLeaderOrFollower
    })?;
    let code = response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .find(|&code| code != 0);
    match code.map(ResponseError::try_from_code) {
        None => Ok(()),
        Some(Some(e)) => Err(e),
        Some(None) => Err(ResponseError::UnknownServerError),
    }
}

/// TxnOffsetCommit at the group's coordinator in a cluster: appends the
/// offsets as pending, replicated, and notes them until the transaction's
/// marker settles them.
pub async fn commit_pending(
    broker: &Broker,
    group: &str,
    producer_id: i64,
    producer_epoch: i16,
    offsets: Vec<PartitionOffset>,
) -> Result<(), ResponseError> {
    broker.check_coordinator(group)?;
    let index = broker.offsets_index_of(group)?;
    broker.with_pending_offsets(index, |p| p.check(producer_id, producer_epoch))?;
    let entries: Vec<Entry> = offsets
        .iter()
        .map(|offset| Entry::TxnCommit {
            producer_id,
            producer_epoch,
            group: group.to_string(),
            offset: offset.clone(),
        })
        .collect();
    let batch = offsets_topic::encode(&entries, crate::clock::now_ms());
    offsets_topic::append(broker.offsets_partition_of(group), batch).await?;
    broker.with_pending_offsets(index, |p| {
        p.add(producer_id, producer_epoch, group, offsets)
    })
}

/// A transaction's marker reached the offsets partition `index` here:
/// its pending offsets become commits (or are dropped), durably first.
async fn settle(broker: &Broker, index: i32, marker: WriteMarker) -> Result<(), ResponseError> {
    broker
        .check_coordinating(index)
        .map_err(|_| ResponseError::NotLeaderOrFollower)?;
    let (pid, epoch) = (marker.producer_id, marker.producer_epoch);
    let taken = broker.with_pending_offsets(index, |p| Ok(p.take(pid, epoch)))?;
    let mut entries: Vec<Entry> = Vec::new();
    if marker.commit {
        entries.extend(
            taken
                .iter()
                .map(|(group, offset)| Entry::Commit(group.clone(), offset.clone())),
        );
    }
    entries.push(Entry::TxnEnded { producer_id: pid });
    let handle = broker
        .topic(OFFSETS_TOPIC)
        .ok_or(ResponseError::NotLeaderOrFollower)
        .and_then(|t| t.replica(index).cloned());
    let batch = offsets_topic::encode(&entries, crate::clock::now_ms());
    if let Err(e) = offsets_topic::append(handle, batch).await {
        let _ = broker.with_pending_offsets(index, |p| {
            p.restore(pid, epoch, taken);
            Ok(())
        });
        return Err(match e {
            ResponseError::NotCoordinator => ResponseError::NotLeaderOrFollower,
            other => other,
        });
    }
    if !marker.commit {
        return Ok(());
    }
    broker.offsets().commit_groups(&taken).await.map_err(|e| {
        log::error!("committing transactional offsets: {e}");
        ResponseError::KafkaStorageError
    })?;
    Ok(())
}
