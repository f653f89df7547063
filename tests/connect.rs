//! `actorlog connect` as a process against the real broker process: a file
//! source into a topic and a file sink out of it, SIGKILL mid-stream and a
//! restart (every line exactly once in the topic, at least once in the
//! file), rotation and truncation, a missing file failing only its
//! connector, dead letters, the REST API with `actorlog connect status`,
//! two workers sharing a sink and taking over a dead one's partitions, two
//! workers sharing a source and taking it over from a dead one, and
//! the PostgreSQL sink and CDC source against a PostgreSQL server of the
//! test's own (with logical decoding on).

mod broker_process;

use broker_process::{actorlog, free_port, BrokerProcess};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a test waits for something before it fails.
const PATIENCE: Duration = Duration::from_secs(90);

/// An `actorlog connect` process on a config in a temporary directory,
/// killed when dropped.
struct Connect {
    child: Option<Child>,
    config: PathBuf,
    rest: u16,
}

impl Connect {
    /// Writes `connectors` (YAML list items) under a config naming the
    /// broker and a free REST port, starts the worker and waits for its
    /// REST API.
    fn start(dir: &Path, bootstrap: &str, connectors: &str) -> Connect {
        let mut connect = Connect {
            child: None,
            config: dir.join("connect.yaml"),
            rest: free_port(),
        };
        connect.configure(bootstrap, connectors);
        connect.spawn();
        connect
    }

    /// Writes the config the next spawn reads.
    fn configure(&self, bootstrap: &str, connectors: &str) {
        // A short session: a killed worker's sink leaves the group soon.
        let yaml = format!(
            "bootstrap.servers: {bootstrap}\nrest.listen: 127.0.0.1:{}\nclient:\n  session.timeout.ms: \"6000\"\nconnectors:\n{connectors}",
            self.rest
        );
        std::fs::write(&self.config, yaml).expect("config written");
    }

    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_actorlog"))
            .arg("connect")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("connect starts");
        self.child = Some(child);
        wait_for("the REST API", || {
            http(self.rest, "GET", "/connectors").is_some_and(|(status, _)| status == 200)
        });
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the clean exit.
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let status = child.wait().expect("connect exit");
            assert!(status.success(), "clean shutdown on SIGTERM: {status}");
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest)
    }

    fn status(&self, connector: &str) -> Value {
        let (code, body) = http(self.rest, "GET", &format!("/connectors/{connector}/status"))
            .expect("status answered");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("JSON status")
    }

    fn wait_for_task_state(&self, connector: &str, state: &str) -> Value {
        let mut last = Value::Null;
        wait_for(&format!("{connector} to be {state}"), || {
            last = self.status(connector);
            last["tasks"][0]["state"] == state
        });
        last
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A sample of the worker's metrics for connector `name` (counters count
/// from the worker's start).
fn metric(connect: &Connect, family: &str, name: &str) -> u64 {
    let (_, metrics) = http(connect.rest, "GET", "/metrics").unwrap_or_default();
    let sample = format!("{family}{{connector=\"{name}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&sample)?.parse().ok())
        .unwrap_or(0)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One request on a fresh connection: (status code, body), or `None` if
/// nothing listens.
fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("input file");
    let text: String = lines.into_iter().map(|l| l + "\n").collect();
    file.write_all(text.as_bytes()).expect("lines appended");
}

/// A record as a test reads it: a missing key or value (a tombstone) is
/// `None`.
struct Received {
    key: Option<String>,
    value: Option<String>,
    headers: Vec<(String, String)>,
}

/// Every record of partition 0 of `topic` a read_committed reader sees:
/// read until at least `expected` came and nothing more for a while (so
/// duplicates past `expected` are seen too), or until patience runs out.
fn read_topic(bootstrap: &str, topic: &str, expected: usize) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "connect-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("a consumer");
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("a partition");
    consumer.assign(&partitions).expect("assigned");
    let mut records = Vec::new();
    let started = Instant::now();
    let mut last_new = Instant::now();
    while started.elapsed() < PATIENCE {
        if records.len() >= expected && last_new.elapsed() > Duration::from_secs(2) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let value = h.value.unwrap_or_default();
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(value).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            records.push(Received {
                key: m.key().map(text),
                value: m.payload().map(text),
                headers,
            });
            last_new = Instant::now();
        }
    }
    records
}

fn values(bootstrap: &str, topic: &str, expected: usize) -> Vec<String> {
    read_topic(bootstrap, topic, expected)
        .into_iter()
        .map(|r| r.value.unwrap_or_default())
        .collect()
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("line {i:05}")).collect()
}

async fn produce(bootstrap: &str, topic: &str, values: &[&str]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a producer");
    for v in values {
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload(*v),
                Duration::from_secs(30),
            )
            .await
            .expect("produced");
    }
}

