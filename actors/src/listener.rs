//! The Kafka listeners: each accepts TCP connections and starts a
//! Connection actor for each on the next worker arbiter, after the TLS
//! handshake on a TLS listener. A connection over the limits
//! (`max_connections`, `max_connections_per_ip`) is closed at once; one
//! whose TLS handshake fails is closed with a rate-limited log line.

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::connection::writer::WriteHalf;
use crate::connection::{client_log, Connection, Reader};
use crate::limits::Slot;
use crate::security::listeners::{Listener, SecurityProtocol};
use crate::security::tls::{self, ClientAuth};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Pause after a failed accept (e.g. out of file descriptors), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The TLS acceptor of a listener, if it is a TLS one. Client
/// certificates are asked for on SSL listeners only: on SASL_SSL the client
/// authenticates with SASL, as in Kafka, whose `ssl.client.auth` applies to
/// SASL_SSL only when set for that listener. The error names the file that
/// could not be read or used.
pub fn tls_acceptor(
    config: &BrokerConfig,
    listener: &Listener,
) -> Result<Option<TlsAcceptor>, String> {
    if !listener.protocol.tls() {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&config.ssl_cert_file, &config.ssl_key_file) else {
        return Err("an SSL or SASL_SSL listener needs ssl_cert_file and ssl_key_file".into());
    };
    let client_auth = match listener.protocol {
        SecurityProtocol::Ssl => config.ssl_client_auth,
        _ => ClientAuth::None,
    };
    tls::acceptor(cert, key, config.ssl_ca_file.as_deref(), client_auth).map(Some)
}

/// Binds every listener of the config: the sockets, each with its listener
/// and its TLS acceptor. The error names the address or file at fault.
pub async fn bind(config: &BrokerConfig) -> std::io::Result<Vec<Bound>> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let listeners = config.listeners().map_err(invalid)?;
    let mut bound = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let tls = tls_acceptor(config, &listener).map_err(invalid)?;
        let socket = TcpListener::bind(listener.bind).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", listener.bind))
        })?;
        bound.push(Bound {
            socket,
            listener: Arc::new(listener),
            tls,
        });
    }
    Ok(bound)
}

/// A listener's bound socket, ready for [`serve`].
pub struct Bound {
    pub socket: TcpListener,
    pub listener: Arc<Listener>,
    pub tls: Option<TlsAcceptor>,
}

impl Bound {
    /// Accepts connections on it, as [`serve`].
    pub async fn serve(self, broker: Arc<Broker>) -> ! {
        serve(broker, self.socket, self.listener, self.tls).await
    }
}

/// Accepts connections for as long as it runs: a failed accept or hand-over
/// costs that one connection, never the listener. `tls` is the acceptor of
/// a TLS listener.
pub async fn serve(
    broker: Arc<Broker>,
    socket: TcpListener,
    listener: Arc<Listener>,
    tls: Option<TlsAcceptor>,
) -> ! {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                log::warn!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match broker.connections().admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                broker.metrics().connection_refused();
                client_log::warn(peer, "connection_limit", format_args!("refused: {refusal}"));
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            log::warn!("{peer}: cannot set TCP_NODELAY: {e}");
        }
        // A tokio stream belongs to the runtime that accepted it: hand the
        // raw socket over and register it again on the worker's runtime.
        let socket = match stream.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                log::warn!("{peer}: cannot hand the connection over: {e}");
                continue;
            }
        };
        let worker_broker = broker.clone();
        let listener = listener.clone();
        let tls = tls.clone();
        broker.next_arbiter().spawn(async move {
            match TcpStream::from_std(socket) {
                Ok(stream) => open(worker_broker, stream, peer, slot, listener, tls).await,
                Err(e) => log::warn!("{peer}: cannot register connection: {e}"),
            }
        });
    }
}

/// Starts the connection actor of an accepted stream, over TLS if the
/// listener has an acceptor.
async fn open(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    listener: Arc<Listener>,
    tls: Option<TlsAcceptor>,
) {
    let Some(acceptor) = tls else {
        let (read, write) = stream.into_split();
        let io: (Reader, WriteHalf) = (Box::new(read), WriteHalf::Tcp(write));
        return Connection::start(broker, io, peer, slot, listener, None);
    };
    match tls::handshake(&acceptor, stream).await {
        Ok((stream, principal)) => {
            if let Some(principal) = &principal {
                log::debug!("{peer} presented a certificate of {principal}");
            }
            let (read, write) = tokio::io::split(stream);
            let io: (Reader, WriteHalf) = (Box::new(read), WriteHalf::Stream(Box::new(write)));
            Connection::start(broker, io, peer, slot, listener, principal);
        }
        Err(why) => {
            broker.metrics().rejected();
            client_log::warn(
                peer,
                "tls_handshake",
                format_args!(
                    "closing the connection to listener {}: {why}",
                    listener.name
                ),
            );
        }
    }
}
