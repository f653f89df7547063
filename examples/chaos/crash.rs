//! The crash test: idempotent `acks=all` producers and a group consumer that
//! commits offsets run while the broker is SIGKILLed at seeded random
//! moments and restarted. After every restart and at the end it checks:
//!
//! - every acknowledged record is in the log at its acknowledged offset;
//! - every record served is whole (librdkafka checks each batch's CRC),
//!   parses, is served once, and is still there, unchanged, later on;
//! - each producer's records of a partition are in the order it sent them;
//! - a committed offset is never lost or moved backwards.

use super::broker::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOPIC: &str = "crash-test";
const GROUP: &str = "crash-test-group";
/// Deliveries a producer waits for at once.
const IN_FLIGHT: usize = 64;
/// Between two sends of a producer: a few hundred records per second each
/// keeps the log, and the check after every restart, small.
const SEND_PAUSE: Duration = Duration::from_millis(2);

#[derive(Debug, Clone)]
pub struct Options {
    pub broker: PathBuf,
    pub kills: u32,
    pub seed: u64,
    pub producers: usize,
    pub partitions: i32,
    /// The broker runs between 200 ms and this long before each kill.
    pub max_uptime: Duration,
    /// The whole run stops after this long, however many kills are done.
    pub time_limit: Duration,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub kills: u32,
    pub acknowledged: usize,
    pub produce_errors: u64,
    pub consumed: usize,
    pub commits: u64,
    pub commit_errors: u64,
    pub records_in_log: usize,
    /// Largest broker RSS seen just before a kill, in kB.
    pub peak_rss_kb: u64,
    pub elapsed: Duration,
    pub violations: Vec<String>,
}

impl Summary {
    pub fn print(&self) {
        println!("kills: {}", self.kills);
        println!("acknowledged records: {}", self.acknowledged);
        println!("records in the log at the end: {}", self.records_in_log);
        println!("produce errors (unacknowledged): {}", self.produce_errors);
        println!("records consumed by the group: {}", self.consumed);
        println!(
            "offset commits: {} acknowledged, {} failed",
            self.commits, self.commit_errors
        );
        println!(
            "broker peak RSS before a kill: {} MB",
            self.peak_rss_kb / 1024
        );
        println!("elapsed: {:.1} s", self.elapsed.as_secs_f64());
        println!("violations: {}", self.violations.len());
        for violation in self.violations.iter().take(50) {
            println!("  {violation}");
        }
    }
}

/// What the clients were told, to check the log against.
#[derive(Default)]
struct Ledger {
    /// (partition, offset) → value of every acknowledged record.
    acknowledged: BTreeMap<(i32, i64), String>,
    /// (partition, offset) → value of every record the group consumed.
    consumed: BTreeMap<(i32, i64), String>,
    /// Highest acknowledged commit per partition.
    committed: BTreeMap<i32, i64>,
    violations: Vec<String>,
}

struct Shared {
    ledger: Mutex<Ledger>,
    stop: AtomicBool,
    produce_errors: AtomicU64,
    commits: AtomicU64,
    commit_errors: AtomicU64,
}

impl Shared {
    fn violation(&self, what: String) {
        self.ledger.lock().unwrap().violations.push(what);
    }
}

/// xorshift64*: a seeded sequence of kill moments, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A number in `low..high` (`low` if the range is empty).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        low + x % high.saturating_sub(low).max(1)
    }
}

fn config(partitions: i32) -> String {
    format!(
        "auto_create_topics: true\n\
         num_partitions: {partitions}\n\
         group_initial_rebalance_delay_ms: 0\n"
    )
}

