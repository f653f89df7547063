//! The HTTP endpoint that serves the broker's metrics in Prometheus' text
//! format (`/metrics`) with a health probe (`/health`).
//!
//! Above the broker: it renders the [`Metrics`] counters, then what it reads
//! from the broker when scraped (partition offsets from the partitions'
//! watch channels, group lag from the offset store), so nothing is
//! collected that nobody asks for.

use crate::broker::Broker;
use crate::metrics::{family, label, Metrics};
use std::sync::{Arc, Weak};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Prometheus text exposition of everything, with partition offsets.
pub async fn render(broker: &Broker) -> String {
    let mut out = String::new();
    let metrics: &Metrics = broker.metrics();
    metrics.render(&mut out, broker.connections().in_flight_bytes());
    let ends = broker.topics().into_iter().flat_map(|topic| {
        (topic.partitions.iter().enumerate())
            .filter_map(|(i, handle)| {
                let end = handle.as_ref()?.offsets.borrow().high_watermark;
                Some((
                    format!("topic=\"{}\",partition=\"{i}\"", topic.name),
                    end.to_string(),
                ))
            })
            .collect::<Vec<_>>()
    });
    family(
        &mut out,
        "actorlog_partition_log_end_offset",
        "gauge",
        "Next offset to be written, by partition.",
        ends,
    );
    family(
        &mut out,
        "actorlog_group_lag",
        "gauge",
        "Records between a group's committed offset and the log end, by group and partition.",
        group_lag(broker).await,
    );
    out
}

/// Log end minus committed offset of every committed partition whose topic
/// still exists. Read from the offset store when scraped.
async fn group_lag(broker: &Broker) -> Vec<(String, String)> {
    let committed = broker.offsets().every_offset().await.unwrap_or_else(|e| {
        log::warn!("metrics: cannot read the committed offsets: {e}");
        Vec::new()
    });
    let mut samples = Vec::new();
    for (group, offset) in committed
        .into_iter()
        .filter(|(_, o)| o.committed.offset >= 0)
    {
        let Some(topic) = broker.topic(&offset.topic) else {
            continue;
        };
        let Some(partition) = topic.partition(offset.partition) else {
            continue;
        };
        let end = partition.offsets.borrow().high_watermark;
        let lag = (end - offset.committed.offset).max(0);
        samples.push((
            format!(
                "group=\"{}\",topic=\"{}\",partition=\"{}\"",
                label(&group),
                offset.topic,
                offset.partition
            ),
            lag.to_string(),
        ));
    }
    samples
}

/// Serves `/metrics` and `/health` until the listener fails. Holds the
/// broker weakly, so it never keeps a stopped broker alive.
pub async fn serve(broker: Weak<Broker>, listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let Some(broker) = broker.upgrade() else {
            return;
        };
        actix_rt::spawn(async move {
            let Some(head) = read_head(&mut stream).await else {
                return;
            };
            let line = String::from_utf8_lossy(&head);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = match path {
                "/metrics" => ("200 OK", render(&broker).await),
                "/health" => ("200 OK", "ok\n".to_string()),
                _ => ("404 Not Found", "try /metrics or /health\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// Reads an HTTP request up to the blank line after its headers, which a
/// client may send in several pieces; `None` if the peer goes away first or
/// sends more than a request head can hold.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    const MAX_HEAD: usize = 8192;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        head.extend_from_slice(&chunk[..n]);
        if head.len() > MAX_HEAD {
            return None;
        }
    }
    Some(head)
}

/// Starts the endpoint if configured; a port already in use is a warning,
/// not a reason to refuse Kafka clients.
pub async fn start(broker: &Arc<Broker>) {
    let Some(addr) = broker.config().metrics_listen else {
        return;
    };
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            log::info!("metrics on http://{addr}/metrics");
            actix_rt::spawn(serve(Arc::downgrade(broker), listener));
        }
        Err(e) => log::warn!("metrics endpoint not started: cannot listen on {addr}: {e}"),
    }
}
