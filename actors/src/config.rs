//! Broker settings. Parsing a file into them lives in the `actorlog` crate;
//! here they are plain values with Kafka's defaults.

use crate::cluster::config::ControllerSecurity;
use crate::cluster::raft::network::ControllerTls;
use crate::security::listeners::{self, Listener, SecurityProtocol};
use crate::security::peer::{PeerSecurity, SaslLogin};
use crate::security::sasl::Mechanism;
use crate::security::tls::{self, ClientAuth};
pub use crate::security::AuthorizerKind;
use crate::security::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The in-flight limits count bytes as semaphore permits, which have a ceiling.
const MAX_IN_FLIGHT_BYTES: u64 = tokio::sync::Semaphore::MAX_PERMITS as u64;

/// Everything a broker needs to start. Field names are the `config.yaml` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// This broker's id in Metadata responses.
    pub node_id: i32,
    /// Address of the one PLAINTEXT listener, when `listeners` is not
    /// given (127.0.0.1:9092 when neither is).
    pub listen: Option<SocketAddr>,
    /// `host:port` that clients of `listen` are told to connect to;
    /// defaults to `listen`.
    pub advertised_listener: Option<String>,
    /// Several listeners as Kafka writes them,
    /// `PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094`; instead of
    /// `listen`. A name other than a protocol's needs
    /// `listener_security_protocol_map`.
    pub listeners: Option<String>,
    /// Where clients of each listener are told to connect, same syntax;
    /// a listener not named here advertises its bind address.
    pub advertised_listeners: Option<String>,
    /// The protocol of each listener name, `CLIENT:SASL_SSL,INTERNAL:PLAINTEXT`.
    pub listener_security_protocol_map: Option<String>,
    /// The SASL mechanisms SASL listeners offer.
    pub sasl_enabled_mechanisms: Vec<Mechanism>,
    /// Users and passwords that SASL/PLAIN accepts.
    pub sasl_plain_users: BTreeMap<String, Secret>,
    /// Longest a SASL session lasts before the client must authenticate
    /// again (KIP-368, `connections.max.reauth.ms`); 0: for the life of
    /// the connection.
    pub connections_max_reauth_ms: u64,
    /// A failed authentication is answered after this long, which slows
    /// down password guessing (`connection.failed.authentication.delay.ms`).
    pub failed_authentication_delay_ms: u64,
    /// The broker's certificate chain (PEM), for SSL and SASL_SSL listeners.
    pub ssl_cert_file: Option<PathBuf>,
    /// The private key of `ssl_cert_file` (PEM).
    pub ssl_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must be signed by.
    pub ssl_ca_file: Option<PathBuf>,
    /// Whether TLS clients present a certificate (`ssl.client.auth`):
    /// `none`, `requested` or `required`. A client certificate's subject
    /// becomes the principal of an SSL connection.
    pub ssl_client_auth: ClientAuth,
    /// In a cluster, the listener other brokers replicate from and send
    /// transaction markers to (Kafka's `inter.broker.listener.name`); the
    /// first listener when not set. Every broker of a cluster names the same.
    pub inter_broker_listener_name: Option<String>,
    /// The SASL mechanism this broker logs in to the others with, when the
    /// inter-broker listener is SASL_PLAINTEXT or SASL_SSL.
    pub sasl_mechanism_inter_broker_protocol: Mechanism,
    /// The user this broker logs in to the others as (it must be a super
    /// user when ACLs are enforced, as in Kafka).
    pub inter_broker_sasl_username: Option<String>,
    pub inter_broker_sasl_password: Option<Secret>,
    /// Directory holding partition logs and the topic catalog.
    pub data_dir: PathBuf,
    /// Create unknown topics on Metadata and Produce, as Kafka's `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics with -1.
    pub num_partitions: u32,
    /// Largest request frame accepted; a larger one closes the connection.
    pub max_request_bytes: u32,
    /// Largest record batch accepted (Kafka's `message.max.bytes`).
    pub message_max_bytes: u32,
    /// Roll to a new segment once the active one reaches this size.
    pub segment_bytes: u64,
    /// Roll to a new segment once the active one is this old.
    pub segment_ms: u64,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u32,
    /// Delete closed segments whose newest record is older than this;
    /// -1 keeps them forever (a topic's `retention.ms` overrides it).
    pub retention_ms: i64,
    /// Delete the oldest closed segments while a partition stays above this
    /// size; -1 for no limit (a topic's `retention.bytes` overrides it).
    pub retention_bytes: i64,
    /// How often each partition applies retention and compaction.
    pub retention_check_interval_ms: u64,
    /// How often each compacted partition checks whether its log is dirty
    /// enough to clean (Kafka's `log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: u64,
    /// Most bytes per second the compaction thread reads.
    pub compaction_bytes_per_sec: u64,
    /// Threads running partition and connection actors; 0 means one per core.
    pub worker_threads: usize,
    /// Threads doing the disk reads of fetches, off the worker threads, so
    /// a consumer of cold data never stalls the actors sharing its worker.
    pub io_threads: usize,
    /// Address of the HTTP endpoint with `/metrics` (Prometheus) and
    /// `/health`; none to turn it off.
    pub metrics_listen: Option<SocketAddr>,
    /// How long the first rebalance of an empty group waits for more members
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: u64,
    /// Committed offsets of a group without members are deleted this long
    /// after their commit (Kafka's `offsets.retention.minutes`).
    pub offsets_retention_ms: i64,
    /// Smallest session timeout a consumer may ask for.
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a consumer may ask for.
    pub group_max_session_timeout_ms: i32,
    /// Session timeout of members of new-protocol (KIP-848) consumer
    /// groups (Kafka's `group.consumer.session.timeout.ms`).
    pub group_consumer_session_timeout_ms: u64,
    /// How often KIP-848 members heartbeat; new partitions reach a member
    /// on its next heartbeat (`group.consumer.heartbeat.interval.ms`).
    pub group_consumer_heartbeat_interval_ms: i32,
    /// Open client connections at most; more are closed at accept.
    pub max_connections: u32,
    /// Open client connections from one IP address at most.
    pub max_connections_per_ip: u32,
    /// A connection with nothing in flight is closed after this long without
    /// a request (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// Request bytes of one connection being served at once; beyond it the
    /// broker stops reading that connection until responses go out.
    pub max_in_flight_bytes_per_connection: u64,
    /// Request bytes of all connections being served at once.
    pub max_in_flight_bytes: u64,
    /// Partitions of all topics together at most; creating more is refused.
    pub max_partitions: u32,
    /// On SIGTERM, how long in-flight requests may take to finish before the
    /// remaining connections are dropped.
    pub shutdown_timeout_ms: u64,
    /// Whether ACLs are enforced: `none` lets every client do everything
    /// (no authorizer, as before ACLs were enforced); `acl` checks every
    /// request against the ACLs (Kafka's `authorizer.class.name` set to
    /// its StandardAuthorizer).
    pub authorizer: AuthorizerKind,
    /// Principals (`User:name`) allowed everything whatever the ACLs say
    /// (Kafka's `super.users`). Only with `authorizer: acl`.
    pub super_users: Vec<String>,
    /// With `authorizer: acl`, whether a resource no ACL names at all is
    /// open to everyone (Kafka's `allow.everyone.if.no.acl.found`); by
    /// default what no ACL allows is denied.
    pub allow_everyone_if_no_acl_found: bool,
    /// Cluster mode: the controller quorum this broker votes in. None runs
    /// the broker alone, as before.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            listen: None,
            advertised_listener: None,
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map: None,
            sasl_enabled_mechanisms: Mechanism::DEFAULT.to_vec(),
            sasl_plain_users: BTreeMap::new(),
            connections_max_reauth_ms: 0,
            failed_authentication_delay_ms: 100,
            ssl_cert_file: None,
            ssl_key_file: None,
            ssl_ca_file: None,
            ssl_client_auth: ClientAuth::None,
            inter_broker_listener_name: None,
            sasl_mechanism_inter_broker_protocol: Mechanism::Plain,
            inter_broker_sasl_username: None,
            inter_broker_sasl_password: None,
            data_dir: PathBuf::from("./data"),
            auto_create_topics: true,
            num_partitions: 1,
            max_request_bytes: 100 * 1024 * 1024,
            message_max_bytes: 1024 * 1024 + 12,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            retention_check_interval_ms: 5 * 60 * 1000,
            log_cleaner_backoff_ms: 15_000,
            compaction_bytes_per_sec: 64 * 1024 * 1024,
            worker_threads: 0,
            io_threads: 4,
            metrics_listen: None,
            group_initial_rebalance_delay_ms: 3000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            max_connections: 10_000,
            max_connections_per_ip: 10_000,
            connections_max_idle_ms: 10 * 60 * 1000,
            max_in_flight_bytes_per_connection: 100 * 1024 * 1024,
            max_in_flight_bytes: 1024 * 1024 * 1024,
            max_partitions: 100_000,
            shutdown_timeout_ms: 30_000,
            authorizer: AuthorizerKind::None,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            cluster: None,
        }
    }
}