pub async fn run(options: &Options) -> Result<Summary, String> {
    let started = Instant::now();
    let mut broker = Broker::start(&options.broker, &config(options.partitions))?;
    let bootstrap = broker.bootstrap();
    let shared = Arc::new(Shared {
        ledger: Mutex::new(Ledger::default()),
        stop: AtomicBool::new(false),
        produce_errors: AtomicU64::new(0),
        commits: AtomicU64::new(0),
        commit_errors: AtomicU64::new(0),
    });
    let producers: Vec<_> = (0..options.producers)
        .map(|id| tokio::spawn(produce(bootstrap.clone(), id, shared.clone())))
        .collect();
    let consumer = {
        let (bootstrap, shared) = (bootstrap.clone(), shared.clone());
        std::thread::spawn(move || consume(&bootstrap, &shared))
    };
    let mut rng = Rng::new(options.seed);
    let mut summary = Summary::default();
    let max_uptime = options.max_uptime.as_millis() as u64;
    while summary.kills < options.kills && started.elapsed() < options.time_limit {
        tokio::time::sleep(Duration::from_millis(rng.between(200, max_uptime))).await;
        if !broker.is_running() {
            shared.violation(format!(
                "the broker died on its own before kill {}",
                summary.kills + 1
            ));
        }
        summary.peak_rss_kb = summary.peak_rss_kb.max(broker.rss_kb().unwrap_or(0));
        broker.kill9();
        summary.kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.between(0, 300))).await;
        broker.restart()?;
        check_commits(&bootstrap, options.partitions, &shared).await;
        check_log(&bootstrap, options.partitions, &shared).await;
    }
    shared.stop.store(true, Ordering::SeqCst);
    for producer in producers {
        producer.await.map_err(|e| format!("producer task: {e}"))?;
    }
    let consumer_stats = consumer
        .join()
        .map_err(|_| "the consumer panicked".to_string())?;
    let records_in_log = check_log(&bootstrap, options.partitions, &shared).await;
    for line in broker.panics() {
        shared.violation(format!("broker log: {line}"));
    }
    let ledger = shared.ledger.lock().unwrap();
    summary.acknowledged = ledger.acknowledged.len();
    summary.consumed = consumer_stats;
    summary.records_in_log = records_in_log;
    summary.produce_errors = shared.produce_errors.load(Ordering::SeqCst);
    summary.commits = shared.commits.load(Ordering::SeqCst);
    summary.commit_errors = shared.commit_errors.load(Ordering::SeqCst);
    summary.violations = ledger.violations.clone();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .set("log_level", "0");
    config
}

/// Sends `p<id>-<seq>` records with keys spread over the partitions until
/// told to stop, then waits for the deliveries still outstanding.
async fn produce(bootstrap: String, id: usize, shared: Arc<Shared>) {
    let producer: FutureProducer = client(&bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("retry.backoff.ms", "20")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer config");
    let mut pending = futures_util::stream::FuturesUnordered::new();
    let mut seq = 0u64;
    loop {
        use futures_util::StreamExt;
        let stopping = shared.stop.load(Ordering::SeqCst);
        if stopping && pending.is_empty() {
            break;
        }
        if !stopping && pending.len() < IN_FLIGHT {
            let value = format!("p{id}-{seq}");
            let key = format!("k{}", seq % 17);
            seq += 1;
            let send = producer.send_result(FutureRecord::to(TOPIC).key(&key).payload(&value));
            match send {
                Ok(delivery) => pending.push(async move { (value, delivery.await) }),
                Err(_) => {
                    shared.produce_errors.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            if pending.len() < IN_FLIGHT {
                tokio::time::sleep(SEND_PAUSE).await;
                continue;
            }
        }
        match pending.next().await {
            Some((value, Ok(Ok(delivery)))) => {
                let mut ledger = shared.ledger.lock().unwrap();
                let key = (delivery.partition, delivery.offset);
                if let Some(old) = ledger.acknowledged.insert(key, value.clone()) {
                    ledger.violations.push(format!(
                        "partition {} offset {} acknowledged for {old} and for {value}",
                        key.0, key.1
                    ));
                }
            }
            Some(_) => {
                shared.produce_errors.fetch_add(1, Ordering::SeqCst);
            }
            None => {}
        }
    }
}

/// The group member: consumes and commits its position after each poll
/// round, until told to stop. Returns how many records it consumed.
fn consume(bootstrap: &str, shared: &Shared) -> usize {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("check.crcs", "true")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("consumer config");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut consumed = 0;
    let mut last_commit = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                consumed += 1;
                let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                let key = (message.partition(), message.offset());
                let mut ledger = shared.ledger.lock().unwrap();
                if let Some(old) = ledger.consumed.insert(key, value.to_string()) {
                    if old != value {
                        ledger.violations.push(format!(
                            "partition {} offset {} served as {old}, later as {value}",
                            key.0, key.1
                        ));
                    }
                }
            }
            Some(Err(e)) => note_consumer_error(shared, &e),
            None => {}
        }
        if last_commit.elapsed() > Duration::from_millis(200) {
            last_commit = Instant::now();
            commit(&consumer, shared);
        }
    }
    consumed
}

/// Errors that only say the broker went away are expected; a message that
/// fails its CRC or does not parse is a torn batch served.
fn note_consumer_error(shared: &Shared, e: &rdkafka::error::KafkaError) {
    use rdkafka::types::RDKafkaErrorCode;
    if let Some(
        RDKafkaErrorCode::BadMessage
        | RDKafkaErrorCode::BadCompression
        | RDKafkaErrorCode::InvalidMessage,
    ) = e.rdkafka_error_code()
    {
        shared.violation(format!("the group consumer got a corrupt batch: {e}"));
    }
}

