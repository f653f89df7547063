//! The Go clients Sarama and segmentio/kafka-go against the broker binary:
//! the programs under tests/go drive them like applications do and exit
//! non-zero on any mismatch. They build offline, in GOPATH mode, against
//! the sources of Debian's packages that `scripts/test` installs; a missing
//! Go toolchain fails the test.

mod broker_process;

use broker_process::{run_for, source, BrokerProcess};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where Debian's golang-*-dev packages put their sources.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// The program under `tests/go/<name>`, built into the test scratch dir as
/// `binary` (one per test: tests build at the same time).
fn go_program(name: &str, binary: &str) -> PathBuf {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let binary = scratch.join(binary);
    let (ok, stdout, stderr) = run_for(
        go(&scratch)
            .current_dir(source("tests/go"))
            .args(["build", "-o"])
            .arg(&binary)
            .arg(format!("./{name}")),
        "",
        Duration::from_secs(300),
    );
    assert!(ok, "go build {name} failed:\n{stdout}\n{stderr}");
    binary
}

fn go(scratch: &Path) -> Command {
    let mut command = Command::new("go");
    command
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOCACHE", scratch.join("cache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off");
    command
}

/// Runs the program `name` with `args` against a new broker.
fn check(name: &str, test: &str, args: &[&str]) {
    let program = go_program(name, test);
    let broker = BrokerProcess::start();
    let (ok, stdout, stderr) = run_for(
        Command::new(&program)
            .args(["--bootstrap", &broker.bootstrap()])
            .args(args),
        "",
        Duration::from_secs(300),
    );
    assert!(ok, "{name} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{name}:\n{stdout}");
}

/// The newest version this Sarama knows, then its default (the oldest
/// requests: Produce v0, Fetch v0, message sets of magic 0, ListOffsets v0)
/// with an admin as for Kafka 0.10.2 (CreateTopics v0, DeleteTopics v0).
#[test]
fn sarama_new_and_default_versions_produce_consume_group_and_admin() {
    check("sarama_check", "sarama_newest", &[]);
}

/// Kafka 0.11's requests: CreateTopics v1, DeleteTopics v1, Fetch v4 and
/// OffsetCommit v1 in a group, which assigns round robin.
#[test]
fn sarama_as_for_kafka_0_11() {
    let args = ["--version", "0.11.0.0", "--roundrobin"];
    check("sarama_check", "sarama_0_11", &args);
}

#[test]
fn kafka_go_writer_readers_groups_and_conn() {
    check("kafkago_check", "kafkago", &[]);
}
