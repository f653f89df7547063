//! AddOffsetsToTxn: a consumer group's offsets will be committed with the
//! producer's transaction.

use crate::broker::Broker;
use crate::txn::{Add, Addition};
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

pub async fn handle(broker: &Broker, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let add = Add {
        id: req.transactional_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        addition: Addition::Group(req.group_id.to_string()),
    };
    let error = broker.ask_transactions(add).await.err();
    AddOffsetsToTxnResponse::default().with_error_code(error.map_or(0, |e| e.code()))
}