fn commit(consumer: &BaseConsumer, shared: &Shared) {
    let Ok(position) = consumer.position() else {
        return;
    };
    let offsets: Vec<(i32, i64)> = position
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect();
    if offsets.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for &(partition, offset) in &offsets {
        let _ = list.add_partition_offset(TOPIC, partition, Offset::Offset(offset));
    }
    if consumer.commit(&list, CommitMode::Sync).is_err() {
        shared.commit_errors.fetch_add(1, Ordering::SeqCst);
        return;
    }
    shared.commits.fetch_add(1, Ordering::SeqCst);
    let mut ledger = shared.ledger.lock().unwrap();
    for (partition, offset) in offsets {
        let previous = ledger.committed.get(&partition).copied().unwrap_or(0);
        if offset < previous {
            // The group resumed below a commit it had made: the broker lost
            // or moved back the commit.
            ledger.violations.push(format!(
                "partition {partition}: the group commits {offset} after {previous} was acknowledged"
            ));
        }
        ledger.committed.insert(partition, offset.max(previous));
    }
}

/// After a restart, the committed offsets must be at least the highest
/// ones acknowledged before it.
async fn check_commits(bootstrap: &str, partitions: i32, shared: &Shared) {
    let expected = shared.ledger.lock().unwrap().committed.clone();
    let bootstrap = bootstrap.to_string();
    let fetched = tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = client(&bootstrap)
            .set("group.id", GROUP)
            .create()
            .expect("reader config");
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(TOPIC, partition);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match reader.committed_offsets(list.clone(), Duration::from_secs(5)) {
                Ok(found) => return Ok(found),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    })
    .await
    .expect("commit check task");
    let found = match fetched {
        Ok(found) => found,
        Err(e) => return shared.violation(format!("cannot fetch committed offsets: {e}")),
    };
    for (partition, want) in expected {
        let got = found
            .find_partition(TOPIC, partition)
            .map(|e| e.offset())
            .unwrap_or(Offset::Invalid);
        let ok = matches!(got, Offset::Offset(o) if o >= want);
        if !ok {
            shared.violation(format!(
                "partition {partition}: committed offset {got:?} after a restart, {want} was acknowledged"
            ));
        }
    }
}

/// Reads every partition from the start and checks it against the ledger.
/// Returns how many records the log holds.
async fn check_log(bootstrap: &str, partitions: i32, shared: &Arc<Shared>) -> usize {
    let bootstrap = bootstrap.to_string();
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || match read_log(&bootstrap, partitions) {
        Ok((log, corrupt)) => {
            let mut ledger = shared.ledger.lock().unwrap();
            let mut found = verify(&ledger, &log);
            found.extend(corrupt);
            ledger.violations.extend(found);
            log.records.len()
        }
        Err(e) => {
            shared.violation(format!("cannot read the log back: {e}"));
            0
        }
    })
    .await
    .expect("log check task")
}

/// Every record of the topic below the high watermarks read first.
#[derive(Default)]
struct LogContents {
    records: BTreeMap<(i32, i64), String>,
    /// Partition → high watermark.
    ends: HashMap<i32, i64>,
}

impl LogContents {
    fn end(&self, partition: i32) -> i64 {
        self.ends.get(&partition).copied().unwrap_or(0)
    }
}

/// The log, with the corrupt batches met on the way.
fn read_log(bootstrap: &str, partitions: i32) -> Result<(LogContents, Vec<String>), String> {
    let reader: BaseConsumer = client(bootstrap)
        .set("group.id", "crash-test-reader")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let mut log = LogContents::default();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        let (_, high) = reader
            .fetch_watermarks(TOPIC, partition, Duration::from_secs(10))
            .map_err(|e| format!("watermarks of partition {partition}: {e}"))?;
        log.ends.insert(partition, high);
        if high > 0 {
            let _ = list.add_partition_offset(TOPIC, partition, Offset::Beginning);
        }
    }
    let mut corrupt = Vec::new();
    let reading = list.count();
    if reading == 0 {
        return Ok((log, corrupt));
    }
    reader.assign(&list).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done = HashMap::new();
    while done.len() < reading {
        if Instant::now() > deadline {
            let read = log.records.len();
            return Err(format!("read {read} records, then no more within a minute"));
        }
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let (partition, offset) = (message.partition(), message.offset());
                let end = log.end(partition);
                if offset < end {
                    let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                    log.records.insert((partition, offset), value.into_owned());
                }
                if offset + 1 >= end {
                    done.insert(partition, true);
                }
            }
            Some(Err(e)) => {
                if matches!(
                    e.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::BadMessage)
                ) {
                    corrupt.push(format!("reading the log: a corrupt batch: {e}"));
                }
            }
            None => {}
        }
    }
    Ok((log, corrupt))
}

