//! The rebalance simulator: the same scenario gives the same bytes, each
//! kind of event does what the classic protocol does, scenario mistakes
//! are reported with their line, and one scenario played against the real
//! broker with librdkafka consumers ends where the simulator said it would.

mod embedded_broker;

use actorlog::actors::group::assignor::Assignor;
use actorlog::simulate::scenario::{Action, AssignorName, Count, Protocol};
use actorlog::simulate::{load, run, Offsets, Report, Scenario};
use embedded_broker::{config, create_topic, eventually, start};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// Group settings short enough to read, as the tests below count on them.
fn group(assignor: &str) -> String {
    group_of("classic", assignor)
}

fn group_of(protocol: &str, assignor: &str) -> String {
    format!(
        "group: {{protocol: {protocol}, assignor: {assignor}, session_timeout: 10s, heartbeat_interval: 1s, \
         max_poll_interval: 30s, initial_rebalance_delay: 1s, metadata_max_age: 30s}}"
    )
}

fn play(yaml: &str) -> Report {
    let scenario = Scenario::parse(yaml, "test").expect("the scenario parses");
    run(&scenario).expect("the scenario runs")
}

/// Three consumers (`extra` adds to each) on `t` with 6 partitions, all
/// joining at 0s, then `events`.
fn three(extra: &str, events: &str) -> Report {
    play(&format!(
        "topics: {{t: 6}}\n{}\nduration: 3m\nconsumers: [{{name: c, count: 3{extra}}}]\n\
         events:\n  - {{at: 0s, join: [c1, c2, c3]}}\n{events}",
        group("range")
    ))
}

