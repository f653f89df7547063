//! OffsetForLeaderEpoch: the end offset of a leader epoch, which consumers
//! ask to detect a log truncated under their position. A partition here has
//! had one leader epoch from its creation on and is never truncated, so
//! every epoch ends at the log end offset.

use crate::broker::Broker;
use crate::topic::LEADER_EPOCH;
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

/// "No check": the client does not know the current epoch.
const NO_EPOCH: i32 = -1;

pub fn handle(broker: &Broker, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(&t.topic);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let offsets = topic
                        .as_ref()
                        .and_then(|topic| topic.partition(p.partition))
                        .map(|h| *h.offsets.borrow());
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    match end_offset(offsets.map(|o| o.high_watermark), p) {
                        Ok((epoch, offset)) => {
                            answer.with_leader_epoch(epoch).with_end_offset(offset)
                        }
                        Err(e) => answer
                            .with_error_code(e.code())
                            .with_leader_epoch(NO_EPOCH)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// `(epoch, end offset)` of the asked epoch. Every offset of the log was
/// written in the one epoch there has been, so any epoch a batch may carry
/// (older logs hold what clients put there) ends at the log end; Kafka's
/// undefined pair `(-1, -1)` answers "no epoch".
fn end_offset(
    log_end: Option<i64>,
    p: &OffsetForLeaderPartition,
) -> Result<(i32, i64), ResponseError> {
    let log_end = log_end.ok_or(ResponseError::UnknownTopicOrPartition)?;
    if p.current_leader_epoch > LEADER_EPOCH {
        return Err(ResponseError::UnknownLeaderEpoch);
    }
    if p.current_leader_epoch != NO_EPOCH && p.current_leader_epoch < LEADER_EPOCH {
        return Err(ResponseError::FencedLeaderEpoch);
    }
    Ok(if p.leader_epoch < 0 {
        (NO_EPOCH, -1)
    } else {
        (LEADER_EPOCH, log_end)
    })
}