/// Checks the log read back against what clients were told.
fn verify(ledger: &Ledger, log: &LogContents) -> Vec<String> {
    let mut violations = Vec::new();
    for (&(partition, offset), value) in &ledger.acknowledged {
        if offset >= log.end(partition) {
            // Acknowledged after the watermarks were read.
            continue;
        }
        match log.records.get(&(partition, offset)) {
            Some(found) if found == value => {}
            Some(found) => violations.push(format!(
                "acknowledged {value} at partition {partition} offset {offset}, the log has {found}"
            )),
            None => violations.push(format!(
                "acknowledged {value} at partition {partition} offset {offset} is missing"
            )),
        }
    }
    for (&(partition, offset), value) in &ledger.consumed {
        match log.records.get(&(partition, offset)) {
            Some(found) if found != value => violations.push(format!(
                "partition {partition} offset {offset} was served as {value}, the log now has {found}"
            )),
            None if offset < log.end(partition) => violations.push(format!(
                "partition {partition} offset {offset} was served as {value} and is gone"
            )),
            _ => {}
        }
    }
    // (producer, partition) → last sequence seen; values must be unique.
    let mut order: HashMap<(String, i32), u64> = HashMap::new();
    let mut seen: HashMap<&str, (i32, i64)> = HashMap::new();
    for (&(partition, offset), value) in &log.records {
        let Some((producer, seq)) = parse(value) else {
            violations.push(format!(
                "partition {partition} offset {offset} holds {value:?}, which no producer sent"
            ));
            continue;
        };
        if let Some(first) = seen.insert(value, (partition, offset)) {
            violations.push(format!(
                "{value} is in the log twice: at {first:?} and at ({partition}, {offset})"
            ));
        }
        if let Some(previous) = order.insert((producer.to_string(), partition), seq) {
            if seq < previous {
                violations.push(format!(
                    "partition {partition} offset {offset}: {value} comes after sequence {previous}"
                ));
            }
        }
    }
    violations
}

/// `p<producer>-<seq>` → (producer, seq).
fn parse(value: &str) -> Option<(&str, u64)> {
    let (producer, seq) = value.strip_prefix('p')?.split_once('-')?;
    producer.parse::<u32>().ok()?;
    Some((producer, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(acknowledged: &[(i32, i64, &str)]) -> Ledger {
        Ledger {
            acknowledged: acknowledged
                .iter()
                .map(|&(p, o, v)| ((p, o), v.to_string()))
                .collect(),
            ..Ledger::default()
        }
    }

    fn log(records: &[(i32, i64, &str)]) -> LogContents {
        let mut log = LogContents::default();
        for &(p, o, v) in records {
            log.records.insert((p, o), v.to_string());
            let end = log.ends.entry(p).or_default();
            *end = (*end).max(o + 1);
        }
        log
    }

    #[test]
    fn a_log_with_every_acknowledged_record_passes() {
        let ledger = ledger(&[(0, 0, "p0-0"), (0, 1, "p0-1"), (1, 0, "p1-0")]);
        let log = log(&[
            (0, 0, "p0-0"),
            (0, 1, "p0-1"),
            (0, 2, "p0-2"),
            (1, 0, "p1-0"),
        ]);
        assert_eq!(verify(&ledger, &log), Vec::<String>::new());
    }

    #[test]
    fn lost_moved_duplicated_reordered_and_foreign_records_are_caught() {
        let ledger = ledger(&[(0, 0, "p0-0"), (0, 1, "p0-1"), (0, 2, "p0-2")]);
        let log = log(&[
            (0, 0, "p0-1"),
            (0, 2, "p0-2"),
            (0, 3, "p0-2"),
            (0, 4, "junk"),
            (0, 5, "p0-0"),
        ]);
        let found = verify(&ledger, &log);
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found.iter().any(|v| v.contains("the log has p0-1")));
        assert!(found.iter().any(|v| v.contains("is missing")));
        assert!(found.iter().any(|v| v.contains("twice")));
        assert!(found.iter().any(|v| v.contains("comes after")));
        assert!(found.iter().any(|v| v.contains("no producer sent")));
    }

    #[test]
    fn records_acknowledged_past_the_read_are_not_judged() {
        let ledger = ledger(&[(0, 0, "p0-0"), (0, 5, "p0-5")]);
        assert!(verify(&ledger, &log(&[(0, 0, "p0-0")])).is_empty());
    }

    #[test]
    fn the_kill_moments_follow_the_seed() {
        let moments = |seed| {
            let mut rng = Rng::new(seed);
            (0..5).map(|_| rng.between(200, 2000)).collect::<Vec<_>>()
        };
        assert_eq!(moments(7), moments(7));
        assert_ne!(moments(7), moments(8));
        assert!(moments(7).iter().all(|m| (200..2000).contains(m)));
    }
}
