//! TxnOffsetCommit: consumer offsets held by the transaction and stored
//! only if it commits.

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::security::{Access, Operation};
use crate::store::offsets::{CommittedOffset, PartitionOffset};
use crate::txn::{fencing_for, Add, Addition};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

/// Needs WRITE on the transactional id, READ on the group and READ on
/// every topic; without, nothing is committed.
pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let now = now_ms();
    let allowed = access
        .transactional_id(Operation::Write, &req.transactional_id)
        .and_then(|()| access.group(Operation::Read, &req.group_id))
        .and_then(|()| {
            req.topics
                .iter()
                .try_for_each(|t| access.topic(Operation::Read, &t.name))
        });
    let offsets = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| PartitionOffset {
                topic: t.name.to_string(),
                partition: p.partition_index,
                committed: CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp_ms: now,
                },
            })
        })
        .collect();
    let add = Add {
        id: req.transactional_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        addition: Addition::Offsets {
            group: req.group_id.to_string(),
            offsets,
        },
    };
    let error = match allowed {
        Ok(()) => broker
            .ask_transactions(add)
            .await
            .err()
            .map_or(0, |e| fencing_for(e, false).code()),
        Err(error) => error.code(),
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error)
                        })
                        .collect(),
                )
                .with_name(t.name)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
