//! DescribeAcls, CreateAcls, DeleteAcls: this broker has no authorizer, so
//! each answers SECURITY_DISABLED, exactly as Kafka does without one. Admin
//! tools then report "security is disabled" instead of failing on an API
//! the broker does not know.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const WHY: &str = "No Authorizer is configured on the broker";

fn disabled() -> (i16, Option<StrBytes>) {
    (
        ResponseError::SecurityDisabled.code(),
        Some(StrBytes::from_static_str(WHY)),
    )
}

pub fn describe() -> DescribeAclsResponse {
    let (code, message) = disabled();
    DescribeAclsResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

pub fn create(req: CreateAclsRequest) -> CreateAclsResponse {
    let (code, message) = disabled();
    let results = req
        .creations
        .iter()
        .map(|_| {
            AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(message.clone())
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn delete(req: DeleteAclsRequest) -> DeleteAclsResponse {
    let (code, message) = disabled();
    let results = req
        .filters
        .iter()
        .map(|_| {
            DeleteAclsFilterResult::default()
                .with_error_code(code)
                .with_error_message(message.clone())
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
