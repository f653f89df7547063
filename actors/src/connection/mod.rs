//! The Connection actor: one per TCP connection.
//!
//! It reads length-prefixed frames, decodes each request and starts its
//! handler as a task, so pipelined requests (librdkafka sends several at
//! once) proceed concurrently. Each request gets a sequence number
//! and finished responses wait in `done` until all earlier ones are written:
//! Kafka clients require responses in request order. A frame that cannot be
//! served closes this connection only, with a rate-limited log line.
//!
//! Each frame read takes its size from the connection's and the broker's
//! in-flight budgets until its response is written; the next frame is not
//! read before the budgets admit this one, so a client sending faster than
//! the broker serves is slowed down at its socket. A connection with nothing
//! in flight closes after `connections_max_idle_ms` without a request, and
//! at shutdown it stops reading, writes its last responses and closes.

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod client_quotas;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_topic_partitions;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
pub mod frame;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_config_resources;
mod list_groups;
mod list_offsets;
mod message_set;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod old_versions;
pub mod produce;
mod replica_placement;
mod scram_credentials;
mod sync_group;
mod txn_offset_commit;
mod write_txn_markers;

use crate::broker::Broker;
use crate::client_log;
use crate::limits::{Admitted, Budget, Slot};
use actix::io::{FramedWrite, WriteHandler};
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, StreamHandler};
use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use futures_util::{FutureExt, Stream, StreamExt};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use self::frame::{Rejection, Request};

/// `isolation_level` of a transactional consumer (Fetch, ListOffsets).
const READ_COMMITTED: i8 = 1;

/// Kafka's config resource types (DescribeConfigs, AlterConfigs,
/// IncrementalAlterConfigs, ListConfigResources).
mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
    pub const BROKER_LOGGER: i8 = 8;
    pub const CLIENT_METRICS: i8 = 16;
    pub const GROUP: i8 = 32;
}

pub struct Connection {
    broker: Arc<Broker>,
    peer: SocketAddr,
    writer: FramedWrite<Bytes, OwnedWriteHalf, LengthDelimitedCodec>,
    /// Sequence number of the next request read.
    next_request: u64,
    /// Sequence number of the next response to write.
    next_response: u64,
    /// Finished requests waiting for earlier ones.
    done: BTreeMap<u64, Finished>,
    /// False once the client closed its side or the broker shuts down: the
    /// connection closes when its last response is written.
    reading: bool,
    /// When a request last arrived or a response was last written.
    last_active: Instant,
    /// This connection's place under the connection limits.
    _slot: Slot,
}

/// A request whose handler finished.
struct Finished {
    /// `None`: nothing to send (acks=0).
    response: Option<Bytes>,
    /// Given back to the budgets once the response is written.
    _admitted: Admitted,
}

impl Connection {
    /// Starts the actor for an accepted stream on the current arbiter.
    pub fn start(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr, slot: Slot) {
        let max_frame = broker.config().max_request_bytes as usize;
        let idle = Duration::from_millis(broker.config().connections_max_idle_ms);
        let shutdown = broker.connections().shutdown_signal();
        let (read, write) = stream.into_split();
        Connection::create(move |ctx| {
            ctx.add_stream(admitted_frames(
                FramedRead::new(read, frame::codec(max_frame)),
                slot.budget(),
                shutdown,
            ));
            let check_every = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
            ctx.run_interval(check_every, move |connection, ctx| {
                connection.close_if_idle(idle, ctx)
            });
            Connection {
                broker,
                peer,
                writer: FramedWrite::new(write, LengthDelimitedCodec::new(), ctx),
                next_request: 0,
                next_response: 0,
                done: BTreeMap::new(),
                reading: true,
                last_active: Instant::now(),
                _slot: slot,
            }
        });
    }

    fn complete(&mut self, seq: u64, finished: Finished) {
        self.done.insert(seq, finished);
        while let Some(finished) = self.done.remove(&self.next_response) {
            if let Some(bytes) = finished.response {
                self.writer.write(bytes);
            }
            self.next_response += 1;
            self.last_active = Instant::now();
        }
        if !self.reading && self.idle() {
            self.writer.close();
        }
    }

