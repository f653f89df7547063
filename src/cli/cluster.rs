//! `actorlog cluster`: a local cluster of separate broker processes, for
//! trying replication and failover on one machine. It writes one config per
//! broker (every broker a controller voter, as Kafka's combined mode), runs
//! `actorlog serve --config` for each, and stops them all on Ctrl-C. The
//! data directory keeps the cluster id, so a second run is the same cluster.

mod supervise;

use clap::Args;
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The cluster listens on loopback only: it is for trying things out.
const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The file under the data directory holding the cluster id.
const CLUSTER_ID_FILE: &str = "cluster-id";

#[derive(Args)]
pub struct ClusterArgs {
    /// Number of brokers; each is also a controller voter.
    #[arg(long)]
    brokers: u32,
    /// Client port of broker 1; broker N listens on BASE + N - 1.
    #[arg(long, default_value_t = 9092)]
    base_port: u32,
    /// Controller port of broker 1 (default: the base port + 10000).
    #[arg(long)]
    controller_base_port: Option<u32>,
    /// Where the configs, logs and each broker's data go.
    #[arg(long, default_value = "./data/cluster")]
    data_dir: PathBuf,
    /// The cluster id; by default the one this data directory already
    /// holds, or a new one.
    #[arg(long)]
    cluster_id: Option<String>,
}

/// One broker of the local cluster: its ports and files.
struct BrokerPlan {
    node_id: i32,
    listen: SocketAddr,
    controller_listen: SocketAddr,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
}

/// The `config.yaml` of one broker: only what differs from the defaults.
#[derive(Serialize)]
struct BrokerFile<'a> {
    node_id: i32,
    listen: SocketAddr,
    data_dir: &'a Path,
    cluster: ClusterSection<'a>,
}

#[derive(Serialize)]
struct ClusterSection<'a> {
    cluster_id: &'a str,
    controller_listen: SocketAddr,
    voters: &'a [String],
}

pub fn run(args: ClusterArgs) -> Result<(), String> {
    let ports = ports(&args)?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let dir = std::path::absolute(&args.data_dir)
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    let cluster_id = cluster_id(&dir, args.cluster_id.as_deref())?;
    let brokers = plan(&dir, &ports);
    let voters = voters(&brokers);
    for broker in &brokers {
        let yaml = config_yaml(broker, &cluster_id, &voters)?;
        // The broker would refuse a bad config too, but one error here
        // beats N brokers failing in N log files.
        crate::config_file::parse(&yaml, &broker.config.display().to_string())?;
        std::fs::write(&broker.config, yaml)
            .map_err(|e| format!("cannot write {}: {e}", broker.config.display()))?;
    }
    println!(
        "cluster {cluster_id}: {} brokers, data in {}",
        brokers.len(),
        dir.display()
    );
    supervise::run(&brokers)
}

/// Client and controller ports per broker, checked to be usable ports that
/// do not collide.
fn ports(args: &ClusterArgs) -> Result<Vec<(u16, u16)>, String> {
    let n = args.brokers;
    if n == 0 {
        return Err("--brokers must be at least 1".into());
    }
    // `what` names the flag the range comes from, for the error.
    let range = |what: &str, base: u32| -> Result<std::ops::Range<u32>, String> {
        let last = base.saturating_add(n - 1);
        if base == 0 || last > u32::from(u16::MAX) {
            return Err(format!(
                "{what} with {n} brokers needs ports {base}..={last}, outside 1..=65535"
            ));
        }
        Ok(base..base + n)
    };
    let clients = range(&format!("--base-port {}", args.base_port), args.base_port)?;
    let controllers = match args.controller_base_port {
        Some(base) => range(&format!("--controller-base-port {base}"), base)?,
        None => {
            let base = args.base_port.saturating_add(10_000);
            range(
                &format!("--controller-base-port {base} (the default, --base-port + 10000)"),
                base,
            )?
        }
    };
    if clients.start < controllers.end && controllers.start < clients.end {
        return Err(format!(
            "client ports {}..={} and controller ports {}..={} overlap",
            clients.start,
            clients.end - 1,
            controllers.start,
            controllers.end - 1
        ));
    }
    Ok(clients
        .zip(controllers)
        .map(|(c, k)| (c as u16, k as u16))
        .collect())
}

