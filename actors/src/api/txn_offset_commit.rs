//! TxnOffsetCommit: consumer offsets held by the transaction and stored
//! only if it commits: on a single broker by the transaction coordinator,
//! in a cluster by the group's coordinator (`broker::txn_markers`).

use crate::broker::txn_markers;
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
    let group = req.group_id.to_string();
    let (producer_id, producer_epoch) = (req.producer_id.0, req.producer_epoch);
    let committed = match allowed {
        Err(error) => Err(error),
        // The group's coordinator keeps them until the marker comes.
        Ok(()) if broker.cluster().is_some() => {
            txn_markers::commit_pending(broker, &group, producer_id, producer_epoch, offsets).await
        }
        Ok(()) => {
            let add = Add {
                id: req.transactional_id.to_string(),
                producer_id,
                producer_epoch,
                addition: Addition::Offsets { group, offsets },
            };
            broker
                .ask_transactions(&req.transactional_id, add)
                .await
                .map_err(|e| fencing_for(e, false))
        }
    };
    let error = committed.err().map_or(0, |e| e.code());
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
