//! The controller transport: length-prefixed bincode frames over TCP, or
//! over mutual TLS when `controller_security_protocol` is SSL (each side
//! proves with a certificate signed by the cluster's CA that it is one of
//! the cluster's brokers: only such a peer may vote, replicate metadata or
//! forward commands).
//!
//! One request is in flight per connection and answers come back in order,
//! so a connection needs no request ids. Raft replication to a peer keeps
//! its own connection (openraft makes one client per replication stream);
//! forwarded commands and broker heartbeats share another per peer, so a
//! slow forward never delays replication. A broken connection is dropped
//! and redialled on the next call, with a short connect timeout so a dead
//! peer costs little.

use super::{ControllerNode, TypeConfig};
use crate::cluster::image::{Command, CommandResult};
use crate::security::peer::Stream;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A dead peer must not hold up elections or forwarding for long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// Largest frame accepted; snapshots travel in chunks well below it.
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// What one controller asks another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command from a non-leader, to be proposed by the leader.
    Forward(Command),
    /// An observer (a broker that is not a voter) asks to be added to the
    /// quorum as a learner at its controller address `addr`.
    Join {
        id: u64,
        addr: SocketAddr,
    },
    /// A broker's liveness report to the active controller.
    BrokerHeartbeat {
        id: i32,
        epoch: i64,
        applied_index: u64,
        /// Its log directory failed (as Kafka's heartbeat lists offline
        /// log dirs): it must lead nothing and be in no ISR.
        log_dir_offline: bool,
    },
}

/// The answer to a [`Request`], same variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Forward(ForwardReply),
    /// As for a forwarded command: the membership change's log index.
    Join(ForwardReply),
    BrokerHeartbeat(HeartbeatReply),
}

/// The leader's answer to a forwarded command.
#[derive(Debug, Serialize, Deserialize)]
pub enum ForwardReply {
    /// Committed at `index` with this result.
    Applied { index: u64, result: CommandResult },
    /// Not (or no longer) the leader; retry at `leader` if known.
    NotLeader { leader: Option<u64> },
    /// The leader failed to propose it (e.g. it is shutting down).
    Failed(String),
}

/// The active controller's answer to a broker heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeartbeatReply {
    /// Session renewed; `fenced` says whether the broker is fenced now.
    Ok { fenced: bool },
    /// A newer registration replaced the broker's epoch: register again.
    StaleEpoch,
    /// This controller has not applied the broker's registration yet.
    NotCaughtUp,
    /// Not the active controller.
    NotController { leader: Option<u64> },
}