impl BrokerConfig {
    /// Checks the values serde cannot: ranges and relations between keys.
    /// The error names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, why: &str| Err(format!("config key `{key}`: {why}"));
        if self.num_partitions == 0 {
            return bad("num_partitions", "must be at least 1");
        }
        if self.max_request_bytes < 1024 {
            return bad("max_request_bytes", "must be at least 1024");
        }
        if self.message_max_bytes < 64 {
            return bad("message_max_bytes", "must be at least 64");
        }
        if self.segment_bytes < 1024 {
            return bad("segment_bytes", "must be at least 1024");
        }
        if self.segment_ms == 0 {
            return bad("segment_ms", "must be at least 1");
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be at least 1");
        }
        if self.retention_ms < -1 {
            return bad("retention_ms", "must be -1 (forever) or at least 0");
        }
        if self.retention_bytes < -1 {
            return bad("retention_bytes", "must be -1 (no limit) or at least 0");
        }
        if self.retention_check_interval_ms == 0 {
            return bad("retention_check_interval_ms", "must be at least 1");
        }
        if self.log_cleaner_backoff_ms == 0 {
            return bad("log_cleaner_backoff_ms", "must be at least 1");
        }
        if self.offsets_retention_ms < 1 {
            return bad("offsets_retention_ms", "must be at least 1");
        }
        if self.compaction_bytes_per_sec == 0 {
            return bad("compaction_bytes_per_sec", "must be at least 1");
        }
        if self.group_min_session_timeout_ms < 1 {
            return bad("group_min_session_timeout_ms", "must be at least 1");
        }
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms {
            return bad(
                "group_max_session_timeout_ms",
                "must not be below group_min_session_timeout_ms",
            );
        }
        if self.group_consumer_heartbeat_interval_ms < 1 {
            return bad("group_consumer_heartbeat_interval_ms", "must be at least 1");
        }
        if self.group_consumer_session_timeout_ms
            <= self.group_consumer_heartbeat_interval_ms as u64
        {
            return bad(
                "group_consumer_session_timeout_ms",
                "must be above group_consumer_heartbeat_interval_ms",
            );
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.max_connections_per_ip == 0 {
            return bad("max_connections_per_ip", "must be at least 1");
        }
        if self.connections_max_idle_ms == 0 {
            return bad("connections_max_idle_ms", "must be at least 1");
        }
        let in_flight_range = 1024..=MAX_IN_FLIGHT_BYTES;
        if !in_flight_range.contains(&self.max_in_flight_bytes_per_connection) {
            return bad(
                "max_in_flight_bytes_per_connection",
                &format!("must be between 1024 and {MAX_IN_FLIGHT_BYTES}"),
            );
        }
        if !in_flight_range.contains(&self.max_in_flight_bytes) {
            return bad(
                "max_in_flight_bytes",
                &format!("must be between 1024 and {MAX_IN_FLIGHT_BYTES}"),
            );
        }
        if self.io_threads == 0 {
            return bad("io_threads", "must be at least 1");
        }
        if self.num_partitions > self.max_partitions {
            return bad("num_partitions", "must not exceed max_partitions");
        }
        let listeners = self.listeners()?;
        let tls = listeners.iter().any(|l| l.protocol.tls());
        if tls && (self.ssl_cert_file.is_none() || self.ssl_key_file.is_none()) {
            return bad(
                "ssl_cert_file",
                "an SSL or SASL_SSL listener needs ssl_cert_file and ssl_key_file",
            );
        }
        if self.ssl_client_auth != ClientAuth::None && self.ssl_ca_file.is_none() {
            return bad(
                "ssl_ca_file",
                "is required when ssl_client_auth is not none",
            );
        }
        if listeners.iter().any(|l| l.protocol.sasl()) && self.sasl_enabled_mechanisms.is_empty() {
            return bad(
                "sasl_enabled_mechanisms",
                "a SASL listener needs at least one mechanism",
            );
        }
        if self.cluster.is_some() {
            self.peer_security(&listeners)?;
            self.controller_tls()?;
        }
        if let Some(user) = self.super_users.iter().find(|user| {
            !matches!(user.split_once(':'), Some((kind, name)) if !kind.is_empty() && !name.is_empty())
        }) {
            return bad(
                "super_users",
                &format!("{user:?} is not a principal `Type:name` (e.g. `User:admin`)"),
            );
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate(self.node_id)?;
        }
        Ok(())
    }

