//! Small runs of the crash-test and load-test programs (`examples/`), so
//! that their plumbing and checkers are tested with the suite; the real
//! runs and their figures are in README.md and docs/benchmarks.md.

#![allow(dead_code)] // the programs' modules hold more than these runs use

#[path = "../examples/chaos/broker.rs"]
mod broker;
#[path = "../examples/chaos/crash.rs"]
mod crash;
#[path = "../examples/chaos/load.rs"]
mod load;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crash_test_finds_nothing_wrong_after_two_kills() {
    let options = crash::Options {
        broker: env!("CARGO_BIN_EXE_actorlog").into(),
        kills: 2,
        seed: 7,
        producers: 2,
        partitions: 2,
        max_uptime: Duration::from_millis(1500),
        time_limit: Duration::from_secs(600),
    };
    let summary = crash::run(&options).await.expect("the crash test runs");
    summary.print();
    assert_eq!(summary.kills, 2);
    assert!(summary.acknowledged > 0, "nothing was acknowledged");
    assert!(summary.violations.is_empty(), "{:#?}", summary.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_test_reads_back_what_20_connections_wrote() {
    load::raise_fd_limit(20).expect("open file limit");
    let options = load::Options {
        broker: env!("CARGO_BIN_EXE_actorlog").into(),
        connections: 20,
        fetch_every: 2,
        partitions: 4,
        duration: Duration::from_secs(3),
        records_per_batch: 5,
        value_bytes: 50,
        produce_pause: Duration::from_millis(10),
    };
    let summary = load::run(&options).await.expect("the load test runs");
    summary.print(options.duration);
    assert_eq!(summary.connections, 20);
    assert!(summary.acknowledged_records > 0, "nothing was acknowledged");
    assert!(summary.passed(), "{:#?}", summary.unreadable);
}
