//! AddPartitionsToTxn: the producer's partitions join its transaction.
//! v0-v3 come from producers; v4+ batches several transactions (and is what
//! brokers send to verify), answered per transaction.

use crate::broker::Broker;
use crate::security::{Access, Operation};
use crate::txn::{fencing_for, Add, Addition};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TransactionalId,
};
use kafka_protocol::ResponseError;

/// From this version transactions come as a list.
const BATCHED_VERSION: i16 = 4;
/// The first version whose clients know PRODUCER_FENCED.
const FENCED_VERSION: i16 = 2;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if version < BATCHED_VERSION {
        let topics = add(
            broker,
            access,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            req.v3_and_below_topics,
            version >= FENCED_VERSION,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics);
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for txn in req.transactions {
        let topics = add(
            broker,
            access,
            &txn.transactional_id,
            txn.producer_id.0,
            txn.producer_epoch,
            txn.topics,
            true,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(txn.transactional_id)
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// Adds the partitions; every partition gets the one outcome, except
/// unknown partitions, which fail the request as Kafka does. It needs WRITE
/// on the transactional id and on every topic: a topic without gets
/// TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED.
async fn add(
    broker: &Broker,
    access: &Access,
    id: &TransactionalId,
    producer_id: i64,
    producer_epoch: i16,
    topics: Vec<AddPartitionsToTxnTopic>,
    knows_fenced: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let unknown = topics.iter().any(|t| {
        let topic = broker.topic(&t.name);
        t.partitions
            .iter()
            .any(|p| !topic.as_ref().is_some_and(|topic| topic.has_partition(*p)))
    });
    let txn_allowed = access.transactional_id(Operation::Write, id);
    let denied: Vec<bool> = topics
        .iter()
        .map(|t| access.topic(Operation::Write, &t.name).is_err())
        .collect();
    let error = if let Err(error) = txn_allowed {
        error.code()
    } else if denied.contains(&true) {
        ResponseError::OperationNotAttempted.code()
    } else if unknown {
        ResponseError::UnknownTopicOrPartition.code()
    } else {
        let partitions = topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
            .collect();
        let add = Add {
            id: id.to_string(),
            producer_id,
            producer_epoch,
            addition: Addition::Partitions(partitions),
        };
        broker
            .ask_transactions(id, add)
            .await
            .err()
            .map_or(0, |e| fencing_for(e, knows_fenced).code())
    };
    topics
        .into_iter()
        .zip(denied)
        .map(|(t, denied)| {
            let error = if txn_allowed.is_ok() && denied {
                ResponseError::TopicAuthorizationFailed.code()
            } else {
                error
            };
            AddPartitionsToTxnTopicResult::default()
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(error)
                        })
                        .collect(),
                )
                .with_name(t.name)
        })
        .collect()
}
