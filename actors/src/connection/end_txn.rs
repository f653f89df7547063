//! EndTxn: commit or abort; answered once every marker is written.

use crate::broker::Broker;
use crate::txn::End;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

pub async fn handle(broker: &Broker, req: EndTxnRequest) -> EndTxnResponse {
    let end = End {
        id: req.transactional_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        commit: req.committed,
    };
    let error = broker
        .ask_transactions(end)
        .await
        .err()
        .map_or(0, |e| e.code());
    EndTxnResponse::default()
        .with_error_code(error)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
