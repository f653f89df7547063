//! SASL authentication (KIP-43, KIP-152, KIP-255): the mechanisms and one exchange
//! of tokens between a client and the broker, free of sockets so that the
//! connection only moves tokens.

pub mod client;
mod oauthbearer;
mod plain;
mod session;

pub use session::{Accepted, SaslSession};

use super::scram::{self, ScramCredential, ScramMechanism};
use super::{Principal, Secret};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime};

/// A SASL mechanism, as `sasl_enabled_mechanisms` and SaslHandshake name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// With unsecured JWS tokens only: for tests and development.
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
}

impl Mechanism {
    /// Every mechanism the broker knows.
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::OAuthBearer,
    ];

    /// The default of `sasl_enabled_mechanisms`: those that check a
    /// secret. OAUTHBEARER with unsecured tokens lets anyone in as anyone,
    /// so it is enabled only by naming it.
    pub const DEFAULT: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => ScramMechanism::Sha256.name(),
            Mechanism::ScramSha512 => ScramMechanism::Sha512.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
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
    Authenticated {
        principal: Principal,
        token: Vec<u8>,
        /// How much longer the credential is valid, if it expires (an
        /// OAUTHBEARER token): the session may not outlast it.
        valid_for: Option<Duration>,
    },
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
    OAuthBearer(oauthbearer::ServerExchange),
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
            Mechanism::OAuthBearer => Exchange::OAuthBearer(oauthbearer::ServerExchange::Initial),
        }
    }

    /// Takes the client's next token.
    pub fn step(&mut self, token: &[u8], credentials: &dyn Credentials) -> Result<Step, Failure> {
        match self {
            Exchange::Plain => {
                plain::authenticate(token, credentials).map(|principal| Step::Authenticated {
                    principal,
                    token: Vec::new(),
                    valid_for: None,
                })
            }
            Exchange::Scram(exchange) => exchange.step(token, credentials),
            Exchange::OAuthBearer(exchange) => exchange.step(token, SystemTime::now()),
        }
    }
}
