//! Hopping windows against a reference, a left join with a global table
//! (whose store is also queried), and tumbling windows suppressed until
//! they close.

mod common;

use actorlog_streams::{Str, StreamsBuilder, StreamsConfig, TimeWindows, WindowedSerde, I64};
use common::{broker, produce, read_to_end, wait_for_commits, Record};
use std::collections::BTreeMap;
use std::time::Duration;

const APP: &str = "clicks";
const SIZE: i64 = 10_000;
const ADVANCE: i64 = 5_000;

/// The final count per user and window start: each click at `ts` counts in
/// the windows starting at multiples of ADVANCE in `(ts - SIZE, ts]`, none
/// before 0.
fn reference(clicks: &[Record]) -> BTreeMap<(String, i64), i64> {
    let mut counts = BTreeMap::new();
    for r in clicks {
        let user = String::from_utf8(r.key.clone()).unwrap();
        let mut start = r.timestamp - r.timestamp.rem_euclid(ADVANCE);
        while start > r.timestamp - SIZE && start >= 0 {
            *counts.entry((user.clone(), start)).or_insert(0) += 1;
            start -= ADVANCE;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn hopping_windows_and_a_left_join_with_a_global_table() {
    let (broker, bootstrap) = broker().await;
    for (topic, partitions) in [
        ("clicks", 2),
        ("users", 2),
        ("per-window", 2),
        ("labelled", 2),
    ] {
        broker
            .create_topic(topic, partitions)
            .await
            .expect("a topic");
    }
    let users: Vec<Record> = (0..4)
        .map(|i| Record::text(&format!("user-{i}"), &format!("name-{i}"), 0))
        .collect();
    produce(&bootstrap, "users", &users).await;
    // From 1 ms: librdkafka stamps a record of timestamp 0 with the current time.
    let clicks: Vec<Record> = (0..120)
        .map(|i| {
            Record::text(
                &format!("user-{}", i % 5),
                &format!("click-{i}"),
                1 + i * 700,
            )
        })
        .collect();
    produce(&bootstrap, "clicks", &clicks).await;

    let mut b = StreamsBuilder::new(APP);
    let names = b.global_table::<String, String>("users", Str, Str, "users");
    let stream = b.stream::<String, String>("clicks", Str, Str);
    stream
        .left_join(&names, |click, name| {
            format!("{click} by {}", name.map_or("?", String::as_str))
        })
        .to("labelled", Str, Str);
    let windows = stream
        .group_by_key(Str, Str)
        .window(
            TimeWindows::hopping(
                Duration::from_millis(SIZE as u64),
                Duration::from_millis(ADVANCE as u64),
            )
            .grace(Duration::from_secs(3600)),
        )
        .count("per-window");
    windows
        .to_stream()
        .to("per-window", WindowedSerde(Str), I64);
    let per_window = windows.queryable();
    let user_names = names.queryable();
    let state = tempfile::tempdir().expect("a temp dir");
    let app = b
        .build()
        .expect("a valid topology")
        .run(&StreamsConfig::new(&bootstrap, state.path()))
        .await
        .expect("the app starts");
    wait_for_commits(&bootstrap, APP, "clicks");

    let expected = reference(&clicks);
    let mut latest = BTreeMap::new();
    for r in read_to_end(&bootstrap, "per-window") {
        let split = r.key.len() - 16;
        let user = String::from_utf8(r.key[..split].to_vec()).expect("utf-8");
        let start = i64::from_be_bytes(r.key[split..split + 8].try_into().expect("8 bytes"));
        let count = i64::from_be_bytes(r.value.as_slice().try_into().expect("8 bytes"));
        latest.insert((user, start), count);
    }
    assert_eq!(latest, expected);
    let user0: Vec<(i64, i64)> = app
        .fetch_windows(&per_window, &"user-0".to_string(), 0, i64::MAX)
        .expect("a window query")
        .into_iter()
        .map(|(w, n)| {
            assert_eq!(w.end - w.start, SIZE);
            (w.start, n)
        })
        .collect();
    let expected0: Vec<(i64, i64)> = expected
        .iter()
        .filter(|((u, _), _)| u == "user-0")
        .map(|((_, s), n)| (*s, *n))
        .collect();
    assert_eq!(user0, expected0);

    let mut labelled: Vec<String> = read_to_end(&bootstrap, "labelled")
        .into_iter()
        .map(|r| String::from_utf8(r.value).expect("utf-8"))
        .collect();
    labelled.sort();
    let mut expected_labels: Vec<String> = (0..120)
        .map(|i| match i % 5 {
            4 => format!("click-{i} by ?"),
            u => format!("click-{i} by name-{u}"),
        })
        .collect();
    expected_labels.sort();
    assert_eq!(labelled, expected_labels);
    assert_eq!(
        app.get(&user_names, &"user-2".to_string())
            .expect("a query"),
        Some("name-2".to_string())
    );
    app.close().await.expect("a clean close");
    broker.shutdown().await.expect("the broker stops");
}

/// Taps on one partition, every 500 ms for three users from `T0`, with one late tap
/// (inside the grace period) and one too late: each closed window's count
/// comes out once, the still open last window not at all.
/// The first tap's time (a timestamp of 0 means "now" to the producer).
const T0: i64 = 1_000_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn suppressed_windows_emit_each_final_count_once() {
    let (broker, bootstrap) = broker().await;
    broker.create_topic("taps", 1).await.expect("a topic");
    broker.create_topic("final-taps", 1).await.expect("a topic");
    let mut taps: Vec<Record> = (0..90)
        .map(|i| Record::text(&format!("u{}", i % 3), "tap", T0 + i * 500))
        .collect();
    // After 41 s: window [30 s, 40 s) closes at 42 s, so this one counts...
    taps.insert(83, Record::text("u0", "late", T0 + 39_000));
    // ...and after 43 s this one is dropped.
    taps.insert(88, Record::text("u1", "too late", T0 + 35_000));
    produce(&bootstrap, "taps", &taps).await;

    let mut b = StreamsBuilder::new("taps");
    b.stream::<String, String>("taps", Str, Str)
        .group_by_key(Str, Str)
        .window(TimeWindows::tumbling(Duration::from_secs(10)).grace(Duration::from_secs(2)))
        .count("taps-per-window")
        .suppress_until_window_closes("taps-suppressed")
        .to("final-taps", WindowedSerde(Str), I64);
    let state = tempfile::tempdir().expect("a temp dir");
    let app = b
        .build()
        .expect("a valid topology")
        .run(&StreamsConfig::new(&bootstrap, state.path()))
        .await
        .expect("the app starts");
    wait_for_commits(&bootstrap, "taps", "taps");

    let mut expected = BTreeMap::new();
    for r in taps.iter().filter(|r| r.value != b"too late") {
        let start = r.timestamp - r.timestamp % 10_000;
        if start + 10_000 + 2_000 <= T0 + 44_500 {
            let user = String::from_utf8(r.key.clone()).unwrap();
            *expected.entry((user, start)).or_insert(0) += 1;
        }
    }
    let finals: Vec<((String, i64), i64)> = read_to_end(&bootstrap, "final-taps")
        .into_iter()
        .map(|r| {
            let split = r.key.len() - 16;
            let user = String::from_utf8(r.key[..split].to_vec()).expect("utf-8");
            let start = i64::from_be_bytes(r.key[split..split + 8].try_into().expect("8 bytes"));
            let count = i64::from_be_bytes(r.value.as_slice().try_into().expect("8 bytes"));
            ((user, start), count)
        })
        .collect();
    let once: BTreeMap<(String, i64), i64> = finals.iter().cloned().collect();
    assert_eq!(
        finals.len(),
        once.len(),
        "a window came out twice: {finals:?}"
    );
    assert_eq!(once, expected);
    app.close().await.expect("a clean close");
    broker.shutdown().await.expect("the broker stops");
}
