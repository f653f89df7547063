//! The `cluster:` section of the broker config: the controller quorum and
//! the broker session rules. Without it the broker runs alone, as before.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// Settings of a broker that is one of a cluster's controller voters
/// (KRaft's combined mode). YAML keys are the field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Identifies the cluster; all brokers must share it. A data directory
    /// remembers it, so a broker cannot join another cluster by mistake.
    pub cluster_id: String,
    /// Address the controller (raft) listener binds to. Its port must be
    /// the one this broker's entry in `voters` names.
    pub controller_listen: SocketAddr,
    /// The controller quorum, as Kafka's `controller.quorum.voters`:
    /// entries `id@host:port`, e.g. `1@127.0.0.1:19092`. Every broker lists
    /// the same voters; a broker whose `node_id` is not among them is an
    /// observer: it joins the quorum as a non-voting learner, gets the
    /// metadata replicated, and is a broker like the others.
    pub voters: Vec<String>,
    /// A broker whose heartbeats stop for this long is fenced and its
    /// partitions get new leaders (Kafka's `broker.session.timeout.ms`).
    #[serde(default = "default_session_timeout")]
    pub broker_session_timeout_ms: u64,
    /// How often a broker heartbeats the active controller
    /// (Kafka's `broker.heartbeat.interval.ms`).
    #[serde(default = "default_heartbeat_interval")]
    pub broker_heartbeat_interval_ms: u64,
    /// A follower that has not caught up with the leader's log end for this
    /// long leaves the ISR (Kafka's `replica.lag.time.max.ms`).
    #[serde(default = "default_replica_lag")]
    pub replica_lag_time_max_ms: u64,
    /// Replication factor of topics created without one; defaults to the
    /// smaller of 3 and the number of voters.
    #[serde(default)]
    pub default_replication_factor: Option<u16>,
    /// Whether a replica outside the ISR may become leader when no ISR
    /// member is alive, losing acknowledged records; a topic's
    /// `unclean.leader.election.enable` overrides it.
    #[serde(default)]
    pub unclean_leader_election_enable: bool,
    /// Partitions of the internal `__consumer_offsets` topic, where group
    /// commits are replicated (Kafka's `offsets.topic.num.partitions`).
    #[serde(default = "default_offsets_partitions")]
    pub offsets_topic_num_partitions: u32,
    /// Hands partitions back to their preferred leaders once it is in sync
    /// again (Kafka's `auto.leader.rebalance.enable`).
    #[serde(default = "default_true")]
    pub auto_leader_rebalance_enable: bool,
    /// How often the active controller looks for partitions to hand back
    /// (`leader.imbalance.check.interval.seconds`, in milliseconds).
    #[serde(default = "default_imbalance_interval")]
    pub leader_imbalance_check_interval_ms: u64,
    /// A broker's partitions are handed back once more than this percentage
    /// of those it prefers are led elsewhere
    /// (`leader.imbalance.per.broker.percentage`).
    #[serde(default = "default_imbalance_percentage")]
    pub leader_imbalance_per_broker_percentage: u32,
    /// `SSL` runs the controller connections over mutual TLS with the
    /// broker's `ssl_cert_file`, `ssl_key_file` and `ssl_ca_file`: only a
    /// peer with a certificate of the cluster's CA may join the quorum.
    #[serde(default)]
    pub controller_security_protocol: ControllerSecurity,
}

/// The security of the controller listener and of connections to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerSecurity {
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
}

fn default_true() -> bool {
    true
}

fn default_imbalance_interval() -> u64 {
    300_000
}

fn default_imbalance_percentage() -> u32 {
    10
}

fn default_offsets_partitions() -> u32 {
    50
}

fn default_session_timeout() -> u64 {
    2000
}

fn default_heartbeat_interval() -> u64 {
    250
}

fn default_replica_lag() -> u64 {
    10_000
}

/// Parses one `controller.quorum.voters` entry, `id@host:port`.
pub fn parse_voter(entry: &str) -> Result<(i32, SocketAddr), String> {
    let bad = |why: &str| format!("voter `{entry}`: {why} (expected `id@host:port`)");
    let (id, addr) = entry.split_once('@').ok_or_else(|| bad("no `@`"))?;
    let id: i32 = id
        .trim()
        .parse()
        .map_err(|_| bad("the id is not a number"))?;
    if id < 0 {
        return Err(bad("the id must be at least 0"));
    }
    let addr = addr.trim();
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return Ok((id, addr));
    }
    let resolved = addr
        .to_socket_addrs()
        .map_err(|e| bad(&format!("the address does not resolve: {e}")))?
        .next()
        .ok_or_else(|| bad("the address resolves to nothing"))?;
    Ok((id, resolved))
}

impl ClusterConfig {
    /// The voters by node id.
    pub fn voters(&self) -> Result<BTreeMap<i32, SocketAddr>, String> {
        let mut out = BTreeMap::new();
        for entry in &self.voters {
            let (id, addr) = parse_voter(entry)?;
            if out.insert(id, addr).is_some() {
                return Err(format!("voter id {id} is listed twice"));
            }
        }
        Ok(out)
    }

    /// The replication factor of topics created without one.
    pub fn default_replication_factor(&self) -> u16 {
        self.default_replication_factor
            .unwrap_or_else(|| self.voters.len().clamp(1, 3) as u16)
    }

