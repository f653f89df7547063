//! Independent clients against the broker binary: kafka-python,
//! confluent-kafka, kcat, and actorlog's own command line. These fail (they
//! do not skip) when a client is missing: `scripts/test` installs them.

mod broker_process;

use broker_process::{actorlog, run, source, BrokerProcess};
use std::process::Command;

/// Runs an `actorlog` client subcommand against `bootstrap`; its stdout.
fn cli(bootstrap: &str, args: &[&str], stdin: &str) -> String {
    let mut all = vec!["--bootstrap", bootstrap];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = actorlog(&all, stdin);
    assert!(ok, "actorlog {args:?}: {stderr}");
    stdout
}

fn python_script(script: &str, broker: &BrokerProcess, args: &[&str]) {
    let path = source(script);
    let (ok, stdout, stderr) = run(
        Command::new("python3")
            .arg(&path)
            .args(["--bootstrap", &broker.bootstrap()])
            .args(args),
        "",
    );
    assert!(ok, "{script} failed:\n{stdout}\n{stderr}");
}

#[test]
fn kafka_python_produces_consumes_and_commits() {
    let broker = BrokerProcess::start();
    python_script("tests/scripts/kafka_python_roundtrip.py", &broker, &[]);
}

#[test]
fn kafka_python_administers_log_dirs_producers_and_replicas() {
    let broker = BrokerProcess::start();
    python_script("tests/scripts/kafka_python_cluster_admin.py", &broker, &[]);
}

#[test]
fn confluent_kafka_round_trips_every_codec_and_transactions() {
    let broker = BrokerProcess::start();
    python_script("tests/scripts/confluent_roundtrip.py", &broker, &[]);
}

