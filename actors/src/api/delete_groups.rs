//! DeleteGroups: an empty group's coordinator and committed offsets go.

use crate::broker::Broker;
use crate::group::DeleteGroup;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::ResponseError;

pub async fn handle(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let error = delete(broker, &id).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

async fn delete(broker: &Broker, id: &str) -> i16 {
    if !broker.group_exists(id).unwrap_or(false) {
        return ResponseError::GroupIdNotFound.code();
    }
    if let Some(coordinator) = broker.existing_group(id) {
        match coordinator.send(DeleteGroup).await {
            Ok(0) | Err(_) => broker.remove_group(id),
            // Members are still in the group.
            Ok(error) => return error,
        }
    }
    match broker.offsets().delete(id, None).await {
        Ok(()) => 0,
        Err(e) => {
            log::error!("deleting group {id}: {e}");
            ResponseError::KafkaStorageError.code()
        }
    }
}
