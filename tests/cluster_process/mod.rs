//! A cluster of real `actorlog serve --config` processes on free loopback
//! ports, each with its own temporary data directory and generated config,
//! all controller voters of one quorum. Tests kill, restart, stop and
//! continue single brokers. Every broker's stderr goes to a file per launch;
//! when a test panics, the tail of each broker's latest log is printed, and
//! dropping the cluster kills every process and removes the directories.

#![allow(dead_code)] // each test file uses its own subset

pub mod clients;

#[path = "../ports/mod.rs"]
mod ports;
pub use ports::free_port;

use rustix::process::{kill_process, Pid, Signal};
use serde_yaml_ng::{Mapping, Value};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to accept connections after its launch.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a started cluster may take until every broker is registered.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of each broker's log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// Polls `condition` every 100 ms until it holds; panics naming `what` when
/// it still does not after `deadline`. Every wait in the cluster tests is
/// bounded, so a broker that never gets there fails the test instead of
/// hanging it.
pub fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if condition() {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One broker of the cluster.
struct Node {
    node_id: i32,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Whether the process is held by SIGSTOP.
    stopped: bool,
    /// Launches so far; each writes its stderr to its own file.
    launches: u32,
}

impl Node {
    fn config_path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self, launch: u32) -> PathBuf {
        self.dir.join(format!("stderr.{launch}.log"))
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the broker runs");
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(Pid::from_raw)
            .expect("a pid");
        if let Err(e) = kill_process(pid, signal) {
            panic!("signal {signal:?} to broker {}: {e}", self.node_id);
        }
    }
}

