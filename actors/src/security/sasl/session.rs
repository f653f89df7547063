//! The SASL state of one connection on a SASL listener (KIP-152, KIP-368):
//! which requests it may send, the handshake, the exchange of tokens, and
//! the session the exchange opens, which may expire (after
//! `connections_max_reauth_ms`, or when an OAUTHBEARER token does) and be
//! renewed by authenticating again as the same principal.

use super::{Credentials, Exchange, Failure, Mechanism, Step};
use crate::security::Principal;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use std::time::{Duration, Instant};

pub struct SaslSession {
    /// The mechanisms clients may choose.
    mechanisms: Vec<Mechanism>,
    /// Longest a session lasts; `None`: as long as the connection.
    max_lifetime: Option<Duration>,
    /// The exchange under way since the last handshake.
    exchange: Option<Exchange>,
    /// Tokens come as bare frames, not SaslAuthenticate requests: the
    /// client's handshake was v0.
    raw_tokens: bool,
    /// Who the client proved to be, and until when.
    authenticated: Option<(Principal, Option<Instant>)>,
}

/// What a token that completed or continued an exchange leads to.
pub struct Accepted {
    /// The token for the client.
    pub token: Vec<u8>,
    /// The principal, once the exchange is complete.
    pub principal: Option<Principal>,
    /// For SaslAuthenticate v1+: how long the session lasts, 0 for ever.
    pub session_lifetime_ms: i64,
}

impl SaslSession {
    pub fn new(mechanisms: Vec<Mechanism>, max_lifetime_ms: u64) -> SaslSession {
        SaslSession {
            mechanisms,
            max_lifetime: (max_lifetime_ms > 0).then(|| Duration::from_millis(max_lifetime_ms)),
            exchange: None,
            raw_tokens: false,
            authenticated: None,
        }
    }

