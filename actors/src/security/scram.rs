//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677): the stored
//! credential, which holds no password, and the broker's side of the
//! exchange (the client's, for logins to other brokers, is in
//! `sasl::client`). The hashes, HMAC and PBKDF2 come from the RustCrypto crates.

use super::sasl::{Credentials, Failure, Step};
use super::Principal;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::digest::block_api::EagerHash;
use hmac::digest::Digest;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Fewest and most PBKDF2 iterations a credential may have, as Kafka
/// accepts them.
pub const ITERATIONS: std::ops::RangeInclusive<u32> = 4096..=16384;

/// The failure of a wrong user or proof, the same for both so that a
/// client cannot find out which users exist.
const INVALID: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism";

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism's number in the SCRAM credential APIs.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    pub(super) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => hmac::<Sha256>(key, data),
            ScramMechanism::Sha512 => hmac::<Sha512>(key, data),
        }
    }

    pub(super) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, iterations)`: what a client sends in
    /// AlterUserScramCredentials, so the password never reaches the broker.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => salted::<Sha256>(password, salt, iterations),
            ScramMechanism::Sha512 => salted::<Sha512>(password, salt, iterations),
        }
    }
}

fn hmac<D: EagerHash>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn salted<D: EagerHash>(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0; <D as Digest>::output_size()];
    pbkdf2::pbkdf2_hmac::<D>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// Random bytes for salts and nonces.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// What the broker keeps of a user's SCRAM password (RFC 5802 section 3):
/// enough to check a proof, not enough to log in with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// The credential of a salted password.
    pub fn new(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }
}

/// The broker's side of one SCRAM exchange: client-first, server-first,
/// client-final, server-final.
pub struct ServerExchange {
    mechanism: ScramMechanism,
    state: State,
}

enum State {
    /// Waiting for client-first.
    First,
    /// Server-first sent; waiting for client-final.
    Final {
        user: String,
        credential: ScramCredential,
        /// The GS2 header of client-first, which client-final repeats.
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    /// Finished, well or not: no more tokens.
    Over,
}

impl ServerExchange {
    pub fn new(mechanism: ScramMechanism) -> ServerExchange {
        ServerExchange {
            mechanism,
            state: State::First,
        }
    }

    pub fn step(&mut self, token: &[u8], credentials: &dyn Credentials) -> Result<Step, Failure> {
        let message = std::str::from_utf8(token)
            .map_err(|_| "Authentication failed: the SCRAM message is not UTF-8".to_owned())?;
        match std::mem::replace(&mut self.state, State::Over) {
            State::First => self.client_first(message, credentials),
            State::Final {
                user,
                credential,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
            } => {
                let auth = Authentication {
                    credential: &credential,
                    gs2_header: &gs2_header,
                    client_first_bare: &client_first_bare,
                    server_first: &server_first,
                    nonce: &nonce,
                };
                let server_final = self.client_final(message, &auth)?;
                Ok(Step::Authenticated {
                    principal: Principal::user(user),
                    token: server_final.into_bytes(),
                    valid_for: None,
                })
            }
            State::Over => Err("Authentication failed: the SCRAM exchange is over".to_owned()),
        }
    }

    fn client_first(
        &mut self,
        message: &str,
        credentials: &dyn Credentials,
    ) -> Result<Step, Failure> {
        let bad =
            |why: &str| format!("Authentication failed: invalid SCRAM client-first message: {why}");
        // gs2-header = gs2-cbind-flag "," [ authzid ] ","
        let mut parts = message.splitn(3, ',');
        let (Some(cbind), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("no GS2 header"));
        };
        if cbind.starts_with("p=") {
            return Err(bad("channel binding is not supported"));
        }
        if cbind != "n" && cbind != "y" {
            return Err(bad("unknown channel binding flag"));
        }
        let attributes = attributes(bare);
        let user = attributes
            .iter()
            .find(|(k, _)| *k == 'n')
            .map(|(_, v)| unescape(v))
            .ok_or_else(|| bad("no user name"))??;
        let client_nonce = attributes
            .iter()
            .find(|(k, _)| *k == 'r')
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("no nonce"))?;
        if attributes.first().is_some_and(|(k, _)| *k == 'm') {
            return Err(bad("mandatory extensions are not supported"));
        }
        if let Some(authzid) = authzid.strip_prefix("a=") {
            if unescape(authzid)? != user {
                return Err(
                    "Authentication failed: the authorization id is not the user".to_owned(),
                );
            }
        }
        let credential = credentials
            .scram_credential(&user, self.mechanism)
            .ok_or(INVALID)?;
        let nonce = format!("{client_nonce}{}", BASE64.encode(random_bytes(24)));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        self.state = State::Final {
            user,
            credential,
            gs2_header: format!("{cbind},{authzid},"),
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(Step::Continue(server_first.into_bytes()))
    }

    /// Checks the client's proof; the server-final message proves the
    /// broker knew the credential.
    fn client_final(&self, message: &str, auth: &Authentication) -> Result<String, Failure> {
        let bad =
            |why: &str| format!("Authentication failed: invalid SCRAM client-final message: {why}");
        let (without_proof, proof) = message.rsplit_once(",p=").ok_or_else(|| bad("no proof"))?;
        let attributes = attributes(without_proof);
        let channel_binding = attributes
            .iter()
            .find(|(k, _)| *k == 'c')
            .map(|(_, v)| *v)
            .ok_or_else(|| bad("no channel binding"))?;
        if BASE64.decode(channel_binding).ok().as_deref() != Some(auth.gs2_header.as_bytes()) {
            return Err(bad("the channel binding is not the GS2 header"));
        }
        let nonce = attributes
            .iter()
            .find(|(k, _)| *k == 'r')
            .map(|(_, v)| *v)
            .ok_or_else(|| bad("no nonce"))?;
        // RFC 5802 has the client repeat the nonce of server-first;
        // librdkafka repeats it after its own nonce again, so Kafka accepts
        // a nonce that ends with the server's, and so does this. The
        // server's part is what makes the exchange fresh.
        if !nonce.ends_with(auth.nonce) {
            return Err(bad("the nonce is not the server's"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| bad("the proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            auth.client_first_bare, auth.server_first
        );
        let m = self.mechanism;
        let client_signature = m.hmac(&auth.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(INVALID.to_owned());
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(m.hash(&client_key).ct_eq(&auth.credential.stored_key)) {
            return Err(INVALID.to_owned());
        }
        let server_signature = m.hmac(&auth.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

/// What client-final is checked against.
struct Authentication<'a> {
    credential: &'a ScramCredential,
    gs2_header: &'a str,
    client_first_bare: &'a str,
    server_first: &'a str,
    nonce: &'a str,
}

/// `k=v,k=v` attributes; a part that is not one is skipped.
pub(super) fn attributes(message: &str) -> Vec<(char, &str)> {
    message
        .split(',')
        .filter_map(|part| {
            let mut chars = part.chars();
            let key = chars.next()?;
            let value = chars.as_str().strip_prefix('=')?;
            Some((key, value))
        })
        .collect()
}

/// A `saslname`: `=2C` is a comma, `=3D` an equals sign.
fn unescape(name: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => {
                return Err(
                    "Authentication failed: invalid escape in the SCRAM user name".to_owned(),
                )
            }
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Secret;

    struct Users(ScramMechanism, ScramCredential);

    impl Credentials for Users {
        fn plain_password(&self, _: &str) -> Option<&Secret> {
            None
        }
        fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            (user == "user" && m == self.0).then(|| self.1.clone())
        }
    }

    /// RFC 7677 section 3: the SCRAM-SHA-256 example exchange, with the
    /// server nonce replaced by ours.
    #[test]
    fn the_rfc_7677_proof_is_accepted() {
        let m = ScramMechanism::Sha256;
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password("pencil", &salt, 4096);
        let users = Users(m, ScramCredential::new(m, salt, &salted, 4096));
        let mut exchange = ServerExchange::new(m);
        let first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let Ok(Step::Continue(server_first)) = exchange.step(first, &users) else {
            panic!("server-first expected");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        assert!(server_first.starts_with("r=rOprNGfwEbeRWgbNEkqO"));
        assert!(server_first.ends_with(",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
        let nonce = &server_first[2..server_first.find(",s=").unwrap()];
        // The client's computation, as RFC 5802 section 3 states it.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n=user,r=rOprNGfwEbeRWgbNEkqO,{server_first},{without_proof}");
        let client_key = m.hmac(&salted, b"Client Key");
        let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let final_message = format!("{without_proof},p={}", BASE64.encode(&proof));
        let Ok(Step::Authenticated {
            principal,
            token: server_final,
            ..
        }) = exchange.step(final_message.as_bytes(), &users)
        else {
            panic!("authenticated expected");
        };
        assert_eq!(principal, Principal::user("user"));
        let expected = m.hmac(&m.hmac(&salted, b"Server Key"), auth_message.as_bytes());
        assert_eq!(
            server_final,
            format!("v={}", BASE64.encode(expected)).into_bytes()
        );
    }

    #[test]
    fn a_wrong_proof_or_unknown_user_fails() {
        let m = ScramMechanism::Sha512;
        let salted = m.salted_password("right", b"salt", 4096);
        let users = Users(m, ScramCredential::new(m, b"salt".to_vec(), &salted, 4096));
        let mut unknown = ServerExchange::new(m);
        assert_eq!(
            unknown.step(b"n,,n=nobody,r=abc", &users).unwrap_err(),
            INVALID
        );
        let mut exchange = ServerExchange::new(m);
        let Ok(Step::Continue(server_first)) = exchange.step(b"n,,n=user,r=abc", &users) else {
            panic!("server-first expected");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let nonce = &server_first[2..server_first.find(",s=").unwrap()];
        let wrong = format!("c=biws,r={nonce},p={}", BASE64.encode([0u8; 64]));
        assert_eq!(
            exchange.step(wrong.as_bytes(), &users).unwrap_err(),
            INVALID
        );
        assert!(ServerExchange::new(m)
            .step(b"p=tls-unique,,n=user,r=a", &users)
            .is_err());
        assert!(ServerExchange::new(m).step(b"garbage", &users).is_err());
    }

    #[test]
    fn user_names_are_unescaped() {
        assert_eq!(unescape("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(unescape("a=2").is_err());
    }
}