    /// The listener other brokers of the cluster reach this one on.
    pub fn inter_broker_listener<'a>(
        &self,
        listeners: &'a [Listener],
    ) -> Result<&'a Listener, String> {
        match &self.inter_broker_listener_name {
            None => listeners.first().ok_or_else(|| "no listener".to_owned()),
            Some(name) => listeners.iter().find(|l| l.name == *name).ok_or_else(|| {
                format!("config key `inter_broker_listener_name`: no listener is named `{name}`")
            }),
        }
    }

    /// How this broker connects to the others: the inter-broker listener's
    /// protocol, with this broker's TLS files and SASL login.
    pub fn peer_security(&self, listeners: &[Listener]) -> Result<PeerSecurity, String> {
        let listener = self.inter_broker_listener(listeners)?;
        let login = match (
            &self.inter_broker_sasl_username,
            &self.inter_broker_sasl_password,
        ) {
            (Some(username), Some(password)) => Some(SaslLogin {
                mechanism: self.sasl_mechanism_inter_broker_protocol,
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        if self.sasl_mechanism_inter_broker_protocol == Mechanism::OAuthBearer {
            return Err(
                "config key `sasl_mechanism_inter_broker_protocol`: brokers log in to each \
                 other with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not OAUTHBEARER"
                    .to_owned(),
            );
        }
        if listener.protocol.sasl()
            && !self
                .sasl_enabled_mechanisms
                .contains(&self.sasl_mechanism_inter_broker_protocol)
        {
            return Err(format!(
                "config key `sasl_mechanism_inter_broker_protocol`: {} is not in \
                 sasl_enabled_mechanisms",
                self.sasl_mechanism_inter_broker_protocol
            ));
        }
        let own_certificate = self
            .ssl_cert_file
            .as_deref()
            .zip(self.ssl_key_file.as_deref());
        PeerSecurity::new(
            listener.protocol,
            self.ssl_ca_file.as_deref(),
            own_certificate,
            login,
        )
        .map_err(|e| format!("inter-broker listener `{}`: {e}", listener.name))
    }

    /// Mutual TLS for the controller connections, if the cluster asks for
    /// it: the broker's certificate both ways, peers checked against
    /// `ssl_ca_file`.
    pub fn controller_tls(&self) -> Result<Option<ControllerTls>, String> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        if cluster.controller_security_protocol == ControllerSecurity::Plaintext {
            return Ok(None);
        }
        let (Some(cert), Some(key), Some(ca)) =
            (&self.ssl_cert_file, &self.ssl_key_file, &self.ssl_ca_file)
        else {
            return Err(
                "config key `cluster.controller_security_protocol`: SSL needs ssl_cert_file, \
                 ssl_key_file and ssl_ca_file"
                    .to_owned(),
            );
        };
        Ok(Some(ControllerTls {
            acceptor: tls::acceptor(cert, key, Some(ca), ClientAuth::Required)?,
            connector: tls::connector(ca, Some((cert, key)))?,
        }))
    }

    /// The listeners this broker binds, from `listeners` or else `listen`.
    pub fn listeners(&self) -> Result<Vec<Listener>, String> {
        let bad = |key: &str, why: &str| format!("config key `{key}`: {why}");
        let Some(list) = &self.listeners else {
            if self.advertised_listeners.is_some() {
                return Err(bad("advertised_listeners", "goes with `listeners`"));
            }
            let listen = self
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9092)));
            let (host, port) = match &self.advertised_listener {
                Some(adv) => parse_host_port(adv)
                    .ok_or_else(|| bad("advertised_listener", "must be host:port"))?,
                None if listen.ip().is_unspecified() => {
                    return Err(bad(
                        "advertised_listener",
                        "is required when `listen` is a wildcard address",
                    ))
                }
                None => (listen.ip().to_string(), i32::from(listen.port())),
            };
            return Ok(vec![Listener {
                name: SecurityProtocol::Plaintext.name().to_owned(),
                protocol: SecurityProtocol::Plaintext,
                bind: listen,
                host,
                port,
            }]);
        };
        if self.listen.is_some() || self.advertised_listener.is_some() {
            return Err(bad(
                "listeners",
                "give either `listen` (and `advertised_listener`) or `listeners`, not both",
            ));
        }
        listeners::parse(
            list,
            self.advertised_listeners.as_deref(),
            self.listener_security_protocol_map.as_deref(),
        )
        .map_err(|why| bad("listeners", &why))
    }
}

