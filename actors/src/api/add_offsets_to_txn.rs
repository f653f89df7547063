//! AddOffsetsToTxn: a consumer group's offsets will be committed with the
//! producer's transaction.

use crate::broker::Broker;
use crate::security::{Access, Operation};
use crate::txn::{fencing_for, Add, Addition};
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

/// The first version whose clients know PRODUCER_FENCED.
const FENCED_VERSION: i16 = 2;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let allowed = access
        .transactional_id(Operation::Write, &req.transactional_id)
        .and_then(|()| access.group(Operation::Read, &req.group_id));
    if let Err(error) = allowed {
        return AddOffsetsToTxnResponse::default().with_error_code(error.code());
    }
    let add = Add {
        id: req.transactional_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        addition: Addition::Group(req.group_id.to_string()),
    };
    let error = broker
        .ask_transactions(&req.transactional_id, add)
        .await
        .err();
    AddOffsetsToTxnResponse::default()
        .with_error_code(error.map_or(0, |e| fencing_for(e, version >= FENCED_VERSION).code()))
}
