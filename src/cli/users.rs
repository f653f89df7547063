//! `actorlog users add|delete|list`: SCRAM users, through
//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554), so
//! they work against any broker that has them. librdkafka has no call for
//! these APIs, so the command sends them itself over a PLAINTEXT listener.
//! The password is salted and hashed here; it never leaves this process.

use actorlog_actors::security::scram::{random_bytes, ScramMechanism, ITERATIONS};
use bytes::{Bytes, BytesMut};
use clap::Subcommand;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;

/// Bytes of a new salt.
const SALT_BYTES: usize = 32;

/// Largest response this command reads.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a SCRAM user, or change its password. The password is read
    /// from the first line of stdin unless --password is given.
    Add {
        name: String,
        #[arg(long)]
        password: Option<String>,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
    },
    /// Delete a user's SCRAM credentials (of one mechanism, or all).
    Delete {
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
    },
    /// Users with SCRAM credentials: name, mechanism, iterations.
    List,
}

pub fn run(bootstrap: &str, command: UsersCommand) -> Result<(), String> {
    let address = bootstrap
        .split(',')
        .next()
        .filter(|a| !a.is_empty())
        .ok_or("no bootstrap address")?;
    let mut broker = Wire::connect(address)?;
    match command {
        UsersCommand::Add {
            name,
            password,
            mechanism,
            iterations,
        } => {
            let mechanism = parse_mechanism(&mechanism)?;
            if !ITERATIONS.contains(&iterations) {
                return Err(format!(
                    "--iterations must be between {} and {}",
                    ITERATIONS.start(),
                    ITERATIONS.end()
                ));
            }
            let password = match password {
                Some(password) => password,
                None => read_password()?,
            };
            let salt = random_bytes(SALT_BYTES);
            let salted = mechanism.salted_password(&password, &salt, iterations);
            let upsertion = ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(name))
                .with_mechanism(mechanism.code())
                .with_iterations(iterations as i32)
                .with_salt(Bytes::from(salt))
                .with_salted_password(Bytes::from(salted));
            let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
            alter(&mut broker, req)
        }
        UsersCommand::Delete { name, mechanism } => {
            let mechanisms = match mechanism {
                Some(m) => vec![parse_mechanism(&m)?],
                None => describe(&mut broker, Some(&name))?
                    .into_iter()
                    .map(|(_, m, _)| m)
                    .collect(),
            };
            let deletions = mechanisms
                .into_iter()
                .map(|m| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(m.code())
                })
                .collect();
            alter(
                &mut broker,
                AlterUserScramCredentialsRequest::default().with_deletions(deletions),
            )
        }
        UsersCommand::List => {
            for (user, mechanism, iterations) in describe(&mut broker, None)? {
                println!("{user} {} iterations={iterations}", mechanism.name());
            }
            Ok(())
        }
    }
}

fn parse_mechanism(name: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::from_name(name)
        .ok_or_else(|| format!("unknown mechanism {name}: SCRAM-SHA-256 or SCRAM-SHA-512"))
}

fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err("empty password".to_owned());
    }
    Ok(password)
}

fn alter(broker: &mut Wire, req: AlterUserScramCredentialsRequest) -> Result<(), String> {
    let response: AlterUserScramCredentialsResponse =
        broker.call(ApiKey::AlterUserScramCredentials, &req)?;
    for result in response.results {
        check(result.error_code, result.error_message.as_deref())
            .map_err(|e| format!("user {}: {e}", result.user.as_str()))?;
    }
    Ok(())
}

/// `(user, mechanism, iterations)` of one user or all.
fn describe(
    broker: &mut Wire,
    user: Option<&str>,
) -> Result<Vec<(String, ScramMechanism, i32)>, String> {
    let users = user.map(|name| {
        vec![
            kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default()
                .with_name(StrBytes::from_string(name.to_owned())),
        ]
    });
    let req = DescribeUserScramCredentialsRequest::default().with_users(users);
    let response: DescribeUserScramCredentialsResponse =
        broker.call(ApiKey::DescribeUserScramCredentials, &req)?;
    check(response.error_code, response.error_message.as_deref())?;
    let mut listed = Vec::new();
    for result in response.results {
        check(result.error_code, result.error_message.as_deref())
            .map_err(|e| format!("user {}: {e}", result.user.as_str()))?;
        for info in result.credential_infos {
            if let Some(m) = ScramMechanism::from_code(info.mechanism) {
                listed.push((result.user.to_string(), m, info.iterations));
            }
        }
    }
    Ok(listed)
}

fn check(code: i16, message: Option<&str>) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code)
        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    Err(match message {
        Some(message) => format!("{error}: {message}"),
        None => error,
    })
}

/// One blocking connection speaking version 0 of the two APIs.
struct Wire {
    stream: TcpStream,
    correlation_id: i32,
}

impl Wire {
    fn connect(address: &str) -> Result<Wire, String> {
        let stream =
            TcpStream::connect(address).map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let timeout = Some(super::REQUEST_TIMEOUT);
        stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout))
            .map_err(|e| format!("{address}: {e}"))?;
        Ok(Wire {
            stream,
            correlation_id: 0,
        })
    }

    fn call<R: Decodable>(&mut self, api: ApiKey, body: &impl Encodable) -> Result<R, String> {
        const VERSION: i16 = 0;
        self.correlation_id += 1;
        let mut buf = BytesMut::new();
        let encoded = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(VERSION)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("actorlog-users")))
            .encode(&mut buf, api.request_header_version(VERSION))
            .and_then(|()| body.encode(&mut buf, VERSION));
        encoded.map_err(|e| format!("cannot encode {api:?}: {e}"))?;
        let length = u32::try_from(buf.len()).map_err(|_| "request too large")?;
        let io = |e: std::io::Error| format!("{api:?}: {e}");
        self.stream.write_all(&length.to_be_bytes()).map_err(io)?;
        self.stream.write_all(&buf).map_err(io)?;
        let mut length = [0; 4];
        self.stream.read_exact(&mut length).map_err(io)?;
        let length = u32::from_be_bytes(length) as usize;
        if length > MAX_RESPONSE {
            return Err(format!("{api:?}: response of {length} bytes is too large"));
        }
        let mut frame = vec![0; length];
        self.stream.read_exact(&mut frame).map_err(io)?;
        let mut frame = Bytes::from(frame);
        ResponseHeader::decode(&mut frame, api.response_header_version(VERSION))
            .and_then(|_| R::decode(&mut frame, VERSION))
            .map_err(|e| format!("{api:?}: bad response: {e}"))
    }
}
