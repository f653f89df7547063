//! SASL/OAUTHBEARER (RFC 7628, KIP-255) with unsecured JWS tokens, as
//! Kafka's default `OAuthBearerUnsecuredValidatorCallbackHandler` accepts
//! them. For tests and development only: such a token is not signed
//! (`alg: none`), so anyone can mint one naming any user.
//!
//! The client's one message is a GS2 header, then `\x01`-terminated
//! key=value pairs with `auth=Bearer <token>` among them, then `\x01`. The
//! token is `base64url(header).base64url(claims).`, its signature empty.
//! A token that does not parse, names nobody or has expired is answered
//! with RFC 7628's error JSON; the client acknowledges it with a lone
//! `\x01`, and the exchange then fails, as in Kafka.

use super::{Failure, Step};
use crate::security::Principal;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Separates the key=value pairs of the client's message (`kvsep`).
const SEPARATOR: char = '\x01';

/// The claim that names the principal (Kafka's
/// `unsecuredValidatorPrincipalClaimName` default).
const PRINCIPAL_CLAIM: &str = "sub";

/// RFC 7628's answer to a token that is not accepted; Kafka sends the same.
const INVALID_TOKEN: &[u8] = br#"{"status":"invalid_token"}"#;

/// JWS segments are base64url, without padding as JWS writes them, but a
/// padded one is taken too, as Java's URL decoder does.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Where an exchange stands.
pub enum ServerExchange {
    /// Waiting for the client's message.
    Initial,
    /// The token was refused and the error JSON sent: the client's
    /// acknowledgement ends the exchange with this failure.
    Refused(Failure),
    /// Finished, well or not: no more tokens.
    Over,
}

/// An accepted token: whom it names and how much longer it is valid.
#[derive(Debug, PartialEq)]
pub struct Token {
    pub principal: String,
    pub valid_for: Duration,
}

impl ServerExchange {
    pub fn step(&mut self, message: &[u8], now: SystemTime) -> Result<Step, Failure> {
        match std::mem::replace(self, ServerExchange::Over) {
            ServerExchange::Initial => self.client_message(message, now),
            ServerExchange::Refused(why) => Err(why),
            ServerExchange::Over => {
                Err("Authentication failed: the OAUTHBEARER exchange is over".to_owned())
            }
        }
    }

    fn client_message(&mut self, message: &[u8], now: SystemTime) -> Result<Step, Failure> {
        let bad = |why: &str| format!("Authentication failed: invalid OAUTHBEARER message: {why}");
        let message = std::str::from_utf8(message).map_err(|_| bad("not UTF-8"))?;
        let (authzid, token) = client_message(message).map_err(bad)?;
        let token = match validate(token, now) {
            Ok(token) => token,
            Err(why) => {
                *self = ServerExchange::Refused(format!("Authentication failed: {why}"));
                return Ok(Step::Continue(INVALID_TOKEN.to_vec()));
            }
        };
        if authzid.is_some_and(|id| id != token.principal) {
            return Err(
                "Authentication failed: the authorization id is not the token's principal"
                    .to_owned(),
            );
        }
        Ok(Step::Authenticated {
            principal: Principal::user(token.principal),
            token: Vec::new(),
            valid_for: Some(token.valid_for),
        })
    }
}