    /// Checks what serde cannot, for the broker `node_id`. The error names
    /// the offending key.
    pub fn validate(&self, node_id: i32) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("config key `cluster.{key}`: {why}"));
        if self.cluster_id.trim().is_empty() {
            return bad("cluster_id", "must not be empty");
        }
        if node_id < 0 {
            return Err("config key `node_id`: must be at least 0 in a cluster".into());
        }
        let voters = match self.voters() {
            Ok(v) => v,
            Err(e) => return bad("voters", &e),
        };
        if voters.is_empty() {
            return bad("voters", "must list at least one voter");
        }
        match voters.get(&node_id) {
            Some(own) if own.port() != self.controller_listen.port() => {
                return bad(
                    "controller_listen",
                    &format!(
                        "port {} differs from this broker's voter entry {own}",
                        self.controller_listen.port()
                    ),
                );
            }
            Some(_) => {}
            // An observer: the voters replicate the metadata to the address
            // it announces, so it must be one they can reach.
            None if self.controller_listen.ip().is_unspecified() => {
                return bad(
                    "controller_listen",
                    "a broker that is not a voter (an observer) announces this address to \
                     the voters: it must not be a wildcard",
                );
            }
            None => {}
        }
        if self.broker_heartbeat_interval_ms == 0 {
            return bad("broker_heartbeat_interval_ms", "must be at least 1");
        }
        if self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms {
            return bad(
                "broker_session_timeout_ms",
                "must be above broker_heartbeat_interval_ms",
            );
        }
        if self.replica_lag_time_max_ms == 0 {
            return bad("replica_lag_time_max_ms", "must be at least 1");
        }
        if let Some(rf) = self.default_replication_factor {
            if rf == 0 {
                return bad("default_replication_factor", "must be at least 1");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        ClusterConfig {
            cluster_id: "c1".into(),
            controller_listen: "127.0.0.1:19092".parse().unwrap(),
            voters: vec![
                "1@127.0.0.1:19092".into(),
                "2@127.0.0.1:19093".into(),
                "3@127.0.0.1:19094".into(),
            ],
            broker_session_timeout_ms: default_session_timeout(),
            broker_heartbeat_interval_ms: default_heartbeat_interval(),
            replica_lag_time_max_ms: default_replica_lag(),
            default_replication_factor: None,
            unclean_leader_election_enable: false,
            offsets_topic_num_partitions: default_offsets_partitions(),
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: default_imbalance_interval(),
            leader_imbalance_per_broker_percentage: default_imbalance_percentage(),
            controller_security_protocol: ControllerSecurity::Plaintext,
        }
    }

    #[test]
    fn voters_parse_like_kafka() {
        assert_eq!(
            parse_voter("2@127.0.0.1:19093"),
            Ok((2, "127.0.0.1:19093".parse().unwrap()))
        );
        assert!(parse_voter("127.0.0.1:19093")
            .unwrap_err()
            .contains("no `@`"));
        assert!(parse_voter("x@127.0.0.1:1").unwrap_err().contains("id"));
        assert!(parse_voter("-1@127.0.0.1:1")
            .unwrap_err()
            .contains("at least 0"));
        assert!(parse_voter("1@127.0.0.1").unwrap_err().contains("resolve"));
        assert_eq!(parse_voter("1@localhost:5").map(|v| v.1.port()), Ok(5));
    }

    #[test]
    fn validation() {
        let c = config();
        assert_eq!(c.validate(1), Ok(()));
        assert_eq!(c.default_replication_factor(), 3);
        // Not a voter: an observer, which must announce a reachable address.
        assert_eq!(c.validate(4), Ok(()));
        let mut wildcard = config();
        wildcard.controller_listen = "0.0.0.0:19095".parse().unwrap();
        assert!(wildcard.validate(4).unwrap_err().contains("wildcard"));
        assert!(c.validate(2).unwrap_err().contains("controller_listen"));
        let mut dup = config();
        dup.voters.push("1@127.0.0.1:1".into());
        assert!(dup.validate(1).unwrap_err().contains("twice"));
        let mut slow = config();
        slow.broker_session_timeout_ms = 100;
        assert!(slow
            .validate(1)
            .unwrap_err()
            .contains("broker_session_timeout_ms"));
    }

    #[test]
    fn yaml_defaults_and_unknown_keys() {
        let c: ClusterConfig = serde_yaml_like(
            r#"{"cluster_id":"c","controller_listen":"127.0.0.1:1","voters":["1@127.0.0.1:1"]}"#,
        )
        .unwrap();
        assert_eq!(c.broker_session_timeout_ms, 2000);
        assert_eq!(c.broker_heartbeat_interval_ms, 250);
        assert_eq!(c.replica_lag_time_max_ms, 10_000);
        assert_eq!(c.default_replication_factor(), 1);
        assert!(!c.unclean_leader_election_enable);
        assert!(serde_yaml_like(
            r#"{"cluster_id":"c","controller_listen":"127.0.0.1:1","voters":[],"typo":1}"#
        )
        .is_err());
    }

    /// JSON is a subset of YAML; this crate parses no YAML itself (the
    /// `actorlog` crate does), and serde sees the same keys either way.
    fn serde_yaml_like(s: &str) -> Result<ClusterConfig, serde_json::Error> {
        serde_json::from_str(s)
    }
}
