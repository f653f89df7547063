//! Who a client is and what it may do: the listeners and their security
//! protocols, TLS, SASL authentication, the principal a connection
//! authenticated as, which every API handler receives with its request,
//! and the authorizer that checks it against the ACLs. An unauthenticated
//! connection (a PLAINTEXT listener, or TLS without a client certificate)
//! is [`Principal::anonymous`], as Kafka's `User:ANONYMOUS`.

mod access;
pub mod authorizer;
pub mod listeners;
pub mod peer;
mod principal;
pub mod sasl;
pub mod scram;
pub mod tls;

pub use access::Access;
pub use authorizer::{Authorizer, AuthorizerKind, Operation, ResourceType};
pub use principal::Principal;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A password from the config: never shown by `Debug`, so a logged config
/// does not carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}
