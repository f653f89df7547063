//! What operators see: Prometheus metrics and the health probe over HTTP.

mod broker_process;
mod embedded_broker;

use broker_process::{free_port, http_get as get, run, sample, BrokerProcess};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::process::Command;

#[test]
fn metrics_and_health_over_http() {
    let port = free_port();
    let broker =
        BrokerProcess::start_with_config(&format!("metrics_listen: \"127.0.0.1:{port}\"\n"));
    let (ok, _, stderr) = run(
        Command::new("kcat").args(["-b", &broker.bootstrap(), "-P", "-t", "observed"]),
        "one\ntwo\nthree\n",
    );
    assert!(ok, "kcat: {stderr}");
    let (ok, stdout, stderr) = run(
        Command::new("kcat").args([
            "-b",
            &broker.bootstrap(),
            "-C",
            "-t",
            "observed",
            "-o",
            "beginning",
            "-e",
            "-q",
        ]),
        "",
    );
    assert!(
        ok && stdout.lines().count() == 3,
        "kcat -C: {stdout} {stderr}"
    );
    let consumer: BaseConsumer = embedded_broker::config(&broker.bootstrap())
        .set("group.id", "watched")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut committed = TopicPartitionList::new();
    committed
        .add_partition_offset("observed", 0, Offset::Offset(1))
        .expect("partition");
    consumer
        .commit(&committed, CommitMode::Sync)
        .expect("commit");
    let health = get(port, "/health");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let metrics = get(port, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for expected in [
        "actorlog_requests_total{api=\"Produce\"}",
        "actorlog_topic_records_in_total{topic=\"observed\"} 3",
        "actorlog_partition_log_end_offset{topic=\"observed\",partition=\"0\"} 3",
        "actorlog_group_lag{group=\"watched\",topic=\"observed\",partition=\"0\"} 2",
        "# TYPE actorlog_connections gauge",
        "# TYPE actorlog_produce_latency_seconds histogram",
        "# TYPE actorlog_fetch_latency_seconds histogram",
        "actorlog_refused_connections_total 0",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    for histogram in [
        "actorlog_produce_latency_seconds",
        "actorlog_fetch_latency_seconds",
    ] {
        let count = sample(&metrics, &format!("{histogram}_count")).expect("a count");
        let all = sample(&metrics, &format!("{histogram}_bucket{{le=\"+Inf\"}}"));
        assert!(count >= 1.0, "{histogram} observed a request:\n{metrics}");
        assert_eq!(all, Some(count), "+Inf holds every observation");
        let buckets: Vec<f64> = metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{histogram}_bucket")))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "{histogram} buckets are cumulative: {buckets:?}"
        );
    }
    assert!(
        sample(&metrics, "actorlog_connections").is_some_and(|open| open >= 1.0),
        "the consumer's connection is counted:\n{metrics}"
    );
    drop(consumer);
    assert!(get(port, "/nothing").starts_with("HTTP/1.1 404"));
}
