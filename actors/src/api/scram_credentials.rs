//! DescribeUserScramCredentials. The broker authenticates no one (no SASL
//! listener), so no user has SCRAM credentials: the full list is empty and a
//! named user is not found, as Kafka answers for a user without any.

use crate::security::{Access, Operation};
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::HashSet;

/// Needs DESCRIBE on the cluster.
pub fn describe(
    access: &Access,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if let Err(error) = access.cluster(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default().with_error_code(error.code());
    }
    let users = req.users.unwrap_or_default();
    let mut seen = HashSet::new();
    let duplicated: HashSet<StrBytes> = users
        .iter()
        .filter(|u| !seen.insert(u.name.clone()))
        .map(|u| u.name.clone())
        .collect();
    let mut reported = HashSet::new();
    let results = users
        .into_iter()
        .filter(|u| reported.insert(u.name.clone()))
        .map(|u| {
            let (error, message) = if duplicated.contains(&u.name) {
                (
                    ResponseError::DuplicateResource,
                    "the user is listed more than once",
                )
            } else {
                (
                    ResponseError::ResourceNotFound,
                    "the user has no SCRAM credentials",
                )
            };
            DescribeUserScramCredentialsResult::default()
                .with_user(u.name)
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_static_str(message)))
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
