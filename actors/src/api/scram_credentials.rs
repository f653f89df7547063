//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554):
//! the SCRAM users kept in the broker's state db, with Kafka's checks and
//! error codes. The client salts and hashes the password; the broker keeps
//! the stored and server keys derived from it.

use crate::broker::Broker;
use crate::security::scram::{ScramCredential, ScramMechanism, ITERATIONS};
use crate::security::{Access, Operation};
use crate::store::scram::Change;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashSet};

/// Needs DESCRIBE on the cluster.
pub fn describe(
    broker: &Broker,
    access: &Access,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let response = DescribeUserScramCredentialsResponse::default();
    if let Err(error) = access.cluster(Operation::Describe) {
        return response.with_error_code(error.code());
    }
    let stored = broker.scram_users();
    let infos = |mechanisms: &[(ScramMechanism, u32)]| {
        mechanisms
            .iter()
            .map(|(m, iterations)| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(*iterations as i32)
            })
            .collect()
    };
    let wanted = req.users.unwrap_or_default();
    if wanted.is_empty() {
        let results = stored
            .iter()
            .map(|(user, mechanisms)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()))
                    .with_credential_infos(infos(mechanisms))
            })
            .collect();
        return response.with_results(results);
    }
    let mut seen = HashSet::new();
    let duplicated: HashSet<StrBytes> = wanted
        .iter()
        .filter(|u| !seen.insert(u.name.clone()))
        .map(|u| u.name.clone())
        .collect();
    let mut reported = HashSet::new();
    let results = wanted
        .into_iter()
        .filter(|u| reported.insert(u.name.clone()))
        .map(|u| {
            let result = DescribeUserScramCredentialsResult::default().with_user(u.name.clone());
            let failed = |error: ResponseError, message: &'static str| {
                result
                    .clone()
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_static_str(message)))
            };
            if duplicated.contains(&u.name) {
                return failed(
                    ResponseError::DuplicateResource,
                    "the user is listed more than once",
                );
            }
            match stored.get(u.name.as_str()) {
                Some(mechanisms) => result.clone().with_credential_infos(infos(mechanisms)),
                None => failed(
                    ResponseError::ResourceNotFound,
                    "the user has no SCRAM credentials",
                ),
            }
        })
        .collect();
    response.with_results(results)
}

/// Needs ALTER on the cluster; without it every user named is answered
/// CLUSTER_AUTHORIZATION_FAILED and nothing changes.
pub async fn alter(
    broker: &Broker,
    access: &Access,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if let Err(error) = access.cluster(Operation::Alter) {
        let mut named = HashSet::new();
        let results = req
            .deletions
            .iter()
            .map(|d| &d.name)
            .chain(req.upsertions.iter().map(|u| &u.name))
            .filter(|name| named.insert(*name))
            .map(|name| {
                AlterUserScramCredentialsResult::default()
                    .with_user(name.clone())
                    .with_error_code(error.code())
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    // Per user, in request order: its changes, or the first error found.
    let mut users: BTreeMap<String, Result<Vec<Change>, (ResponseError, String)>> = BTreeMap::new();
    let mut order = Vec::new();
    let mut named = HashSet::new();
    let mut record = |user: &str, change: Result<Change, (ResponseError, String)>, mechanism| {
        if !users.contains_key(user) {
            order.push(user.to_owned());
        }
        let entry = users
            .entry(user.to_owned())
            .or_insert_with(|| Ok(Vec::new()));
        let change = match mechanism {
            Some(m) if !named.insert((user.to_owned(), m)) => Err((
                ResponseError::DuplicateResource,
                "a credential is changed twice in one request".to_owned(),
            )),
            _ => change,
        };
        match (entry.as_mut(), change) {
            (Ok(changes), Ok(change)) => changes.push(change),
            (Ok(_), Err(e)) => *entry = Err(e),
            (Err(_), _) => {}
        }
    };
    for deletion in &req.deletions {
        let user = deletion.name.as_str();
        let mechanism = ScramMechanism::from_code(deletion.mechanism);
        let change = check_user(user).and_then(|()| {
            let m = mechanism.ok_or_else(unknown_mechanism)?;
            match broker.scram_credential(user, m) {
                Some(_) => Ok(Change::Delete(user.to_owned(), m)),
                None => Err((
                    ResponseError::ResourceNotFound,
                    "attempt to delete a user credential that does not exist".to_owned(),
                )),
            }
        });
        record(user, change, mechanism);
    }
    for upsertion in &req.upsertions {
        let user = upsertion.name.as_str();
        let mechanism = ScramMechanism::from_code(upsertion.mechanism);
        let change = check_user(user).and_then(|()| {
            let m = mechanism.ok_or_else(unknown_mechanism)?;
            let iterations = u32::try_from(upsertion.iterations)
                .ok()
                .filter(|i| ITERATIONS.contains(i))
                .ok_or_else(|| {
                    (
                        ResponseError::UnacceptableCredential,
                        format!(
                            "iterations must be between {} and {}",
                            ITERATIONS.start(),
                            ITERATIONS.end()
                        ),
                    )
                })?;
            if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "the salt and the salted password must not be empty".to_owned(),
                ));
            }
            let credential = ScramCredential::new(
                m,
                upsertion.salt.to_vec(),
                &upsertion.salted_password,
                iterations,
            );
            Ok(Change::Upsert(user.to_owned(), m, credential))
        });
        record(user, change, mechanism);
    }
    let changes: Vec<Change> = users
        .values_mut()
        .filter_map(|outcome| outcome.as_mut().ok())
        .flat_map(std::mem::take)
        .collect();
    let stored = broker.alter_scram_credentials(changes).await;
    let results = order
        .into_iter()
        .map(|user| {
            let result = AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
            let error = match (&users[&user], &stored) {
                (Err((error, message)), _) => Some((*error, message.clone())),
                (Ok(_), Err(e)) => Some((ResponseError::UnknownServerError, e.to_string())),
                (Ok(_), Ok(())) => None,
            };
            match error {
                Some((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
                None => result,
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn check_user(user: &str) -> Result<(), (ResponseError, String)> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "the user name must not be empty".to_owned(),
        ));
    }
    Ok(())
}

fn unknown_mechanism() -> (ResponseError, String) {
    (
        ResponseError::UnsupportedSaslMechanism,
        "unknown SCRAM mechanism".to_owned(),
    )
}