    /// Whether a request of `api` may be served at `now`: before
    /// authentication, and once the session expired, only the requests that
    /// authenticate (Kafka closes the connection on any other).
    pub fn admits(&self, api: ApiKey, now: Instant) -> Result<(), &'static str> {
        if matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            return Ok(());
        }
        match &self.authenticated {
            None => Err("request before SASL authentication"),
            Some((_, Some(expiry))) if now >= *expiry => {
                Err("the SASL session expired without re-authentication")
            }
            Some(_) => Ok(()),
        }
    }

    /// The client has authenticated on this connection.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.is_some()
    }

    /// The next frame is a bare token of an exchange begun by a v0
    /// handshake.
    pub fn expects_raw_token(&self) -> bool {
        self.raw_tokens && self.exchange.is_some()
    }

    /// The mechanisms clients may choose, by name.
    pub fn mechanism_names(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// SaslHandshake: begins an exchange with the named mechanism.
    pub fn handshake(
        &mut self,
        mechanism: &str,
        version: i16,
    ) -> Result<(), (ResponseError, Failure)> {
        if self.exchange.is_some() {
            return Err((
                ResponseError::IllegalSaslState,
                "SaslHandshake during an authentication".to_owned(),
            ));
        }
        let chosen = Mechanism::from_name(mechanism)
            .filter(|m| self.mechanisms.contains(m))
            .ok_or_else(|| {
                (
                    ResponseError::UnsupportedSaslMechanism,
                    format!("unsupported SASL mechanism {mechanism}"),
                )
            })?;
        self.exchange = Some(Exchange::new(chosen));
        self.raw_tokens = version == 0;
        Ok(())
    }

    /// One client token (SaslAuthenticate, or a bare frame after a v0
    /// handshake). A failure ends the exchange; the connection closes.
    pub fn authenticate(
        &mut self,
        token: &[u8],
        credentials: &dyn Credentials,
        now: Instant,
    ) -> Result<Accepted, Failure> {
        let exchange = self
            .exchange
            .as_mut()
            .ok_or_else(|| "SaslAuthenticate without a SaslHandshake".to_owned())?;
        let step = exchange.step(token, credentials);
        let (principal, token, valid_for) = match step {
            Ok(Step::Continue(token)) => {
                return Ok(Accepted {
                    token,
                    principal: None,
                    session_lifetime_ms: 0,
                })
            }
            Ok(Step::Authenticated {
                principal,
                token,
                valid_for,
            }) => (principal, token, valid_for),
            Err(why) => {
                self.exchange = None;
                return Err(why);
            }
        };
        self.exchange = None;
        if let Some((before, _)) = &self.authenticated {
            if *before != principal {
                return Err(format!(
                    "re-authentication as {principal} on a connection of {before}"
                ));
            }
        }
        // The session ends with the credential, as Kafka bounds it by a
        // token's expiry, if that comes before the configured maximum.
        let lifetime = match (self.max_lifetime, valid_for) {
            (Some(max), Some(credential)) => Some(max.min(credential)),
            (max, credential) => max.or(credential),
        };
        // A lifetime past what an Instant can hold is no limit.
        let expiry = lifetime.and_then(|l| now.checked_add(l));
        self.authenticated = Some((principal.clone(), expiry));
        Ok(Accepted {
            token,
            principal: Some(principal),
            session_lifetime_ms: lifetime
                .map_or(0, |l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{ScramCredential, ScramMechanism};
    use crate::security::Secret;

    struct Users(Secret, Secret);

    impl Credentials for Users {
        fn plain_password(&self, user: &str) -> Option<&Secret> {
            match user {
                "alice" => Some(&self.0),
                "bob" => Some(&self.1),
                _ => None,
            }
        }
        fn scram_credential(&self, _: &str, _: ScramMechanism) -> Option<ScramCredential> {
            None
        }
    }

    fn users() -> Users {
        Users(Secret("a".into()), Secret("b".into()))
    }

    #[test]
    fn only_authentication_is_served_before_it() {
        let now = Instant::now();
        let mut session = SaslSession::new(vec![Mechanism::Plain], 0);
        assert!(session.admits(ApiKey::ApiVersions, now).is_ok());
        assert!(session.admits(ApiKey::Metadata, now).is_err());
        assert!(session.authenticate(b"\0alice\0a", &users(), now).is_err());
        let refused = session.handshake("SCRAM-SHA-256", 1).unwrap_err();
        assert_eq!(refused.0, ResponseError::UnsupportedSaslMechanism);
        session.handshake("PLAIN", 1).unwrap();
        assert!(!session.expects_raw_token());
        let accepted = session.authenticate(b"\0alice\0a", &users(), now).unwrap();
        assert_eq!(accepted.principal, Some(Principal::user("alice")));
        assert!(session.admits(ApiKey::Metadata, now).is_ok());
    }

    #[test]
    fn a_v0_handshake_takes_bare_tokens() {
        let mut session = SaslSession::new(vec![Mechanism::Plain], 0);
        session.handshake("PLAIN", 0).unwrap();
        assert!(session.expects_raw_token());
        session
            .authenticate(b"\0alice\0a", &users(), Instant::now())
            .unwrap();
        assert!(!session.expects_raw_token());
    }

    /// An unsecured OAUTHBEARER message for `sub`, valid for `seconds`.
    fn bearer(sub: &str, seconds: u64) -> Vec<u8> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + seconds;
        let claims = format!(r#"{{"sub":"{sub}","exp":{exp}}}"#);
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
    }

    #[test]
    fn a_token_ends_the_session_when_it_expires_if_that_comes_first() {
        let now = Instant::now();
        for (max_ms, token_s, lifetime_ms) in [(0, 100, 100_000), (5000, 100, 5000)] {
            let mut session = SaslSession::new(vec![Mechanism::OAuthBearer], max_ms);
            session.handshake("OAUTHBEARER", 1).unwrap();
            let accepted = session
                .authenticate(&bearer("alice", token_s), &users(), now)
                .unwrap();
            assert_eq!(accepted.principal, Some(Principal::user("alice")));
            // Whole seconds of `exp`, less the part of this one gone.
            let lifetime = accepted.session_lifetime_ms;
            assert!(
                lifetime <= lifetime_ms && lifetime > lifetime_ms - 2000,
                "{lifetime}"
            );
            let end = now + Duration::from_millis(lifetime as u64);
            assert!(session.admits(ApiKey::Metadata, end).is_err());
        }
        let mut session = SaslSession::new(Mechanism::DEFAULT.to_vec(), 0);
        let refused = session.handshake("OAUTHBEARER", 1).unwrap_err();
        assert_eq!(refused.0, ResponseError::UnsupportedSaslMechanism);
    }

    #[test]
    fn sessions_expire_and_reauthentication_keeps_the_principal() {
        let now = Instant::now();
        let mut session = SaslSession::new(vec![Mechanism::Plain], 1000);
        session.handshake("PLAIN", 1).unwrap();
        let accepted = session.authenticate(b"\0alice\0a", &users(), now).unwrap();
        assert_eq!(accepted.session_lifetime_ms, 1000);
        let later = now + Duration::from_millis(1000);
        assert!(session.admits(ApiKey::Metadata, later).is_err());
        session.handshake("PLAIN", 1).unwrap();
        assert!(session.authenticate(b"\0bob\0b", &users(), later).is_err());
        session.handshake("PLAIN", 1).unwrap();
        session
            .authenticate(b"\0alice\0a", &users(), later)
            .unwrap();
        assert!(session.admits(ApiKey::Metadata, later).is_ok());
    }
}
