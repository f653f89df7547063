//! What one requester may do: a principal at a host, checked against the
//! broker's [`Authorizer`]. Handlers ask it one question per resource kind
//! and get Kafka's error for that kind when the answer is no, so each check
//! in a handler is one line.

use super::authorizer::{Authorizer, Operation, Requester, ResourceType};
use super::Principal;
use crate::store::acls::CLUSTER_NAME;
use kafka_protocol::ResponseError;
use std::net::IpAddr;
use std::sync::Arc;

/// A requester and the authorizer that decides for it.
#[derive(Debug, Clone)]
pub struct Access {
    authorizer: Arc<Authorizer>,
    principal: Arc<Principal>,
    host: IpAddr,
}

impl Access {
    /// The checks of `principal` connecting from `host`. An IPv4 client of
    /// an IPv6 socket (`::ffff:10.0.0.7`) is known by its IPv4 address, as
    /// ACL hosts name it.
    pub fn new(authorizer: Arc<Authorizer>, principal: Arc<Principal>, host: IpAddr) -> Access {
        Access {
            authorizer,
            principal,
            host: host.to_canonical(),
        }
    }

    /// Who asks.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    fn requester(&self) -> Requester<'_> {
        Requester {
            principal: &self.principal,
            host: self.host,
        }
    }

    fn check(
        &self,
        operation: Operation,
        resource: ResourceType,
        name: &str,
        refusal: ResponseError,
    ) -> Result<(), ResponseError> {
        if self
            .authorizer
            .authorize(self.requester(), operation, resource, name)
        {
            Ok(())
        } else {
            Err(refusal)
        }
    }

    /// `operation` on topic `name`, else TOPIC_AUTHORIZATION_FAILED.
    pub fn topic(&self, operation: Operation, name: &str) -> Result<(), ResponseError> {
        self.check(
            operation,
            ResourceType::Topic,
            name,
            ResponseError::TopicAuthorizationFailed,
        )
    }

    /// `operation` on group `id`, else GROUP_AUTHORIZATION_FAILED.
    pub fn group(&self, operation: Operation, id: &str) -> Result<(), ResponseError> {
        self.check(
            operation,
            ResourceType::Group,
            id,
            ResponseError::GroupAuthorizationFailed,
        )
    }

    /// `operation` on the cluster, else CLUSTER_AUTHORIZATION_FAILED.
    pub fn cluster(&self, operation: Operation) -> Result<(), ResponseError> {
        self.check(
            operation,
            ResourceType::Cluster,
            CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
        )
    }

    /// `operation` on transactional id `id`, else
    /// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
    pub fn transactional_id(&self, operation: Operation, id: &str) -> Result<(), ResponseError> {
        self.check(
            operation,
            ResourceType::TransactionalId,
            id,
            ResponseError::TransactionalIdAuthorizationFailed,
        )
    }

    /// Whether the requester may create topic `name`: CREATE on the
    /// cluster or on the topic.
    pub fn create_topic(&self, name: &str) -> Result<(), ResponseError> {
        self.cluster(Operation::Create)
            .or_else(|_| self.topic(Operation::Create, name))
    }

    /// Whether the requester may be an idempotent producer: IDEMPOTENT_WRITE
    /// on the cluster, or (Kafka 3.0 on, KIP-679) WRITE on some topic.
    pub fn idempotent_write(&self) -> Result<(), ResponseError> {
        self.cluster(Operation::IdempotentWrite).or_else(|refusal| {
            self.authorizer
                .authorize_any(self.requester(), Operation::Write, ResourceType::Topic)
                .then_some(())
                .ok_or(refusal)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::authorizer::acl;
    use crate::security::AuthorizerKind;
    use crate::store::acls::code;

    #[test]
    fn an_ipv4_client_of_an_ipv6_socket_matches_acls_by_its_ipv4_address() {
        let authorizer = Arc::new(Authorizer::new(AuthorizerKind::Acl, &[], false));
        let mut from_one_host = acl(
            ResourceType::Topic,
            "t",
            code::LITERAL,
            "User:alice",
            Operation::Write,
            code::ALLOW,
        );
        from_one_host.host = "10.0.0.7".into();
        authorizer.set_acls(&[from_one_host]);
        let alice = Arc::new(Principal::user("alice"));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().expect("address");
        let access = Access::new(authorizer.clone(), alice.clone(), mapped);
        assert_eq!(access.topic(Operation::Write, "t"), Ok(()));
        let other = Access::new(
            authorizer,
            alice,
            "::ffff:10.0.0.8".parse().expect("address"),
        );
        assert_eq!(
            other.topic(Operation::Write, "t"),
            Err(ResponseError::TopicAuthorizationFailed)
        );
    }
}