/// The cluster id this data directory belongs to: the one it holds, or
/// `requested`, or a new one, written down for the next run.
fn cluster_id(dir: &Path, requested: Option<&str>) -> Result<String, String> {
    let file = dir.join(CLUSTER_ID_FILE);
    match std::fs::read_to_string(&file) {
        Ok(stored) => {
            let stored = stored.trim().to_string();
            match requested {
                Some(requested) if requested != stored => Err(format!(
                    "{} holds cluster {stored}, not {requested}: choose another --data-dir \
                     for a new cluster",
                    dir.display()
                )),
                _ => Ok(stored),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = match requested {
                Some(id) if id.trim().is_empty() => {
                    return Err("--cluster-id must not be empty".into())
                }
                Some(id) => id.to_string(),
                None => uuid::Uuid::new_v4().simple().to_string(),
            };
            std::fs::write(&file, format!("{id}\n"))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            Ok(id)
        }
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

fn plan(dir: &Path, ports: &[(u16, u16)]) -> Vec<BrokerPlan> {
    ports
        .iter()
        .zip(1..)
        .map(|(&(client, controller), node_id)| BrokerPlan {
            node_id,
            listen: SocketAddr::from((HOST, client)),
            controller_listen: SocketAddr::from((HOST, controller)),
            config: dir.join(format!("broker-{node_id}.yaml")),
            data_dir: dir.join(format!("broker-{node_id}")),
            log: dir.join(format!("broker-{node_id}.log")),
        })
        .collect()
}

/// Kafka's `controller.quorum.voters`: every broker, `id@host:port`.
fn voters(brokers: &[BrokerPlan]) -> Vec<String> {
    brokers
        .iter()
        .map(|b| format!("{}@{}", b.node_id, b.controller_listen))
        .collect()
}

fn config_yaml(broker: &BrokerPlan, cluster_id: &str, voters: &[String]) -> Result<String, String> {
    let file = BrokerFile {
        node_id: broker.node_id,
        listen: broker.listen,
        data_dir: &broker.data_dir,
        cluster: ClusterSection {
            cluster_id,
            controller_listen: broker.controller_listen,
            voters,
        },
    };
    serde_yaml_ng::to_string(&file).map_err(|e| format!("broker {} config: {e}", broker.node_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(brokers: u32, base_port: u32, controller_base_port: Option<u32>) -> ClusterArgs {
        ClusterArgs {
            brokers,
            base_port,
            controller_base_port,
            data_dir: PathBuf::from("unused"),
            cluster_id: None,
        }
    }

    #[test]
    fn ports_follow_the_bases() {
        assert_eq!(
            ports(&args(3, 9092, None)),
            Ok(vec![(9092, 19092), (9093, 19093), (9094, 19094)])
        );
        assert_eq!(ports(&args(1, 7000, Some(7100))), Ok(vec![(7000, 7100)]));
    }

    #[test]
    fn impossible_ports_are_explained() {
        assert!(ports(&args(0, 9092, None))
            .unwrap_err()
            .contains("--brokers"));
        let err = ports(&args(3, 65_534, Some(1000))).unwrap_err();
        assert!(err.contains("--base-port 65534"), "{err}");
        let err = ports(&args(3, 60_000, None)).unwrap_err();
        assert!(err.contains("--controller-base-port"), "{err}");
        let err = ports(&args(3, 0, Some(1000))).unwrap_err();
        assert!(err.contains("outside"), "{err}");
        let err = ports(&args(3, 9092, Some(9094))).unwrap_err();
        assert!(err.contains("overlap"), "{err}");
    }

    #[test]
    fn configs_are_valid_broker_configs() {
        let dir = Path::new("/tmp/cluster");
        let brokers = plan(dir, &ports(&args(3, 9092, None)).unwrap());
        let voters = voters(&brokers);
        assert_eq!(
            voters,
            [
                "1@127.0.0.1:19092",
                "2@127.0.0.1:19093",
                "3@127.0.0.1:19094"
            ]
        );
        for broker in &brokers {
            let yaml = config_yaml(broker, "c1", &voters).unwrap();
            let config = crate::config_file::parse(&yaml, "generated").unwrap();
            assert_eq!(config.node_id, broker.node_id);
            assert_eq!(config.listen, Some(broker.listen));
            assert_eq!(config.data_dir, broker.data_dir);
            let cluster = config.cluster.expect("a cluster section");
            assert_eq!(cluster.cluster_id, "c1");
            assert_eq!(cluster.controller_listen, broker.controller_listen);
        }
    }

    #[test]
    fn the_data_dir_keeps_its_cluster_id() {
        let dir = tempfile::tempdir().unwrap();
        let first = cluster_id(dir.path(), None).unwrap();
        assert!(!first.is_empty());
        assert_eq!(cluster_id(dir.path(), None).unwrap(), first);
        assert_eq!(cluster_id(dir.path(), Some(&first)).unwrap(), first);
        let err = cluster_id(dir.path(), Some("other")).unwrap_err();
        assert!(err.contains(&first) && err.contains("other"), "{err}");

        let named = tempfile::tempdir().unwrap();
        assert_eq!(cluster_id(named.path(), Some("mine")).unwrap(), "mine");
        assert_eq!(cluster_id(named.path(), None).unwrap(), "mine");
        let empty = tempfile::tempdir().unwrap();
        assert!(cluster_id(empty.path(), Some(" ")).is_err());
    }
}
