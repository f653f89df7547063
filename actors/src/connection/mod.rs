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
//!
//! The connection is a plain TCP or a TLS stream, as its listener says. On a
//! SASL listener it serves only the authentication requests until the
//! client has authenticated (`authentication`), with frames limited to
//! [`SASL_MAX_RECEIVE_BYTES`] meanwhile.

mod authentication;
pub mod client_log;
pub mod frame;
mod old_versions;
pub mod writer;

use crate::api;
use crate::broker::Broker;
use crate::security::listeners::Listener;
use crate::security::sasl::SaslSession;
use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, StreamHandler};
use bytes::BytesMut;
use futures_util::{FutureExt, Stream, StreamExt};
use kafka_protocol::messages::ApiKey;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncRead;
use tokio::sync::watch;
use tokio_util::codec::FramedRead;

use self::frame::{Frames, Rejection};
use self::writer::{Outgoing, ResponseWriter, WriteHalf};
use crate::limits::{Admitted, Budget, Slot};
use crate::security::Principal;

/// Largest frame a client on a SASL listener may send before it has
/// authenticated (Kafka's `sasl.server.max.receive.size`): a SASL token is
/// small, and an unauthenticated client gets no more of the broker's memory.
pub const SASL_MAX_RECEIVE_BYTES: usize = 512 * 1024;

/// The read half of a connection's stream, TCP or TLS.
pub type Reader = Box<dyn AsyncRead + Unpin + Send>;

pub struct Connection {
    /// What the API handlers serve from.
    broker: Arc<Broker>,
    /// The client's address, for logs and the handlers (the client host
    /// that group descriptions show).
    peer: SocketAddr,
    /// Who the client is: anonymous until it authenticates, with SASL or
    /// its TLS certificate.
    principal: Arc<Principal>,
    /// The listener the client connected to.
    listener: Arc<Listener>,
    /// On a SASL listener: where the client is in authenticating.
    sasl: Option<SaslSession>,
    /// The largest frame the reader accepts now.
    max_frame: Arc<AtomicUsize>,
    /// Writes the length-prefixed responses; `None` once closing.
    writer: Option<ResponseWriter>,
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
    response: Option<Outgoing>,
    /// Given back to the budgets once the response is written.
    admitted: Admitted,
}

