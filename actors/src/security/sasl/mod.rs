//! SASL authentication (KIP-43, KIP-152): the mechanisms and one exchange
//! of tokens between a client and the broker, free of sockets so that the
//! connection only moves tokens.

pub mod client;
mod plain;
mod session;

pub use session::{Accepted, SaslSession};

use super::scram::{self, ScramCredential, ScramMechanism};
use super::{Principal, Secret};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A SASL mechanism, as `sasl_enabled_mechanisms` and SaslHandshake name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl Mechanism {
    /// Every mechanism the broker knows, the default of
    /// `sasl_enabled_mechanisms`.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => ScramMechanism::Sha256.name(),
            Mechanism::ScramSha512 => ScramMechanism::Sha512.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an exchange looks up what a user's password must prove.
pub trait Credentials {
    /// The password of a PLAIN user.
    fn plain_password(&self, user: &str) -> Option<&Secret>;
    /// The SCRAM credential of a user for one hash.
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

/// What one client token leads to.
#[derive(Debug)]
pub enum Step {
    /// Send this token back and wait for the client's next.
    Continue(Vec<u8>),
    /// The client proved who it is; send this (possibly empty) token.
    Authenticated(Principal, Vec<u8>),
}

/// Why an authentication failed: said to the client, and logged. Never
/// holds a password.
pub type Failure = String;

/// One authentication in progress, from the mechanism the client chose.
/// A SCRAM exchange holds its messages and credential: boxed, so a
/// connection waiting for a handshake carries no room for one.
pub enum Exchange {
    Plain,
    Scram(Box<scram::ServerExchange>),
}

impl Exchange {
    pub fn new(mechanism: Mechanism) -> Exchange {
        match mechanism {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::ScramSha256 => {
                Exchange::Scram(Box::new(scram::ServerExchange::new(ScramMechanism::Sha256)))
            }
            Mechanism::ScramSha512 => {
                Exchange::Scram(Box::new(scram::ServerExchange::new(ScramMechanism::Sha512)))
            }
        }
    }

    /// Takes the client's next token.
    pub fn step(&mut self, token: &[u8], credentials: &dyn Credentials) -> Result<Step, Failure> {
        match self {
            Exchange::Plain => plain::authenticate(token, credentials)
                .map(|principal| Step::Authenticated(principal, Vec::new())),
            Exchange::Scram(exchange) => exchange.step(token, credentials),
        }
    }
}