fn sizes(assignment: &BTreeMap<String, Vec<String>>) -> Vec<usize> {
    let mut sizes: Vec<usize> = assignment.values().map(Vec::len).collect();
    sizes.sort_unstable();
    sizes
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("examples/scenarios")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// stdout, JSON and SVG of one `actorlog simulate` run.
fn simulate_cli(scenario: &Path, out: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (json, svg) = (out.join("report.json"), out.join("report.svg"));
    let output = Command::new(env!("CARGO_BIN_EXE_actorlog"))
        .arg("simulate")
        .arg(scenario)
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("actorlog runs");
    assert!(
        output.status.success(),
        "{}: {}",
        scenario.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.stdout,
        std::fs::read(json).expect("json written"),
        std::fs::read(svg).expect("svg written"),
    )
}

#[test]
fn every_example_gives_the_same_bytes_twice() {
    let files = examples();
    assert!(files.len() >= 5, "at least five example scenarios");
    let dir = tempfile::tempdir().expect("temp dir");
    for file in files {
        let first = simulate_cli(&file, dir.path());
        let second = simulate_cli(&file, dir.path());
        assert!(!first.0.is_empty() && first.2.starts_with(b"<svg"));
        assert!(first == second, "{} differs between runs", file.display());
    }
}

#[test]
fn compare_plays_the_same_events_under_both_configurations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
    let output = Command::new(env!("CARGO_BIN_EXE_actorlog"))
        .arg("simulate")
        .arg(dir.join("rolling-restart.yaml"))
        .arg("--compare")
        .arg(dir.join("rolling-restart-static.yaml"))
        .output()
        .expect("actorlog runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let generations = text
        .lines()
        .find(|l| l.starts_with("generations "))
        .expect("a generations row");
    // Dynamic members: two rebalances per restart; static ones: none.
    let numbers: Vec<&str> = generations.split_whitespace().skip(1).collect();
    assert_eq!(numbers, ["7.0", "1.0", "-6.0"], "{text}");
}

#[test]
fn members_joining_together_form_one_generation() {
    let report = three("", "");
    assert_eq!(report.generations.len(), 1);
    let generation = &report.generations[0];
    // They all joined in the first window of the initial delay, so the
    // join phase lasts a second window (1s + 1s).
    assert_eq!(generation.stable_ms, Some(2_000));
    let expected: BTreeMap<String, Vec<String>> = [
        ("c1", strings(&["t-0", "t-1"])),
        ("c2", strings(&["t-2", "t-3"])),
        ("c3", strings(&["t-4", "t-5"])),
    ]
    .into_iter()
    .map(|(c, p)| (c.to_string(), p))
    .collect();
    assert_eq!(generation.assignment, expected);
    assert_eq!(report.events[0].unavailable_partition_seconds, 12.0);
    assert!(report.summary.settled_at_end);
}

#[test]
fn a_clean_leave_rebalances_at_once() {
    let report = three("", "  - {at: 30s, leave: c2}\n");
    assert_eq!(report.summary.generations, 2);
    let left = &report.events[1];
    // The others hear of it at their next heartbeat, finish their poll and
    // rejoin: far sooner than any session timeout.
    let settled = left.settled_after_ms.expect("settles");
    assert!(settled <= 1_000 + 100 + 50, "settled after {settled} ms");
    assert_eq!(sizes(&report.summary.final_assignment), vec![3, 3]);
    assert_eq!(left.stopped, strings(&["c1", "c3"]), "eager: all stop");
}

#[test]
fn a_crash_is_noticed_when_the_session_times_out() {
    let report = three("", "  - {at: 30s, crash: c2}\n");
    assert_eq!(report.summary.generations, 2);
    let rebalance = report.generations[1].started_ms;
    assert!(
        (39_000..=40_000).contains(&rebalance),
        "10s after c2's last heartbeat, not {rebalance}"
    );
    let crash = &report.events[1];
    assert!(crash.unavailable_partition_seconds >= 2.0 * 9.0);
    assert_eq!(sizes(&report.summary.final_assignment), vec![3, 3]);
}

#[test]
fn a_static_member_back_within_its_session_keeps_its_partitions() {
    let report = three(", static: true", "  - {at: 30s, restart: c2, down: 5s}\n");
    assert_eq!(report.generations.len(), 1, "no rebalance");
    let restart = &report.events[1];
    assert_eq!(restart.moves, 0);
    assert_eq!(restart.settled_after_ms, Some(5_000));
    assert_eq!(restart.unavailable_partition_seconds, 2.0 * 5.0);
    assert_eq!(
        report.summary.final_assignment["c2"],
        strings(&["t-2", "t-3"])
    );
}

#[test]
fn a_static_member_that_stays_down_is_dropped_after_its_session() {
    let report = three(", static: true", "  - {at: 30s, crash: c2}\n");
    assert_eq!(report.summary.generations, 2);
    assert!(report.generations[1].started_ms >= 39_000);
    assert_eq!(sizes(&report.summary.final_assignment), vec![3, 3]);
}

#[test]
fn a_dynamic_restart_rebalances_twice() {
    let report = three("", "  - {at: 30s, restart: c2, down: 5s}\n");
    assert_eq!(report.summary.generations, 3);
    assert!(report.generations[2].started_ms >= 35_000);
    assert_eq!(sizes(&report.summary.final_assignment), vec![2, 2, 2]);
}

#[test]
fn a_pause_within_max_poll_keeps_the_member() {
    let report = three("", "  - {at: 30s, pause: c2, for: 10s}\n");
    assert_eq!(report.generations.len(), 1);
    let pause = &report.events[1];
    assert_eq!(pause.unavailable_partition_seconds, 2.0 * 10.0);
    assert_eq!(pause.settled_after_ms, Some(10_000));
    assert!(report.notes.is_empty());
}

#[test]
fn a_pause_beyond_max_poll_leaves_and_rejoins() {
    let report = three("", "  - {at: 30s, pause: c2, for: 1m}\n");
    // Left after 30s of not polling (one rebalance), back at 1m30s (another).
    assert_eq!(report.summary.generations, 3);
    assert!(report.generations[1].started_ms >= 60_000);
    assert!(report.generations[2].started_ms >= 90_000);
    assert_eq!(report.notes.len(), 1);
    assert!(report.notes[0].text.contains("exceeded max.poll.interval"));
    assert_eq!(sizes(&report.summary.final_assignment), vec![2, 2, 2]);
}

#[test]
fn a_new_subscription_rebalances() {
    let report = play(&format!(
        "topics: {{t: 4, u: 3}}\n{}\nduration: 2m\n\
         consumers: [{{name: a, topics: [t]}}, {{name: b, topics: [t]}}]\n\
         events:\n  - {{at: 0s, join: [a, b]}}\n  - {{at: 30s, subscribe: b, topics: [t, u]}}\n",
        group("range")
    ));
    assert_eq!(report.summary.generations, 2);
    let b = &report.summary.final_assignment["b"];
    assert!(
        b.iter().filter(|p| p.starts_with("u-")).count() == 3,
        "{b:?}"
    );
}

#[test]
fn added_partitions_are_assigned_once_the_leader_refreshes_metadata() {
    let report = three("", "  - {at: 40s, add_partitions: t, count: 12}\n");
    assert_eq!(report.summary.generations, 2);
    // The leader's metadata refreshes every 30s from its start: at 1m.
    assert!(report.generations[1].started_ms >= 60_000);
    let grow = &report.events[1];
    assert!(grow.unavailable_partition_seconds >= 6.0 * 20.0);
    assert_eq!(sizes(&report.summary.final_assignment), vec![4, 4, 4]);
}

#[test]
fn a_subscription_changed_during_a_rebalance_is_not_lost() {
    // c2's 15s polls keep the rebalance that c1's return starts open while
    // c1 changes its subscription; c1 rejoins once that rebalance is over.
    let report = play(&format!(
        "topics: {{a: 7, b: 1}}\n{}\nduration: 2m\n\
         consumers:\n  - {{name: c1, static: true, topics: [a]}}\n\
         \x20 - {{name: c2, static: true, topics: [a], poll_time: 15s}}\n\
         events:\n  - {{at: 0s, join: [c1, c2]}}\n  - {{at: 36s, leave: c1}}\n\
         \x20 - {{at: 46s, join: c1}}\n  - {{at: 48s, subscribe: c1, topics: [a, b]}}\n",
        group("range")
    ));
    assert!(report.summary.final_assignment["c1"].contains(&"b-0".to_string()));
    assert!(report.summary.settled_at_end);
}

#[test]
fn a_static_leader_back_from_a_long_pause_still_sees_new_partitions() {
    let report = play(&format!(
        "topics: {{a: 4, b: 1}}\n{}\nduration: 3m\n\
         consumers: [{{name: c1, static: true}}, {{name: c2, static: true}}]\n\
         events:\n  - {{at: 0s, join: [c1, c2]}}\n  - {{at: 31s, pause: c1, for: 31s}}\n\
         \x20 - {{at: 56s, add_partitions: b, count: 4}}\n",
        group("range")
    ));
    let assigned: usize = report.summary.final_assignment.values().map(Vec::len).sum();
    assert_eq!(assigned, 8);
    assert!(report.summary.settled_at_end);
}

#[test]
fn cooperative_rebalancing_stops_no_one_but_takes_two_generations() {
    let scale = |assignor: &str| {
        play(&format!(
            "topics: {{t: 12}}\n{}\nduration: 2m\n\
             consumers: [{{name: c, count: 4}}]\n\
             generators: [{{scale: {{from: 3, to: 4, at: 30s, gap: 10s}}}}]\n",
            group(assignor)
        ))
    };
    let eager = scale("sticky");
    let cooperative = scale("cooperative-sticky");
    assert_eq!(eager.summary.generations, 2);
    assert_eq!(cooperative.summary.generations, 3);
    assert_eq!(eager.events[1].stopped, strings(&["c1", "c2", "c3"]));
    assert!(cooperative.events[1].stopped.is_empty());
    assert_eq!(eager.events[1].moves, 3);
    assert_eq!(cooperative.events[1].moves, 3);
}

#[test]
fn random_crashes_follow_their_seed() {
    let crashes = |seed: u64| {
        play(&format!(
            "topics: {{t: 8}}\n{}\nduration: 1h\nconsumers: [{{name: c, count: 4}}]\n\
             events: [{{at: 0s, join: [c1, c2, c3, c4]}}]\n\
             generators: [{{random_crashes: {{seed: {seed}, count: 5, between: [1m, 50m], restart_after: 30s}}}}]\n",
            group("range")
        ))
    };
    let (a, b, c) = (crashes(7), crashes(7), crashes(8));
    assert_eq!(a, b);
    assert_eq!(a.events.len(), 1 + 2 * 5);
    assert_ne!(a.events, c.events);
}

#[test]
fn the_consumer_protocol_moves_partitions_without_stopping_anyone() {
    let report = play(&format!(
        "topics: {{t: 12}}\n{}\nduration: 2m\n\
         consumers: [{{name: c, count: 4}}]\n\
         generators: [{{scale: {{from: 3, to: 4, at: 30s, gap: 10s}}}}]\n",
        group_of("consumer", "uniform")
    ));
    assert_eq!(report.protocol, "consumer (KIP-848)");
    let join = &report.events[1];
    assert!(join.stopped.is_empty());
    assert_eq!(join.moves, 3);
    // Members hear of the new target at their next heartbeat (1s), revoke
    // at the end of their poll and confirm; then c4 gets what was freed.
    assert!(join.settled_after_ms.is_some_and(|ms| ms <= 3_000));
    assert_eq!(sizes(&report.summary.final_assignment), vec![3, 3, 3, 3]);
    assert!(report.summary.settled_at_end);
}

#[test]
fn a_static_member_of_the_consumer_protocol_that_crashed_waits_for_its_old_session() {
    let report = play(&format!(
        "topics: {{t: 6}}\n{}\nduration: 2m\n\
         consumers: [{{name: c, count: 3, static: true}}]\n\
         events: [{{at: 0s, join: [c1, c2, c3]}}, {{at: 30s, crash: c2}}, {{at: 32s, join: c2}}]\n",
        group_of("consumer", "uniform")
    ));
    assert!(report.notes[0]
        .text
        .contains("still held by its previous process"));
    let back = &report.events[2];
    // Until the crashed process's session (10s) expires, about 40s.
    assert!(back
        .settled_after_ms
        .is_some_and(|ms| (7_000..=10_000).contains(&ms)));
    assert_eq!(sizes(&report.summary.final_assignment), vec![2, 2, 2]);
}

/// Over every example, in both protocols: a partition is never fetched by
/// two consumers at once.
#[test]
fn no_partition_ever_has_two_fetching_owners() {
    for file in examples() {
        let mut scenario = load(&file).expect("example parses");
        let classic = run(&scenario).expect("runs");
        scenario.group.protocol = Protocol::Consumer;
        scenario.group.assignor = AssignorName(Assignor::Uniform);
        let consumer = run(&scenario).expect("runs");
        for report in [classic, consumer] {
            let mut spans: BTreeMap<&str, Vec<(u64, u64, &str)>> = BTreeMap::new();
            for (member, segments) in &report.timeline {
                for segment in segments {
                    for p in &segment.partitions {
                        spans
                            .entry(p)
                            .or_default()
                            .push((segment.from_ms, segment.to_ms, member));
                    }
                }
            }
            for (partition, mut list) in spans {
                list.sort();
                for pair in list.windows(2) {
                    // After a coordinator failover, the new coordinator's
                    // empty group may hand out a partition whose owner has
                    // not heard yet that it lost it: allowed only then, and
                    // only if the report says so.
                    let start = pair[1].0;
                    let after_failover = report.cluster.as_ref().is_some_and(|c| {
                        c.failures.iter().any(|f| f.coordinator && f.at_ms <= start)
                    });
                    let noted = report.notes.iter().any(|n| {
                        n.at_ms == start
                            && n.text.contains("more than one consumer")
                            && n.text.contains(&format!("{partition} ("))
                    });
                    assert!(
                        pair[0].1 <= pair[1].0 || (after_failover && noted),
                        "{}, {}: {partition} fetched by {} and {} at once",
                        file.display(),
                        report.protocol,
                        pair[0].2,
                        pair[1].2
                    );
                }
            }
        }
    }
}

/// `examples/scenarios/coordinator-failover.yaml`: three brokers, the
/// group's offsets partition on brokers 3, 2, 1; broker 3 (the
/// coordinator) killed at 1m and restarted at 3m, broker 1 killed at 2m
/// and restarted at 2m30s.
fn failover_example() -> Scenario {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios/coordinator-failover.yaml");
    load(&file).expect("the example parses")
}

const KILL: u64 = 60_000;
const BROKER_SESSION: u64 = 2_000;

#[test]
fn a_killed_coordinator_hands_the_group_to_an_in_sync_replica() {
    let report = run(&failover_example()).expect("runs");
    let cluster = report.cluster.as_ref().expect("a cluster report");
    assert_eq!(cluster.replicas, [3, 2, 1]);
    let kill = &cluster.failures[0];
    assert_eq!((kill.at_ms, kill.broker, kill.coordinator), (KILL, 3, true));
    // The controller fences it after the broker session timeout and elects
    // the next replica in the ISR.
    assert_eq!(kill.next_coordinator, Some(2));
    assert_eq!(kill.next_coordinator_after_ms, Some(BROKER_SESSION));
    let outages: Vec<(u64, u64)> = cluster
        .coordinator_unavailable
        .iter()
        .map(|w| (w.from_ms, w.to_ms))
        .collect();
    assert_eq!(outages, [(KILL, KILL + BROKER_SESSION)]);
    assert_eq!(
        kill.offsets,
        Some(Offsets::Held {
            broker: 2,
            restarted: false
        })
    );
    // The new coordinator starts from an empty group: one new generation,
    // numbered 1 again, after its initial rebalance delay (3s).
    let after: Vec<_> = report
        .generations
        .iter()
        .filter(|g| g.started_ms > KILL)
        .collect();
    assert_eq!(after.len(), 1, "{:?}", report.generations);
    assert_eq!((after[0].generation, after[0].coordinator), (1, Some(2)));
    let stall = kill.stall_ms.expect("the group settles again");
    assert!(stall >= BROKER_SESSION + 3_000, "stalled {stall} ms");
    assert_eq!(after[0].stable_ms, Some(KILL + stall));
    assert_eq!(report.events[1].settled_after_ms, Some(stall));
    // Members fetched what they had until the new coordinator told them
    // they were unknown; then all six partitions waited for the new group.
    let unread = report.events[1].unavailable_partition_seconds;
    assert!(unread >= 6.0 * 3.0, "{unread} partition-seconds");
    assert!(
        unread < 6.0 * (stall as f64 / 1000.0),
        "{unread} partition-seconds"
    );

    // Broker 1 leads no replica of the group's partition that matters.
    let other = &cluster.failures[1];
    assert_eq!((other.broker, other.coordinator), (1, false));
    assert_eq!((other.stall_ms, other.offsets), (Some(0), None));
    assert_eq!(report.events[2].unavailable_partition_seconds, 0.0);
    assert!(report.summary.settled_at_end);
    assert!(report.to_string().contains(
        "broker 3 killed: the coordinator; broker 2 coordinates 2s later; \
         offsets held (replicated to broker 2)"
    ));
}

#[test]
fn with_one_replica_the_offsets_wait_for_their_broker() {
    let mut scenario = failover_example();
    let settings = scenario.cluster.as_mut().expect("a cluster");
    settings.offsets_replication_factor = Some(Count(1));
    let report = run(&scenario).expect("runs");
    let cluster = report.cluster.as_ref().expect("a cluster report");
    assert_eq!(cluster.replicas, [3]);
    let kill = &cluster.failures[0];
    // Nobody coordinates the group until broker 3 is back at 3m.
    assert_eq!(kill.next_coordinator, Some(3));
    assert_eq!(kill.next_coordinator_after_ms, Some(120_000));
    assert_eq!(
        kill.offsets,
        Some(Offsets::Held {
            broker: 3,
            restarted: true
        })
    );
    assert!(kill.stall_ms.is_some_and(|ms| ms >= 120_000));

    // Without the restart they stay unavailable, and the group never
    // settles again.
    scenario
        .events
        .retain(|e| e.action != Action::RestartBroker(3));
    let report = run(&scenario).expect("runs");
    let kill = &report.cluster.as_ref().expect("a cluster report").failures[0];
    assert_eq!(kill.offsets, Some(Offsets::Unavailable));
    assert_eq!((kill.next_coordinator, kill.stall_ms), (None, None));
    assert!(!report.summary.settled_at_end);
    assert!(report
        .to_string()
        .contains("no broker coordinates the group again; offsets unavailable"));
}

#[test]
fn a_consumer_protocol_group_rejoins_the_new_coordinator_at_epoch_zero() {
    let mut scenario = failover_example();
    scenario.group.protocol = Protocol::Consumer;
    scenario.group.assignor = AssignorName(Assignor::Uniform);
    let report = run(&scenario).expect("runs");
    let kill = &report.cluster.as_ref().expect("a cluster report").failures[0];
    assert_eq!(kill.next_coordinator, Some(2));
    // No join phase and no initial delay: settled soon after the election.
    let stall = kill.stall_ms.expect("settles");
    assert!(
        (BROKER_SESSION..BROKER_SESSION + 2_000).contains(&stall),
        "stalled {stall} ms"
    );
    let after: Vec<_> = report
        .generations
        .iter()
        .filter(|g| g.started_ms > KILL)
        .collect();
    assert!(after.iter().all(|g| g.coordinator == Some(2)));
    assert_eq!(sizes(&report.summary.final_assignment), vec![2, 2, 2]);
    // The empty group assigns the first member back everything, while the
    // others still fetch their partitions until their next heartbeat.
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.at_ms > KILL && n.text.contains("more than one consumer")),
        "{:?}",
        report.notes
    );
}