pub struct Cluster {
    nodes: Vec<Node>,
    cluster_id: String,
    /// Holds every broker's directory; removed on drop.
    root: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` brokers and waits until each accepts connections and
    /// lists all `n` in its metadata: registered with the controller
    /// quorum, as a Kafka cluster is before it can place replicas on every
    /// broker. `extra_yaml` is merged into every broker's generated config,
    /// key by key (a `cluster:` mapping into the cluster section), and wins
    /// over the generated values.
    pub fn start(n: usize, extra_yaml: &str) -> Cluster {
        Self::start_each(n, |_, _| extra_yaml.to_string())
    }

    /// As [`Cluster::start`], with each broker's extra YAML made from its
    /// node id and client port (for listeners of its own). An extra
    /// `listeners` replaces the generated `listen`; its first listener must
    /// stay the client port, where the harness connects.
    pub fn start_each(n: usize, extra_yaml: impl Fn(i32, u16) -> String) -> Cluster {
        let mut cluster = Self::configure_each(n, extra_yaml);
        for i in 0..n {
            cluster.launch(i);
        }
        for i in 0..n {
            cluster.wait_listening(i);
        }
        let all: Vec<i32> = (1..=n as i32).collect();
        for i in 0..n {
            let broker = cluster.bootstrap_of(i);
            wait_until(
                REGISTRATION_TIMEOUT,
                &format!("broker {broker} lists brokers {all:?} in its metadata"),
                || clients::metadata(&broker).is_some_and(|m| clients::broker_ids(&m) == all),
            );
        }
        cluster
    }

    /// Writes the configs of `n` brokers and starts none: a test launches
    /// the ones it wants, e.g. one broker whose fellow voters never come.
    pub fn configure(n: usize, extra_yaml: &str) -> Cluster {
        Self::configure_with_voters(n, n, extra_yaml)
    }

    /// As [`Cluster::configure`], with only the first `voters` brokers in
    /// the controller quorum: the others are observers.
    pub fn configure_with_voters(n: usize, voters: usize, extra_yaml: &str) -> Cluster {
        Self::configure_each_with_voters(n, voters, |_, _| extra_yaml.to_string())
    }

    fn configure_each(n: usize, extra_yaml: impl Fn(i32, u16) -> String) -> Cluster {
        Self::configure_each_with_voters(n, n, extra_yaml)
    }

    fn configure_each_with_voters(
        n: usize,
        voter_count: usize,
        extra_yaml: impl Fn(i32, u16) -> String,
    ) -> Cluster {
        assert!(n >= 1, "a cluster has at least one broker");
        assert!((1..=n).contains(&voter_count), "1 to n voters");
        let root = tempfile::tempdir().expect("temp dir");
        let cluster_id = format!("test-{}-{}", std::process::id(), free_port());
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voters: Vec<String> = ports[..voter_count]
            .iter()
            .enumerate()
            .map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1))
            .collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(port, controller))| {
                let node = Node {
                    node_id: i as i32 + 1,
                    port,
                    controller_port: controller,
                    dir: root.path().join(format!("broker-{}", i + 1)),
                    child: None,
                    stopped: false,
                    launches: 0,
                };
                std::fs::create_dir_all(&node.dir).expect("broker dir");
                let extra_yaml = extra_yaml(node.node_id, port);
                let extra: Value = if extra_yaml.trim().is_empty() {
                    Value::Mapping(Mapping::new())
                } else {
                    serde_yaml_ng::from_str(&extra_yaml).expect("extra_yaml is YAML")
                };
                let mut config = base_config(&node, controller, &cluster_id, &voters);
                if extra.get("listeners").is_some() {
                    if let Value::Mapping(config) = &mut config {
                        config.remove("listen");
                    }
                }
                merge(&mut config, &extra);
                let yaml = serde_yaml_ng::to_string(&config).expect("config serializes");
                std::fs::write(node.config_path(), yaml).expect("config written");
                node
            })
            .collect();
        Cluster {
            nodes,
            cluster_id,
            root,
        }
    }

    /// Every broker's client address, comma-separated.
    pub fn bootstrap(&self) -> String {
        let all: Vec<String> = self.nodes.iter().map(Node::bootstrap).collect();
        all.join(",")
    }

    /// The controller (raft) address of broker `i`.
    pub fn controller_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].controller_port)
    }

    /// The client address of broker `i` alone.
    pub fn bootstrap_of(&self, i: usize) -> String {
        self.nodes[i].bootstrap()
    }

    /// The client addresses of the brokers running and not stopped.
    pub fn live_brokers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some() && !n.stopped)
            .map(Node::bootstrap)
            .collect()
    }

    /// [`Cluster::live_brokers`], comma-separated: a new client
    /// bootstrapped there does not wait on a dead or frozen broker.
    pub fn live_bootstrap(&self) -> String {
        self.live_brokers().join(",")
    }

    pub fn node_id(&self, i: usize) -> i32 {
        self.nodes[i].node_id
    }

    /// The index of the broker with `node_id`.
    pub fn index_of(&self, node_id: i32) -> usize {
        self.nodes
            .iter()
            .position(|n| n.node_id == node_id)
            .unwrap_or_else(|| panic!("no broker has node id {node_id}"))
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].data_dir()
    }

    pub fn config_path(&self, i: usize) -> PathBuf {
        self.nodes[i].config_path()
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Spawns broker `i` without waiting for it to listen.
    pub fn launch(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "broker {} already runs", node.node_id);
        node.launches += 1;
        let log = std::fs::File::create(node.log_path(node.launches)).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_actorlog"))
            .arg("serve")
            .arg("--config")
            .arg(node.config_path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the broker binary starts");
        node.child = Some(child);
        node.stopped = false;
    }

    /// Waits until broker `i` accepts connections; panics if it exits.
    pub fn wait_listening(&mut self, i: usize) {
        let start = Instant::now();
        while TcpStream::connect(self.nodes[i].bootstrap()).is_err() {
            if let Some(status) = self.try_exit(i) {
                panic!(
                    "broker {} exited at start: {status}\n{}",
                    self.nodes[i].node_id,
                    self.stderr(i)
                );
            }
            assert!(
                start.elapsed() < LISTEN_TIMEOUT,
                "broker {} did not listen within {LISTEN_TIMEOUT:?}",
                self.nodes[i].node_id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the broker gets no chance to flush or say goodbye.
    pub fn kill9(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.stopped = false;
    }

    /// Starts broker `i` again on the same config and data, and waits
    /// until it listens.
    pub fn restart(&mut self, i: usize) {
        self.launch(i);
        self.wait_listening(i);
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn stop_signal(&mut self, i: usize) {
        self.nodes[i].signal(Signal::STOP);
        self.nodes[i].stopped = true;
    }

    /// SIGCONT: a stopped broker runs on.
    pub fn cont_signal(&mut self, i: usize) {
        self.nodes[i].signal(Signal::CONT);
        self.nodes[i].stopped = false;
    }

    /// Whether broker `i` has a process that has not exited (a stopped
    /// one counts as running).
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The exit status of broker `i` if its process has ended; the process
    /// is then forgotten, so it can be launched again.
    pub fn try_exit(&mut self, i: usize) -> Option<ExitStatus> {
        let node = &mut self.nodes[i];
        let status = node.child.as_mut()?.try_wait().expect("child status")?;
        node.child = None;
        Some(status)
    }

    /// Waits at most `deadline` for broker `i` to exit; its status.
    pub fn wait_exit(&mut self, i: usize, deadline: Duration) -> ExitStatus {
        let mut status = None;
        let what = format!("broker {} exits", self.nodes[i].node_id);
        wait_until(deadline, &what, || {
            status = self.try_exit(i);
            status.is_some()
        });
        status.expect("an exit status")
    }

    /// What broker `i` wrote to stderr in its latest launch.
    pub fn stderr(&self, i: usize) -> String {
        let node = &self.nodes[i];
        std::fs::read_to_string(node.log_path(node.launches)).unwrap_or_default()
    }

    /// Prints the end of every broker's latest log, for a failed test.
    fn print_log_tails(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let log = self.stderr(i);
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "---- broker {} (launch {}), last {} lines of stderr ----\n{}",
                node.node_id,
                node.launches,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tails();
        }
        for node in &mut self.nodes {
            if node.stopped {
                node.signal(Signal::CONT);
            }
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // `root` removes every broker's directory when it drops.
    }
}

/// The config a broker of the cluster starts with.
fn base_config(node: &Node, controller_port: u16, cluster_id: &str, voters: &[String]) -> Value {
    let cluster = yaml_map([
        ("cluster_id", Value::from(cluster_id)),
        (
            "controller_listen",
            Value::from(format!("127.0.0.1:{controller_port}")),
        ),
        (
            "voters",
            Value::Sequence(voters.iter().map(|v| Value::from(v.as_str())).collect()),
        ),
        ("broker_session_timeout_ms", Value::from(2000)),
    ]);
    yaml_map([
        ("node_id", Value::from(node.node_id)),
        ("listen", Value::from(node.bootstrap())),
        (
            "data_dir",
            Value::from(node.data_dir().to_str().expect("utf-8 temp path")),
        ),
        ("cluster", cluster),
    ])
}

fn yaml_map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// Merges `extra` into `base`: mappings key by key, anything else replaced.
fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Mapping(base), Value::Mapping(extra)) => {
            for (key, value) in extra {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, extra) => *base = extra.clone(),
    }
}
