//! DescribeProducers: the idempotent and transactional producers each
//! partition remembers, with their open transaction's first offset (what
//! `kafka-transactions.sh describe-producers` and hanging-transaction checks
//! read).

use crate::broker::Broker;
use crate::partition::Describe;
use crate::security::{Access, Operation};
use futures_util::future::join_all;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

/// A one-broker cluster has no coordinator epochs to report.
const NO_COORDINATOR_EPOCH: i32 = -1;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req.topics.into_iter().map(|t| async move {
        let topic = super::authorized_topic(broker, access, Operation::Read, &t.name);
        let partitions = t.partition_indexes.into_iter().map(|index| {
            let handle = topic
                .clone()
                .map(|topic| topic.and_then(|t| t.partition(index).cloned()));
            async move {
                let response = PartitionResponse::default().with_partition_index(index);
                let handle = match handle {
                    Ok(handle) => handle,
                    Err(error) => return response.with_error_code(error.code()),
                };
                let state = match handle {
                    Some(h) => h.addr.send(Describe).await.ok(),
                    None => None,
                };
                let Some(state) = state else {
                    return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                };
                let producers = state.producers.into_iter().map(|p| {
                    ProducerState::default()
                        .with_producer_id(ProducerId(p.state.producer_id))
                        .with_producer_epoch(i32::from(p.state.epoch))
                        .with_last_sequence(p.state.last_sequence)
                        .with_last_timestamp(p.state.last_timestamp)
                        .with_coordinator_epoch(NO_COORDINATOR_EPOCH)
                        .with_current_txn_start_offset(p.txn_start_offset.unwrap_or(-1))
                });
                response.with_active_producers(producers.collect())
            }
        });
        TopicResponse::default()
            .with_name(t.name)
            .with_partitions(join_all(partitions).await)
    });
    DescribeProducersResponse::default().with_topics(join_all(topics).await)
}