#[test]
fn killing_a_broker_that_does_not_coordinate_changes_nothing() {
    let plain = run(&Scenario {
        cluster: None,
        events: failover_example()
            .events
            .into_iter()
            .filter(|e| matches!(e.action, Action::Join(_)))
            .collect(),
        ..failover_example()
    })
    .expect("runs");
    let mut scenario = failover_example();
    scenario
        .events
        .retain(|e| !matches!(e.action, Action::KillBroker(3) | Action::RestartBroker(3)));
    let report = run(&scenario).expect("runs");
    assert_eq!(
        report.cluster.as_ref().map(|c| c.failures.len()),
        Some(1),
        "the kill of broker 1 is reported"
    );
    assert_eq!(report.timeline, plain.timeline);
    assert_eq!(report.summary, plain.summary);
}

/// A scenario file with one mistake, and what the error must say.
fn assert_error(yaml: &str, expected: &[&str]) {
    let error = Scenario::parse(yaml, "bad.yaml").expect_err("the scenario is refused");
    for part in expected {
        assert!(error.0.contains(part), "`{error}` does not say `{part}`");
    }
}

#[test]
fn scenario_mistakes_name_their_line_and_field() {
    let head = "topics: {t: 4}\nduration: 1m\nconsumers: [{name: a}, {name: b}]\n";
    assert_error(
        &format!("{head}events:\n  - {{at: 0s, join: [a, b]}}\n  - at: 10s\n    crash: c\n"),
        &[
            "bad.yaml: events[1]",
            "field `crash`",
            "no consumer named `c`",
            "line 6",
        ],
    );
    assert_error(
        &format!("{head}events:\n  - {{at: 5 seconds, join: a}}\n"),
        &[
            "events[0]",
            "field `at`",
            "`5 seconds` is not a duration",
            "line 5",
        ],
    );
    assert_error(
        &format!("{head}events:\n  - {{at: 5s, join: a, leave: b}}\n"),
        &["one action per event", "line 5"],
    );
    assert_error(
        &format!("{head}events:\n  - {{at: 5s, add_partitions: t, count: 2}}\n"),
        &["already has 4 partitions", "line 5"],
    );
    assert_error(
        &format!("{head}events:\n  - {{at: 5s, subscribe: a, topics: [nope]}}\n"),
        &["no topic named `nope`", "line 5"],
    );
    assert_error(
        &format!("{head}events:\n  - {{at: 5s, pause: a}}\n"),
        &["missing field `for`", "line 5"],
    );
    assert_error(
        "topics: {t: 4}\nduration: 1m\ngroup:\n  assignor: rnge\nconsumers: [{name: a}]\n",
        &["unknown assignor `rnge`", "line 4"],
    );
    assert_error(
        "topics: {t: 4}\nduration: 1m\nconsumers:\n  - {name: a, poll_tme: 1s}\n",
        &["consumers[0]", "unknown field `poll_tme`", "line 4"],
    );
    assert_error(
        &format!(
            "{head}generators:\n  - {{rolling_restart: {{at: 1s, gap: 1s, consumers: [x]}}}}\n"
        ),
        &["generators[0]", "no consumer named `x`", "line 5"],
    );
    assert_error(
        &format!("{head}generators:\n  - {{scale: {{from: 2, to: 5, at: 1s, gap: 1s}}}}\n"),
        &["generators[0]", "2 are declared"],
    );
    assert_error(
        "topics: {t: 0}\nduration: 1m\nconsumers: [{name: a}]\n",
        &["topics", "0 is out of range", "line 1"],
    );
    assert_error(
        "topics: {t: 4}\nduration: 1m\ngroup: {session_timeout: 1s, heartbeat_interval: 500ms}\n\
         consumers: [{name: a}]\n",
        &["group.session_timeout: the broker accepts 6s to 30m"],
    );
    assert_error(
        &format!("{head}events:\n  - {{at: 2m, crash: a}}\n"),
        &["`crash a` at 2m is after the end of the scenario (duration 1m)"],
    );
    assert_error(
        "topics: {t: 4}\nduration: 1m\ngroup: {protocol: classic, assignor: uniform}\nconsumers: [{name: a}]\n",
        &["`uniform` is a KIP-848 server-side assignor"],
    );
}

