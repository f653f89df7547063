//! The client side of a SASL exchange, for a broker logging in to another
//! broker (replica fetches, transaction markers): PLAIN sends the password
//! once; SCRAM (RFC 5802) proves it without sending it and checks that the
//! peer knew the credential too, so a broker never replicates from an
//! impostor that merely accepted any login.

use super::super::peer::SaslLogin;
use super::super::scram::{self, ScramMechanism};
use super::{Failure, Mechanism};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// One login in progress.
pub enum ClientExchange {
    Plain { token: Vec<u8> },
    Scram(Box<ScramClient>),
}

/// What the next server token leads to.
pub enum ClientStep {
    /// Send this token.
    Send(Vec<u8>),
    /// Logged in; nothing more to send.
    Done,
}

impl ClientExchange {
    /// Starts a login; `first` is the token to send first. A broker has
    /// no OAUTHBEARER token to log in with (the config refuses it).
    pub fn start(login: &SaslLogin) -> Result<(ClientExchange, Vec<u8>), Failure> {
        let scram = match login.mechanism {
            Mechanism::Plain => {
                let token = format!("\0{}\0{}", login.username, login.password.0).into_bytes();
                return Ok((
                    ClientExchange::Plain {
                        token: token.clone(),
                    },
                    token,
                ));
            }
            Mechanism::ScramSha256 => ScramMechanism::Sha256,
            Mechanism::ScramSha512 => ScramMechanism::Sha512,
            Mechanism::OAuthBearer => {
                return Err("a broker logs in to others with PLAIN or SCRAM only".to_owned())
            }
        };
        let nonce = BASE64.encode(scram::random_bytes(24));
        let bare = format!("n={},r={nonce}", escape(&login.username));
        let first = format!("n,,{bare}").into_bytes();
        let client = ScramClient {
            mechanism: scram,
            password: login.password.0.clone(),
            client_first_bare: bare,
            nonce,
            server_signature: None,
        };
        Ok((ClientExchange::Scram(Box::new(client)), first))
    }

    /// Takes the server's answer to the last token sent.
    pub fn step(&mut self, token: &[u8]) -> Result<ClientStep, Failure> {
        match self {
            ClientExchange::Plain { .. } => Ok(ClientStep::Done),
            ClientExchange::Scram(client) => client.step(token),
        }
    }
}

/// A SCRAM login between its messages.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// Set once client-final is sent: what server-final must carry.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    fn step(&mut self, token: &[u8]) -> Result<ClientStep, Failure> {
        let message =
            std::str::from_utf8(token).map_err(|_| "the SCRAM server message is not UTF-8")?;
        match &self.server_signature {
            None => self.client_final(message).map(ClientStep::Send),
            Some(expected) => {
                let attributes = scram::attributes(message);
                if let Some((_, error)) = attributes.iter().find(|(k, _)| *k == 'e') {
                    return Err(format!("the peer refused the SCRAM proof: {error}"));
                }
                let verifier = attributes
                    .iter()
                    .find(|(k, _)| *k == 'v')
                    .and_then(|(_, v)| BASE64.decode(v).ok())
                    .ok_or("no server signature in the SCRAM server-final message")?;
                if verifier != *expected {
                    return Err("the peer does not know this SCRAM credential".to_owned());
                }
                Ok(ClientStep::Done)
            }
        }
    }

    /// Answers server-first with the proof.
    fn client_final(&mut self, server_first: &str) -> Result<Vec<u8>, Failure> {
        let attributes = scram::attributes(server_first);
        let get = |key: char| {
            attributes
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("no `{key}` in the SCRAM server-first message"))
        };
        let nonce = get('r')?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the SCRAM server nonce does not extend ours".to_owned());
        }
        let salt = BASE64
            .decode(get('s')?)
            .map_err(|_| "the SCRAM salt is not base64")?;
        let iterations: u32 = get('i')?
            .parse()
            .ok()
            .filter(|i| scram::ITERATIONS.contains(i))
            .ok_or("the SCRAM iteration count is out of range")?;
        let m = self.mechanism;
        let salted = m.salted_password(&self.password, &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", BASE64.encode("n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }
}

/// A `saslname`: a comma is `=2C`, an equals sign `=3D`.
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::sasl::{Credentials, Exchange, Step};
    use crate::security::scram::ScramCredential;
    use crate::security::{Principal, Secret};

    struct Users;

    impl Credentials for Users {
        fn plain_password(&self, _: &str) -> Option<&Secret> {
            None
        }
        fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            let salt = b"pepper".to_vec();
            let salted = m.salted_password("right", &salt, 4096);
            (user == "broker,1").then(|| ScramCredential::new(m, salt, &salted, 4096))
        }
    }

    /// Runs a client login against the broker's own server exchange.
    fn login(mechanism: Mechanism, password: &str) -> Result<Principal, Failure> {
        let login = SaslLogin {
            mechanism,
            username: "broker,1".into(),
            password: Secret(password.into()),
        };
        let (mut client, mut token) = ClientExchange::start(&login)?;
        let mut server = Exchange::new(mechanism);
        loop {
            match server.step(&token, &Users)? {
                Step::Continue(answer) => match client.step(&answer)? {
                    ClientStep::Send(next) => token = next,
                    ClientStep::Done => return Err("client done too early".into()),
                },
                Step::Authenticated {
                    principal, token, ..
                } => {
                    return match client.step(&token)? {
                        ClientStep::Done => Ok(principal),
                        ClientStep::Send(_) => Err("client wants to go on".into()),
                    };
                }
            }
        }
    }

    #[test]
    fn scram_logins_pass_the_brokers_own_check() {
        for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            assert_eq!(login(mechanism, "right"), Ok(Principal::user("broker,1")));
            assert!(login(mechanism, "wrong").is_err());
        }
    }

    #[test]
    fn a_server_without_the_credential_is_caught() {
        let login = SaslLogin {
            mechanism: Mechanism::ScramSha256,
            username: "u".into(),
            password: Secret("right".into()),
        };
        let (mut client, first) = ClientExchange::start(&login).unwrap();
        let first = String::from_utf8(first).unwrap();
        let nonce = first.rsplit_once("r=").unwrap().1;
        let server_first = format!("r={nonce}xyz,s={},i=4096", BASE64.encode(b"salt"));
        assert!(matches!(
            client.step(server_first.as_bytes()),
            Ok(ClientStep::Send(_))
        ));
        let forged = format!("v={}", BASE64.encode([0u8; 32]));
        assert!(client.step(forged.as_bytes()).is_err());
    }
}