fn parse_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_string(), i32::from(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(BrokerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_key() {
        let config = BrokerConfig {
            num_partitions: 0,
            ..BrokerConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("num_partitions"));
        let config = BrokerConfig {
            listen: Some("0.0.0.0:9092".parse().unwrap()),
            ..BrokerConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .contains("advertised_listener"));
        let config = BrokerConfig {
            super_users: vec!["admin".into()],
            ..BrokerConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("super_users"));
    }

    #[test]
    fn brokers_do_not_log_in_to_each_other_with_oauthbearer() {
        let config = BrokerConfig {
            sasl_enabled_mechanisms: Mechanism::ALL.to_vec(),
            sasl_mechanism_inter_broker_protocol: Mechanism::OAuthBearer,
            ..BrokerConfig::default()
        };
        let listeners = config.listeners().unwrap();
        let Err(error) = config.peer_security(&listeners) else {
            panic!("OAUTHBEARER accepted between brokers");
        };
        assert!(
            error.contains("sasl_mechanism_inter_broker_protocol"),
            "{error}"
        );
        assert!(!BrokerConfig::default()
            .sasl_enabled_mechanisms
            .contains(&Mechanism::OAuthBearer));
    }

    #[test]
    fn advertised_defaults_to_listen() {
        let advertised = |config: &BrokerConfig| {
            let listener = config.listeners().unwrap().remove(0);
            (listener.host, listener.port)
        };
        let mut config = BrokerConfig::default();
        assert_eq!(advertised(&config), ("127.0.0.1".to_string(), 9092));
        config.advertised_listener = Some("kafka.local:19092".into());
        assert_eq!(advertised(&config), ("kafka.local".to_string(), 19092));
    }

    #[test]
    fn listen_and_listeners_exclude_each_other() {
        let config = BrokerConfig {
            listen: Some("127.0.0.1:9092".parse().unwrap()),
            listeners: Some("PLAINTEXT://127.0.0.1:9093".into()),
            ..BrokerConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("listeners"));
    }

    #[test]
    fn a_tls_listener_needs_a_certificate() {
        let config = BrokerConfig {
            listeners: Some("SSL://127.0.0.1:9093".into()),
            ..BrokerConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("ssl_cert_file"));
    }
}
