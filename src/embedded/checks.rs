//! The ACL checks of in-process producers and consumers. By default they
//! act for the application itself and are not checked; once the application
//! attaches a principal ([`Producer::as_principal`](super::Producer::as_principal),
//! [`ConsumerBuilder::as_principal`](super::ConsumerBuilder::as_principal)),
//! they are checked as a Kafka client of that principal connecting from
//! 127.0.0.1 would be, against the broker's `authorizer` settings and ACLs.

use super::Error;
use actorlog_actors::security::{Access, Operation, Principal};
use kafka_protocol::ResponseError;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// The host ACLs see for an in-process client.
const IN_PROCESS_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What an in-process client is checked as, if anything.
#[derive(Debug, Clone, Default)]
pub(super) struct Checks {
    access: Option<Access>,
}

impl Checks {
    /// Checks as `principal`.
    pub(super) fn as_principal(broker: &actorlog_actors::Broker, principal: Principal) -> Checks {
        Checks {
            access: Some(Access::new(
                broker.authorizer().clone(),
                Arc::new(principal),
                IN_PROCESS_HOST,
            )),
        }
    }

    /// `operation` on topic `name`.
    pub(super) fn topic(&self, operation: Operation, name: &str) -> Result<(), Error> {
        self.check(
            |a| a.topic(operation, name),
            || format!("{operation:?} topic {name}"),
        )
    }

    /// Creating topic `name` (CREATE on the cluster or the topic).
    pub(super) fn create_topic(&self, name: &str) -> Result<(), Error> {
        self.check(|a| a.create_topic(name), || format!("create topic {name}"))
    }

    /// `operation` on group `id`.
    pub(super) fn group(&self, operation: Operation, id: &str) -> Result<(), Error> {
        self.check(
            |a| a.group(operation, id),
            || format!("{operation:?} group {id}"),
        )
    }

    fn check(
        &self,
        decide: impl FnOnce(&Access) -> Result<(), ResponseError>,
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        let Some(access) = &self.access else {
            return Ok(());
        };
        decide(access).map_err(|code| {
            Error::kafka(code, format!("{} may not {}", access.principal(), what()))
        })
    }
}
