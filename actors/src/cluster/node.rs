//! [`ClusterNode`]: one broker's controller voter, its metadata image, and
//! its broker session (registration and heartbeats).
//!
//! Everything here runs on the node's own tokio runtime (one worker
//! thread), because openraft spawns tasks and must not share the actix
//! arbiters' threads. The broker reaches it only through the handle:
//! [`ClusterNode::submit`] crosses runtimes through a spawned task's join
//! handle, and the image is a watch channel any thread can read.

use super::config::ClusterConfig;
use super::image::{
    Applied, ClusterImage, Command, CommandResult, Endpoint, UNCLEAN_LEADER_ELECTION_ENABLE,
};
use super::meta;
use super::raft::log_store::LogStore;
use super::raft::network::{
    read_frame, write_frame, CallError, Connection, ControllerTls, ForwardReply, HeartbeatReply,
    Network, Refusals, Request, Response,
};
use super::raft::state_machine::StateMachine;
use super::raft::{ControllerNode, Raft};
use crate::durable::LogDirState;
use crate::security::peer::Stream;
use crate::security::tls;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::ServerState;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;

/// How long [`ClusterNode::submit`] tries to reach a leader and see its
/// command applied before giving up.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often "waiting for the controller quorum" is repeated.
const WAITING_LOG_INTERVAL: Duration = Duration::from_secs(5);

const NO_EPOCH: i64 = -1;

/// How long an observer whose addition was committed waits for the log to
/// reach it before it asks again.
const OBSERVER_JOIN_PATIENCE: Duration = Duration::from_secs(5);

