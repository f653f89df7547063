//! The Kafka listener: accepts TCP connections and starts a Connection actor
//! for each on the next worker arbiter. A connection over the limits
//! (`max_connections`, `max_connections_per_ip`) is closed at once.

use crate::broker::Broker;
use crate::connection::client_log;
use crate::connection::Connection;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Pause after a failed accept (e.g. out of file descriptors), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections until the listener fails for good.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
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
        let socket = stream.into_std()?;
        let worker_broker = broker.clone();
        broker.next_arbiter().spawn(async move {
            match TcpStream::from_std(socket) {
                Ok(stream) => Connection::start(worker_broker, stream, peer, slot),
                Err(e) => log::warn!("{peer}: cannot register connection: {e}"),
            }
        });
    }
}