#[test]
fn file_source_to_topic_to_file_sink_with_the_json_envelope() {
    let broker = BrokerProcess::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (input, output) = (dir.path().join("in.txt"), dir.path().join("out.txt"));
    append(&input, numbered(0..300));
    let connect = Connect::start(
        dir.path(),
        &broker.bootstrap(),
        &format!(
            r#"  - name: lines-in
    type: file-source
    file: {}
    topic: lines
    batch.size: 40
    poll.interval.ms: 100
    value.converter: json
    value.converter.schemas.enable: true
  - name: lines-out
    type: file-sink
    file: {}
    topics: [lines]
    value.converter: json
    value.converter.schemas.enable: true
"#,
            input.display(),
            output.display()
        ),
    );
    wait_for("the sink's 300 lines", || lines_of(&output).len() >= 300);
    assert_eq!(lines_of(&output), numbered(0..300));
    let first: Value = serde_json::from_str(&values(&broker.bootstrap(), "lines", 300)[0])
        .expect("JSON in the topic");
    assert_eq!(
        first,
        serde_json::json!({"schema": {"type": "string", "optional": false}, "payload": "line 00000"})
    );

    // Pause the source: appended lines wait until it is resumed.
    let (code, _) = http(connect.rest, "PUT", "/connectors/lines-in/pause").expect("answer");
    assert_eq!(code, 202);
    let paused = connect.wait_for_task_state("lines-in", "PAUSED");
    assert_eq!(paused["connector"]["state"], "PAUSED");
    append(&input, numbered(300..350));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines_of(&output).len(), 300, "a paused source read on");
    let (code, _) = http(connect.rest, "PUT", "/connectors/lines-in/resume").expect("answer");
    assert_eq!(code, 202);
    wait_for("the lines after the resume", || {
        lines_of(&output).len() >= 350
    });
    assert_eq!(lines_of(&output), numbered(0..350));

    let (ok, out, err) = actorlog(&["connect", "status", "--url", &connect.url()], "");
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lines-in") && l.contains("RUNNING")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("lines-out") && l.contains("sink")),
        "{out}"
    );
    let (code, body) = http(connect.rest, "GET", "/connectors").expect("answer");
    assert_eq!((code, body.as_str()), (200, r#"["lines-in","lines-out"]"#));
    let (code, _) = http(connect.rest, "GET", "/connectors/nope/status").expect("answer");
    assert_eq!(code, 404);
    let (_, metrics) = http(connect.rest, "GET", "/metrics").expect("answer");
    assert!(
        metrics.contains("actorlog_connect_records_out_total{connector=\"lines-out\"} 350"),
        "{metrics}"
    );
}

/// Kills the worker three times while lines keep coming: the topic holds every
/// line exactly once, in order (each batch and its position commit
/// together), and the sink file every line at least once.
#[test]
fn sigkill_mid_stream_loses_and_repeats_nothing() {
    const LINES: usize = 8000;
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().expect("temp dir");
    let (input, output) = (dir.path().join("in.txt"), dir.path().join("out.txt"));
    // A backlog keeps the source busy with full batches, so the kills land
    // anywhere in a transaction's life; more lines come while it runs.
    append(&input, numbered(0..6000));
    let mut connect = Connect::start(
        dir.path(),
        &bootstrap,
        &format!(
            "  - {{name: src, type: file-source, file: {}, topic: stream, batch.size: 25, poll.interval.ms: 20}}\n  - {{name: sink, type: file-sink, file: {}, topics: [stream]}}\n",
            input.display(),
            output.display()
        ),
    );
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            for chunk in 30..40 {
                append(&input, numbered(chunk * 200..(chunk + 1) * 200));
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    for _ in 0..3 {
        wait_for("lines to be produced before the kill", || {
            metric(&connect, "actorlog_connect_records_out_total", "src") > 100
        });
        let unread = metric(&connect, "actorlog_connect_lag", "src");
        connect.kill9();
        assert!(unread > 0, "the kill came after the stream");
        connect.spawn();
    }
    writer.join().expect("writer");
    let topic = values(&bootstrap, "stream", LINES);
    assert_eq!(topic.len(), LINES, "lines lost or repeated in the topic");
    assert_eq!(topic, numbered(0..LINES));
    wait_for("the sink to catch up", || {
        let mut lines = lines_of(&output);
        lines.sort();
        lines.dedup();
        lines.len() == LINES
    });
    let mut lines = lines_of(&output);
    lines.sort();
    lines.dedup();
    assert_eq!(lines, numbered(0..LINES));
}

#[test]
fn rotation_and_truncation_start_the_file_over() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("app.log");
    append(&input, ["a1".into(), "a2".into()]);
    let mut connect = Connect::start(
        dir.path(),
        &bootstrap,
        &format!(
            "  - {{name: logs, type: file-source, file: {}, topic: logs, poll.interval.ms: 50}}\n",
            input.display()
        ),
    );
    wait_for("the first lines", || {
        values(&bootstrap, "logs", 0).len() >= 2
    });

    // Rotation: the old file gets a last line and is renamed, a new one
    // takes its name.
    append(&input, ["a3".into()]);
    std::fs::rename(&input, dir.path().join("app.log.1")).expect("renamed");
    append(&input, ["b1".into(), "b2".into()]);
    wait_for("the new file's lines", || {
        values(&bootstrap, "logs", 0).len() >= 5
    });

    // Truncation: shorter than the position, read from the start again.
    std::fs::write(&input, "c1\n").expect("truncated");
    wait_for("the truncated file's line", || {
        values(&bootstrap, "logs", 0).len() >= 6
    });

    // Rotated while the worker was down: the new file from its start.
    connect.kill9();
    std::fs::rename(&input, dir.path().join("app.log.2")).expect("renamed");
    append(&input, ["d1".into()]);
    connect.spawn();
    assert_eq!(
        values(&bootstrap, "logs", 7),
        ["a1", "a2", "a3", "b1", "b2", "c1", "d1"]
    );
    assert_eq!(connect.status("logs")["tasks"][0]["state"], "RUNNING");
}

#[test]
fn a_missing_file_fails_only_its_connector_until_restarted() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().expect("temp dir");
    let (missing, present) = (dir.path().join("missing.txt"), dir.path().join("here.txt"));
    append(&present, ["here".into()]);
    let connect = Connect::start(
        dir.path(),
        &bootstrap,
        &format!(
            "  - {{name: missing, type: file-source, file: {}, topic: m}}\n  - {{name: present, type: file-source, file: {}, topic: p, poll.interval.ms: 50}}\n",
            missing.display(),
            present.display()
        ),
    );
    let failed = connect.wait_for_task_state("missing", "FAILED");
    let trace = failed["tasks"][0]["trace"].as_str().unwrap_or_default();
    assert!(
        trace.contains("missing.txt") && trace.contains("No such file"),
        "{failed}"
    );
    connect.wait_for_task_state("present", "RUNNING");
    append(&present, ["still here".into()]);
    assert_eq!(values(&bootstrap, "p", 2), ["here", "still here"]);
    let (ok, out, _) = actorlog(
        &["connect", "status", "--url", &connect.url(), "missing"],
        "",
    );
    assert!(
        ok && out.contains("FAILED") && out.contains("missing.txt"),
        "{out}"
    );

    append(&missing, ["found".into()]);
    let (code, _) = http(connect.rest, "POST", "/connectors/missing/restart").expect("answer");
    assert_eq!(code, 204);
    connect.wait_for_task_state("missing", "RUNNING");
    assert_eq!(values(&bootstrap, "m", 1), ["found"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_that_cannot_be_converted_are_dead_lettered_or_fail_the_task() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().expect("temp dir");
    let (tolerant, strict) = (
        dir.path().join("tolerant.txt"),
        dir.path().join("strict.txt"),
    );
    produce(
        &bootstrap,
        "events",
        &[r#"{"id":1}"#, "not json", r#"{"id":2}"#],
    )
    .await;
    let connect = Connect::start(
        dir.path(),
        &bootstrap,
        &format!(
            r#"  - name: tolerant
    type: file-sink
    file: {}
    topics: [events]
    value.converter: json
    transforms:
      - {{type: insert-field, static.field: seen, static.value: true}}
    errors.tolerance: all
    errors.deadletterqueue.topic.name: events-dlq
  - name: strict
    type: file-sink
    file: {}
    topics: [events]
    value.converter: json
"#,
            tolerant.display(),
            strict.display()
        ),
    );
    wait_for("the good records", || lines_of(&tolerant).len() >= 2);
    assert_eq!(
        lines_of(&tolerant),
        [r#"{"id":1,"seen":true}"#, r#"{"id":2,"seen":true}"#]
    );
    let dead = read_topic(&bootstrap, "events-dlq", 1);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some("not json"));
    let header = |key: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("__connect.errors.topic").as_deref(), Some("events"));
    assert_eq!(header("__connect.errors.offset").as_deref(), Some("1"));
    assert_eq!(
        header("__connect.errors.stage").as_deref(),
        Some("VALUE_CONVERTER")
    );
    assert!(header("__connect.errors.exception.message").is_some_and(|m| m.contains("not JSON")));

    let failed = connect.wait_for_task_state("strict", "FAILED");
    assert!(
        failed["tasks"][0]["trace"]
            .as_str()
            .is_some_and(|t| t.contains("VALUE_CONVERTER")),
        "{failed}"
    );
    // Nothing of the failed batch was written.
    assert!(lines_of(&strict).is_empty());
}

#[test]
fn a_bad_config_names_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "connectors:\n  - {name: a, type: file-source, file: x, topic: t, errors.tolerance: maybe}\n",
    )
    .expect("written");
    let (ok, _, err) = actorlog(&["connect", path.to_str().expect("utf-8")], "");
    assert!(!ok);
    assert!(
        err.contains("errors.tolerance") || err.contains("maybe"),
        "{err}"
    );
    assert!(err.contains("bad.yaml"), "{err}");
}