/// Why a submitted command has no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// No controller leader answered within the submit timeout.
    NoController,
    /// The command reached a leader but its outcome was not learnt (the
    /// leader failed or the connection broke); it may or may not be applied.
    OutcomeUnknown(String),
    /// The node is shutting down.
    Shutdown,
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::NoController => write!(f, "no controller quorum leader is reachable"),
            ClusterError::OutcomeUnknown(e) => write!(f, "outcome of the command unknown: {e}"),
            ClusterError::Shutdown => write!(f, "the cluster node is shutting down"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// A broker's session as the active controller sees it.
struct Session {
    last_seen: Instant,
    /// Epoch and applied index of the last heartbeat; None until one came
    /// (a placeholder so a new controller gives every broker a full session).
    heartbeat: Option<(i64, u64)>,
    /// Its last heartbeat said its log directory is offline.
    log_dir_offline: bool,
}

struct Inner {
    node_id: i32,
    /// Every advertised listener; the first is the inter-broker one, where
    /// followers fetch.
    listeners: Vec<Endpoint>,
    incarnation: Uuid,
    config: ClusterConfig,
    voters: BTreeMap<u64, SocketAddr>,
    raft: Raft,
    runtime: tokio::runtime::Handle,
    image: watch::Receiver<Arc<ClusterImage>>,
    epoch: AtomicI64,
    /// One connection per peer for forwards and heartbeats.
    peers: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Connection>>>>,
    sessions: Mutex<HashMap<i32, Session>>,
    /// Peers whose controller port refused raft connections.
    refusals: Refusals,
    /// Mutual TLS on controller connections, if configured.
    tls: Option<ControllerTls>,
    /// This broker's log directory: once a failed fsync takes it offline,
    /// heartbeats say so and the controller fences the broker.
    log_dir: Arc<LogDirState>,
    stop: watch::Sender<bool>,
    owner: Mutex<Option<thread::JoinHandle<()>>>,
}

/// The controller quorum as one node sees it (DescribeQuorum): Kafka's
/// leader epoch is the raft term, its high watermark the applied log end.
pub struct Quorum {
    pub leader: Option<i32>,
    pub epoch: i32,
    pub high_watermark: i64,
    /// Each voter and its log end offset, where known: this node's own, and
    /// on the leader every replica's matched end.
    pub voters: Vec<(i32, Option<i64>)>,
    /// Observers (raft learners), the same way.
    pub observers: Vec<(i32, Option<i64>)>,
    /// Each voter's controller address, from the configured voters.
    pub addresses: BTreeMap<i32, SocketAddr>,
}

/// The handle the broker holds; cheap to clone.
#[derive(Clone)]
pub struct ClusterNode {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClusterNode {
    /// Starts the raft node (own runtime thread), the controller listener,
    /// and the broker's registration + heartbeat loop. Returns once the
    /// local state is loaded and the listener bound; joining the quorum and
    /// registering happen in the background. The first of `listeners` is
    /// where other brokers reach this one; `tls` secures the controller
    /// connections both ways. Heartbeats report `log_dir` offline once it is.
    pub fn start(
        node_id: i32,
        listeners: Vec<Endpoint>,
        data_dir: &Path,
        config: &ClusterConfig,
        tls: Option<ControllerTls>,
        log_dir: Arc<LogDirState>,
    ) -> io::Result<ClusterNode> {
        if listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a broker needs a listener",
            ));
        }
        config
            .validate(node_id)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let voters: BTreeMap<u64, SocketAddr> = config
            .voters()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .into_iter()
            .map(|(id, addr)| (id as u64, addr))
            .collect();
        let dir = data_dir.join("cluster");
        std::fs::create_dir_all(&dir)?;
        meta::check(&dir, &config.cluster_id, node_id)?;
        let log_store = LogStore::open(&dir)?;
        let (state_machine, image) = StateMachine::open(&dir)?;
        let listener = std::net::TcpListener::bind(config.controller_listen)?;
        listener.set_nonblocking(true)?;

        let raft_config = openraft::Config {
            cluster_name: config.cluster_id.clone(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            install_snapshot_timeout: 2000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            ..Default::default()
        }
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("controller-{node_id}"))
            .enable_all()
            .build()?;
        let id = node_id as u64;
        // Raft::new only reads the local state loaded above; waiting for it
        // here keeps `start` synchronous without touching the network.
        let refusals = Refusals::default();
        let raft = thread::scope(|s| {
            s.spawn(|| {
                runtime
                    .block_on(Raft::new(
                        id,
                        Arc::new(raft_config),
                        Network {
                            refusals: refusals.clone(),
                            tls: tls.as_ref().map(|t| t.connector.clone()),
                        },
                        log_store,
                        state_machine,
                    ))
                    .map_err(|e| io::Error::other(format!("starting the raft node: {e}")))
            })
            .join()
        })
        .map_err(|_| io::Error::other("starting the raft node panicked"))??;

        let (stop, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            node_id,
            listeners,
            incarnation: Uuid::new_v4(),
            config: config.clone(),
            voters,
            raft,
            runtime: runtime.handle().clone(),
            image,
            epoch: AtomicI64::new(NO_EPOCH),
            peers: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            refusals,
            tls,
            log_dir,
            stop,
            owner: Mutex::new(None),
        });
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(listener)?
        };
        runtime.spawn(serve(inner.clone(), listener));
        runtime.spawn(initialize(inner.clone()));
        runtime.spawn(broker_loop(inner.clone()));
        runtime.spawn(controller_loop(inner.clone()));

        let raft = inner.raft.clone();
        let mut stop_rx2 = stop_rx.clone();
        let owner = thread::Builder::new()
            .name(format!("controller-{node_id}-owner"))
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stop_rx2.wait_for(|&s| s).await;
                    if let Err(e) = raft.shutdown().await {
                        log::warn!("controller raft shutdown: {e}");
                    }
                });
                // Drops the listener, the connections and the loops.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        drop(stop_rx);
        *lock(&inner.owner) = Some(owner);
        Ok(ClusterNode { inner })
    }

    /// The latest applied image.
    pub fn image(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.inner.image.clone()
    }

    /// This broker's registered epoch, once its registration is committed.
    pub fn broker_epoch(&self) -> Option<i64> {
        match self.inner.epoch.load(Ordering::Acquire) {
            NO_EPOCH => None,
            e => Some(e),
        }
    }

    /// Proposes `cmd` through the quorum leader (forwarding it if this node
    /// is not the leader) and resolves once it is committed and applied to
    /// this node's image.
    pub async fn submit(&self, cmd: Command) -> Result<CommandResult, ClusterError> {
        let inner = self.inner.clone();
        self.inner
            .runtime
            .spawn(async move { inner.submit(cmd).await })
            .await
            .map_err(|_| ClusterError::Shutdown)?
    }

    /// Whether this node is the raft leader, i.e. the active controller.
    pub fn is_active_controller(&self) -> bool {
        self.inner.is_leader()
    }

    /// Stops heartbeats, raft and the runtime thread. Every acknowledged
    /// log write is already fsynced; this waits for the log writer to
    /// finish and the listener to close, so the same directory and port can
    /// be reused at once.
    /// The quorum as this node sees it now.
    pub fn quorum(&self) -> Quorum {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let me = self.inner.node_id as u64;
        let end = |id: u64| -> Option<i64> {
            let index = if id == me {
                metrics.last_log_index
            } else {
                metrics.replication.as_ref()?.get(&id)?.map(|log| log.index)
            };
            Some(index.map_or(0, |i| i as i64 + 1))
        };
        let membership = metrics.membership_config.membership();
        let with_end = |ids: Vec<u64>| ids.into_iter().map(|id| (id as i32, end(id))).collect();
        Quorum {
            leader: metrics.current_leader.map(|id| id as i32),
            epoch: i32::try_from(metrics.current_term).unwrap_or(i32::MAX),
            high_watermark: metrics.last_applied.map_or(0, |log| log.index as i64 + 1),
            voters: with_end(membership.voter_ids().collect()),
            observers: with_end(membership.learner_ids().collect()),
            addresses: self
                .inner
                .voters
                .iter()
                .map(|(&id, &addr)| (id as i32, addr))
                .collect(),
        }
    }

    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let owner = lock(&self.inner.owner).take();
        if let Some(owner) = owner {
            if owner.join().is_err() {
                log::error!("the controller runtime thread panicked");
            }
        }
    }
}

