//! CreatePartitions: grow a topic.

use crate::broker::Broker;
use crate::security::{Access, Operation};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if let Err(error) = access.topic(Operation::Alter, &topic.name) {
            results.push(result.with_error_code(error.code()));
            continue;
        }
        results.push(
            match broker
                .create_partitions(&topic.name, topic.count, req.validate_only)
                .await
            {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            },
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}
