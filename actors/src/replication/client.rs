//! A minimal Kafka client for one broker to talk to another: one TCP
//! connection, one request in flight at a time.
//!
//! Replica fetches need nothing of a full client (no metadata, no retries,
//! no pipelining): the fetcher owns the connection, sends a request, waits
//! for its answer and throws the connection away on any error, so every
//! failure here is an `io::Error` naming the peer and what went wrong.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response accepted: a length prefix above it is a broken or
/// hostile peer, refused before anything is allocated for it.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// A connection to another broker.
pub struct Client {
    stream: TcpStream,
    /// `host:port` of the peer, for error messages.
    peer: String,
    client_id: StrBytes,
    next_correlation_id: i32,
}

impl Client {
    /// Connects to `addr` (`host:port`), giving up after `timeout`: a peer
    /// that does not answer must not hold the caller longer than that.
    pub async fn connect(addr: &str, client_id: String, timeout: Duration) -> io::Result<Client> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(context(e, format!("connecting to {addr}"))),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr}: no answer within {timeout:?}"),
                ))
            }
        };
        // Requests are single small frames waiting for their answer:
        // Nagle's delay would only add latency.
        stream
            .set_nodelay(true)
            .map_err(|e| context(e, format!("setting TCP_NODELAY towards {addr}")))?;
        Ok(Client {
            stream,
            peer: addr.to_string(),
            client_id: StrBytes::from_string(client_id),
            next_correlation_id: 0,
        })
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
