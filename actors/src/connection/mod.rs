//! The Connection actor: one per TCP connection.
//!
//! It reads length-prefixed frames, decodes each request and starts its
//! handler as a task, so pipelined requests (librdkafka sends several at
//! once) proceed concurrently. Each request gets a sequence number
//! and finished responses wait in `done` until all earlier ones are written:
//! Kafka clients require responses in request order. A frame that cannot be
//! served closes this connection only, with a log line.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
pub mod frame;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
pub mod produce;
mod sync_group;
mod txn_offset_commit;

use crate::broker::Broker;
use actix::io::{FramedWrite, WriteHandler};
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, StreamHandler};
use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use self::frame::{Rejection, Request};

/// `isolation_level` of a transactional consumer (Fetch, ListOffsets).
const READ_COMMITTED: i8 = 1;

pub struct Connection {
    broker: Arc<Broker>,
    peer: SocketAddr,
    writer: FramedWrite<Bytes, OwnedWriteHalf, LengthDelimitedCodec>,
    /// Sequence number of the next request read.
    next_request: u64,
    /// Sequence number of the next response to write.
    next_response: u64,
    /// Finished responses waiting for earlier ones; `None`: nothing to send.
    done: BTreeMap<u64, Option<Bytes>>,
}

impl Connection {
    /// Starts the actor for an accepted stream on the current arbiter.
    pub fn start(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
        let max_frame = broker.config().max_request_bytes as usize;
        let (read, write) = stream.into_split();
        Connection::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read, frame::codec(max_frame)));
            Connection {
                broker,
                peer,
                writer: FramedWrite::new(write, LengthDelimitedCodec::new(), ctx),
                next_request: 0,
                next_response: 0,
                done: BTreeMap::new(),
            }
        });
    }

    fn complete(&mut self, seq: u64, response: Option<Bytes>) {
        self.done.insert(seq, response);
        while let Some(response) = self.done.remove(&self.next_response) {
            if let Some(bytes) = response {
                self.writer.write(bytes);
            }
            self.next_response += 1;
        }
    }

    fn close(&mut self, why: &str, ctx: &mut Context<Self>) {
        self.broker.metrics().rejected();
        log::warn!("closing connection from {}: {why}", self.peer);
        ctx.stop();
    }
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

impl StreamHandler<Result<BytesMut, io::Error>> for Connection {
    fn handle(&mut self, frame: Result<BytesMut, io::Error>, ctx: &mut Context<Self>) {
        let frame = match frame {
            Ok(frame) => frame.freeze(),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                log::debug!("{} reset the connection", self.peer);
                return ctx.stop();
            }
            Err(e) => return self.close(&format!("unreadable frame: {e}"), ctx),
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
            Err(Rejection::Close(why)) => return self.close(&why, ctx),
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
                response,
            });
        });
    }
}

/// A request's handler finished.
#[derive(Message)]
#[rtype(result = "()")]
struct Completed {
    seq: u64,
    api_key: ApiKey,
    /// `None`: nothing to send (acks=0).
    response: Option<Result<Bytes, String>>,
}

impl Handler<Completed> for Connection {
    type Result = ();

    fn handle(&mut self, done: Completed, ctx: &mut Context<Self>) {
        match done.response {
            Some(Err(why)) => {
                let why = format!("cannot encode {:?} response: {why}", done.api_key);
                self.close(&why, ctx)
            }
            Some(Ok(bytes)) => self.complete(done.seq, Some(bytes)),
            None => self.complete(done.seq, None),
        }
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
                add_offsets_to_txn::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::TxnOffsetCommit(req) => async move {
            Some(ResponseKind::TxnOffsetCommit(
                txn_offset_commit::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::EndTxn(req) => {
            async move { Some(ResponseKind::EndTxn(end_txn::handle(&broker, req).await)) }
                .boxed_local()
        }
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
                init_producer_id::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        RequestKind::OffsetDelete(req) => async move {
            Some(ResponseKind::OffsetDelete(
                offset_delete::handle(&broker, req).await,
            ))
        }
        .boxed_local(),
        // frame::decode only lets through the APIs listed in api_versions.
        other => unreachable_api(other),
    }
}

fn unreachable_api(request: RequestKind) -> LocalBoxFuture<'static, Option<ResponseKind>> {
    log::error!("no handler for {request:?}");
    async { None }.boxed_local()
}
