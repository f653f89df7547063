//! DescribeAcls, CreateAcls, DeleteAcls over the broker's
//! [`crate::store::acls::AclStore`]. Describe groups the matching ACLs by resource
//! pattern; delete answers each filter with what it removed.

use crate::broker::Broker;
use crate::security::{Access, Operation};
use crate::store::acls::{AclBinding, AclFilter};
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// DescribeAclsRequest and DeleteAclsFilter carry the same filter fields
/// as two generated types.
macro_rules! acl_filter {
    ($filter:expr) => {{
        let f = $filter;
        AclFilter {
            resource_type: f.resource_type_filter,
            resource_name: f.resource_name_filter.map(|s| s.to_string()),
            pattern_type: f.pattern_type_filter,
            principal: f.principal_filter.map(|s| s.to_string()),
            host: f.host_filter.map(|s| s.to_string()),
            operation: f.operation,
            permission: f.permission_type,
        }
    }};
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn storage_error(e: std::io::Error) -> (i16, Option<StrBytes>) {
    log::error!("{e}");
    (
        ResponseError::KafkaStorageError.code(),
        Some(text(&e.to_string())),
    )
}

/// Needs DESCRIBE on the cluster.
pub async fn describe(
    broker: &Broker,
    access: &Access,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Err(error) = access.cluster(Operation::Describe) {
        return DescribeAclsResponse::default().with_error_code(error.code());
    }
    let filter = acl_filter!(req);
    if let Err(why) = filter.validate() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(text(&why)));
    }
    let found = match broker.describe_acls(&filter).await {
        Ok(found) => found,
        Err(e) => {
            let (code, message) = storage_error(e);
            return DescribeAclsResponse::default()
                .with_error_code(code)
                .with_error_message(message);
        }
    };
    // Sorted, so the ACLs of one resource pattern are neighbours.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in found {
        let entry = AclDescription::default()
            .with_principal(text(&acl.principal))
            .with_host(text(&acl.host))
            .with_operation(acl.operation)
            .with_permission_type(acl.permission);
        match resources.last_mut() {
            Some(r)
                if r.resource_type == acl.resource_type
                    && r.resource_name.as_str() == acl.resource_name
                    && r.pattern_type == acl.pattern_type =>
            {
                r.acls.push(entry)
            }
            _ => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type)
                    .with_resource_name(text(&acl.resource_name))
                    .with_pattern_type(acl.pattern_type)
                    .with_acls(vec![entry]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

/// Needs ALTER on the cluster.
pub async fn create(
    broker: &Broker,
    access: &Access,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    if let Err(error) = access.cluster(Operation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| AclCreationResult::default().with_error_code(error.code()))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let checked: Vec<Result<AclBinding, String>> = req
        .creations
        .into_iter()
        .map(|c| {
            let acl = AclBinding {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission: c.permission_type,
            };
            acl.validate().map(|()| acl)
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let stored = broker.create_acls(&valid).await.map_err(storage_error);
    let results = checked
        .into_iter()
        .map(|c| match (c, &stored) {
            (Err(why), _) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(text(&why))),
            (Ok(_), Err((code, message))) => AclCreationResult::default()
                .with_error_code(*code)
                .with_error_message(message.clone()),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// Needs ALTER on the cluster.
pub async fn delete(
    broker: &Broker,
    access: &Access,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    if let Err(error) = access.cluster(Operation::Alter) {
        let results = req
            .filters
            .iter()
            .map(|_| DeleteAclsFilterResult::default().with_error_code(error.code()))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let filters: Vec<AclFilter> = req.filters.into_iter().map(|f| acl_filter!(f)).collect();
    let invalid: Vec<Option<String>> = filters.iter().map(|f| f.validate().err()).collect();
    let valid: Vec<AclFilter> = filters
        .iter()
        .zip(&invalid)
        .filter(|(_, bad)| bad.is_none())
        .map(|(f, _)| f.clone())
        .collect();
    let mut removed = match broker.delete_acls(&valid).await {
        Ok(removed) => removed.into_iter(),
        Err(e) => {
            let (code, message) = storage_error(e);
            let results = invalid
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(code)
                        .with_error_message(message.clone())
                })
                .collect();
            return DeleteAclsResponse::default().with_filter_results(results);
        }
    };
    let results = invalid
        .into_iter()
        .map(|bad| match bad {
            Some(why) => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(text(&why))),
            None => DeleteAclsFilterResult::default().with_matching_acls(
                removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|acl| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(acl.resource_type)
                            .with_resource_name(text(&acl.resource_name))
                            .with_pattern_type(acl.pattern_type)
                            .with_principal(text(&acl.principal))
                            .with_host(text(&acl.host))
                            .with_operation(acl.operation)
                            .with_permission_type(acl.permission)
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
