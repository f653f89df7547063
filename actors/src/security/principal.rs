//! A Kafka principal, `Type:name` (`User:alice`), as ACLs name it.

use std::fmt;

/// The identity a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The principal type; Kafka's authenticators all produce `User`.
    pub kind: String,
    /// The user name (SASL) or the certificate's mapped subject (TLS).
    pub name: String,
}

impl Principal {
    /// A user principal, `User:name`.
    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            kind: "User".to_owned(),
            name: name.into(),
        }
    }

    /// The principal of a connection that did not authenticate.
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}