impl Connection {
    /// Starts the actor for an accepted stream on the current arbiter;
    /// `principal` is the client's if its TLS certificate named it.
    pub fn start(
        broker: Arc<Broker>,
        (read, write): (Reader, WriteHalf),
        peer: SocketAddr,
        slot: Slot,
        listener: Arc<Listener>,
        principal: Option<Principal>,
    ) {
        let config = broker.config();
        let sasl = listener.protocol.sasl().then(|| {
            SaslSession::new(
                config.sasl_enabled_mechanisms.clone(),
                config.connections_max_reauth_ms,
            )
        });
        let max_frame = Arc::new(AtomicUsize::new(match sasl {
            Some(_) => SASL_MAX_RECEIVE_BYTES.min(config.max_request_bytes as usize),
            None => config.max_request_bytes as usize,
        }));
        let idle = Duration::from_millis(config.connections_max_idle_ms);
        let shutdown = broker.connections().shutdown_signal();
        Connection::create(move |ctx| {
            let addr = ctx.address();
            let writer = ResponseWriter::start(write, move |outcome| {
                addr.do_send(WriterEnded(outcome));
            });
            ctx.add_stream(admitted_frames(
                FramedRead::new(read, Frames::new(max_frame.clone())),
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
                principal: Arc::new(principal.unwrap_or_else(Principal::anonymous)),
                listener,
                sasl,
                max_frame,
                writer: Some(writer),
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
            if let (Some(response), Some(writer)) = (finished.response, &self.writer) {
                writer.write(response, finished.admitted);
            }
            self.next_response += 1;
            self.last_active = Instant::now();
        }
        if !self.reading && self.idle() {
            self.writer = None;
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
    frames: FramedRead<Reader, Frames>,
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

/// The writer task ended: every response written after the connection
/// closed its writer, or the socket failed under a response (the client
/// went away). Either way the connection ends, in the second case saying
/// why.
#[derive(Message)]
#[rtype(result = "()")]
struct WriterEnded(io::Result<()>);

impl Handler<WriterEnded> for Connection {
    type Result = ();

    fn handle(&mut self, WriterEnded(outcome): WriterEnded, ctx: &mut Context<Self>) {
        if let Err(error) = outcome {
            client_log::warn(
                self.peer,
                "write_failed",
                format_args!("closing the connection: writing a response: {error}"),
            );
        }
        ctx.stop();
    }
}

impl StreamHandler<(io::Result<BytesMut>, Admitted)> for Connection {
    fn handle(
        &mut self,
        (frame, admitted): (io::Result<BytesMut>, Admitted),
        ctx: &mut Context<Self>,
    ) {
        let started = Instant::now();
        self.last_active = started;
        if !self.reading {
            // Closing after a failed authentication: nothing more is served.
            return;
        }
        let frame = match frame {
            Ok(frame) => frame.freeze(),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                log::debug!("{} reset the connection", self.peer);
                return ctx.stop();
            }
            // A TLS client that closes without close_notify, as most do.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                log::debug!("{} closed the connection: {e}", self.peer);
                return ctx.stop();
            }
            Err(e) if self.sasl.as_ref().is_some_and(|s| !s.is_authenticated()) => {
                let why = format!(
                    "{e} (at most {SASL_MAX_RECEIVE_BYTES} bytes before SASL authentication)"
                );
                return self.close("unreadable_frame", &why, ctx);
            }
            Err(e) => return self.close("unreadable_frame", &e.to_string(), ctx),
        };
        let seq = self.next_request;
        self.next_request += 1;
        if self
            .sasl
            .as_ref()
            .is_some_and(SaslSession::expects_raw_token)
        {
            return self.raw_token(seq, &frame, admitted, ctx);
        }
        let (api_key, version, correlation_id, reply) = match frame::decode(frame) {
            Ok(request) => {
                self.broker.metrics().request(request.api_key);
                if api::AUTHENTICATION
                    .iter()
                    .any(|(key, ..)| *key == request.api_key)
                {
                    return self.authentication_request(seq, request, admitted, ctx);
                }
                if let Some(sasl) = &self.sasl {
                    if let Err(why) = sasl.admits(request.api_key, started) {
                        let why = format!("{why}: {:?}", request.api_key);
                        return self.close("unauthenticated", &why, ctx);
                    }
                }
                (
                    request.api_key,
                    request.version,
                    request.correlation_id,
                    api::dispatch(
                        &self.broker,
                        self.peer,
                        &self.principal,
                        &self.listener,
                        request,
                    ),
                )
            }
            Err(Rejection::ApiVersionsTooNew { correlation_id }) => {
                let body = api::Response::Message(Box::new(api::api_versions_too_new()));
                let reply = async move { Some(body) }.boxed_local();
                (ApiKey::ApiVersions, 0, correlation_id, reply)
            }
            Err(Rejection::Close(why)) => return self.close("bad_request", &why, ctx),
        };
        // The handler runs as its own task, not on this actor's context:
        // appends already sent must finish even if the client disconnects.
        let addr = ctx.address();
        actix_rt::spawn(async move {
            let response = reply.await.map(|body| match body {
                api::Response::Message(body) => {
                    frame::encode(api_key, version, correlation_id, &body).map(Outgoing::Frame)
                }
                api::Response::Parts(body) => body
                    .and_then(|body| frame::encode_parts(api_key, version, correlation_id, body)),
            });
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
            self.writer = None;
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
    response: Option<Result<Outgoing, String>>,
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
            Some(Ok(response)) => Some(response),
            None => None,
        };
        let finished = Finished {
            response,
            admitted: done.admitted,
        };
        self.complete(done.seq, finished);
    }
}