impl Inner {
    fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id as u64)
    }

    fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn peer(&self, id: u64) -> Option<Arc<tokio::sync::Mutex<Connection>>> {
        let addr = *self.voters.get(&id)?;
        let mut peers = lock(&self.peers);
        Some(
            peers
                .entry(id)
                .or_insert_with(|| {
                    let connection =
                        Connection::new(addr, self.tls.as_ref().map(|t| t.connector.clone()));
                    Arc::new(tokio::sync::Mutex::new(connection))
                })
                .clone(),
        )
    }

    async fn call(&self, id: u64, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        let conn = self.peer(id).ok_or_else(|| {
            CallError::Unreachable(io::Error::other(format!("unknown voter {id}")))
        })?;
        let mut conn = conn.lock().await;
        conn.call(req, timeout).await
    }

    /// Waits until something may have changed: a new leader, or a short
    /// pause. Returns false once the deadline passed or the node stops.
    async fn pause(&self, deadline: Instant) -> bool {
        let mut metrics = self.raft.metrics();
        let wait =
            Duration::from_millis(50).min(deadline.saturating_duration_since(Instant::now()));
        let _ = tokio::time::timeout(wait, metrics.changed()).await;
        Instant::now() < deadline && !self.stopping()
    }

    async fn submit(&self, cmd: Command) -> Result<CommandResult, ClusterError> {
        let deadline = Instant::now() + SUBMIT_TIMEOUT;
        loop {
            if self.stopping() {
                return Err(ClusterError::Shutdown);
            }
            let Some(leader) = self.leader() else {
                if !self.pause(deadline).await {
                    return Err(ClusterError::NoController);
                }
                continue;
            };
            let (index, result) = if leader == self.node_id as u64 {
                // A leader that loses its quorum keeps the write waiting:
                // the caller is told its outcome is unknown instead.
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(written) =
                    tokio::time::timeout(left, self.raft.client_write(cmd.clone())).await
                else {
                    return Err(ClusterError::OutcomeUnknown(
                        "not committed in time".to_string(),
                    ));
                };
                match written {
                    Ok(resp) => (resp.log_id.index, resp.data),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                        if !self.pause(deadline).await {
                            return Err(ClusterError::NoController);
                        }
                        continue;
                    }
                    Err(e) => return Err(ClusterError::OutcomeUnknown(e.to_string())),
                }
            } else {
                let timeout = deadline.saturating_duration_since(Instant::now());
                match self
                    .call(leader, &Request::Forward(cmd.clone()), timeout)
                    .await
                {
                    Ok(Response::Forward(ForwardReply::Applied { index, result })) => {
                        (index, result)
                    }
                    Ok(Response::Forward(ForwardReply::NotLeader { .. }))
                    | Err(CallError::Unreachable(_)) => {
                        if !self.pause(deadline).await {
                            return Err(ClusterError::NoController);
                        }
                        continue;
                    }
                    Ok(Response::Forward(ForwardReply::Failed(e))) => {
                        return Err(ClusterError::OutcomeUnknown(e))
                    }
                    Ok(other) => {
                        return Err(ClusterError::OutcomeUnknown(format!(
                            "unexpected answer {other:?}"
                        )))
                    }
                    Err(e @ CallError::Lost(_)) => {
                        return Err(ClusterError::OutcomeUnknown(e.to_string()))
                    }
                }
            };
            // Committed; make it visible here before answering, so the
            // caller reads its own write from `image()`.
            let mut image = self.image.clone();
            let wait = deadline.saturating_duration_since(Instant::now());
            let applied =
                tokio::time::timeout(wait, image.wait_for(|i| i.applied_index >= index)).await;
            return match applied {
                Ok(Ok(_)) => Ok(result),
                _ => Err(ClusterError::OutcomeUnknown(format!(
                    "committed at index {index} but not applied here in time"
                ))),
            };
        }
    }

    async fn handle(&self, req: Request) -> Response {
        match req {
            Request::AppendEntries(r) => Response::AppendEntries(self.raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(self.raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(self.raft.install_snapshot(r).await)
            }
            Request::Forward(cmd) => Response::Forward(match self.raft.client_write(cmd).await {
                Ok(resp) => ForwardReply::Applied {
                    index: resp.log_id.index,
                    result: resp.data,
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    ForwardReply::NotLeader {
                        leader: f.leader_id,
                    }
                }
                Err(e) => ForwardReply::Failed(e.to_string()),
            }),
            Request::Join { id, addr } => Response::Join(self.add_observer(id, addr).await),
            Request::BrokerHeartbeat {
                id,
                epoch,
                applied_index,
                log_dir_offline,
            } => {
                Response::BrokerHeartbeat(self.heartbeat(id, epoch, applied_index, log_dir_offline))
            }
        }
    }

    /// Adds an observer as a raft learner: the leader replicates the
    /// metadata log to it, and it never votes or counts for a quorum.
    async fn add_observer(&self, id: u64, addr: SocketAddr) -> ForwardReply {
        if self.voters.contains_key(&id) {
            return ForwardReply::Failed(format!(
                "node {id} is a voter; voters do not join as observers"
            ));
        }
        match self
            .raft
            .add_learner(id, ControllerNode { addr }, false)
            .await
        {
            Ok(resp) => {
                log::info!("broker {id} joined the controller quorum as an observer at {addr}");
                ForwardReply::Applied {
                    index: resp.log_id.index,
                    result: Ok(Applied::Done),
                }
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                ForwardReply::NotLeader {
                    leader: f.leader_id,
                }
            }
            Err(e) => ForwardReply::Failed(e.to_string()),
        }
    }

    fn is_voter(&self) -> bool {
        self.voters.contains_key(&(self.node_id as u64))
    }

    /// Whether the metadata log this node holds lists it at its address.
    fn joined(&self) -> bool {
        let addr = self.config.controller_listen;
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&(self.node_id as u64))
            .is_some_and(|node| node.addr == addr)
    }

    /// Asks the voters, in turn, to add this observer; a voter that is not
    /// the leader names it. True once the leader committed the addition.
    async fn join(&self) -> bool {
        let request = Request::Join {
            id: self.node_id as u64,
            addr: self.config.controller_listen,
        };
        let mut candidates: Vec<u64> = self.voters.keys().copied().collect();
        let mut asked = 0;
        while let Some(voter) = candidates.pop() {
            asked += 1;
            if asked > 2 * self.voters.len() {
                break;
            }
            match self.call(voter, &request, SUBMIT_TIMEOUT).await {
                Ok(Response::Join(ForwardReply::Applied { .. })) => return true,
                Ok(Response::Join(ForwardReply::NotLeader {
                    leader: Some(leader),
                })) => candidates.push(leader),
                Ok(Response::Join(ForwardReply::Failed(e))) => {
                    log::warn!("the controller quorum refused this observer: {e}")
                }
                Ok(_) | Err(_) => {}
            }
        }
        false
    }

    fn heartbeat(
        &self,
        id: i32,
        epoch: i64,
        applied_index: u64,
        log_dir_offline: bool,
    ) -> HeartbeatReply {
        if !self.is_leader() {
            return HeartbeatReply::NotController {
                leader: self.leader(),
            };
        }
        let image = self.image.borrow().clone();
        let Some(broker) = image.brokers.get(&id) else {
            return HeartbeatReply::NotCaughtUp;
        };
        if epoch < broker.epoch {
            return HeartbeatReply::StaleEpoch;
        }
        if epoch > broker.epoch {
            return HeartbeatReply::NotCaughtUp;
        }
        lock(&self.sessions).insert(
            id,
            Session {
                last_seen: Instant::now(),
                heartbeat: Some((epoch, applied_index)),
                log_dir_offline,
            },
        );
        HeartbeatReply::Ok {
            fenced: broker.fenced,
        }
    }

    fn voters_list(&self) -> String {
        self.config.voters.join(", ")
    }
}