/// Records the generation of every JoinGroup answer librdkafka receives.
struct Generations(Arc<AtomicI32>);

impl ClientContext for Generations {
    fn log(&self, _: RDKafkaLogLevel, fac: &str, line: &str) {
        // Debug lines start with the thread: `[thrd:main]: JoinGroup ...`.
        let marker = "JoinGroup response: GenerationId ";
        let Some(rest) = line.find(marker).map(|i| &line[i + marker.len()..]) else {
            return;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let (true, Ok(generation)) = (fac == "JOINGROUP", digits.parse::<i32>()) {
            self.0.fetch_max(generation, Ordering::Relaxed);
        }
    }
}

impl ConsumerContext for Generations {}

/// A librdkafka group member polling on its own thread.
struct Member {
    partitions: Arc<Mutex<BTreeSet<i32>>>,
    generation: Arc<AtomicI32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const GROUP_SETTINGS: [(&str, &str); 3] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
    ("partition.assignment.strategy", "range"),
];

impl Member {
    fn join(bootstrap: &str, group: &str, topic: &str) -> Member {
        let generation = Arc::new(AtomicI32::new(0));
        let mut settings = config(bootstrap);
        for (key, value) in GROUP_SETTINGS {
            settings.set(key, value);
        }
        let consumer: BaseConsumer<Generations> = settings
            .set("group.id", group)
            .set("debug", "cgrp")
            .set("log_level", "7")
            .set_log_level(RDKafkaLogLevel::Debug)
            .create_with_context(Generations(generation.clone()))
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let partitions = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (partitions.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
                *seen.lock().expect("lock") = consumer
                    .assignment()
                    .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
            }
        });
        Member {
            partitions,
            generation,
            stop,
            thread: Some(thread),
        }
    }

    fn partitions(&self) -> BTreeSet<i32> {
        self.partitions.lock().expect("lock").clone()
    }

    fn generation(&self) -> i32 {
        self.generation.load(Ordering::Relaxed)
    }
}

