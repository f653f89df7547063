//! DeleteTopics, by name (all versions) or by topic id (v6+).

use crate::broker::Broker;
use crate::security::{Access, Operation};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::sync::Arc;
use uuid::Uuid;

/// From this version topics come as (name or id) pairs.
const TOPIC_STATES_VERSION: i16 = 6;

pub async fn handle(
    broker: &Arc<Broker>,
    access: &Access,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<TopicName>, Uuid)> = if version >= TOPIC_STATES_VERSION {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let resolved = match &name {
            Some(name) => Some(name.to_string()),
            None => broker.topic_by_id(id).map(|t| t.name.to_string()),
        };
        let result = DeletableTopicResult::default()
            .with_name(name)
            .with_topic_id(id);
        let outcome = match resolved {
            Some(resolved) => match access.topic(Operation::Delete, &resolved) {
                Ok(()) => broker
                    .delete_topic(&resolved)
                    .await
                    .map_err(|e| (e.code, e.message)),
                Err(error) => Err((error, "not authorized".to_string())),
            },
            None => Err((
                ResponseError::UnknownTopicId,
                format!("no topic has id {id}"),
            )),
        };
        responses.push(match outcome {
            Ok(()) => result,
            Err((code, message)) => result
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