#[test]
fn kcat_lists_produces_and_consumes() {
    let broker = BrokerProcess::start();
    let b = broker.bootstrap();
    let lines = "first\nsecond\nthird\n";
    let (ok, _, stderr) = run(
        Command::new("kcat").args(["-b", &b, "-P", "-t", "kcat-topic"]),
        lines,
    );
    assert!(ok, "kcat -P: {stderr}");
    let (ok, stdout, stderr) = run(Command::new("kcat").args(["-b", &b, "-L"]), "");
    assert!(ok, "kcat -L: {stderr}");
    assert!(
        stdout.contains("1 brokers") && stdout.contains("kcat-topic"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run(
        Command::new("kcat").args([
            "-b",
            &b,
            "-C",
            "-t",
            "kcat-topic",
            "-o",
            "beginning",
            "-e",
            "-q",
        ]),
        "",
    );
    assert!(ok, "kcat -C: {stderr}");
    assert_eq!(stdout, lines);
}

#[test]
fn the_command_line_manages_topics_and_moves_records() {
    let broker = BrokerProcess::start();
    let b = broker.bootstrap();
    let client = |args: &[&str], stdin: &str| cli(&b, args, stdin);
    client(
        &[
            "topics",
            "create",
            "cli",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
        ],
        "",
    );
    assert!(client(&["topics", "list"], "").lines().any(|l| l == "cli"));
    let described = client(&["topics", "describe", "cli"], "");
    assert!(
        described.contains("2 partitions") && described.contains("retention.ms=60000  (topic)"),
        "{described}"
    );
    client(
        &[
            "topics",
            "alter-config",
            "cli",
            "--set",
            "retention.ms=1000",
        ],
        "",
    );
    assert!(client(&["topics", "describe", "cli"], "").contains("retention.ms=1000  (topic)"));
    client(
        &[
            "produce",
            "--topic",
            "cli",
            "--key-separator",
            ":",
            "--partition",
            "1",
        ],
        "a:1\nb:2\nc:3\n",
    );
    let consumed = client(
        &[
            "consume",
            "--topic",
            "cli",
            "--from-beginning",
            "--max-messages",
            "3",
            "--print-key",
            "--key-separator",
            "=",
        ],
        "",
    );
    assert_eq!(consumed, "a=1\nb=2\nc=3\n");
    client(&["topics", "delete", "cli"], "");
    assert!(!client(&["topics", "list"], "").lines().any(|l| l == "cli"));
    let mut all = vec!["--bootstrap", b.as_str()];
    all.extend_from_slice(&[
        "topics",
        "alter-config",
        "nope-topic",
        "--set",
        "retention.ms=1",
    ]);
    let (ok, _, _) = actorlog(&all, "");
    assert!(!ok, "altering an unknown topic fails");
}

#[test]
fn the_command_line_consumes_in_a_group_and_manages_its_offsets() {
    let broker = BrokerProcess::start();
    let b = broker.bootstrap();
    let client = |args: &[&str], stdin: &str| cli(&b, args, stdin);
    let lines: String = (0..10).map(|i| format!("line-{i}\n")).collect();
    client(&["topics", "create", "grouped", "--partitions", "2"], "");
    client(
        &["produce", "--topic", "grouped", "--partition", "0"],
        &lines,
    );
    let consume = [
        "consume",
        "--topic",
        "grouped",
        "--group",
        "cli-group",
        "--max-messages",
        "10",
    ];
    let mut from_start = consume.to_vec();
    from_start.push("--from-beginning");
    assert_eq!(client(&from_start, ""), lines);
    assert!(client(&["groups", "list"], "")
        .lines()
        .any(|l| l.starts_with("cli-group\t")));
    let described = client(&["groups", "describe", "cli-group"], "");
    assert!(
        described.contains("grouped-0  10  10  0"),
        "committed, log end and lag: {described}"
    );
    let dry_run = client(
        &[
            "groups",
            "reset-offsets",
            "cli-group",
            "--topic",
            "grouped",
            "--shift-by",
            "-3",
        ],
        "",
    );
    assert!(
        dry_run.contains("grouped-0  7") && dry_run.contains("dry run"),
        "{dry_run}"
    );
    assert!(client(&["groups", "describe", "cli-group"], "").contains("grouped-0  10  10  0"));
    client(
        &[
            "groups",
            "reset-offsets",
            "cli-group",
            "--topic",
            "grouped",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    // The group resumes from its (reset) committed offset, not from the end.
    assert_eq!(client(&consume, ""), lines);
    client(&["groups", "delete", "cli-group"], "");
    assert!(!client(&["groups", "list"], "")
        .lines()
        .any(|l| l.starts_with("cli-group\t")));
}

#[test]
fn kafkajs_consumer_groups_share_partitions_and_commit() {
    let broker = BrokerProcess::start();
    let script = source("tests/scripts/kafkajs_group.js");
    let (ok, stdout, stderr) = run(
        Command::new("node")
            .arg(&script)
            .args(["--bootstrap", &broker.bootstrap()]),
        "",
    );
    assert!(ok, "kafkajs: {stdout}\n{stderr}");
}

/// Short group timeouts, so that a killed member is expelled quickly.
fn quick_groups_broker() -> (BrokerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "group_initial_rebalance_delay_ms: 500\n\
         group_consumer_session_timeout_ms: 6000\n\
         group_consumer_heartbeat_interval_ms: 500\n",
    )
    .expect("config");
    let broker = BrokerProcess::start_with(&["--config", config.to_str().expect("utf-8")]);
    (broker, dir)
}

#[test]
fn cooperative_rebalancing_static_membership_and_expiry() {
    let (broker, _dir) = quick_groups_broker();
    python_script("tests/scripts/cooperative_static.py", &broker, &[]);
}

#[test]
fn consumer_protocol_rebalancing_static_membership_and_expiry() {
    let (broker, _dir) = quick_groups_broker();
    python_script(
        "tests/scripts/cooperative_static.py",
        &broker,
        &["--protocol", "consumer"],
    );
}

/// `actorlog topics list | head -c0`: the reader is gone before the first
/// line, and the command ends quietly (SIGPIPE) instead of panicking.
#[test]
fn client_commands_end_quietly_when_their_reader_goes() {
    use std::io::Read;
    use std::process::Stdio;
    let broker = BrokerProcess::start();
    let b = broker.bootstrap();
    cli(&b, &["topics", "create", "piped"], "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_actorlog"))
        .args(["--bootstrap", &b, "topics", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("actorlog runs");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr read");
    let status = child.wait().expect("actorlog ends");
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
}