/// Why a call failed, which decides whether it may be retried blindly.
#[derive(Debug)]
pub enum CallError {
    /// Never reached the peer: the request was not processed.
    Unreachable(io::Error),
    /// Sent, but no answer came: the request may have been processed.
    Lost(io::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(e) => write!(f, "unreachable: {e}"),
            CallError::Lost(e) => write!(f, "no answer: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Mutual TLS between controllers: the listener's acceptor requires a
/// client certificate; the connector verifies the peer's and shows ours.
#[derive(Clone)]
pub struct ControllerTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

/// Writes one frame: u32 big-endian length, then the bincode of `msg`.
pub async fn write_frame<T: Serialize, S: AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    msg: &T,
) -> io::Result<()> {
    let body = bincode::serialize(msg).map_err(invalid)?;
    if body.len() > MAX_FRAME {
        return Err(invalid(format!(
            "frame of {} bytes is too large",
            body.len()
        )));
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(&buf).await?;
    stream.flush().await
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<T: DeserializeOwned, S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(invalid(format!("frame of {len} bytes is too large")));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    bincode::deserialize(&body).map(Some).map_err(invalid)
}

/// One reusable connection to a peer's controller listener.
pub struct Connection {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
    stream: Option<Box<dyn Stream>>,
}

impl Connection {
    pub fn new(addr: SocketAddr, tls: Option<TlsConnector>) -> Connection {
        Connection {
            addr,
            tls,
            stream: None,
        }
    }

    /// Sends `req` and waits for its answer, at most `timeout` in all.
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        match tokio::time::timeout(timeout, self.call_inner(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                // The answer may still arrive later and would be taken for
                // the next request's: the connection cannot be reused.
                self.stream = None;
                Err(CallError::Lost(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer from {} within {timeout:?}", self.addr),
                )))
            }
        }
    }

    async fn call_inner(&mut self, req: &Request) -> Result<Response, CallError> {
        if self.stream.is_none() {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
                .await
                .map_err(|_| {
                    CallError::Unreachable(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect to {} timed out", self.addr),
                    ))
                })?
                .map_err(CallError::Unreachable)?;
            stream.set_nodelay(true).map_err(CallError::Unreachable)?;
            self.stream = Some(match &self.tls {
                None => Box::new(stream),
                Some(connector) => {
                    let name = ServerName::IpAddress(self.addr.ip().into());
                    let handshake = connector.connect(name, stream);
                    let stream = tokio::time::timeout(CONNECT_TIMEOUT * 5, handshake)
                        .await
                        .map_err(|_| {
                            CallError::Lost(io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("TLS handshake with {} timed out", self.addr),
                            ))
                        })?
                        .map_err(|e| {
                            CallError::Lost(io::Error::new(
                                e.kind(),
                                format!("TLS handshake with {}: {e}", self.addr),
                            ))
                        })?;
                    Box::new(stream)
                }
            });
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| CallError::Unreachable(io::Error::other("not connected")))?;
        write_frame(stream, req).await.map_err(CallError::Lost)?;
        match read_frame(stream).await {
            Ok(Some(resp)) => Ok(resp),
            Ok(None) => Err(CallError::Lost(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection",
            ))),
            Err(e) => Err(CallError::Lost(e)),
        }
    }
}

/// When each peer's controller port last refused a connection: nothing
/// listens there, its process is gone (a stopped or cut-off peer times out
/// instead). The active controller fences such a broker without waiting
/// out its whole session.
#[derive(Clone, Default)]
pub struct Refusals(Arc<Mutex<HashMap<u64, Instant>>>);

impl Refusals {
    fn note(&self, peer: u64) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer, Instant::now());
    }

    /// The last refusal by `peer`, if any.
    pub fn last(&self, peer: u64) -> Option<Instant> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .copied()
    }
}

/// Makes one [`PeerClient`] per replication stream or election.
pub struct Network {
    pub refusals: Refusals,
    pub tls: Option<TlsConnector>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &ControllerNode) -> PeerClient {
        PeerClient {
            target,
            conn: Connection::new(node.addr, self.tls.clone()),
            refusals: self.refusals.clone(),
        }
    }
}

/// Raft RPCs to one peer over one connection.
pub struct PeerClient {
    target: u64,
    conn: Connection,
    refusals: Refusals,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, ControllerNode, RaftError<u64, E>>>;

impl PeerClient {
    async fn rpc<T, E: std::error::Error>(
        &mut self,
        req: Request,
        option: &RPCOption,
        unpack: impl FnOnce(Response) -> Option<Result<T, RaftError<u64, E>>>,
    ) -> RpcResult<T, E> {
        let resp = self
            .conn
            .call(&req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Unreachable(e) => {
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        self.refusals.note(self.target);
                    }
                    RPCError::Unreachable(Unreachable::new(&e))
                }
                CallError::Lost(e) => RPCError::Network(NetworkError::new(&e)),
            })?;
        match unpack(resp) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            None => {
                self.conn.stream = None;
                let e = invalid("answer of the wrong kind");
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        self.rpc(Request::AppendEntries(rpc), &option, |r| match r {
            Response::AppendEntries(r) => Some(r),
            _ => None,
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.rpc(Request::InstallSnapshot(rpc), &option, |r| match r {
            Response::InstallSnapshot(r) => Some(r),
            _ => None,
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        self.rpc(Request::Vote(rpc), &option, |r| match r {
            Response::Vote(r) => Some(r),
            _ => None,
        })
        .await
    }

    /// Retry an unreachable peer soon: a restarted voter should rejoin
    /// within a few heartbeats, and the dial itself is cheap.
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
