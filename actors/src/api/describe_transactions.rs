//! DescribeTransactions and ListTransactions, from the coordinator's state.

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::security::{Access, Operation};
use crate::txn::state::Txn;
use crate::txn::Snapshot;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

async fn snapshot(broker: &Broker) -> Result<Vec<(String, Txn)>, ResponseError> {
    let coordinator = broker
        .transactions_addr()
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    coordinator
        .send(Snapshot)
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable)
}

pub async fn describe(
    broker: &Broker,
    access: &Access,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let all = snapshot(broker).await;
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default().with_transactional_id(id.clone());
            let allowed = access.transactional_id(Operation::Describe, &id);
            let found = allowed.and(all.as_ref().map_err(|e| *e)).and_then(|all| {
                all.iter()
                    .find(|(known, _)| known.as_str() == id.as_str())
                    .map(|(_, txn)| txn)
                    .ok_or(ResponseError::TransactionalIdNotFound)
            });
            match found {
                Ok(txn) => {
                    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (topic, partition) in &txn.partitions {
                        topics.entry(topic).or_default().push(*partition);
                    }
                    state
                        .with_transaction_state(StrBytes::from_static_str(txn.status.name()))
                        .with_transaction_timeout_ms(txn.timeout_ms)
                        .with_transaction_start_time_ms(txn.started_ms)
                        .with_producer_id(ProducerId(txn.producer_id))
                        .with_producer_epoch(txn.epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(topic, partitions)| {
                                    TopicData::default()
                                        .with_topic(TopicName(StrBytes::from_string(
                                            topic.to_string(),
                                        )))
                                        .with_partitions(partitions)
                                })
                                .collect(),
                        )
                }
                Err(e) => state.with_error_code(e.code()),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// The transactions whose ids the requester may describe.
pub async fn list(
    broker: &Broker,
    access: &Access,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let all = match snapshot(broker).await {
        Ok(all) => all,
        Err(e) => return ListTransactionsResponse::default().with_error_code(e.code()),
    };
    let now = now_ms();
    let states = all
        .into_iter()
        .filter(|(id, txn)| {
            access.transactional_id(Operation::Describe, id).is_ok()
                && (req.state_filters.is_empty()
                    || req
                        .state_filters
                        .iter()
                        .any(|s| s.as_str() == txn.status.name()))
                && (req.producer_id_filters.is_empty()
                    || req
                        .producer_id_filters
                        .iter()
                        .any(|p| p.0 == txn.producer_id))
                && (req.duration_filter < 0
                    || (txn.started_ms >= 0 && now - txn.started_ms >= req.duration_filter))
        })
        .map(|(id, txn)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(txn.producer_id))
                .with_transaction_state(StrBytes::from_static_str(txn.status.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_transaction_states(states)
}
