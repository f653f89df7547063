//! OffsetCommit: checked by the group's coordinator (member, generation),
//! then stored durably in sled before the answer.

use super::WireCode;
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::group::Commit;
use crate::security::{Access, Operation};
use crate::store::offsets::{CommittedOffset, PartitionOffset};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

/// Per partition: an error found here, or the offset to store.
type Checked = (i32, Result<CommittedOffset, ResponseError>);

/// Kafka's default `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;

/// Commits need READ on the group, then READ on each topic.
pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let now = now_ms();
    let group_error = if req.group_id.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else {
        access
            .group(Operation::Read, &req.group_id)
            .and_then(|()| broker.check_coordinator(&req.group_id))
            .err()
    };
    let mut checked: Vec<(String, Vec<Checked>)> = Vec::new();
    for topic in &req.topics {
        let known = broker.topic(&topic.name);
        let topic_error = access.topic(Operation::Read, &topic.name).err();
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let result = if let Some(error) = group_error.or(topic_error) {
                    Err(error)
                } else if !known
                    .as_ref()
                    .is_some_and(|t| t.has_partition(p.partition_index))
                {
                    Err(ResponseError::UnknownTopicOrPartition)
                } else if p
                    .committed_metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
                {
                    Err(ResponseError::OffsetMetadataTooLarge)
                } else {
                    Ok(CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_timestamp_ms: now,
                    })
                };
                (p.partition_index, result)
            })
            .collect();
        checked.push((topic.name.to_string(), partitions));
    }
    let offsets: Vec<PartitionOffset> = checked
        .iter()
        .flat_map(|(topic, partitions)| {
            partitions.iter().filter_map(move |(partition, result)| {
                result.as_ref().ok().map(|committed| PartitionOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    committed: committed.clone(),
                })
            })
        })
        .collect();
    let committed = if offsets.is_empty() {
        Ok(())
    } else {
        broker
            .group(&req.group_id)
            .send(Commit {
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.map(|s| s.to_string()),
                generation_id: req.generation_id_or_member_epoch,
                offsets,
            })
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
    };
    let topics = req
        .topics
        .into_iter()
        .zip(checked)
        .map(|(topic, (_, partitions))| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, result)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(result.map(|_| ()).and(committed).wire_code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
