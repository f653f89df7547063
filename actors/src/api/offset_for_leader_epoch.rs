//! OffsetForLeaderEpoch: where a leader epoch ends in the leader's log,
//! which consumers ask to detect a log truncated under their position
//! (KIP-320). The partition's leader-epoch cache answers.

use crate::broker::Broker;
use crate::partition::replication::EpochEnd;
use crate::security::{Access, Operation};
use futures_util::future::join_all;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req.topics.into_iter().map(|t| async move {
        let topic = super::authorized_topic(broker, access, Operation::Describe, &t.topic);
        let partitions = t.partitions.iter().map(|p| {
            let target = super::authorized_replica(&topic, p.partition);
            let ask = EpochEnd {
                current_leader_epoch: p.current_leader_epoch,
                epoch: p.leader_epoch,
            };
            async move {
                let answer = super::ask(target, ask).await;
                let result = EpochEndOffset::default().with_partition(p.partition);
                match answer {
                    Ok((epoch, offset)) => result.with_leader_epoch(epoch).with_end_offset(offset),
                    Err(e) => result
                        .with_error_code(e.code())
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                }
            }
        });
        OffsetForLeaderTopicResult::default()
            .with_topic(t.topic.clone())
            .with_partitions(join_all(partitions).await)
    });
    OffsetForLeaderEpochResponse::default().with_topics(join_all(topics).await)
}