/// A PostgreSQL server of its own on a free loopback port, its data in a
/// temporary directory, stopped when dropped.
struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        if let Some((uid, gid)) = postgres_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8");
        let socket_dir = dir.path().to_str().expect("utf-8");
        run_pg(
            "initdb",
            &["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        let log = dir.path().join("postgres.log");
        // Logical decoding for the CDC source's slots.
        let options = format!(
            "-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10"
        );
        run_pg(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().expect("utf-8"),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        Postgres { dir, port }
    }

    fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// The rows `sql` returns, `|`-separated, one per line.
    fn query(&self, sql: &str) -> String {
        let output = Command::new(pg_program("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = pg_command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .status();
    }
}

/// PostgreSQL refuses to run as root: then its programs run as the
/// `postgres` user Debian's package creates.
fn postgres_user() -> Option<(u32, u32)> {
    if !rustix::process::getuid().is_root() {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres user (Debian's postgresql package)")
    };
    Some((id("-u"), id("-g")))
}

/// A PostgreSQL program: on the PATH, or in Debian's versioned directory.
fn pg_program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.exists());
    on_path
        .or_else(|| {
            let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| Some(e.ok()?.path().join("bin").join(name)))
                .filter(|p| p.exists())
                .collect();
            versions.sort();
            versions.pop()
        })
        .unwrap_or_else(|| panic!("{name} not found: install Debian's postgresql"))
}

fn pg_command(name: &str) -> Command {
    match postgres_user() {
        Some(_) => {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_program(name));
            command
        }
        None => Command::new(pg_program(name)),
    }
}

