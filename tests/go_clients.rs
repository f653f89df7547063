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

/// The program under `tests/go/<name>`, built into the test scratch dir.
fn go_program(name: &str) -> PathBuf {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let binary = scratch.join(name);
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

fn check(name: &str) {
    let program = go_program(name);
    let broker = BrokerProcess::start();
    let (ok, stdout, stderr) = run_for(
        Command::new(&program).args(["--bootstrap", &broker.bootstrap()]),
        "",
        Duration::from_secs(300),
    );
    assert!(ok, "{name} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{name}:\n{stdout}");
}

#[test]
fn sarama_new_and_default_versions_produce_consume_group_and_admin() {
    check("sarama_check");
}

#[test]
fn kafka_go_writer_readers_groups_and_conn() {
    check("kafkago_check");
}
