//! SASL/PLAIN (RFC 4616): the client sends `authzid NUL user NUL password`
//! in one token; the password is checked against `sasl_plain_users`.

use super::{Credentials, Failure};
use crate::security::Principal;
use subtle::ConstantTimeEq;

/// The one failure message of a wrong user or password, so that a client
/// cannot tell which of the two was wrong.
const INVALID: &str = "Authentication failed: Invalid username or password";

pub fn authenticate(token: &[u8], credentials: &dyn Credentials) -> Result<Principal, Failure> {
    let token = std::str::from_utf8(token)
        .map_err(|_| "Authentication failed: the PLAIN token is not UTF-8".to_owned())?;
    let mut parts = token.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(
            "Authentication failed: the PLAIN token is not authzid NUL user NUL password"
                .to_owned(),
        );
    };
    if user.is_empty() || password.is_empty() {
        return Err("Authentication failed: empty user name or password".to_owned());
    }
    if !authzid.is_empty() && authzid != user {
        return Err("Authentication failed: the authorization id is not the user".to_owned());
    }
    let expected = credentials.plain_password(user).ok_or(INVALID)?;
    if bool::from(expected.0.as_bytes().ct_eq(password.as_bytes())) {
        Ok(Principal::user(user))
    } else {
        Err(INVALID.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramCredential, ScramMechanism};
    use crate::security::Secret;

    struct Alice(Secret);

    impl Credentials for Alice {
        fn plain_password(&self, user: &str) -> Option<&Secret> {
            (user == "alice").then_some(&self.0)
        }
        fn scram_credential(&self, _: &str, _: ScramMechanism) -> Option<ScramCredential> {
            None
        }
    }

    #[test]
    fn user_and_password_must_match() {
        let users = Alice(Secret("alice-secret".into()));
        assert_eq!(
            authenticate(b"\0alice\0alice-secret", &users),
            Ok(Principal::user("alice"))
        );
        assert_eq!(
            authenticate(b"alice\0alice\0alice-secret", &users),
            Ok(Principal::user("alice"))
        );
        assert!(authenticate(b"\0alice\0wrong", &users).is_err());
        assert!(authenticate(b"\0bob\0alice-secret", &users).is_err());
        assert!(authenticate(b"bob\0alice\0alice-secret", &users).is_err());
        assert!(authenticate(b"alice-secret", &users).is_err());
        assert!(authenticate(b"\0alice\0alice-secret\0", &users).is_err());
    }
}
