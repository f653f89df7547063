//! What operators see: Prometheus metrics and the health probe over HTTP.

mod broker_process;

use broker_process::{run, BrokerProcess};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

#[test]
fn metrics_and_health_over_http() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("metrics_listen: \"127.0.0.1:{port}\"\n")).expect("config");
    let broker = BrokerProcess::start_with(&["--config", config.to_str().expect("utf-8")]);
    let (ok, _, stderr) = run(
        Command::new("kcat").args(["-b", &broker.bootstrap(), "-P", "-t", "observed"]),
        "one\ntwo\n",
    );
    assert!(ok, "kcat: {stderr}");
    let health = get(port, "/health");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    let metrics = get(port, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for expected in [
        "actorlog_requests_total{api=\"Produce\"}",
        "actorlog_topic_records_in_total{topic=\"observed\"} 2",
        "actorlog_partition_log_end_offset{topic=\"observed\",partition=\"0\"} 2",
        "# TYPE actorlog_connections gauge",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    assert!(get(port, "/nothing").starts_with("HTTP/1.1 404"));
}