/// The authorization id (if any) and the bearer token of the client's
/// message: `gs2-header kvsep *(key "=" value kvsep) kvsep`.
fn client_message(message: &str) -> Result<(Option<&str>, &str), &'static str> {
    let (gs2_header, pairs) = message
        .split_once(SEPARATOR)
        .ok_or("no key/value pairs after the GS2 header")?;
    // gs2-header = "n," [ "a=" authzid ] ","; a client cannot bind to the
    // TLS channel with this mechanism.
    let authzid = gs2_header
        .strip_prefix("n,")
        .and_then(|rest| rest.strip_suffix(','))
        .ok_or("the GS2 header is not `n,,` or `n,a=USER,`")?;
    let authzid = match authzid {
        "" => None,
        id => Some(
            id.strip_prefix("a=")
                .ok_or("a malformed authorization id")?,
        ),
    };
    // Each pair ends with \x01, and one more ends the message.
    let pairs = pairs
        .strip_suffix(SEPARATOR)
        .filter(|pairs| pairs.is_empty() || pairs.ends_with(SEPARATOR))
        .ok_or("the message does not end with \\x01\\x01")?;
    let mut auth = None;
    for pair in pairs.split_terminator(SEPARATOR) {
        let (key, value) = pair.split_once('=').ok_or("a pair without `=`")?;
        // Other keys are SASL extensions (KIP-342), which the unsecured
        // validator ignores.
        if key == "auth" {
            auth = Some(value);
        }
    }
    let (scheme, token) = auth
        .ok_or("no auth pair")?
        .split_once(' ')
        .ok_or("auth is not `Bearer <token>`")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("auth is not `Bearer <token>`");
    }
    Ok((authzid, token.trim_start_matches(' ')))
}

/// Checks an unsecured JWS as Kafka's unsecured validator does: it parses,
/// its header says `alg: none`, it names a principal, it has not expired
/// and was not issued in the future (no clock skew is allowed).
pub fn validate(token: &str, now: SystemTime) -> Result<Token, String> {
    let mut segments = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err("the token is not three dot-separated JWS segments".to_owned());
    };
    if !signature.is_empty() {
        return Err("an unsecured JWS has an empty signature".to_owned());
    }
    let header = json_object(header, "header")?;
    if header.get("alg").and_then(Value::as_str) != Some("none") {
        return Err("the token's header does not say `\"alg\": \"none\"`".to_owned());
    }
    let claims = json_object(claims, "claims")?;
    let principal = match claims.get(PRINCIPAL_CLAIM) {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(_) => return Err(format!("the `{PRINCIPAL_CLAIM}` claim is not a user name")),
        None => return Err(format!("the token has no `{PRINCIPAL_CLAIM}` claim")),
    };
    let now_ms = milliseconds_since_epoch(now);
    let expires_ms = time_claim(&claims, "exp")?.ok_or("the token has no `exp` claim")?;
    if expires_ms <= now_ms {
        return Err(format!(
            "the token expired at {expires_ms} ms, now is {now_ms} ms"
        ));
    }
    if let Some(issued_ms) = time_claim(&claims, "iat")? {
        if issued_ms > now_ms {
            return Err(format!(
                "the token was issued in the future, at {issued_ms} ms, now is {now_ms} ms"
            ));
        }
    }
    Ok(Token {
        principal,
        valid_for: Duration::from_millis(u64::try_from(expires_ms - now_ms).unwrap_or(u64::MAX)),
    })
}

fn json_object(segment: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = BASE64URL
        .decode(segment)
        .map_err(|e| format!("the token's {what} is not base64url: {e}"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(format!("the token's {what} is not a JSON object")),
        Err(e) => Err(format!("the token's {what} is not JSON: {e}")),
    }
}

/// A NumericDate claim (seconds since the epoch, maybe fractional), in
/// milliseconds.
fn time_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i128>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|seconds| seconds.is_finite())
            .map(|seconds| Some((seconds * 1000.0) as i128))
            .ok_or_else(|| format!("the `{name}` claim is not a number of seconds")),
    }
}

