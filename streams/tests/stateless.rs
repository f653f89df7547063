//! The stateless operators through the embedded broker, and two instances
//! of one application sharing its input partitions (cooperative-sticky).

mod common;

use actorlog_streams::{
    Bincode, Json, KafkaStreams, Predicate, Str, StreamsBuilder, StreamsConfig,
};
use common::{broker, eventually, produce, read_to_end, wait_for_commits, Record};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Word {
    text: String,
    line: u32,
}

const APP: &str = "stateless";

/// lines → words (flat_map) without empty lines (filter), keyed by word
/// through the topic `words`, counted by peek, split by branch into short words (JSON to `short`) and long ones
/// (bincode, upper-cased, to `long`), and both merged as plain text into `all`.
fn topology(peeked: Arc<AtomicUsize>) -> actorlog_streams::Topology {
    let mut b = StreamsBuilder::new(APP);
    let words = b
        .stream::<String, String>("lines", Str, Str)
        .filter(|_, line| !line.trim().is_empty())
        .flat_map(|key, line| {
            let line_no: u32 = key.parse().unwrap_or(0);
            line.split_whitespace()
                .map(|w| {
                    let word = Word {
                        text: w.to_string(),
                        line: line_no,
                    };
                    (w.to_string(), word)
                })
                .collect::<Vec<_>>()
        })
        .through("words", Str, Json)
        .peek(move |_, _| {
            peeked.fetch_add(1, Ordering::Relaxed);
        });
    let predicates: Vec<Predicate<String, Word>> = vec![Box::new(|_, w| w.text.len() <= 3)];
    let mut branches = words.branch(predicates).into_iter();
    let short = branches.next().expect("one branch per predicate");
    short.to("short", Str, Json);
    let long = words.filter(|_, w| w.text.len() > 3).map_values(|w| Word {
        text: w.text.to_uppercase(),
        ..w
    });
    long.to("long", Str, Bincode);
    short
        .merge(&long)
        .map(|k, w| (k, format!("{}@{}", w.text, w.line)))
        .to("all", Str, Str);
    b.build().expect("the topology is valid")
}

fn lines() -> Vec<Record> {
    (0..200)
        .map(|i| {
            let line = if i % 10 == 0 {
                "   ".to_string()
            } else {
                format!("the quick fox {i} jumps over lazy dogs")
            };
            Record::text(&i.to_string(), &line, 1_000 + i)
        })
        .collect()
}

/// The same topology over a list, as the reference.
fn reference(lines: &[Record]) -> (Vec<Word>, Vec<Word>, Vec<String>) {
    let (mut short, mut long, mut all) = (Vec::new(), Vec::new(), Vec::new());
    for r in lines {
        let key = String::from_utf8(r.key.clone()).unwrap();
        let line = String::from_utf8(r.value.clone()).unwrap();
        for w in line.split_whitespace() {
            let word = Word {
                text: w.to_string(),
                line: key.parse().unwrap(),
            };
            if w.len() <= 3 {
                all.push(format!("{}@{}", word.text, word.line));
                short.push(word);
            } else {
                let upper = Word {
                    text: w.to_uppercase(),
                    ..word
                };
                all.push(format!("{}@{}", upper.text, upper.line));
                long.push(upper);
            }
        }
    }
    short.sort();
    long.sort();
    all.sort();
    (short, long, all)
}

async fn start(bootstrap: &str, dir: &std::path::Path, peeked: Arc<AtomicUsize>) -> KafkaStreams {
    let config = StreamsConfig::new(bootstrap, dir).client_config("session.timeout.ms", "6000");
    topology(peeked).run(&config).await.expect("the app starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_the_partitions_and_every_operator_applies() {
    let (broker, bootstrap) = broker().await;
    for topic in ["lines", "words", "short", "long", "all"] {
        broker.create_topic(topic, 4).await.expect("a topic");
    }
    let state = tempfile::tempdir().expect("a temp dir");
    let peeked = Arc::new(AtomicUsize::new(0));

    let first = start(&bootstrap, &state.path().join("a"), Arc::clone(&peeked)).await;
    eventually(
        "the first instance holds all 8 partitions (4 of lines, 4 of words)",
        || first.assigned_partitions().len() == 8,
    )
    .await;
    let second = start(&bootstrap, &state.path().join("b"), Arc::clone(&peeked)).await;
    eventually("each instance holds 4 partitions", || {
        first.assigned_partitions().len() == 4 && second.assigned_partitions().len() == 4
    })
    .await;
    let mut owners = BTreeMap::new();
    for p in first.assigned_partitions() {
        owners.insert(p, "first");
    }
    for p in second.assigned_partitions() {
        assert!(
            owners.insert(p, "second").is_none(),
            "a partition has two owners"
        );
    }
    assert_eq!(owners.len(), 8);

    let input = lines();
    produce(&bootstrap, "lines", &input).await;
    wait_for_commits(&bootstrap, APP, "lines");
    wait_for_commits(&bootstrap, APP, "words");

    let (short, long, all) = reference(&input);
    let mut got_short: Vec<Word> = read_to_end(&bootstrap, "short")
        .iter()
        .map(|r| serde_json::from_slice(&r.value).expect("json"))
        .collect();
    got_short.sort();
    let mut got_long: Vec<Word> = read_to_end(&bootstrap, "long")
        .iter()
        .map(|r| bincode::deserialize(&r.value).expect("bincode"))
        .collect();
    got_long.sort();
    let mut got_all: Vec<String> = read_to_end(&bootstrap, "all")
        .iter()
        .map(|r| String::from_utf8(r.value.clone()).expect("utf-8"))
        .collect();
    got_all.sort();
    assert_eq!(got_short, short);
    assert_eq!(got_long, long);
    assert_eq!(got_all, all);
    assert_eq!(peeked.load(Ordering::Relaxed), short.len() + long.len());

    second
        .close()
        .await
        .expect("the second instance closes cleanly");
    eventually("the first instance takes all 8 partitions back", || {
        first.assigned_partitions().len() == 8
    })
    .await;
    first
        .close()
        .await
        .expect("the first instance closes cleanly");
    broker.shutdown().await.expect("the broker stops");
}