impl Drop for Member {
    /// Closing the consumer sends LeaveGroup.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A member in its own kcat process, which can die without a goodbye.
struct KcatMember(Child);

impl KcatMember {
    fn join(bootstrap: &str, group: &str, topic: &str) -> KcatMember {
        let mut command = Command::new("kcat");
        command.args(["-q", "-b", bootstrap, "-G", group, topic]);
        for (key, value) in GROUP_SETTINGS {
            command.arg("-X").arg(format!("{key}={value}"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kcat runs (scripts/test installs it)");
        KcatMember(child)
    }

    /// SIGKILL: no LeaveGroup, no more heartbeats.
    fn crash(mut self) {
        self.0.kill().expect("kill kcat");
        let _ = self.0.wait();
    }
}

impl Drop for KcatMember {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sorted partition sets: what can be compared when member ids differ.
fn shapes(sets: impl IntoIterator<Item = BTreeSet<i32>>) -> Vec<Vec<i32>> {
    let mut shapes: Vec<Vec<i32>> = sets.into_iter().map(|s| s.into_iter().collect()).collect();
    shapes.sort();
    shapes
}

fn predicted(report: &Report, generation: i32) -> Vec<Vec<i32>> {
    let assignment = &report
        .generations
        .iter()
        .find(|g| g.generation == generation)
        .expect("the simulator has that generation")
        .assignment;
    shapes(assignment.values().map(|partitions| {
        partitions
            .iter()
            .map(|p| {
                p.rsplit_once('-')
                    .expect("topic-partition")
                    .1
                    .parse()
                    .expect("number")
            })
            .collect()
    }))
}

/// What the three librdkafka members hold, with what the kcat member must
/// hold (the rest) when it is alive.
fn observed(members: &[&Member], kcat_alive: bool) -> Vec<Vec<i32>> {
    let mut sets: Vec<BTreeSet<i32>> = members.iter().map(|m| m.partitions()).collect();
    if kcat_alive {
        let held: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        sets.push((0..6).filter(|p| !held.contains(p)).collect());
    }
    shapes(sets)
}

/// The truth check. Four librdkafka members (one of them a kcat process,
/// so that it can die without a goodbye) join, one leaves, one is killed.
/// Member ids differ between the two worlds, so what is compared is the
/// shape of each generation's assignment (the sorted partition sets) and
/// the generation numbers librdkafka receives in its JoinGroup answers.
/// These are deterministic here: all four join within the initial
/// rebalance delay, and each later step waits for the broker to settle.
#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_predicts_what_the_broker_does() {
    let report = play(
        "topics: {orders: 6}\n\
         group: {protocol: classic, assignor: range, session_timeout: 6s, heartbeat_interval: 500ms, \
         initial_rebalance_delay: 3s}\n\
         duration: 2m\n\
         consumers: [{name: a}, {name: b}, {name: c}, {name: d}]\n\
         events:\n  - {at: 0s, join: [a, b, c, d]}\n  - {at: 30s, leave: c}\n  - {at: 1m, crash: d}\n",
    );
    assert_eq!(report.summary.generations, 3);

    let (_broker, bootstrap) = start(|c| c.group_initial_rebalance_delay_ms = 3000).await;
    create_topic(&bootstrap, "orders", 6, &[]).await;
    let (a, b) = (
        Member::join(&bootstrap, "truth", "orders"),
        Member::join(&bootstrap, "truth", "orders"),
    );
    let c = Member::join(&bootstrap, "truth", "orders");
    let d = KcatMember::join(&bootstrap, "truth", "orders");

    // Each step: the broker reaches the assignment the simulator predicted,
    // in the generation it predicted.
    let steps = |members: &[&Member], kcat_alive: bool, generation: i32, what: &str| {
        let expected = predicted(&report, generation);
        eventually(LIMIT, what, || {
            observed(members, kcat_alive) == expected
                && members.iter().all(|m| m.generation() == generation)
        });
    };
    steps(&[&a, &b, &c], true, 1, "the first generation");
    drop(c);
    steps(&[&a, &b], true, 2, "the generation after c left");
    d.crash();
    steps(
        &[&a, &b],
        false,
        3,
        "the generation after d's session expired",
    );

    // And no further rebalance follows.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((a.generation(), b.generation()), (3, 3));
    assert_eq!(
        observed(&[&a, &b], false),
        predicted(&report, report.summary.generations)
    );
}
