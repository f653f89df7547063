//! EndTxn: commit or abort; answered once every marker is written.

use crate::broker::Broker;
use crate::security::{Access, Operation};
use crate::txn::{fencing_for, End};
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

/// The first version whose clients know PRODUCER_FENCED.
const FENCED_VERSION: i16 = 2;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    version: i16,
    req: EndTxnRequest,
) -> EndTxnResponse {
    if let Err(error) = access.transactional_id(Operation::Write, &req.transactional_id) {
        return EndTxnResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let end = End {
        id: req.transactional_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        commit: req.committed,
    };
    let error = broker
        .ask_transactions(&req.transactional_id, end)
        .await
        .err()
        .map_or(0, |e| fencing_for(e, version >= FENCED_VERSION).code());
    EndTxnResponse::default()
        .with_error_code(error)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
