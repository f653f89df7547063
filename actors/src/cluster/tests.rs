//! In-process cluster tests: real ClusterNodes on loopback ports, each with
//! its own data directory. Every wait is bounded and polls; none asserts a
//! speed.

use super::image::{assign_replicas, Applied, ClusterImage, Command, Endpoint, NO_LEADER};
use super::{ClusterConfig, ClusterNode};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn config(cluster_id: &str, id: i32, ports: &[u16]) -> ClusterConfig {
    ClusterConfig {
        cluster_id: cluster_id.into(),
        controller_listen: format!("127.0.0.1:{}", ports[id as usize - 1])
            .parse()
            .unwrap(),
        voters: ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect(),
        broker_session_timeout_ms: 2000,
        broker_heartbeat_interval_ms: 250,
        replica_lag_time_max_ms: 10_000,
        default_replication_factor: None,
        unclean_leader_election_enable: false,
        offsets_topic_num_partitions: 5,
        auto_leader_rebalance_enable: false,
        leader_imbalance_check_interval_ms: 300_000,
        leader_imbalance_per_broker_percentage: 10,
        controller_security_protocol: Default::default(),
    }
}

/// A PLAINTEXT listener on 127.0.0.1:`port`.
fn endpoint(port: u16) -> Vec<Endpoint> {
    vec![Endpoint {
        listener: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port,
    }]
}

fn start(id: i32, dir: &Path, ports: &[u16]) -> ClusterNode {
    start_with(id, dir, &config("test-cluster", id, ports)).unwrap()
}

/// Node `id` on `dir` with `config`, plaintext, its log dir healthy.
fn start_with(id: i32, dir: &Path, config: &ClusterConfig) -> io::Result<ClusterNode> {
    ClusterNode::start(
        id,
        endpoint(9090 + id as u16),
        dir,
        config,
        None,
        Default::default(),
    )
}

fn image(node: &ClusterNode) -> Arc<ClusterImage> {
    node.image().borrow().clone()
}

/// Polls `ok` until it holds, failing the test after `secs` seconds.
fn wait_until(secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_live(image: &ClusterImage, ids: &[i32]) -> bool {
    ids.iter().all(|id| image.is_live(*id))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn three_nodes_fail_over_and_rejoin() {
    let _ = env_logger_init();
    let ports = free_ports(3);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Option<ClusterNode>> = (1..=3)
        .map(|id| Some(start(id, dirs[id as usize - 1].path(), &ports)))
        .collect();
    let node = |nodes: &[Option<ClusterNode>], id: i32| nodes[id as usize - 1].clone().unwrap();

    wait_until(30, "three registered, unfenced brokers", || {
        nodes
            .iter()
            .flatten()
            .all(|n| all_live(&image(n), &[1, 2, 3]) && n.broker_epoch().is_some())
    });

    // Create a topic through a follower: the command is forwarded.
    let follower = nodes
        .iter()
        .flatten()
        .find(|n| !n.is_active_controller())
        .unwrap()
        .clone();
    let assignment = assign_replicas(&image(&follower).live_brokers(), 3, 3, 0).unwrap();
    let create = Command::CreateTopic {
        name: "t".into(),
        id: Uuid::new_v4(),
        configs: BTreeMap::new(),
        assignment,
    };
    let result = block_on(follower.submit(create)).unwrap();
    assert!(
        matches!(result, Ok(Applied::TopicCreated { .. })),
        "{result:?}"
    );
    assert_eq!(image(&follower).topics["t"].partitions.len(), 3);
    wait_until(10, "the topic in every image", || {
        nodes
            .iter()
            .flatten()
            .all(|n| n.image().borrow().topics.contains_key("t"))
    });

    // Stop the leader of partition 0.
    let before = image(&follower).topics["t"].partitions[0].clone();
    let victim = before.leader;
    assert_ne!(victim, NO_LEADER);
    node(&nodes, victim).shutdown();
    nodes[victim as usize - 1] = None;
    let survivors: Vec<i32> = (1..=3).filter(|&id| id != victim).collect();
    wait_until(30, "the victim fenced and a new leader elected", || {
        survivors.iter().all(|&id| {
            let image = image(&node(&nodes, id));
            let p = &image.topics["t"].partitions[0];
            !image.is_live(victim)
                && p.leader != victim
                && p.leader != NO_LEADER
                && p.leader_epoch > before.leader_epoch
                && !p.isr.contains(&victim)
        })
    });

    // Restart it on the same directory: its log is still there.
    let restarted = start(victim, dirs[victim as usize - 1].path(), &ports);
    wait_until(10, "the restarted node to replay its own log", || {
        image(&restarted).topics.contains_key("t")
    });
    nodes[victim as usize - 1] = Some(restarted.clone());
    wait_until(30, "the restarted broker unfenced everywhere", || {
        nodes
            .iter()
            .flatten()
            .all(|n| all_live(&image(n), &[1, 2, 3]))
    });
    // Back in the raft group: it applies what others commit.
    let alloc = Command::AllocateProducerIds { count: 10 };
    let survivor = node(&nodes, survivors[0]);
    let first = match block_on(survivor.submit(alloc)).unwrap() {
        Ok(Applied::ProducerIds { first }) => first,
        other => panic!("{other:?}"),
    };
    wait_until(10, "the restarted node to apply new entries", || {
        image(&restarted).next_producer_id == first + 10
    });

    for n in nodes.iter().flatten() {
        n.shutdown();
    }
}

#[test]
fn another_clusters_data_dir_is_refused() {
    let _ = env_logger_init();
    let ports = free_ports(1);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config("cluster-alpha", 1, &ports);
    let node = start_with(1, dir.path(), &config).unwrap();
    wait_until(30, "a single voter to register", || {
        node.broker_epoch().is_some()
    });
    node.shutdown();

    config.cluster_id = "cluster-beta".into();
    let err = match start_with(1, dir.path(), &config) {
        Ok(node) => {
            node.shutdown();
            panic!("a data dir of another cluster was accepted");
        }
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("cluster-alpha") && err.contains("cluster-beta"),
        "{err}"
    );

    // The right cluster id still starts, with the broker still registered.
    config.cluster_id = "cluster-alpha".into();
    let node = start_with(1, dir.path(), &config).unwrap();
    wait_until(30, "the registration to survive the restart", || {
        node.image().borrow().brokers.contains_key(&1)
    });
    node.shutdown();
}

#[test]
fn silent_voters_make_it_wait_not_fail() {
    let _ = env_logger_init();
    let ports = free_ports(3);
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(1, dir.path(), &config("lonely", 1, &ports)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!node.is_active_controller());
    assert_eq!(node.broker_epoch(), None);
    node.shutdown();
}

/// Shows the nodes' logs with `RUST_LOG=actorlog_actors::cluster=info`.
fn env_logger_init() -> Result<(), log::SetLoggerError> {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.target().starts_with("actorlog_actors::cluster")
                && std::env::var("RUST_LOG").is_ok_and(|v| v.contains("cluster"))
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                eprintln!("{} {}: {}", r.level(), r.target(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Info))
}