    /// Nothing in flight.
    fn idle(&self) -> bool {
        self.next_response == self.next_request
    }

    fn close_if_idle(&mut self, max_idle: Duration, ctx: &mut Context<Self>) {
        if self.idle() && self.last_active.elapsed() >= max_idle {
            log::debug!("closing idle connection from {}", self.peer);
            self.broker.metrics().idle_closed();
            ctx.stop();
        }
    }

    /// Closes after a client error; `kind` groups the log lines that are
    /// rate-limited together.
    fn close(&mut self, kind: &'static str, why: &str, ctx: &mut Context<Self>) {
        self.broker.metrics().rejected();
        client_log::warn(
            self.peer,
            kind,
            format_args!("closing the connection: {why}"),
        );
        ctx.stop();
    }
}

/// The client's frames, each with its share of the in-flight budgets. The
/// next frame is read only once this one is admitted: waiting here is what
/// stops reading the socket. Ends when the client closes its side or the
/// broker shuts down.
fn admitted_frames(
    frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    budget: Budget,
    shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = (io::Result<BytesMut>, Admitted)> {
    futures_util::stream::unfold(
        (frames, budget, shutdown),
        |(mut frames, budget, mut shutdown)| async move {
            // Biased: once the broker shuts down, no further frame is read
            // even if the client has sent one.
            let frame = tokio::select! {
                biased;
                Ok(_) = shutdown.wait_for(|stop| *stop) => return None,
                frame = frames.next() => frame?,
            };
            let admitted = budget.admit(frame.as_ref().map_or(0, BytesMut::len)).await;
            Some(((frame, admitted), (frames, budget, shutdown)))
        },
    )
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.broker.metrics().connection_opened();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.broker.metrics().connection_closed();
    }
}

impl WriteHandler<io::Error> for Connection {}

impl StreamHandler<(io::Result<BytesMut>, Admitted)> for Connection {
    fn handle(
        &mut self,
        (frame, admitted): (io::Result<BytesMut>, Admitted),
        ctx: &mut Context<Self>,
    ) {
        let started = Instant::now();
        self.last_active = started;
        let frame = match frame {
            Ok(frame) => frame.freeze(),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                log::debug!("{} reset the connection", self.peer);
                return ctx.stop();
            }
            Err(e) => return self.close("unreadable_frame", &e.to_string(), ctx),
        };
        let seq = self.next_request;
        self.next_request += 1;
        let (api_key, version, correlation_id, reply) = match frame::decode(frame) {
            Ok(request) => {
                self.broker.metrics().request(request.api_key);
                (
                    request.api_key,
                    request.version,
                    request.correlation_id,
                    dispatch(&self.broker, self.peer, request),
                )
            }
            Err(Rejection::ApiVersionsTooNew { correlation_id }) => {
                let body = ResponseKind::ApiVersions(api_versions::handle(Some(
                    ResponseError::UnsupportedVersion,
                )));
                let reply = async move { Some(body) }.boxed_local();
                (ApiKey::ApiVersions, 0, correlation_id, reply)
            }
            Err(Rejection::Close(why)) => return self.close("bad_request", &why, ctx),
        };
        // The handler runs as its own task, not on this actor's context:
        // appends already sent must finish even if the client disconnects.
        let addr = ctx.address();
        actix_rt::spawn(async move {
            let response = reply
                .await
                .map(|body| frame::encode(api_key, version, correlation_id, &body));
            addr.do_send(Completed {
                seq,
                api_key,
                started,
                response,
                admitted,
            });
        });
    }

    /// The client closed its side, or the broker shuts down.
    fn finished(&mut self, _: &mut Context<Self>) {
        self.reading = false;
        if self.idle() {
            self.writer.close();
        }
    }
}

/// A request's handler finished.
#[derive(Message)]
#[rtype(result = "()")]
struct Completed {
    seq: u64,
    api_key: ApiKey,
    /// When its frame was read.
    started: Instant,
    /// `None`: nothing to send (acks=0).
    response: Option<Result<Bytes, String>>,
    admitted: Admitted,
}

impl Handler<Completed> for Connection {
    type Result = ();