fn milliseconds_since_epoch(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_millis() as i128,
        Err(before) => -(before.duration().as_millis() as i128),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

    const NOW_S: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_S)
    }

    fn jws(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn token(claims: &str) -> String {
        jws(r#"{"alg":"none"}"#, claims)
    }

    fn message(token: &str) -> Vec<u8> {
        format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
    }

    #[test]
    fn a_valid_token_names_its_subject_until_it_expires() {
        let claims = format!(
            r#"{{"sub":"alice","iat":{},"exp":{}}}"#,
            NOW_S - 10,
            NOW_S + 60
        );
        assert_eq!(
            validate(&token(&claims), now()),
            Ok(Token {
                principal: "alice".into(),
                valid_for: Duration::from_secs(60)
            })
        );
        let padded = format!(
            "{}.{}.",
            URL_SAFE.encode(r#"{"alg":"none"}"#),
            URL_SAFE.encode(&claims)
        );
        assert!(padded.contains('='), "{padded}");
        assert!(validate(&padded, now()).is_ok(), "padding is accepted");
    }

    #[test]
    fn bad_tokens_are_refused() {
        let exp = NOW_S + 60;
        let refused = |token: String, why: &str| {
            let error = validate(&token, now()).unwrap_err();
            assert!(error.contains(why), "{error} lacks {why}");
        };
        refused(
            token(&format!(r#"{{"sub":"alice","exp":{NOW_S}}}"#)),
            "expired",
        );
        refused(token(r#"{"sub":"alice"}"#), "no `exp`");
        refused(token(&format!(r#"{{"exp":{exp}}}"#)), "no `sub`");
        refused(
            token(&format!(r#"{{"sub":"","exp":{exp}}}"#)),
            "not a user name",
        );
        refused(
            token(&format!(r#"{{"sub":7,"exp":{exp}}}"#)),
            "not a user name",
        );
        refused(token(r#"{"sub":"a","exp":"soon"}"#), "not a number");
        let future = format!(r#"{{"sub":"a","exp":{exp},"iat":{}}}"#, NOW_S + 1);
        refused(token(&future), "in the future");
        let claims = format!(r#"{{"sub":"alice","exp":{exp}}}"#);
        refused(jws(r#"{"alg":"HS256"}"#, &claims), "alg");
        refused(format!("{}sig", token(&claims)), "empty signature");
        refused(token(&claims).trim_end_matches('.').to_owned(), "three");
        refused("a.b.c.d".into(), "three");
        refused("!!.!!.".into(), "base64url");
        refused(jws(r#"{"alg":"none"}"#, "[1]"), "JSON object");
        refused(jws("not json", &claims), "not JSON");
    }

    #[test]
    fn the_client_message_carries_the_token_and_maybe_an_authorization_id() {
        assert_eq!(
            client_message("n,,\x01auth=Bearer t.u.\x01\x01"),
            Ok((None, "t.u."))
        );
        assert_eq!(
            client_message("n,a=alice,\x01host=h\x01auth=bearer  t.u.\x01port=1\x01\x01"),
            Ok((Some("alice"), "t.u."))
        );
        for bad in [
            "",
            "n,,",
            "y,,\x01auth=Bearer t\x01\x01",
            "p=tls-unique,,\x01auth=Bearer t\x01\x01",
            "n,,\x01auth=Bearer t\x01",
            "n,,\x01\x01",
            "n,,\x01auth=Basic t\x01\x01",
            "n,,\x01auth\x01\x01",
            "n,x,\x01auth=Bearer t\x01\x01",
        ] {
            assert!(client_message(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_refused_token_gets_the_error_json_then_fails() {
        let mut exchange = ServerExchange::Initial;
        let expired = token(&format!(r#"{{"sub":"alice","exp":{}}}"#, NOW_S - 1));
        match exchange.step(&message(&expired), now()) {
            Ok(Step::Continue(json)) => assert_eq!(json, INVALID_TOKEN),
            _ => panic!("no error JSON"),
        }
        let failure = exchange.step(b"\x01", now()).expect_err("a failure");
        assert!(failure.contains("expired"), "{failure}");
    }

    #[test]
    fn an_accepted_token_authenticates_its_subject() {
        let valid = token(&format!(r#"{{"sub":"alice","exp":{}}}"#, NOW_S + 5));
        match ServerExchange::Initial.step(&message(&valid), now()) {
            Ok(Step::Authenticated {
                principal,
                valid_for,
                ..
            }) => {
                assert_eq!(principal, Principal::user("alice"));
                assert_eq!(valid_for, Some(Duration::from_secs(5)));
            }
            _ => panic!("not authenticated"),
        }
        let other = format!("n,a=bob,\x01auth=Bearer {valid}\x01\x01");
        assert!(ServerExchange::Initial
            .step(other.as_bytes(), now())
            .is_err());
        assert!(ServerExchange::Initial.step(b"\xff", now()).is_err());
    }
}
