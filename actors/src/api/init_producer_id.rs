//! InitProducerId. Idempotent producers get a producer id unique across
//! restarts, or, when they already have one (KIP-360), the same id with the
//! next epoch. Transactional producers go through the transaction
//! coordinator, which fences the previous producer of their id.

use crate::broker::Broker;
use crate::security::{Access, Operation};
use crate::txn::{fencing_for, InitTransactional};
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

/// The first version whose clients know PRODUCER_FENCED.
const FENCED_VERSION: i16 = 4;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // A transactional producer needs WRITE on its transactional id; an
    // idempotent one IDEMPOTENT_WRITE on the cluster or WRITE on a topic.
    let allowed = match &req.transactional_id {
        Some(id) => access.transactional_id(Operation::Write, id),
        None => access.idempotent_write(),
    };
    if let Err(error) = allowed {
        return failed(error);
    }
    if let Some(id) = req.transactional_id {
        // Allocate no producer id for a request this broker cannot serve.
        if let Err(e) = broker.check_coordinator(&id) {
            return failed(e);
        }
        let Ok(fresh_producer_id) = broker.new_producer_id().await else {
            return failed(ResponseError::KafkaStorageError);
        };
        let init = InitTransactional {
            id: id.to_string(),
            timeout_ms: req.transaction_timeout_ms,
            fresh_producer_id,
        };
        return match broker.ask_transactions(&id, init).await {
            Ok((producer_id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
            Err(error) => failed(fencing_for(error, version >= FENCED_VERSION)),
        };
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return InitProducerIdResponse::default()
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match broker.new_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            log::error!("allocating a producer id: {e}");
            failed(ResponseError::KafkaStorageError)
        }
    }
}
