//! A minimal Kafka client for one broker to talk to another: one
//! connection (plain or TLS, logged in over SASL when the inter-broker
//! listener asks for it), one request in flight at a time.
//!
//! Replica fetches need nothing of a full client (no metadata, no retries,
//! no pipelining): the fetcher owns the connection, sends a request, waits
//! for its answer and throws the connection away on any error, so every
//! failure here is an `io::Error` naming the peer and what went wrong.

use crate::security::peer::{PeerSecurity, SaslLogin, Stream};
use crate::security::sasl::client::{ClientExchange, ClientStep};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest response accepted: a length prefix above it is a broken or
/// hostile peer, refused before anything is allocated for it.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// A SASL login to a peer (a few round trips and, for SCRAM, a PBKDF2 of
/// the password) must finish within this.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to another broker.
pub struct Client {
    stream: Box<dyn Stream>,
    /// `host:port` of the peer, for error messages.
    peer: String,
    client_id: StrBytes,
    next_correlation_id: i32,
}

impl Client {
    /// Connects to `addr` (`host:port`) with the inter-broker `security`
    /// (TLS, then a SASL login), giving up after `timeout` for the
    /// connection and [`LOGIN_TIMEOUT`] for the login: a peer that does not
    /// answer must not hold the caller longer than that.
    pub async fn connect(
        addr: &str,
        client_id: String,
        timeout: Duration,
        security: &PeerSecurity,
    ) -> io::Result<Client> {
        let stream = security.connect(addr, timeout).await?;
        let mut client = Client {
            stream,
            peer: addr.to_string(),
            client_id: StrBytes::from_string(client_id),
            next_correlation_id: 0,
        };
        if let Some(login) = security.sasl() {
            tokio::time::timeout(LOGIN_TIMEOUT, client.login(login))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("logging in to {addr}: no answer within {LOGIN_TIMEOUT:?}"),
                    )
                })??;
        }
        Ok(client)
    }

    /// SaslHandshake, then SaslAuthenticate until the exchange is over.
    async fn login(&mut self, login: &SaslLogin) -> io::Result<()> {
        let peer = self.peer.clone();
        let refused = |what: String| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "logging in to {peer} as {} with {}: {what}",
                    login.username, login.mechanism
                ),
            )
        };
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
        let answer = self.request(1, &handshake).await?;
        if answer.error_code != 0 {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(format!("the peer offers only {offered:?}")));
        }
        let (mut exchange, mut token) = ClientExchange::start(login).map_err(refused)?;
        loop {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let answer = self.request(1, &request).await?;
            if answer.error_code != 0 {
                let message = answer.error_message.as_deref().unwrap_or("refused");
                return Err(refused(message.to_string()));
            }
            match exchange.step(&answer.auth_bytes).map_err(refused)? {
                ClientStep::Send(next) => token = next,
                ClientStep::Done => return Ok(()),
            }
        }
    }

    /// Sends `req` as version `version` and waits for its response. On an
    /// error the connection is in an unknown state: drop it.
    pub async fn request<R: Request>(&mut self, version: i16, req: &R) -> io::Result<R::Response> {
        let api = R::KEY;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let frame = encode(&header, R::header_version(version), req, version)
            .map_err(|e| self.error(io::ErrorKind::InvalidInput, api, version, e))?;
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| context(e, format!("sending api {api} v{version} to {}", self.peer)))?;
        let mut body = self.read_frame(api, version).await?;
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| self.error(io::ErrorKind::InvalidData, api, version, e))?;
        if header.correlation_id != correlation_id {
            return Err(self.error(
                io::ErrorKind::InvalidData,
                api,
                version,
                format!(
                    "response to correlation id {} (expected {correlation_id})",
                    header.correlation_id
                ),
            ));
        }
        R::Response::decode(&mut body, version)
            .map_err(|e| self.error(io::ErrorKind::InvalidData, api, version, e))
    }

    /// Reads one length-prefixed frame, refusing oversized ones.
    async fn read_frame(&mut self, api: i16, version: i16) -> io::Result<Bytes> {
        let receiving = |e| {
            context(
                e,
                format!("receiving api {api} v{version} from {}", self.peer),
            )
        };
        let length = self.stream.read_i32().await.map_err(receiving)?;
        let length = usize::try_from(length)
            .ok()
            .filter(|&n| n <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| {
                self.error(
                    io::ErrorKind::InvalidData,
                    api,
                    version,
                    format!("response length {length} outside 0..={MAX_RESPONSE_BYTES}"),
                )
            })?;
        let mut frame = BytesMut::zeroed(length);
        self.stream.read_exact(&mut frame).await.map_err(|e| {
            context(
                e,
                format!("receiving api {api} v{version} from {}", self.peer),
            )
        })?;
        Ok(frame.freeze())
    }

    fn error(
        &self,
        kind: io::ErrorKind,
        api: i16,
        version: i16,
        what: impl std::fmt::Display,
    ) -> io::Error {
        io::Error::new(
            kind,
            format!("api {api} v{version} with {}: {what}", self.peer),
        )
    }
}

/// A whole request frame: length prefix, header, body.
fn encode<R: Encodable>(
    header: &RequestHeader,
    header_version: i16,
    req: &R,
    version: i16,
) -> Result<Bytes, String> {
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, header_version)
        .map_err(|e| format!("encoding the header: {e}"))?;
    req.encode(&mut frame, version)
        .map_err(|e| format!("encoding the request: {e}"))?;
    let length = i32::try_from(frame.len() - 4).map_err(|_| "request over 2 GiB".to_string())?;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    Ok(frame.freeze())
}

/// Keeps the message of `e` and says what was being done.
fn context(e: io::Error, doing: String) -> io::Error {
    io::Error::new(e.kind(), format!("{doing}: {e}"))
}