/// Accepts controller connections; each is served in order on its own task.
async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(inner.clone(), stream));
            }
            Err(e) => {
                log::warn!("controller listener accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(inner: Arc<Inner>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut stream: Box<dyn Stream> = match &inner.tls {
        None => Box::new(stream),
        Some(tls) => match tls::handshake(&tls.acceptor, stream).await {
            Ok((stream, _)) => Box::new(stream),
            Err(e) => {
                log::warn!("controller connection refused: {e}");
                return;
            }
        },
    };
    loop {
        let req: Request = match read_frame(&mut stream).await {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                log::debug!("controller connection closed: {e}");
                return;
            }
        };
        let resp = inner.handle(req).await;
        if let Err(e) = write_frame(&mut stream, &resp).await {
            log::debug!("controller connection closed: {e}");
            return;
        }
    }
}

/// Every voter with an empty log proposes the same initial membership, the
/// configured voters; openraft makes that safe and refuses (NotAllowed) on
/// a node that already has a log or a vote, which is fine.
async fn initialize(inner: Arc<Inner>) {
    if !inner.is_voter() {
        return;
    }
    let members: BTreeMap<u64, ControllerNode> = inner
        .voters
        .iter()
        .map(|(&id, &addr)| (id, ControllerNode { addr }))
        .collect();
    match inner.raft.initialize(members).await {
        Ok(()) => log::info!(
            "controller quorum initialised with voters {}",
            inner.voters_list()
        ),
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
        Err(e) => log::error!("initialising the controller quorum failed: {e}"),
    }
}