    fn handle(&mut self, done: Completed, ctx: &mut Context<Self>) {
        self.broker
            .metrics()
            .served(done.api_key, done.started.elapsed());
        let response = match done.response {
            Some(Err(why)) => {
                let why = format!("cannot encode {:?} response: {why}", done.api_key);
                return self.close("unencodable_response", &why, ctx);
            }
            Some(Ok(bytes)) => Some(bytes),
            None => None,
        };
        let finished = Finished {
            response,
            _admitted: done.admitted,
        };
        self.complete(done.seq, finished);
    }
}

/// Starts the handler of one request. `None` from the future: send nothing
/// (Produce with acks=0).
fn dispatch(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    request: Request,
) -> LocalBoxFuture<'static, Option<ResponseKind>> {
    let broker = broker.clone();
    let version = request.version;
    let ready = |body: ResponseKind| async move { Some(body) }.boxed_local();
    match request.body {
        RequestKind::Produce(req) => produce::handle(&broker, req)
            .map(|r| r.map(ResponseKind::Produce))
            .boxed_local(),
        RequestKind::Fetch(req) => async move {
            Some(ResponseKind::Fetch(
                fetch::handle(&broker, version, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::ListOffsets(req) => async move {
            Some(ResponseKind::ListOffsets(
                list_offsets::handle(&broker, version, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::Metadata(req) => async move {
            Some(ResponseKind::Metadata(
                metadata::handle(&broker, version, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::ApiVersions(_) => ready(ResponseKind::ApiVersions(api_versions::handle(None))),
        RequestKind::CreateTopics(req) => async move {
            Some(ResponseKind::CreateTopics(
                create_topics::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DeleteTopics(req) => async move {
            Some(ResponseKind::DeleteTopics(
                delete_topics::handle(&broker, version, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::CreatePartitions(req) => async move {
            Some(ResponseKind::CreatePartitions(
                create_partitions::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DescribeConfigs(req) => ready(ResponseKind::DescribeConfigs(
            describe_configs::handle(&broker, req),
        )),
        RequestKind::DescribeAcls(req) => {
            ready(ResponseKind::DescribeAcls(acls::describe(&broker, req)))
        }
        RequestKind::CreateAcls(req) => {
            async move { Some(ResponseKind::CreateAcls(acls::create(&broker, req).await)) }
                .boxed_local()
        }
        RequestKind::DeleteAcls(req) => {
            async move { Some(ResponseKind::DeleteAcls(acls::delete(&broker, req).await)) }
                .boxed_local()
        }
        RequestKind::DescribeCluster(_) => ready(ResponseKind::DescribeCluster(
            describe_cluster::handle(&broker),
        )),
        RequestKind::FindCoordinator(req) => ready(ResponseKind::FindCoordinator(
            find_coordinator::handle(&broker, version, req),
        )),
        RequestKind::JoinGroup(req) => {
            let client_id = request.client_id;
            async move {
                let response = join_group::handle(&broker, version, client_id, peer, req).await;
                Some(ResponseKind::JoinGroup(response))
            }
            .boxed_local()
        }
        RequestKind::ConsumerGroupHeartbeat(req) => {
            let client_id = request.client_id;
            async move {
                let response =
                    consumer_group_heartbeat::handle(&broker, client_id, peer, req).await;
                Some(ResponseKind::ConsumerGroupHeartbeat(response))
            }
            .boxed_local()
        }
        RequestKind::ConsumerGroupDescribe(req) => async move {
            Some(ResponseKind::ConsumerGroupDescribe(
                consumer_group_describe::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::SyncGroup(req) => async move {
            Some(ResponseKind::SyncGroup(
                sync_group::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::Heartbeat(req) => async move {
            Some(ResponseKind::Heartbeat(
                heartbeat::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::LeaveGroup(req) => async move {
            Some(ResponseKind::LeaveGroup(
                leave_group::handle(&broker, version, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::OffsetCommit(req) => async move {
            Some(ResponseKind::OffsetCommit(
                offset_commit::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::OffsetFetch(req) => ready(ResponseKind::OffsetFetch(offset_fetch::handle(
            &broker, version, req,
        ))),
        RequestKind::ListGroups(req) => async move {
            Some(ResponseKind::ListGroups(
                list_groups::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DescribeGroups(req) => async move {
            Some(ResponseKind::DescribeGroups(
                describe_groups::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DeleteGroups(req) => async move {
            Some(ResponseKind::DeleteGroups(
                delete_groups::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::AlterConfigs(req) => async move {
            Some(ResponseKind::AlterConfigs(
                alter_configs::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::IncrementalAlterConfigs(req) => async move {
            let response = alter_configs::handle_incremental(&broker, req).await;
            Some(ResponseKind::IncrementalAlterConfigs(response))
        }
        .boxed_local(),
        RequestKind::AddPartitionsToTxn(req) => async move {
            let response = add_partitions_to_txn::handle(&broker, version, req).await;
            Some(ResponseKind::AddPartitionsToTxn(response))
        }
        .boxed_local(),
        RequestKind::AddOffsetsToTxn(req) => async move {
            Some(ResponseKind::AddOffsetsToTxn(
                add_offsets_to_txn::handle(&broker, version, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::TxnOffsetCommit(req) => async move {
            Some(ResponseKind::TxnOffsetCommit(
                txn_offset_commit::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::EndTxn(req) => async move {
            Some(ResponseKind::EndTxn(
                end_txn::handle(&broker, version, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DescribeTransactions(req) => async move {
            let response = describe_transactions::describe(&broker, req).await;
            Some(ResponseKind::DescribeTransactions(response))
        }
        .boxed_local(),
        RequestKind::ListTransactions(req) => async move {
            Some(ResponseKind::ListTransactions(
                describe_transactions::list(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DeleteRecords(req) => async move {
            Some(ResponseKind::DeleteRecords(
                delete_records::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::InitProducerId(req) => async move {
            Some(ResponseKind::InitProducerId(
                init_producer_id::handle(&broker, version, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::OffsetDelete(req) => async move {
            Some(ResponseKind::OffsetDelete(
                offset_delete::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DescribeLogDirs(req) => async move {
            Some(ResponseKind::DescribeLogDirs(
                describe_log_dirs::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DescribeProducers(req) => async move {
            Some(ResponseKind::DescribeProducers(
                describe_producers::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::DescribeTopicPartitions(req) => ready(ResponseKind::DescribeTopicPartitions(
            describe_topic_partitions::handle(&broker, req),
        )),
        RequestKind::OffsetForLeaderEpoch(req) => ready(ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(&broker, req),
        )),
        RequestKind::ElectLeaders(req) => ready(ResponseKind::ElectLeaders(
            replica_placement::elect_leaders(&broker, req),
        )),
        RequestKind::ListPartitionReassignments(_) => {
            ready(ResponseKind::ListPartitionReassignments(
                replica_placement::list_partition_reassignments(),
            ))
        }
        RequestKind::AlterPartitionReassignments(req) => {
            ready(ResponseKind::AlterPartitionReassignments(
                replica_placement::alter_partition_reassignments(&broker, req),
            ))
        }
        RequestKind::AlterReplicaLogDirs(req) => ready(ResponseKind::AlterReplicaLogDirs(
            replica_placement::alter_replica_log_dirs(&broker, req),
        )),
        RequestKind::DescribeUserScramCredentials(req) => ready(
            ResponseKind::DescribeUserScramCredentials(scram_credentials::describe(req)),
        ),
        RequestKind::WriteTxnMarkers(req) => async move {
            Some(ResponseKind::WriteTxnMarkers(
                write_txn_markers::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::ListConfigResources(req) => ready(ResponseKind::ListConfigResources(
            list_config_resources::handle(&broker, version, req),
        )),
        RequestKind::DescribeClientQuotas(req) => ready(ResponseKind::DescribeClientQuotas(
            client_quotas::describe(req),
        )),
        // frame::decode only lets through the APIs listed in api_versions.
        other => unreachable_api(other),
    }
}

fn unreachable_api(request: RequestKind) -> LocalBoxFuture<'static, Option<ResponseKind>> {
    log::error!("no handler for {request:?}");
    async { None }.boxed_local()
}
