//! Aggregations through a repartition topic into sled stores with
//! changelogs: results, interactive queries while running, and a restart
//! with a wiped state directory restoring the same counts.

mod common;

use actorlog_streams::{
    Guarantee, Json, KafkaStreams, StoreRef, Str, StreamsBuilder, StreamsConfig, I64,
};
use common::{broker, eventually, produce, read_to_end, wait_for_commits, Record};
use std::collections::BTreeMap;
use std::path::Path;

const APP: &str = "stateful";

struct Stores {
    counts: StoreRef<String, i64>,
    longest: StoreRef<String, String>,
    lengths: StoreRef<String, Vec<usize>>,
}

/// Words of each line (key = line number) counted by word (group_by, so
/// through `stateful-counts-repartition`), the longest word per line
/// (reduce; flat_map may change keys, so repartitioned too) and the lengths seen per first letter
/// (aggregate after a map, so repartitioned).
fn topology() -> (actorlog_streams::Topology, Stores) {
    let mut b = StreamsBuilder::new(APP);
    let lines = b.stream::<String, String>("text", Str, Str);
    let words = lines.flat_map(|line, text| {
        text.split_whitespace()
            .map(|w| (line.clone(), w.to_lowercase()))
            .collect::<Vec<_>>()
    });
    let counts = words.group_by(|_, w| w.clone(), Str, Str).count("counts");
    counts.to_stream().to("word-counts", Str, I64);
    let longest = words
        .group_by_key(Str, Str)
        .reduce(|a, b| if b.len() > a.len() { b } else { a }, "longest");
    let lengths = words
        .map(|_, w| {
            (
                w.chars().next().map(String::from).unwrap_or_default(),
                w.len(),
            )
        })
        .group_by_key(Str, Json)
        .aggregate(
            Vec::new,
            |mut seen: Vec<usize>, len| {
                seen.push(len);
                seen
            },
            "lengths",
            Json,
        );
    let stores = Stores {
        counts: counts.queryable(),
        longest: longest.queryable(),
        lengths: lengths.queryable(),
    };
    (b.build().expect("a valid topology"), stores)
}

fn text(from: usize, to: usize) -> Vec<Record> {
    let words = ["apple", "banana", "cherry", "avocado", "blueberry", "kiwi"];
    (from..to)
        .map(|i| {
            let line: Vec<&str> = (0..(i % 4 + 1))
                .map(|j| words[(i * 7 + j * 3) % words.len()])
                .collect();
            Record::text(&format!("line-{}", i % 13), &line.join(" "), i as i64)
        })
        .collect()
}

fn reference_counts(records: &[Record]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for r in records {
        for w in String::from_utf8_lossy(&r.value).split_whitespace() {
            *counts.entry(w.to_lowercase()).or_insert(0) += 1;
        }
    }
    counts
}

async fn start(bootstrap: &str, dir: &Path, guarantee: Guarantee) -> (KafkaStreams, Stores) {
    let (topology, stores) = topology();
    let config = StreamsConfig::new(bootstrap, dir).guarantee(guarantee);
    (topology.run(&config).await.expect("the app starts"), stores)
}

/// The latest count per word in the output topic.
fn latest_output(bootstrap: &str) -> BTreeMap<String, i64> {
    read_to_end(bootstrap, "word-counts")
        .into_iter()
        .map(|r| {
            let value: [u8; 8] = r.value.as_slice().try_into().expect("8 bytes");
            (
                String::from_utf8(r.key).expect("utf-8"),
                i64::from_be_bytes(value),
            )
        })
        .collect()
}

async fn counts_survive_a_restart_with_a_wiped_store(guarantee: Guarantee) {
    let (broker, bootstrap) = broker().await;
    broker.create_topic("text", 3).await.expect("a topic");
    broker
        .create_topic("word-counts", 3)
        .await
        .expect("a topic");
    let state = tempfile::tempdir().expect("a temp dir");

    let first_part = text(0, 150);
    produce(&bootstrap, "text", &first_part).await;
    let (app, stores) = start(&bootstrap, state.path(), guarantee).await;
    wait_for_commits(&bootstrap, APP, "text");
    wait_for_commits(&bootstrap, APP, "stateful-counts-repartition");
    wait_for_commits(&bootstrap, APP, "stateful-longest-repartition");
    wait_for_commits(&bootstrap, APP, "stateful-lengths-repartition");
    let expected = reference_counts(&first_part);
    assert_eq!(latest_output(&bootstrap), expected);
    eventually("the store answers every word's count", || {
        expected
            .iter()
            .all(|(w, n)| app.get(&stores.counts, w).ok().flatten() == Some(*n))
    })
    .await;
    let range = app
        .range(&stores.counts, &"a".to_string(), &"b".to_string())
        .expect("a range query");
    let in_range: Vec<(String, i64)> = expected
        .iter()
        .filter(|(w, _)| w.as_str() >= "a" && w.as_str() <= "b")
        .map(|(w, n)| (w.clone(), *n))
        .collect();
    assert_eq!(range, in_range);
    assert!(app
        .get(&stores.counts, &"durian".to_string())
        .expect("a query")
        .is_none());
    let longest_line0 = app
        .get(&stores.longest, &"line-0".to_string())
        .expect("a query")
        .expect("line-0 has words");
    assert!(longest_line0.len() >= 4);
    let a_lengths = app
        .get(&stores.lengths, &"a".to_string())
        .expect("a query")
        .expect("words start with a");
    assert!(a_lengths.iter().all(|n| *n == 5 || *n == 7));
    app.close().await.expect("a clean close");

    std::fs::remove_dir_all(state.path()).expect("the state is wiped");
    let second_part = text(150, 300);
    produce(&bootstrap, "text", &second_part).await;
    let (app, stores) = start(&bootstrap, state.path(), guarantee).await;
    wait_for_commits(&bootstrap, APP, "text");
    wait_for_commits(&bootstrap, APP, "stateful-counts-repartition");
    let all: Vec<Record> = first_part.into_iter().chain(second_part).collect();
    let expected = reference_counts(&all);
    assert_eq!(latest_output(&bootstrap), expected);
    for (word, n) in &expected {
        assert_eq!(
            app.get(&stores.counts, word).expect("a query"),
            Some(*n),
            "{word}"
        );
    }
    app.close().await.expect("a clean close");
    broker.shutdown().await.expect("the broker stops");
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_survive_a_restart_with_a_wiped_store_at_least_once() {
    counts_survive_a_restart_with_a_wiped_store(Guarantee::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_survive_a_restart_with_a_wiped_store_exactly_once() {
    counts_survive_a_restart_with_a_wiped_store(Guarantee::ExactlyOnceV2).await;
}
