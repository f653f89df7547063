//! DeleteGroups: an empty group's coordinator and committed offsets go.

use super::WireCode;
use crate::broker::Broker;
use crate::group::DeleteGroup;
use crate::security::{Access, Operation};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::ResponseError;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let error = match access.group(Operation::Delete, &id) {
            Ok(()) => delete(broker, &id).await,
            Err(error) => Err(error),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error.wire_code()),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

async fn delete(broker: &Broker, id: &str) -> Result<(), ResponseError> {
    broker.check_coordinator(id)?;
    if !broker.group_exists(id).await.unwrap_or(false) {
        return Err(ResponseError::GroupIdNotFound);
    }
    if let Some(coordinator) = broker.existing_group(id) {
        match coordinator.send(DeleteGroup).await {
            Ok(Ok(())) | Err(_) => broker.remove_group(id),
            // Members are still in the group.
            Ok(Err(error)) => return Err(error),
        }
    }
    broker.delete_offsets(id, None).await
}
