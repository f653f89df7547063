//! The broker's counters, and the Prometheus text format they are shown in.
//!
//! Counters are atomics updated on the request path (one relaxed add each).
//! This module knows nothing of the broker: the connections, partitions and
//! flusher count here, and [`crate::metrics_endpoint`], above the broker,
//! adds what is read from the broker when scraped (partition offsets, group
//! lag) and serves it all over HTTP.

use dashmap::DashMap;
use kafka_protocol::messages::ApiKey;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Per-topic traffic.
#[derive(Default)]
struct TopicCounters {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus histogram of durations: a count per bucket (the last one
/// is +Inf), their sum and count.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The `_bucket` (cumulative), `_sum` and `_count` lines.
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        let bounds = LATENCY_BUCKETS.iter().map(f64::to_string);
        for (bucket, bound) in self.buckets.iter().zip(bounds.chain(["+Inf".into()])) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// What the broker counts.
#[derive(Default)]
pub struct Metrics {
    /// Requests by API.
    requests: DashMap<ApiKey, AtomicU64>,
    /// Requests that closed their connection (undecodable, refused).
    rejected: AtomicU64,
    connections: AtomicI64,
    /// Connections closed at accept by the connection limits.
    refused_connections: AtomicU64,
    /// Connections closed after `connections_max_idle_ms` without requests.
    idle_closed: AtomicU64,
    topics: DashMap<String, TopicCounters>,
    fsyncs: AtomicU64,
    fsync_micros: AtomicU64,
    produce_latency: Histogram,
    fetch_latency: Histogram,
}

impl Metrics {
    pub fn request(&self, api: ApiKey) {
        self.requests
            .entry(api)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn idle_closed(&self) {
        self.idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered `elapsed` after its frame was read.
    pub fn served(&self, api: ApiKey, elapsed: Duration) {
        match api {
            ApiKey::Produce => self.produce_latency.observe(elapsed),
            ApiKey::Fetch => self.fetch_latency.observe(elapsed),
            _ => {}
        }
    }

    fn topic(&self, topic: &str, update: impl FnOnce(&TopicCounters)) {
        if let Some(counters) = self.topics.get(topic) {
            return update(&counters);
        }
        update(&self.topics.entry(topic.to_string()).or_default());
    }

    pub fn produced(&self, topic: &str, bytes: usize, records: usize) {
        self.topic(topic, |c| {
            c.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
            c.records_in.fetch_add(records as u64, Ordering::Relaxed);
        });
    }

    pub fn fetched(&self, topic: &str, bytes: usize) {
        self.topic(topic, |c| {
            c.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        });
    }

    pub fn fsynced(&self, micros: u64) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Writes the Prometheus text exposition of the counters to `out`;
    /// `in_flight_bytes` is the connection limits' gauge, which they keep.
    pub fn render(&self, out: &mut String, in_flight_bytes: u64) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let mut apis: Vec<(String, String)> = self
            .requests
            .iter()
            .map(|e| (format!("api=\"{:?}\"", e.key()), load(e.value())))
            .collect();
        apis.sort();
        family(
            out,
            "actorlog_requests_total",
            "counter",
            "Kafka requests served, by API.",
            apis,
        );
        let single = |value: String| [(String::new(), value)];
        family(
            out,
            "actorlog_rejected_requests_total",
            "counter",
            "Requests that closed their connection.",
            single(load(&self.rejected)),
        );
        family(
            out,
            "actorlog_connections",
            "gauge",
            "Open client connections.",
            single(self.connections.load(Ordering::Relaxed).to_string()),
        );
        family(
            out,
            "actorlog_refused_connections_total",
            "counter",
            "Connections closed at accept by max_connections or max_connections_per_ip.",
            single(load(&self.refused_connections)),
        );
        family(
            out,
            "actorlog_idle_closed_connections_total",
            "counter",
            "Connections closed after connections_max_idle_ms without requests.",
            single(load(&self.idle_closed)),
        );
        family(
            out,
            "actorlog_in_flight_request_bytes",
            "gauge",
            "Request bytes of all connections being served.",
            single(in_flight_bytes.to_string()),
        );
        self.produce_latency.render(
            out,
            "actorlog_produce_latency_seconds",
            "Time from reading a Produce request to its response (acks=all includes the fsync).",
        );
        self.fetch_latency.render(
            out,
            "actorlog_fetch_latency_seconds",
            "Time from reading a Fetch request to its response (includes the long-poll wait).",
        );
        family(
            out,
            "actorlog_fsyncs_total",
            "counter",
            "Group-commit fsync rounds.",
            single(load(&self.fsyncs)),
        );
        let fsync_seconds = self.fsync_micros.load(Ordering::Relaxed) as f64 / 1e6;
        family(
            out,
            "actorlog_fsync_seconds_total",
            "counter",
            "Time spent in fsync rounds.",
            single(fsync_seconds.to_string()),
        );
        let mut topics: Vec<String> = self.topics.iter().map(|e| e.key().clone()).collect();
        topics.sort();
        let per_topic = |pick: fn(&TopicCounters) -> &AtomicU64| -> Vec<(String, String)> {
            topics
                .iter()
                .filter_map(|t| {
                    self.topics
                        .get(t)
                        .map(|c| (format!("topic=\"{t}\""), load(pick(&c))))
                })
                .collect()
        };
        family(
            out,
            "actorlog_topic_bytes_in_total",
            "counter",
            "Record batch bytes produced, by topic.",
            per_topic(|c| &c.bytes_in),
        );
        family(
            out,
            "actorlog_topic_records_in_total",
            "counter",
            "Records produced, by topic.",
            per_topic(|c| &c.records_in),
        );
        family(
            out,
            "actorlog_topic_bytes_out_total",
            "counter",
            "Record batch bytes fetched, by topic.",
            per_topic(|c| &c.bytes_out),
        );
    }
}

/// A label value in the exposition format: backslash, quote and newline
/// escaped (group ids are any string a client sends).
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its help and type lines, then its samples.
pub fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, String)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}