/// Registers this broker, then heartbeats the active controller.
async fn broker_loop(inner: Arc<Inner>) {
    let interval = Duration::from_millis(inner.config.broker_heartbeat_interval_ms);
    let mut last_waiting_log: Option<Instant> = None;
    // An observer asks to join until its own log shows it did; after a
    // committed addition it waits for the log to arrive before asking again
    // (every addition is a membership entry in the log).
    let mut last_join: Option<Instant> = None;
    while !inner.stopping() {
        if !inner.is_voter()
            && !inner.joined()
            && last_join.is_none_or(|t| t.elapsed() >= OBSERVER_JOIN_PATIENCE)
        {
            if inner.join().await {
                last_join = Some(Instant::now());
            } else if last_waiting_log.is_none_or(|t| t.elapsed() >= WAITING_LOG_INTERVAL) {
                log::warn!(
                    "waiting to join the controller quorum as an observer (voters: {})",
                    inner.voters_list()
                );
                last_waiting_log = Some(Instant::now());
            }
        }
        let Some(leader) = inner.leader() else {
            if last_waiting_log.is_none_or(|t| t.elapsed() >= WAITING_LOG_INTERVAL) {
                log::warn!(
                    "waiting for the controller quorum (voters: {})",
                    inner.voters_list()
                );
                last_waiting_log = Some(Instant::now());
            }
            tokio::time::sleep(interval).await;
            continue;
        };
        match inner.epoch.load(Ordering::Acquire) {
            NO_EPOCH => {
                let first = &inner.listeners[0];
                let cmd = Command::RegisterBroker {
                    id: inner.node_id,
                    incarnation: inner.incarnation,
                    host: first.host.clone(),
                    port: first.port,
                    listeners: inner.listeners.clone(),
                };
                match inner.submit(cmd).await {
                    Ok(Ok(Applied::Registered { epoch })) => {
                        log::info!("broker {} registered with epoch {epoch}", inner.node_id);
                        inner.epoch.store(epoch, Ordering::Release);
                        continue;
                    }
                    Ok(other) => log::error!("broker registration refused: {other:?}"),
                    Err(e) => log::warn!("broker registration failed, retrying: {e}"),
                }
            }
            epoch => {
                let req = Request::BrokerHeartbeat {
                    id: inner.node_id,
                    epoch,
                    applied_index: inner.image.borrow().applied_index,
                    log_dir_offline: inner.log_dir.is_offline(),
                };
                let timeout = Duration::from_millis(inner.config.broker_session_timeout_ms / 2);
                match inner.call(leader, &req, timeout).await {
                    Ok(Response::BrokerHeartbeat(HeartbeatReply::StaleEpoch)) => {
                        log::warn!("broker epoch {epoch} is stale; registering again");
                        inner.epoch.store(NO_EPOCH, Ordering::Release);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => log::debug!("heartbeat to controller {leader} failed: {e}"),
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// On the active controller: fences brokers whose session expired and
/// unfences heartbeating brokers that caught up with their registration.
async fn controller_loop(inner: Arc<Inner>) {
    let interval = Duration::from_millis(inner.config.broker_heartbeat_interval_ms);
    let timeout = Duration::from_millis(inner.config.broker_session_timeout_ms);
    let static_unclean = inner.config.unclean_leader_election_enable;
    let rebalance_every = Duration::from_millis(inner.config.leader_imbalance_check_interval_ms);
    let mut last_rebalance = Instant::now();
    let mut was_leader = false;
    while !inner.stopping() {
        tokio::time::sleep(interval).await;
        let leader = inner.is_leader();
        if leader && !was_leader {
            // A new controller never saw anyone's heartbeats: start every
            // session now rather than fence the whole cluster at once.
            lock(&inner.sessions).clear();
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        let image = inner.image.borrow().clone();
        // A dynamic value (this controller's own, else the cluster
        // default) wins over the static one, as for any broker config.
        let unclean_default = image
            .dynamic_configs
            .lookup(inner.node_id, UNCLEAN_LEADER_ELECTION_ENABLE)
            .map_or(static_unclean, |(value, _)| value == "true");
        let now = Instant::now();
        let mut commands = Vec::new();
        {
            let mut sessions = lock(&inner.sessions);
            for broker in image.brokers.values() {
                let session = sessions.entry(broker.id).or_insert(Session {
                    last_seen: now,
                    heartbeat: None,
                    log_dir_offline: false,
                });
                let silent = now.duration_since(session.last_seen);
                let alive = silent <= timeout;
                // Refused since its last heartbeat, which is overdue: its
                // process is gone, not slow.
                let gone = silent > interval
                    && inner
                        .refusals
                        .last(broker.id as u64)
                        .is_some_and(|at| at > session.last_seen);
                // Kafka fences a broker whose only log directory failed
                // (the broker halts); this one stays up, leading nothing.
                let offline = session.log_dir_offline;
                if !broker.fenced && (!alive || gone || offline) {
                    let why = if !alive {
                        "it missed its session"
                    } else if gone {
                        "its controller port refuses connections"
                    } else {
                        "its log directory is offline"
                    };
                    log::warn!(
                        "broker {} silent for {} ms, {why}: fencing epoch {}",
                        broker.id,
                        silent.as_millis(),
                        broker.epoch
                    );
                    commands.push(Command::FenceBroker {
                        id: broker.id,
                        epoch: broker.epoch,
                        unclean_default,
                    });
                } else if broker.fenced && alive && !gone && !offline {
                    let caught_up = session.heartbeat.is_some_and(|(epoch, applied)| {
                        epoch == broker.epoch && applied >= broker.epoch as u64
                    });
                    if caught_up {
                        log::info!(
                            "broker {} caught up: unfencing epoch {}",
                            broker.id,
                            broker.epoch
                        );
                        commands.push(Command::UnfenceBroker {
                            id: broker.id,
                            epoch: broker.epoch,
                            unclean_default,
                        });
                    }
                }
            }
        }
        for cmd in commands {
            if let Err(e) = inner.submit(cmd).await {
                log::warn!("controller could not change a broker's fencing: {e}");
            }
        }
        if inner.config.auto_leader_rebalance_enable && last_rebalance.elapsed() >= rebalance_every
        {
            last_rebalance = Instant::now();
            rebalance_leaders(&inner, &image).await;
        }
    }
}

/// Hands leadership back to preferred leaders where brokers are too far
/// from leading what they prefer.
async fn rebalance_leaders(inner: &Inner, image: &ClusterImage) {
    let misplaced = image.imbalanced(inner.config.leader_imbalance_per_broker_percentage);
    if misplaced.is_empty() {
        return;
    }
    log::info!(
        "handing {} partitions back to their preferred leaders",
        misplaced.len()
    );
    for (topic, partition) in misplaced {
        let cmd = Command::ElectPreferredLeader { topic, partition };
        if let Err(e) = inner.submit(cmd).await {
            log::warn!("controller could not elect a preferred leader: {e}");
        }
    }
}
