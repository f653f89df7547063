//! kafkajs, the pure-JavaScript client, against the broker binary: one node
//! script per area (tests/scripts/kafkajs_*.js), each exiting non-zero with
//! the first mismatch. They fail (they do not skip) when node or kafkajs is
//! missing: `scripts/test` installs them.

mod broker_process;

use broker_process::{run_for, source, BrokerProcess};
use std::process::Command;
use std::time::Duration;

/// Runs `tests/scripts/kafkajs_{name}.js` against a fresh broker.
fn kafkajs(name: &str) {
    kafkajs_against(name, &BrokerProcess::start());
}

fn kafkajs_against(name: &str, broker: &BrokerProcess) {
    let script = source(&format!("tests/scripts/kafkajs_{name}.js"));
    let (ok, stdout, stderr) = run_for(
        Command::new("node")
            .arg(&script)
            .args(["--bootstrap", &broker.bootstrap()]),
        "",
        // Each new group waits out the broker's initial rebalance delay, and
        // kafkajs's setOffsets runs a consumer of its own.
        Duration::from_secs(240),
    );
    assert!(ok, "kafkajs {name}:\n{stdout}\n{stderr}");
}

#[test]
fn kafkajs_consumer_groups_share_partitions_commit_and_survive_churn() {
    kafkajs("group");
}

#[test]
fn kafkajs_admin_manages_topics_configs_offsets_and_groups() {
    kafkajs("admin");
}

#[test]
fn kafkajs_produces_with_every_acks_codec_header_and_partition() {
    kafkajs("producer");
}

#[test]
fn kafkajs_transactions_commit_abort_and_send_offsets() {
    kafkajs("transactions");
}

#[test]
fn kafkajs_consumes_in_batches_seeks_pauses_and_commits() {
    kafkajs("consumer");
}

#[test]
fn kafkajs_gets_unknown_topic_errors_without_auto_creation() {
    let broker = BrokerProcess::start_with_config("auto_create_topics: false\n");
    kafkajs_against("no_auto_create", &broker);
}
