//! ListOffsets: earliest, latest, max timestamp, or the first offset at or
//! after a timestamp, per partition.

use crate::broker::Broker;
use crate::partition::ListOffset;
use crate::protocol::READ_COMMITTED;
use crate::security::{Access, Operation};
use futures_util::future::join_all;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

/// From this version partitions carry a leader epoch.
const LEADER_EPOCH_VERSION: i16 = 4;

pub async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let committed = req.isolation_level == READ_COMMITTED;
    let topics = req.topics.into_iter().map(|t| async move {
        let topic = super::authorized_topic(broker, access, Operation::Describe, &t.name);
        let partitions = t.partitions.into_iter().map(|p| {
            let target = super::authorized_replica(&topic, p.partition_index);
            let leader_epoch = topic
                .as_ref()
                .ok()
                .and_then(Option::as_ref)
                .filter(|_| version >= LEADER_EPOCH_VERSION)
                .and_then(|t| broker.partition_view(t, p.partition_index))
                .map_or(-1, |view| view.leader_epoch);
            async move {
                let response = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_leader_epoch(leader_epoch);
                let ask = ListOffset {
                    timestamp: p.timestamp,
                    committed,
                    current_leader_epoch: p.current_leader_epoch,
                };
                let found = super::ask(target, ask).await;
                match found {
                    Ok((offset, timestamp)) => {
                        response.with_offset(offset).with_timestamp(timestamp)
                    }
                    Err(e) => response
                        .with_error_code(e.code())
                        .with_offset(-1)
                        .with_timestamp(-1),
                }
            }
        });
        ListOffsetsTopicResponse::default()
            .with_name(t.name)
            .with_partitions(join_all(partitions).await)
    });
    ListOffsetsResponse::default().with_topics(join_all(topics).await)
}
