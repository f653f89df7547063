//! Running the broker as a service: start the actor system, listen, and
//! shut down cleanly on SIGTERM or Ctrl-C.

use actorlog_actors::{listener, metrics_endpoint, Broker, BrokerConfig};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::io;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Runs a broker until it is told to stop. Blocks the calling thread.
pub fn run(config: BrokerConfig) -> io::Result<()> {
    raise_open_file_limit();
    actix_rt::System::new().block_on(async move {
        let bound = listener::bind(&config).await?;
        let broker = Broker::start(config)?;
        metrics_endpoint::start(&broker).await;
        let serving = broker.clone();
        // In a cluster, clients are served once the controller counts this
        // broker in; a stop signal may come before that.
        let serve = async move {
            serving.ready().await;
            let names: Vec<String> = bound
                .iter()
                .map(|b| format!("{}://{}", b.listener.name, b.listener.bind))
                .collect();
            log::info!(
                "listening on {}, data in {}",
                names.join(","),
                serving.config().data_dir.display()
            );
            let listeners = bound.into_iter().map(|b| b.serve(serving.clone()));
            futures_util::future::select_all(listeners.map(Box::pin))
                .await
                .0
        };
        let mut terminate = signal(SignalKind::terminate())?;
        let result = tokio::select! {
            never = serve => never,
            _ = terminate.recv() => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
        shut_down(&broker).await;
        result
    })
}

/// Every partition keeps its active segment open and every client holds a
/// socket, so the common soft limit of 1024 descriptors would cap a broker
/// near a thousand partitions. Like Go's runtime and most servers, the
/// service raises its soft limit to the hard limit the system allows.
fn raise_open_file_limit() {
    // `None` is RLIM_INFINITY.
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if soft >= hard {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => log::debug!("open file limit raised from {soft} to {hard}"),
        Err(e) => log::warn!("open file limit stays at {soft}: {}", io::Error::from(e)),
    }
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
