//! Running the broker as a service: start the actor system, listen, and
//! shut down cleanly on SIGTERM or Ctrl-C.

use actorlog_actors::{metrics, server, Broker, BrokerConfig};
use std::io;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Runs a broker until it is told to stop. Blocks the calling thread.
pub fn run(config: BrokerConfig) -> io::Result<()> {
    actix_rt::System::new().block_on(async move {
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
        })?;
        let broker = Broker::start(config)?;
        metrics::start(&broker).await;
        log::info!(
            "listening on {}, data in {}",
            listener.local_addr()?,
            broker.config().data_dir.display()
        );
        let mut terminate = signal(SignalKind::terminate())?;
        let result = tokio::select! {
            served = server::serve(broker.clone(), listener) => served,
            _ = terminate.recv() => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
        shut_down(&broker).await;
        result
    })
}

/// The end of a broker's run, once its listener is closed (no new
/// connections): lets the open connections finish what they read and write
/// their responses (for at most `shutdown_timeout_ms`), fsyncs every
/// partition and stops the broker's threads.
pub async fn shut_down(broker: &Broker) {
    log::info!("shutting down: finishing in-flight requests");
    let timeout = Duration::from_millis(broker.config().shutdown_timeout_ms);
    let left = broker.connections().drain(timeout).await;
    if left > 0 {
        log::warn!("{left} connections still busy after shutdown_timeout_ms; dropping them");
    }
    log::info!("flushing partitions");
    broker.sync_all().await;
    broker.stop();
}