fn run_pg(name: &str, args: &[&str]) {
    let output = pg_command(name).args(args).output().expect("runs");
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Upserts by key (the later record of a key wins, a replay changes
/// nothing), inserts into a table without a key, and dead-letters what is
/// not a struct.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_sink_inserts_and_upserts_by_key() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let postgres = Postgres::start();
    postgres.query("CREATE TABLE orders (id int PRIMARY KEY, name text, qty int)");
    postgres.query("CREATE TABLE order_log (id int, name text)");
    produce(
        &bootstrap,
        "orders",
        &[
            r#"{"id":1,"name":"a","qty":1}"#,
            r#"{"id":2,"name":"b","qty":2}"#,
            "not json",
            r#"{"id":1,"name":"a2","qty":3}"#,
        ],
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = |name: &str, table: &str, mode: &str| {
        format!(
            r#"  - name: {name}
    type: postgres-sink
    topics: [orders]
    connection.url: "{url}"
    table.name.format: {table}
    insert.mode: {mode}
    value.converter: json
    errors.tolerance: all
    errors.deadletterqueue.topic.name: orders-dlq
"#,
            url = postgres.url()
        )
    };
    let upsert = sink("db", "orders", "upsert") + "    pk.fields: [id]\n";
    let insert = sink("log", "order_log", "insert")
        + "    transforms:\n      - {type: replace-field, exclude: [qty]}\n";
    let mut connect = Connect::start(dir.path(), &bootstrap, &(upsert + &insert));
    wait_for("the log's rows", || {
        postgres.query("SELECT count(*) FROM order_log") == "3"
    });
    wait_for("the upserted rows", || {
        postgres.query("SELECT id, name, qty FROM orders ORDER BY id") == "1|a2|3\n2|b|2"
    });
    assert_eq!(
        postgres.query("SELECT id, name FROM order_log ORDER BY id, name"),
        "1|a\n1|a2\n2|b"
    );
    let dead = read_topic(&bootstrap, "orders-dlq", 2);
    assert_eq!(dead.len(), 2, "one dead letter per connector");

    // A new connector (a new group) replays the topic onto the same rows.
    connect.kill9();
    let replay = sink("db-replay", "orders", "upsert") + "    pk.fields: [id]\n";
    let connect = Connect::start(dir.path(), &bootstrap, &replay);
    wait_for("the replay", || {
        let (_, metrics) = http(connect.rest, "GET", "/metrics").unwrap_or_default();
        metrics.contains("actorlog_connect_records_in_total{connector=\"db-replay\"} 4")
    });
    assert_eq!(
        postgres.query("SELECT id, name, qty FROM orders ORDER BY id"),
        "1|a2|3\n2|b|2"
    );
    assert_eq!(connect.status("db-replay")["tasks"][0]["state"], "RUNNING");
}

/// Two workers with the same file sink share its topic's partitions (one
/// consumer group); when one is killed, the other takes its partitions
/// over and writes what comes after.
#[tokio::test(flavor = "multi_thread")]
async fn workers_share_a_sink_and_take_over_a_dead_ones_partitions() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let (ok, _, err) = actorlog(
        &[
            "-b",
            &bootstrap,
            "topics",
            "create",
            "shared",
            "--partitions",
            "2",
        ],
        "",
    );
    assert!(ok, "{err}");
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (out_a, out_b) = (dir_a.path().join("out.txt"), dir_b.path().join("out.txt"));
    let sink = |out: &Path| {
        format!(
            "  - {{name: share, type: file-sink, file: {}, topics: [shared]}}\n",
            out.display()
        )
    };
    let mut a = Connect::start(dir_a.path(), &bootstrap, &sink(&out_a));
    let _b = Connect::start(dir_b.path(), &bootstrap, &sink(&out_b));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("a producer");
    let produce_keyed = |prefix: &'static str, n: usize| {
        let producer = producer.clone();
        async move {
            for i in 0..n {
                let value = format!("{prefix}-{i}");
                producer
                    .send(
                        FutureRecord::to("shared").key(&value).payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .expect("produced");
            }
        }
    };
    // Until both workers write, the group has not given each a partition.
    let started = Instant::now();
    let mut round = 0;
    while lines_of(&out_a).is_empty() || lines_of(&out_b).is_empty() {
        assert!(
            started.elapsed() < PATIENCE,
            "the workers did not share the partitions"
        );
        produce_keyed(
            ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"][round % 8],
            20,
        )
        .await;
        round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    a.kill9();
    let (in_a, in_b) = (lines_of(&out_a), lines_of(&out_b));
    let in_both = in_a.iter().filter(|l| in_b.contains(l)).count();
    assert!(
        in_both * 2 < in_a.len() + in_b.len(),
        "each worker wrote the same records: they did not share the partitions"
    );
    produce_keyed("after", 100).await;
    let after: Vec<String> = (0..100).map(|i| format!("after-{i}")).collect();
    wait_for("the survivor to write every later record", || {
        let written = lines_of(&out_b);
        after.iter().all(|r| written.contains(r))
    });
    assert!(
        !lines_of(&out_a).iter().any(|l| l.starts_with("after-")),
        "the killed worker wrote on"
    );
}

/// Two workers of one group with the same file source: the source task
/// runs on one of them (the other reports it elsewhere) and the lines come
/// once; when its worker is killed, the other takes the task over after
/// the session timeout, and the topic holds every line of the file, those
/// appended after the kill too, exactly once and in order. A worker
/// stopped by SIGTERM hands its task over the same way.
#[test]
fn workers_share_a_source_and_take_it_over_from_a_dead_one() {
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let (dir_a, dir_b, data) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let input = data.path().join("in.txt");
    append(&input, numbered(0..500));
    let source = format!(
        "  - {{name: shared-src, type: file-source, file: {}, topic: lines, batch.size: 50}}\n",
        input.display()
    );
    let a = Connect::start(dir_a.path(), &bootstrap, &source);
    let b = Connect::start(dir_b.path(), &bootstrap, &source);
    let state = |c: &Connect| c.status("shared-src")["tasks"][0]["state"].clone();
    wait_for(
        "one worker to run the source, the other to leave it",
        || {
            let states = [state(&a), state(&b)];
            states.contains(&"RUNNING".into()) && states.contains(&"ELSEWHERE".into())
        },
    );
    let (mut runner, mut other) = if state(&a) == "RUNNING" {
        (a, b)
    } else {
        (b, a)
    };
    let (ok, report, err) = actorlog(&["connect", "status", "--url", &other.url()], "");
    assert!(ok, "{err}");
    assert!(report.contains("ELSEWHERE"), "{report}");
    assert_eq!(values(&bootstrap, "lines", 500), numbered(0..500));
    assert_eq!(state(&other), "ELSEWHERE", "both workers ran the source");

    runner.kill9();
    append(&input, numbered(500..1000));
    other.wait_for_task_state("shared-src", "RUNNING");
    append(&input, numbered(1000..1200));
    let topic = values(&bootstrap, "lines", 1200);
    assert_eq!(topic.len(), 1200, "lines lost or repeated in the topic");
    assert_eq!(topic, numbered(0..1200));

    // The killed worker comes back and leaves the task where it runs; the
    // one running it stops cleanly, leaving the group, and hands it back.
    runner.spawn();
    runner.wait_for_task_state("shared-src", "ELSEWHERE");
    other.terminate();
    runner.wait_for_task_state("shared-src", "RUNNING");
    append(&input, numbered(1200..1400));
    assert_eq!(values(&bootstrap, "lines", 1400), numbered(0..1400));
}

/// A CDC source of `tables` through `slot` into topics
/// `<prefix>.public.<table>`, keys and values as plain JSON.
fn cdc_source(postgres: &Postgres, name: &str, slot: &str, prefix: &str, tables: &str) -> String {
    format!(
        r#"  - name: {name}
    type: postgres-cdc-source
    database.hostname: 127.0.0.1
    database.port: {port}
    database.user: postgres
    database.dbname: postgres
    table.include.list: [{tables}]
    slot.name: {slot}
    publication.name: {name}_publication
    topic.prefix: {prefix}
    batch.size: 100
    poll.interval.ms: 20
    key.converter: json
    value.converter: json
"#,
        port = postgres.port
    )
}

/// A change event as the test compares it: the key, then `op` and
/// `before`/`after` of the value, or `tombstone` for a null value.
type Change = (Value, String, Value, Value);

fn change(record: &Received) -> Change {
    let key = record.key.as_deref().map_or(Value::Null, |k| {
        serde_json::from_str(k).expect("a JSON key")
    });
    let Some(value) = &record.value else {
        return (key, "tombstone".into(), Value::Null, Value::Null);
    };
    let value: Value = serde_json::from_str(value).expect("a JSON value");
    let op = value["op"].as_str().expect("an op").to_string();
    (key, op, value["before"].clone(), value["after"].clone())
}

/// The `source` of each event (tombstones have none).
fn sources(records: &[Received]) -> Vec<Value> {
    records
        .iter()
        .filter_map(|r| r.value.as_deref())
        .map(|v| serde_json::from_str::<Value>(v).expect("JSON")["source"].clone())
        .collect()
}

/// The rows already there arrive as snapshot reads; then the inserts,
/// updates and deletes of multi-statement transactions over two tables,
/// in commit order, with the whole old row under `REPLICA IDENTITY FULL`
/// and only the key otherwise, and a tombstone after each delete. A
/// publication that leaves out a table fails its connector.
#[test]
fn postgres_cdc_source_snapshot_then_changes_in_commit_order() {
    use serde_json::json;
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let postgres = Postgres::start();
    postgres.query("CREATE TABLE customers (id int PRIMARY KEY, name text, vip boolean)");
    postgres.query(
        "CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric(10,2), note text)",
    );
    postgres.query("ALTER TABLE orders REPLICA IDENTITY FULL");
    postgres.query("CREATE TABLE ignored (id int PRIMARY KEY)");
    postgres.query("INSERT INTO customers VALUES (1, 'ann', true), (2, 'bob', false)");
    postgres.query("INSERT INTO orders VALUES (10, 1, 9.50, 'first')");
    // A publication of another's making that leaves a table out.
    postgres.query("CREATE PUBLICATION partial FOR TABLE customers");
    let partial = cdc_source(
        &postgres,
        "partial",
        "partial",
        "partial",
        "customers, orders",
    )
    .replace("partial_publication", "partial");
    let shop = cdc_source(
        &postgres,
        "shop",
        "shop",
        "shop",
        "customers, public.orders",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let connect = Connect::start(dir.path(), &bootstrap, &(shop + &partial));
    let failed = connect.wait_for_task_state("partial", "FAILED");
    assert!(
        failed["tasks"][0]["trace"]
            .as_str()
            .is_some_and(|t| t.contains("publication partial does not publish public.orders")),
        "{failed}"
    );
    wait_for("the snapshot", || {
        metric(&connect, "actorlog_connect_records_out_total", "shop") >= 3
    });
    postgres.query(
        "BEGIN; INSERT INTO customers VALUES (3, 'cat', false); INSERT INTO ignored VALUES (1); \
         INSERT INTO orders VALUES (11, 3, 20, NULL); COMMIT",
    );
    postgres.query(
        "BEGIN; UPDATE customers SET name = 'bobby' WHERE id = 2; \
         UPDATE orders SET note = 'paid' WHERE id = 10; DELETE FROM customers WHERE id = 1; COMMIT",
    );
    postgres.query("DELETE FROM orders WHERE id = 11");

    let customers = read_topic(&bootstrap, "shop.public.customers", 6);
    let changes: Vec<_> = customers.iter().map(change).collect();
    let ann = json!({"id": 1, "name": "ann", "vip": true});
    assert_eq!(
        changes,
        [
            (json!({"id": 1}), "r".into(), Value::Null, ann),
            (
                json!({"id": 2}),
                "r".into(),
                Value::Null,
                json!({"id": 2, "name": "bob", "vip": false})
            ),
            (
                json!({"id": 3}),
                "c".into(),
                Value::Null,
                json!({"id": 3, "name": "cat", "vip": false})
            ),
            (
                json!({"id": 2}),
                "u".into(),
                Value::Null,
                json!({"id": 2, "name": "bobby", "vip": false})
            ),
            (json!({"id": 1}), "d".into(), json!({"id": 1}), Value::Null),
            (
                json!({"id": 1}),
                "tombstone".into(),
                Value::Null,
                Value::Null
            ),
        ]
    );
    let orders = read_topic(&bootstrap, "shop.public.orders", 5);
    let changes: Vec<_> = orders.iter().map(change).collect();
    let first = json!({"id": 10, "customer": 1, "total": "9.50", "note": "first"});
    let second = json!({"id": 11, "customer": 3, "total": "20.00", "note": null});
    assert_eq!(
        changes,
        [
            (json!({"id": 10}), "r".into(), Value::Null, first.clone()),
            (json!({"id": 11}), "c".into(), Value::Null, second.clone()),
            (
                json!({"id": 10}),
                "u".into(),
                first,
                json!({"id": 10, "customer": 1, "total": "9.50", "note": "paid"})
            ),
            (json!({"id": 11}), "d".into(), second, Value::Null),
            (
                json!({"id": 11}),
                "tombstone".into(),
                Value::Null,
                Value::Null
            ),
        ]
    );

    // One transaction, one LSN and transaction id across the tables; the
    // later transaction after the earlier one.
    let (customers, orders) = (sources(&customers), sources(&orders));
    assert_eq!(customers[0]["table"], "customers");
    assert_eq!(customers[0]["txId"], Value::Null, "a snapshot read");
    assert_eq!(customers[2]["lsn"], orders[1]["lsn"]);
    assert_eq!(customers[2]["txId"], orders[1]["txId"]);
    assert_eq!(customers[3]["lsn"], orders[2]["lsn"]);
    let lsn = |s: &Value| s["lsn"].as_u64().expect("an LSN");
    assert!(lsn(&customers[2]) < lsn(&customers[3]));
    assert!(lsn(&orders[2]) < lsn(&orders[3]));
    assert!(customers[2]["ts_ms"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(connect.status("shop")["tasks"][0]["state"], "RUNNING");
    // The slot was advanced past what was delivered.
    let behind = postgres.query(
        "SELECT pg_current_wal_lsn() - confirmed_flush_lsn < 1000000 FROM pg_replication_slots WHERE slot_name = 'shop'",
    );
    assert_eq!(behind, "t");
}

/// The rows a writer commits after the snapshot, as the change events they
/// make: transaction `i` inserts row `i`, odd ones update row `i - 1`, and
/// every third deletes row `i - 2` (a delete event and its tombstone).
fn writer_changes(transactions: std::ops::Range<usize>) -> (Vec<String>, Vec<Change>) {
    use serde_json::json;
    let mut sql = Vec::new();
    let mut changes = Vec::new();
    for i in transactions {
        let mut statements = vec![format!("INSERT INTO items VALUES ({i}, 0)")];
        changes.push((
            json!({"id": i}),
            "c".into(),
            Value::Null,
            json!({"id": i, "v": 0}),
        ));
        if i % 2 == 1 {
            statements.push(format!("UPDATE items SET v = {i} WHERE id = {}", i - 1));
            let key = json!({"id": i - 1});
            changes.push((key, "u".into(), Value::Null, json!({"id": i - 1, "v": i})));
        }
        if i % 3 == 2 {
            statements.push(format!("DELETE FROM items WHERE id = {}", i - 2));
            let key = json!({"id": i - 2});
            changes.push((key.clone(), "d".into(), key.clone(), Value::Null));
            changes.push((key, "tombstone".into(), Value::Null, Value::Null));
        }
        sql.push(format!("BEGIN; {}; COMMIT;", statements.join("; ")));
    }
    (sql, changes)
}

/// Kills the worker three times while a writer keeps committing: every
/// change is in the topic exactly once, in commit order (each round's
/// records and its offset commit together, and the slot is advanced only
/// after). Then a slot behind the committed offset, as a kill between the
/// Kafka commit and the slot's advance leaves it (a copy of the slot taken
/// at the first kill): read from it, nothing delivered comes again.
#[test]
fn postgres_cdc_source_sigkill_mid_stream_delivers_every_change_once() {
    const SNAPSHOT_ROWS: usize = 50;
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let postgres = Postgres::start();
    postgres.query("CREATE TABLE items (id int PRIMARY KEY, v int)");
    postgres.query(&format!(
        "INSERT INTO items SELECT g, -1 FROM generate_series(100000, {}) g",
        100000 + SNAPSHOT_ROWS - 1
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut connect = Connect::start(
        dir.path(),
        &bootstrap,
        &cdc_source(&postgres, "items", "items", "db", "items"),
    );
    wait_for("the snapshot", || {
        metric(&connect, "actorlog_connect_records_out_total", "items") >= SNAPSHOT_ROWS as u64
    });
    // Faster than the source reads: it keeps a backlog, so each round is a
    // full batch and the kills land anywhere in a round's life. It writes
    // until told to stop (at most `MOST` transactions), and says how many
    // it committed.
    const MOST: usize = 20_000;
    let (sql, _) = writer_changes(0..MOST);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let port = postgres.port;
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut psql = Command::new(pg_program("psql"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("psql runs");
            let mut stdin = psql.stdin.take().expect("stdin");
            let mut written = 0;
            for transaction in sql.iter().take_while(|_| !stop.load(Ordering::SeqCst)) {
                writeln!(stdin, "{transaction}").expect("psql reads");
                stdin.flush().expect("flushed");
                written += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(stdin);
            assert!(psql.wait().expect("psql ends").success());
            written
        })
    };
    let produced = |connect: &Connect| {
        wait_for("changes to be produced", || {
            metric(connect, "actorlog_connect_records_out_total", "items") > 150
        });
    };
    for _ in 0..3 {
        produced(&connect);
        connect.kill9();
        postgres.query(
            "SELECT 1 FROM pg_copy_logical_replication_slot('items', 'items_behind') \
             WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'items_behind')",
        );
        connect.spawn();
    }
    produced(&connect);
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer");
    assert!(written < MOST, "the writer ended before the kills");
    let (_, expected) = writer_changes(0..written);
    let stream = |expected: &[Change]| {
        let records = read_topic(
            &bootstrap,
            "db.public.items",
            SNAPSHOT_ROWS + expected.len(),
        );
        let changes: Vec<_> = records.iter().map(change).collect();
        let (snapshot, stream) = changes.split_at(SNAPSHOT_ROWS.min(changes.len()));
        assert!(
            snapshot.iter().all(|(_, op, _, _)| op == "r"),
            "{snapshot:?}"
        );
        assert_eq!(stream.len(), expected.len(), "changes lost or repeated");
        assert_eq!(stream, expected);
    };
    stream(&expected);

    connect.kill9();
    connect.configure(
        &bootstrap,
        &cdc_source(&postgres, "items", "items_behind", "db", "items"),
    );
    connect.spawn();
    let (sql, mut more) = writer_changes(written..written + 1);
    postgres.query(&sql[0]);
    let mut expected = expected;
    expected.append(&mut more);
    stream(&expected);
}

/// Throughput of the CDC source and of the PostgreSQL sink, for
/// docs/benchmarks.md (no assertion on time): 100,000 rows inserted in
/// transactions of 1,000, timed from the first insert until the source has
/// committed the last change to the topic; then a sink writes the topic's
/// `after` rows into another table, timed until the last row is there.
/// `cargo test --test connect postgres_cdc_and_sink_throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn postgres_cdc_and_sink_throughput() {
    const ROWS: u64 = 100_000;
    const PER_TRANSACTION: u64 = 1000;
    let broker = BrokerProcess::start();
    let bootstrap = broker.bootstrap();
    let postgres = Postgres::start();
    postgres.query("CREATE TABLE src (id int PRIMARY KEY, name text, qty int)");
    postgres.query("CREATE TABLE dst (id int PRIMARY KEY, name text, qty int)");
    let dir = tempfile::tempdir().expect("temp dir");
    let source = cdc_source(&postgres, "bench", "bench", "bench", "src")
        .replace("batch.size: 100", "batch.size: 5000");
    let connect = Connect::start(dir.path(), &bootstrap, &source);
    connect.wait_for_task_state("bench", "RUNNING");
    let started = Instant::now();
    let script: String = (0..ROWS / PER_TRANSACTION)
        .map(|t| {
            let first = t * PER_TRANSACTION;
            format!(
                "BEGIN; INSERT INTO src SELECT g, 'name ' || g, g % 100 FROM generate_series({first}, {}) g; COMMIT;\n",
                first + PER_TRANSACTION - 1
            )
        })
        .collect();
    postgres.query(&script);
    let inserted = started.elapsed();
    let wait_for_long = |what: &str, done: &dyn Fn() -> bool| {
        while !done() {
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "waited too long for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for_long("the changes in the topic", &|| {
        metric(&connect, "actorlog_connect_records_out_total", "bench") >= ROWS
    });
    let captured = started.elapsed();
    println!(
        "CDC source: {ROWS} rows inserted in {:.2} s, in the topic after {:.2} s: {:.0} rows/s",
        inserted.as_secs_f64(),
        captured.as_secs_f64(),
        ROWS as f64 / captured.as_secs_f64()
    );

    let sink_dir = tempfile::tempdir().expect("temp dir");
    let sink = format!(
        r#"  - name: bench-sink
    type: postgres-sink
    topics: [bench.public.src]
    connection.url: "{}"
    table.name.format: dst
    insert.mode: upsert
    pk.fields: [id]
    key.converter: json
    value.converter: json
    transforms:
      - {{type: extract-field, field: after, from: value}}
"#,
        postgres.url()
    );
    let started = Instant::now();
    let _sink = Connect::start(sink_dir.path(), &bootstrap, &sink);
    wait_for_long("the rows in the sink's table", &|| {
        postgres.query("SELECT count(*) FROM dst") == ROWS.to_string()
    });
    let written = started.elapsed();
    println!(
        "PostgreSQL sink: {ROWS} rows written in {:.2} s (from the worker's start): {:.0} rows/s",
        written.as_secs_f64(),
        ROWS as f64 / written.as_secs_f64()
    );
}
