//! The broker: starts the worker arbiters and the flusher, recovers topics
//! from the catalog, and owns the registries (topic name → partition actors).
//! Connection handlers reach partitions through it.

use crate::cluster::image::{assign_replicas, Applied, Command, Endpoint, NO_LEADER};
use crate::cluster::ClusterNode;
use crate::config::BrokerConfig;
use crate::dynamic_config::{self, DynamicConfigs};
use crate::flusher::Flusher;
use crate::group::assignor::Topics;
use crate::group::classic::GroupConfig;
use crate::group::kip848::ConsumerGroupConfig;
use crate::group::{CommitLog, GroupCoordinator, StopIfIdle};
use crate::limits::Connections;
use crate::metrics::Metrics;
use crate::partition::cleaner::Cleaner;
use crate::partition::local_log::Log;
use crate::partition::reader::Readers;
use crate::partition::PartitionHandle;
use crate::partition::{self, Partition};
use crate::replication::manager::ReplicaManager;
use crate::replication::markers::Markers;
use crate::replication::offsets_topic::{self, OffsetsTopicLog, OFFSETS_TOPIC};
use crate::replication::txn_offsets::PendingOffsets;
use crate::security::listeners::Listener;
use crate::security::peer::PeerSecurity;
use crate::security::Authorizer;
use crate::store::acls::{AclBinding, AclFilter, AclStore};
use crate::store::dynamic_configs::DynamicConfigStore;
use crate::store::offsets::OffsetStore;
use crate::store::scram::ScramStore;
use crate::topic::broker_settings::{self, Settings};
use crate::topic::catalog::{Catalog, TopicRecord};
use crate::topic::{self, validate_name, Topic};
use crate::txn::{Adopt, Release, TxnCoordinator};
use actix::{Actor, Addr, Arbiter, ArbiterHandle};
use dashmap::DashMap;
use futures_util::future::join_all;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use uuid::Uuid;

/// How logs name a broker resource.
fn resource_name(broker: Option<i32>) -> String {
    match broker {
        Some(id) => format!("broker {id}"),
        None => "the cluster default".to_string(),
    }
}

/// Why a topic operation failed, with the Kafka error code clients expect.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicError {
    /// The code the client gets.
    pub code: ResponseError,
    /// What failed, for the client's error message and the log.
    pub message: String,
}

impl TopicError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        TopicError {
            code,
            message: message.into(),
        }
    }

    fn storage(context: &str, err: io::Error) -> Self {
        log::error!("{context}: {err}");
        TopicError::new(
            ResponseError::KafkaStorageError,
            format!("{context}: {err}"),
        )
    }
}

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for TopicError {}

/// The Kafka error of a wire error code.
fn code_of(code: i16) -> ResponseError {
    ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError)
}

/// Producer ids reserved in the catalog per write.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The sled database (committed offsets, transactions) inside the data directory.
const STATE_DB_DIR: &str = "state.sled";

/// Where a broker keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In `data_dir`, durable: what the server runs on.
    Disk,
    /// In memory only, for tests: partition segments are anonymous memory
    /// files, the catalog is never written, and committed offsets and
    /// transactions are in a temporary sled database (on Linux in
    /// `/dev/shm`) deleted when the broker goes. Nothing survives the broker.
    Memory,
}

/// One broker: its topics and their partition actors, group and transaction
/// coordinators, and the threads they run on.
pub struct Broker {
    /// The settings it started with (config.yaml or the embedding app).
    config: BrokerConfig,
    /// The dynamic configs in force over `config`: the metadata image's in
    /// a cluster, else `dynamic_store`'s. Replaced whole on every change.
    dynamic: std::sync::RwLock<Arc<DynamicConfigs>>,
    /// A single broker's dynamic configs, durable.
    dynamic_store: DynamicConfigStore,
    /// On disk, or in memory for tests and simulations.
    storage: Storage,
    /// Given to clients in Metadata: the catalog's, or the cluster's.
    cluster_id: String,
    /// Live topics by name, each with its partitions' handles; replaced
    /// whole when a topic grows.
    topics: DashMap<String, Arc<Topic>>,
    /// Topic ids to names, for the APIs that name topics by id.
    ids: DashMap<Uuid, String>,
    /// Serialises topic creation, deletion and growth; also the durable catalog.
    catalog: tokio::sync::Mutex<Catalog>,
    /// The running group coordinators, one per group id, started on first
    /// use and forgotten when deleted or idle ([`Broker::stop_idle_groups`]).
    groups: DashMap<String, Addr<GroupCoordinator>>,
    /// Started once the partitions are recovered: it may have transaction
    /// ends to finish in them.
    transactions: OnceLock<Addr<TxnCoordinator>>,
    /// Producer ids reserved in the catalog and not handed out yet.
    producer_ids: std::sync::Mutex<std::ops::Range<i64>>,
    /// Committed offsets of every group, in sled; shared with the group
    /// and transaction coordinators.
    offsets: OffsetStore,
    /// ACLs, in sled.
    acls: AclStore,
    /// Checks requests against the ACLs, which it keeps indexed in memory.
    authorizer: Arc<Authorizer>,
    /// Serialises ACL changes, so the authorizer's copy is always reloaded
    /// after the last change to the store.
    acl_changes: tokio::sync::Mutex<()>,
    /// SCRAM credentials, in sled.
    scram: ScramStore,
    /// The listeners of the config, resolved.
    listeners: Vec<Listener>,
    /// How this broker connects to the others of its cluster (plaintext on
    /// a single broker, which never does).
    peer_security: PeerSecurity,
    /// One worker arbiter per core; partitions, coordinators and
    /// connections are spread over them.
    arbiters: Vec<ArbiterHandle>,
    /// Round-robin over `arbiters`.
    next_arbiter: AtomicUsize,
    /// Taken by [`Broker::stop`].
    threads: std::sync::Mutex<Option<Threads>>,
    /// The counters the request path bumps, shared with the flusher.
    metrics: Arc<Metrics>,
    /// Open connections and their in-flight budget, shared with the
    /// listener and the connection actors.
    connections: Arc<Connections>,
    /// This broker's membership of a cluster: the controller quorum and the
    /// metadata image it commits. `None` for a single broker, whose catalog
    /// is the truth about its topics.
    cluster: Option<ClusterNode>,
    /// In a cluster: how group coordinators replicate their commits.
    commit_log: Option<Arc<dyn CommitLog>>,
    /// In a cluster: the partitions of the offsets topic whose groups this
    /// broker coordinates, with the leader epoch it replayed them in.
    coordinating: DashMap<i32, i32>,
    /// In a cluster: per partition of the offsets topic this broker leads,
    /// the offsets transactions committed that wait for their marker.
    pending_offsets: DashMap<i32, PendingOffsets>,
    /// The leader epoch in which this broker took each partition of the
    /// offsets topic (replay started), so each epoch is replayed once.
    taking: DashMap<i32, i32>,
}

/// How clients see one partition: where it is led and replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// -1 while no replica can lead.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on fenced brokers.
    pub offline: Vec<i32>,
}

/// A broker as clients are told to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

/// The broker's threads and the handles that keep the flusher, cleaner and
/// reader threads alive (the partitions hold clones).
struct Threads {
    arbiters: Vec<Arbiter>,
    flusher: Flusher,
    cleaner: Cleaner,
    readers: Readers,
    services: Vec<std::thread::JoinHandle<()>>,
}

impl Broker {
    /// Opens the data directory, recovers every partition log and starts
    /// their actors. Must run inside an actix `System`.
    pub fn start(config: BrokerConfig) -> io::Result<Arc<Broker>> {
        Broker::start_with(config, Storage::Disk)
    }

    /// Starts a broker keeping its data as `storage` says; with
    /// [`Storage::Disk`] this is [`Broker::start`].
    pub fn start_with(config: BrokerConfig, storage: Storage) -> io::Result<Arc<Broker>> {
        let (catalog, state_db) = match storage {
            Storage::Disk => {
                check_data_dir(&config.data_dir)?;
                let catalog = Catalog::open(&config.data_dir)?;
                (catalog, Some(config.data_dir.join(STATE_DB_DIR)))
            }
            Storage::Memory => (Catalog::in_memory(), None),
        };
        let threads = match config.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let metrics = Arc::new(Metrics::default());
        let (flusher, flusher_thread) = Flusher::start(metrics.clone())?;
        let (cleaner, cleaner_thread) = Cleaner::start(config.compaction_bytes_per_sec)?;
        let (readers, reader_threads) = Readers::start(config.io_threads)?;
        let state_db = crate::store::state_db::open(state_db.as_deref())?;
        let offsets = OffsetStore::open(&state_db)?;
        let acls = AclStore::open(&state_db)?;
        let authorizer = Arc::new(Authorizer::new(
            config.authorizer,
            &config.super_users,
            config.allow_everyone_if_no_acl_found,
        ));
        authorizer.set_acls(&acls.all()?);
        let scram = ScramStore::open(&state_db)?;
        let dynamic_store = DynamicConfigStore::open(&state_db)?;
        let dynamic = match config.cluster {
            // The image brings them once the replica manager applies it.
            Some(_) => DynamicConfigs::default(),
            None => dynamic_store.load()?,
        };
        let listeners = config
            .listeners()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let peer_security = match &config.cluster {
            Some(_) => config.peer_security(&listeners).map_err(invalid)?,
            None => PeerSecurity::default(),
        };
        let cluster = match (&config.cluster, storage) {
            (Some(cluster), Storage::Disk) => {
                // The inter-broker listener goes first: the cluster
                // registers it as where other brokers reach this one.
                let inter_broker = config.inter_broker_listener(&listeners).map_err(invalid)?;
                let endpoints = std::iter::once(inter_broker)
                    .chain(listeners.iter().filter(|l| l.name != inter_broker.name))
                    .map(|l| {
                        let port = u16::try_from(l.port).map_err(|_| {
                            io::Error::new(
                                io::ErrorKind::InvalidInput,
                                "the advertised port is out of range",
                            )
                        })?;
                        Ok(Endpoint {
                            listener: l.name.clone(),
                            host: l.host.clone(),
                            port,
                        })
                    })
                    .collect::<io::Result<Vec<_>>>()?;
                let tls = config.controller_tls().map_err(invalid)?;
                Some(ClusterNode::start(
                    config.node_id,
                    endpoints,
                    &config.data_dir,
                    cluster,
                    tls,
                )?)
            }
            (Some(_), Storage::Memory) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a broker in a cluster keeps its data on disk",
                ))
            }
            (None, _) => None,
        };
        let cluster_id = match &config.cluster {
            Some(cluster) => cluster.cluster_id.clone(),
            None => catalog.cluster_id().to_string(),
        };
        let replicated = cluster.is_some();
        let broker = Arc::new_cyclic(|myself| Broker {
            commit_log: replicated.then(|| {
                Arc::new(OffsetsTopicLog {
                    broker: myself.clone(),
                }) as Arc<dyn CommitLog>
            }),
            coordinating: DashMap::new(),
            pending_offsets: DashMap::new(),
            taking: DashMap::new(),
            storage,
            groups: DashMap::new(),
            transactions: OnceLock::new(),
            producer_ids: std::sync::Mutex::new(0..0),
            offsets,
            acls,
            authorizer,
            acl_changes: tokio::sync::Mutex::new(()),
            scram,
            listeners,
            peer_security,
            cluster_id,
            cluster,
            topics: DashMap::new(),
            ids: DashMap::new(),
            arbiters: arbiters.iter().map(Arbiter::handle).collect(),
            next_arbiter: AtomicUsize::new(0),
            threads: std::sync::Mutex::new(Some(Threads {
                arbiters,
                flusher,
                cleaner,
                readers,
                services: [flusher_thread, cleaner_thread]
                    .into_iter()
                    .chain(reader_threads)
                    .collect(),
            })),
            metrics,
            connections: Connections::new(&config),
            dynamic: std::sync::RwLock::new(Arc::new(dynamic)),
            dynamic_store,
            config,
            catalog: tokio::sync::Mutex::new(catalog),
        });
        match &broker.cluster {
            // The metadata image, not the catalog, says which topics exist.
            Some(node) => {
                let manager = ReplicaManager::new(
                    Arc::downgrade(&broker),
                    node.clone(),
                    broker.config.node_id,
                );
                broker.next_arbiter().spawn(manager.run());
            }
            None => broker.recover()?,
        }
        let markers = Arc::new(Markers {
            broker: Arc::downgrade(&broker),
        });
        let coordinator = if replicated {
            let log = Arc::new(OffsetsTopicLog {
                broker: Arc::downgrade(&broker),
            });
            TxnCoordinator::replicated(log, markers, broker.offsets.clone())
        } else {
            TxnCoordinator::open(&state_db, markers, broker.offsets.clone())?
        };
        let addr = TxnCoordinator::start_in_arbiter(&broker.next_arbiter(), move |_| coordinator);
        // Only this function sets it, once.
        let _ = broker.transactions.set(addr);
        broker.start_offset_expiry();
        Ok(broker)
    }

    fn recover(&self) -> io::Result<()> {
        let records = self
            .catalog
            .try_lock()
            .map_err(io::Error::other)?
            .topics()
            .to_vec();
        if self.storage == Storage::Disk {
            self.remove_stray_partition_dirs(&records)?;
        }
        for record in records {
            let topic = Topic {
                name: record.name.as_str().into(),
                id: Uuid::from_bytes(record.id),
                partitions: self.start_partitions(
                    &record.name,
                    0..record.partitions,
                    &record.configs,
                )?,
                produce: topic::config::produce_settings(&self.settings(), &record.configs),
                configs: record.configs,
            };
            log::info!(
                "recovered topic {} with {} partitions",
                topic.name,
                topic.partitions.len()
            );
            self.register(Arc::new(topic));
        }
        Ok(())
    }

    /// Partition directories of topics the catalog does not list are left
    /// over from a crash during create or delete: the catalog is the truth.
    fn remove_stray_partition_dirs(&self, records: &[TopicRecord]) -> io::Result<()> {
        let known: HashSet<String> = records
            .iter()
            .flat_map(|r| (0..r.partitions).map(move |p| format!("{}-{p}", r.name)))
            .collect();
        for entry in fs::read_dir(&self.config.data_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_partition_dir = name
                .rsplit_once('-')
                .is_some_and(|(topic, p)| validate_name(topic).is_ok() && p.parse::<u32>().is_ok());
            if entry.file_type()?.is_dir() && is_partition_dir && !known.contains(&name) {
                log::warn!("removing {name}: its topic is not in the catalog");
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }

    /// The settings this broker started with.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The settings in force: the static ones under the dynamic configs.
    pub fn settings(&self) -> Settings<'_> {
        Settings::new(&self.config, self.dynamic_configs())
    }

    /// The dynamic configs of every broker, as this one last learnt them.
    pub fn dynamic_configs(&self) -> Arc<DynamicConfigs> {
        match self.dynamic.read() {
            Ok(dynamic) => dynamic.clone(),
            // A writer only swaps an Arc: a panic cannot leave it half done.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `dynamic` in force; whether that changed anything. Callers then
    /// apply it to the open topics.
    pub(crate) fn set_dynamic_configs(&self, dynamic: &DynamicConfigs) -> bool {
        let mut current = match self.dynamic.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        if **current == *dynamic {
            return false;
        }
        *current = Arc::new(dynamic.clone());
        true
    }

    /// Replaces the dynamic configs of one broker resource (`None`: the
    /// cluster default) by `configs`, durably, and applies them to every
    /// open partition. Validated key by key first; `validate_only` stops
    /// there.
    pub async fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let not_dynamic: Vec<&str> = configs
            .keys()
            .filter(|k| !dynamic_config::is_dynamic(k))
            .map(String::as_str)
            .collect();
        if !not_dynamic.is_empty() {
            return Err(TopicError::new(
                ResponseError::InvalidRequest,
                format!(
                    "Cannot update these configs dynamically: {}",
                    not_dynamic.join(", ")
                ),
            ));
        }
        for (key, value) in &configs {
            if let Err(broker_settings::KeyError::Invalid(message)) =
                broker_settings::validate(&self.config, key, value)
            {
                return Err(TopicError::new(ResponseError::InvalidConfig, message));
            }
        }
        if validate_only {
            return Ok(());
        }
        if let Some(node) = &self.cluster {
            let changes = self.dynamic_configs().changes_to(broker, &configs);
            let command = Command::AlterBrokerConfigs {
                broker,
                configs: changes,
            };
            self.submit(node, command).await?;
            log::info!("changed the dynamic configs of {}", resource_name(broker));
            return Ok(());
        }
        // The catalog lock keeps topics from changing while their configs
        // are applied again, and serialises alters.
        let catalog = self.catalog.lock().await;
        let mut dynamic = (*self.dynamic_configs()).clone();
        dynamic.alter(broker, dynamic.changes_to(broker, &configs));
        self.dynamic_store
            .save(&dynamic)
            .await
            .map_err(|e| TopicError::storage("writing the dynamic broker configs", e))?;
        if self.set_dynamic_configs(&dynamic) {
            self.reapply_topic_configs();
        }
        drop(catalog);
        log::info!("changed the dynamic configs of {}", resource_name(broker));
        Ok(())
    }

    /// Applies the configs in force again to every open topic, after the
    /// dynamic configs they fall back to changed: produce checks at once,
    /// retention and segments in each partition.
    fn reapply_topic_configs(&self) {
        let settings = self.settings();
        for topic in self.topics() {
            let changed = Topic {
                name: topic.name.clone(),
                id: topic.id,
                partitions: topic.partitions.clone(),
                produce: topic::config::produce_settings(&settings, &topic.configs),
                configs: topic.configs.clone(),
            };
            self.apply_topic_configs(&changed);
            self.register(Arc::new(changed));
        }
    }

    /// The cluster id, kept in the catalog across restarts.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The topic of that name, if it exists.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).map(|t| t.clone())
    }

    /// The topic with that id, if it exists.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.ids.get(&id).and_then(|name| self.topic(&name))
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self.topics.iter().map(|t| t.clone()).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// The topic, created with the default partition count if it does not
    /// exist and auto-creation is on. `Ok(None)`: unknown and not created.
    pub async fn topic_or_create(&self, name: &str) -> Result<Option<Arc<Topic>>, TopicError> {
        if let Some(topic) = self.topic(name) {
            return Ok(Some(topic));
        }
        if !self.config.auto_create_topics {
            return Ok(None);
        }
        let partitions = i32::try_from(self.config.num_partitions).unwrap_or(i32::MAX);
        match self.create_topic(name, partitions, BTreeMap::new()).await {
            Ok(topic) => Ok(Some(topic)),
            Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(self.topic(name)),
            Err(e) => Err(e),
        }
    }

    /// Creates a topic durably and starts its partitions.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        self.create_replicated_topic(name, partitions, -1, None, configs)
            .await
    }

    /// Creates a topic with `replication_factor` replicas per partition (-1:
    /// the cluster default) or the given replica assignment. A single broker
    /// takes replication factor 1 only.
    pub async fn create_replicated_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        assignment: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_name(name)
            .map_err(|m| TopicError::new(ResponseError::InvalidTopicException, m))?;
        let partitions = assignment.as_ref().map_or(partitions, |a| a.len() as i32);
        if partitions < 1 {
            return Err(TopicError::new(
                ResponseError::InvalidPartitions,
                format!("number of partitions must be at least 1, got {partitions}"),
            ));
        }
        if let Some(node) = &self.cluster {
            let assignment = match assignment {
                Some(assignment) => assignment,
                None => self.assign(node, partitions, replication_factor, 0)?,
            };
            let command = Command::CreateTopic {
                name: name.to_string(),
                id: Uuid::new_v4(),
                configs,
                assignment,
            };
            self.submit(node, command).await?;
            log::info!("created topic {name} with {partitions} partitions");
            return self.await_local_topic(name).await;
        }
        self.check_replication(
            self.replication_factor(replication_factor),
            assignment.as_deref(),
        )?;
        let mut catalog = self.catalog.lock().await;
        if self.topics.contains_key(name) {
            return Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        self.check_partition_room(partitions)?;
        let handles = self
            .start_partitions(name, 0..partitions, &configs)
            .map_err(|e| TopicError::storage(&format!("creating topic {name}"), e))?;
        let topic = Topic {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: handles,
            produce: topic::config::produce_settings(&self.settings(), &configs),
            configs,
        };
        catalog
            .upsert(record_of(&topic))
            .map_err(|e| TopicError::storage("writing the topic catalog", e))?;
        let topic = Arc::new(topic);
        self.register(topic.clone());
        log::info!("created topic {name} with {partitions} partitions");
        Ok(topic)
    }

    /// Deletes a topic: first from the catalog (the truth on restart), then
    /// its partitions' files.
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        if let Some(node) = &self.cluster {
            let command = Command::DeleteTopic {
                name: name.to_string(),
            };
            self.submit(node, command).await?;
            log::info!("deleted topic {name}");
            return Ok(());
        }
        let mut catalog = self.catalog.lock().await;
        let Some((_, topic)) = self.topics.remove(name) else {
            return Err(TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            ));
        };
        self.ids.remove(&topic.id);
        catalog
            .remove(name)
            .map_err(|e| TopicError::storage("writing the topic catalog", e))?;
        let deletions = topic
            .local_partitions()
            .map(|p| p.addr.send(partition::Delete));
        for result in join_all(deletions).await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::warn!("deleting a partition of {name}: {e}"),
                Err(e) => log::warn!("deleting a partition of {name}: {e}"),
            }
        }
        log::info!("deleted topic {name}");
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let mut catalog = self.catalog.lock().await;
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            ));
        };
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(TopicError::new(
                ResponseError::InvalidPartitions,
                format!("topic '{name}' has {current} partitions; the new count must be larger, got {count}"),
            ));
        }
        self.check_partition_room(count - current)?;
        if validate_only {
            return Ok(());
        }
        if let Some(node) = &self.cluster {
            drop(catalog);
            let rf = self
                .partition_view(&topic, 0)
                .map_or(1, |view| view.replicas.len() as i16);
            let assignment = self.assign(node, count - current, rf, current as usize)?;
            let command = Command::CreatePartitions {
                name: name.to_string(),
                assignment,
            };
            self.submit(node, command).await?;
            log::info!("topic {name} now has {count} partitions");
            return Ok(());
        }
        let added = self
            .start_partitions(name, current..count, &topic.configs)
            .map_err(|e| TopicError::storage(&format!("adding partitions to {name}"), e))?;
        let grown = Topic {
            name: topic.name.clone(),
            id: topic.id,
            partitions: topic.partitions.iter().cloned().chain(added).collect(),
            configs: topic.configs.clone(),
            produce: topic.produce,
        };
        catalog
            .upsert(record_of(&grown))
            .map_err(|e| TopicError::storage("writing the topic catalog", e))?;
        self.register(Arc::new(grown));
        log::info!("topic {name} now has {count} partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides, durably, and applies them to its
    /// partitions at once.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for (key, value) in &configs {
            topic::config::validate(&self.config, key, value)
                .map_err(|m| TopicError::new(ResponseError::InvalidConfig, m))?;
        }
        let mut catalog = self.catalog.lock().await;
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            ));
        };
        if validate_only {
            return Ok(());
        }
        if let Some(node) = &self.cluster {
            drop(catalog);
            let mut changes: BTreeMap<String, Option<String>> =
                topic.configs.keys().map(|k| (k.clone(), None)).collect();
            changes.extend(configs.into_iter().map(|(k, v)| (k, Some(v))));
            let command = Command::AlterTopicConfigs {
                name: name.to_string(),
                configs: changes,
            };
            self.submit(node, command).await?;
            log::info!("changed the configs of topic {name}");
            return Ok(());
        }
        let changed = Topic {
            name: topic.name.clone(),
            id: topic.id,
            partitions: topic.partitions.clone(),
            produce: topic::config::produce_settings(&self.settings(), &configs),
            configs,
        };
        catalog
            .upsert(record_of(&changed))
            .map_err(|e| TopicError::storage("writing the topic catalog", e))?;
        let settings = partition::SetConfigs {
            cleanup: topic::config::cleanup(&self.settings(), &changed.configs),
            log: topic::config::log_config(&self.settings(), &changed.configs),
        };
        for partition in changed.local_partitions() {
            partition.addr.do_send(settings.clone());
        }
        self.register(Arc::new(changed));
        log::info!("changed the configs of topic {name}");
        Ok(())
    }

    /// POLICY_VIOLATION if `added` more partitions would take the broker
    /// past `max_partitions`. Creators check it with the catalog lock held,
    /// so two of them cannot both take the last room.
    pub fn check_partition_room(&self, added: i32) -> Result<(), TopicError> {
        let current: u64 = self.topics.iter().map(|t| t.partitions.len() as u64).sum();
        let after = current + u64::try_from(added).unwrap_or(0);
        let max = self.config.max_partitions;
        if after > u64::from(max) {
            return Err(TopicError::new(
                ResponseError::PolicyViolation,
                format!(
                    "{added} more partitions would make {after} on this broker; max_partitions is {max}"
                ),
            ));
        }
        Ok(())
    }

    /// Fsyncs every partition: the last step of a clean shutdown.
    pub async fn sync_all(&self) {
        let syncs = self
            .topics()
            .into_iter()
            .flat_map(|t| t.local_partitions().cloned().collect::<Vec<_>>())
            .map(|p| p.addr.send(partition::SyncToDisk));
        for result in join_all(syncs).await {
            if let Ok(Err(e)) = result {
                log::error!("fsync at shutdown failed: {e}");
            }
        }
    }

    /// Stops the broker's threads after [`Broker::sync_all`], and waits
    /// until they have ended: the workers (so every actor and its files are
    /// closed), then the flusher and the cleaner.
    pub fn stop(&self) {
        let threads = match self.threads.lock() {
            Ok(mut threads) => threads.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(threads) = threads else {
            return;
        };
        for arbiter in &threads.arbiters {
            arbiter.stop();
        }
        for arbiter in threads.arbiters {
            if arbiter.join().is_err() {
                log::error!("a worker thread panicked");
            }
        }
        // The partitions are gone with their workers: these were the last
        // handles, so the threads end once their queues are empty.
        drop((threads.flusher, threads.cleaner, threads.readers));
        for thread in threads.services {
            if thread.join().is_err() {
                log::error!("the flusher, cleaner or a reader thread panicked");
            }
        }
    }

    /// A producer id never handed out before, even across restarts (and,
    /// in a cluster, by any broker: blocks come from the controller).
    pub async fn new_producer_id(&self) -> io::Result<i64> {
        if let Some(id) = self.take_producer_id() {
            return Ok(id);
        }
        let mut catalog = self.catalog.lock().await;
        // Another task may have refilled while this one waited.
        if let Some(id) = self.take_producer_id() {
            return Ok(id);
        }
        let block = match &self.cluster {
            Some(node) => {
                let command = Command::AllocateProducerIds {
                    count: PRODUCER_ID_BLOCK,
                };
                match self.submit(node, command).await {
                    Ok(Applied::ProducerIds { first }) => first..first + PRODUCER_ID_BLOCK,
                    Ok(other) => {
                        return Err(io::Error::other(format!(
                            "the controller answered {other:?} to a producer id request"
                        )))
                    }
                    Err(e) => return Err(io::Error::other(e)),
                }
            }
            None => catalog.reserve_producer_ids(PRODUCER_ID_BLOCK)?,
        };
        let id = block.start;
        *self
            .producer_ids
            .lock()
            .map_err(|_| io::Error::other("poisoned"))? = block.start + 1..block.end;
        Ok(id)
    }

    fn take_producer_id(&self) -> Option<i64> {
        self.producer_ids.lock().ok()?.next()
    }

    /// The coordinator of a group, started on first use, and started again
    /// after an idle coordinator stopped ([`Broker::stop_idle_groups`]).
    pub fn group(&self, group_id: &str) -> Addr<GroupCoordinator> {
        if let Some(addr) = self.groups.get(group_id) {
            if addr.connected() {
                return addr.clone();
            }
        }
        let mut entry = self
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| self.start_group(group_id));
        // A coordinator that stopped while its entry was still here.
        if !entry.connected() {
            *entry = self.start_group(group_id);
        }
        entry.clone()
    }

    fn start_group(&self, group_id: &str) -> Addr<GroupCoordinator> {
        let coordinator = GroupCoordinator::new(
            group_id.to_string(),
            self.group_config(),
            self.consumer_group_config(),
            self.offsets.clone(),
            self.commit_log.clone(),
        );
        GroupCoordinator::start_in_arbiter(&self.next_arbiter(), move |_| coordinator)
    }

    /// The coordinator of a group, if one is running.
    pub fn existing_group(&self, group_id: &str) -> Option<Addr<GroupCoordinator>> {
        self.groups
            .get(group_id)
            .map(|a| a.clone())
            .filter(Addr::connected)
    }

    /// Stops the coordinators of groups found idle (no members, nothing
    /// waiting) at this check and the one before, and forgets them, so
    /// the group map does not grow with every group id ever used. Their
    /// committed offsets stay in the store, and [`Broker::group`] starts a
    /// new coordinator when the group is used again. Returns how many
    /// stopped.
    pub async fn stop_idle_groups(&self) -> usize {
        let running: Vec<(String, Addr<GroupCoordinator>)> = self
            .groups
            .iter()
            .map(|g| (g.key().clone(), g.value().clone()))
            .collect();
        let mut stopped = 0;
        for (group, coordinator) in running {
            if coordinator.send(StopIfIdle).await.unwrap_or(false) {
                // Only this coordinator: the group may have a new one.
                self.groups.remove_if(&group, |_, a| *a == coordinator);
                stopped += 1;
            }
        }
        stopped
    }

    /// Every group that has a coordinator or committed offsets, sorted.
    pub fn group_ids(&self) -> io::Result<Vec<String>> {
        let mut ids = self.offsets.groups()?;
        ids.extend(self.groups.iter().map(|g| g.key().clone()));
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Whether the group has a coordinator or committed offsets.
    pub fn group_exists(&self, group_id: &str) -> io::Result<bool> {
        Ok(self.groups.contains_key(group_id) || self.offsets.has_group(group_id)?)
    }

    /// Deletes a group's committed offsets: all of them, or those of
    /// `only` partitions. In a cluster the deletion is replicated first, so
    /// the next coordinator does not bring them back.
    pub async fn delete_offsets(
        &self,
        group: &str,
        only: Option<&[(String, i32)]>,
    ) -> Result<(), ResponseError> {
        let storage_error = |e: io::Error| {
            log::error!("deleting offsets of group {group}: {e}");
            ResponseError::KafkaStorageError
        };
        if let Some(log) = &self.commit_log {
            let partitions: Vec<(String, i32)> = match only {
                Some(partitions) => partitions.to_vec(),
                None => self
                    .offsets
                    .fetch_all(group)
                    .map_err(storage_error)?
                    .into_iter()
                    .map(|o| (o.topic, o.partition))
                    .collect(),
            };
            if !partitions.is_empty() {
                log.delete(group, &partitions).await?;
            }
        }
        self.offsets
            .delete(group, only)
            .await
            .map_err(storage_error)
    }

    /// Deletes committed offsets older than `offsets_retention_ms` of groups
    /// that have no members (in a cluster, of the groups this broker
    /// coordinates); returns how many went.
    pub async fn expire_offsets(&self) -> io::Result<usize> {
        let horizon = crate::clock::now_ms() - self.config.offsets_retention_ms;
        let mut expired = 0;
        for group in self.offsets.groups()? {
            if self.check_coordinator(&group).is_err() {
                continue;
            }
            if let Some(coordinator) = self.existing_group(&group) {
                let live = coordinator
                    .send(crate::group::Describe)
                    .await
                    .is_ok_and(|d| !d.members.is_empty());
                if live {
                    continue;
                }
            }
            let old: Vec<(String, i32)> = self
                .offsets
                .fetch_all(&group)?
                .into_iter()
                .filter(|o| o.committed.commit_timestamp_ms < horizon)
                .map(|o| (o.topic, o.partition))
                .collect();
            if old.is_empty() {
                continue;
            }
            match self.delete_offsets(&group, Some(&old)).await {
                Ok(()) => {
                    log::info!("expired {} committed offsets of group {group}", old.len());
                    expired += old.len();
                }
                Err(e) => log::warn!("expiring offsets of group {group}: {e:?}"),
            }
        }
        Ok(expired)
    }

    /// Expires old offsets of empty groups every `retention_check_interval_ms`,
    /// and stops the coordinators of groups idle since the check before,
    /// for as long as the broker lives.
    fn start_offset_expiry(self: &Arc<Self>) {
        let broker = Arc::downgrade(self);
        let every = Duration::from_millis(self.config.retention_check_interval_ms);
        actix_rt::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(broker) = broker.upgrade() else {
                    return;
                };
                if let Err(e) = broker.expire_offsets().await {
                    log::error!("expiring committed offsets: {e}");
                }
                let stopped = broker.stop_idle_groups().await;
                if stopped > 0 {
                    log::debug!("stopped the coordinators of {stopped} idle groups");
                }
            }
        });
    }

    /// Forgets a group's coordinator (after DeleteGroups).
    pub fn remove_group(&self, group_id: &str) {
        self.groups.remove(group_id);
    }

    /// The transaction coordinator (none only while the broker starts).
    pub fn transactions_addr(&self) -> Option<&Addr<TxnCoordinator>> {
        self.transactions.get()
    }

    /// Asks the transaction coordinator about transactional id `id`:
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS where this broker
    /// does not coordinate it (yet), COORDINATOR_NOT_AVAILABLE while the
    /// broker is still starting or the coordinator is gone.
    pub async fn ask_transactions<M, T>(&self, id: &str, msg: M) -> Result<T, ResponseError>
    where
        M: actix::Message<Result = Result<T, ResponseError>> + Send + 'static,
        T: Send + 'static,
        TxnCoordinator: actix::Handler<M>,
    {
        self.check_coordinator(id)?;
        let coordinator = self
            .transactions_addr()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        coordinator
            .send(msg)
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
    }

    /// The counters `/metrics` shows.
    /// Whether broker `replica`, in its broker epoch `epoch` (-1: not
    /// given), may fetch as a follower: registered, not fenced, and in its
    /// current epoch. A single broker has no followers; its partitions
    /// refuse replica fetches themselves.
    pub fn check_replica(&self, replica: i32, epoch: i64) -> Result<(), ResponseError> {
        let Some(node) = &self.cluster else {
            return Ok(());
        };
        let image = node.image().borrow().clone();
        match image.brokers.get(&replica) {
            Some(b) if b.fenced => Err(ResponseError::NotLeaderOrFollower),
            Some(b) if epoch >= 0 && b.epoch != epoch => Err(ResponseError::StaleBrokerEpoch),
            Some(_) => Ok(()),
            None => Err(ResponseError::BrokerIdNotRegistered),
        }
    }

    /// The broker coordinating `group`, for FindCoordinator, as clients of
    /// `listener` reach it: this one on a single broker; in a cluster the
    /// leader of the group's partition of the offsets topic, which is
    /// created on first use.
    pub async fn group_coordinator(
        &self,
        group: &str,
        listener: &Listener,
    ) -> Result<BrokerAddress, ResponseError> {
        if self.cluster.is_none() {
            return Ok(self.address(listener));
        };
        let topic = match self.topic(OFFSETS_TOPIC) {
            Some(topic) => topic,
            None => self.create_offsets_topic().await?,
        };
        let index = offsets_topic::partition_for(group, topic.partitions.len() as i32);
        let leader = self
            .partition_view(&topic, index)
            .map_or(NO_LEADER, |view| view.leader);
        self.brokers(listener)
            .into_iter()
            .find(|b| b.id == leader)
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    async fn create_offsets_topic(&self) -> Result<Arc<Topic>, ResponseError> {
        let partitions = self
            .config
            .cluster
            .as_ref()
            .map_or(1, |c| c.offsets_topic_num_partitions as i32);
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        match self
            .create_replicated_topic(OFFSETS_TOPIC, partitions, -1, None, configs)
            .await
        {
            Ok(topic) => Ok(topic),
            Err(e) if e.code == ResponseError::TopicAlreadyExists => self
                .await_local_topic(OFFSETS_TOPIC)
                .await
                .map_err(|_| ResponseError::CoordinatorNotAvailable),
            Err(e) => {
                log::warn!("cannot create {OFFSETS_TOPIC} yet: {e}");
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    /// Whether this broker coordinates `key` (a group or a transactional
    /// id) now: always on a single broker; in a cluster when it leads the
    /// key's offsets partition and has replayed it (else NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS).
    pub fn check_coordinator(&self, key: &str) -> Result<(), ResponseError> {
        if self.cluster.is_none() {
            return Ok(());
        }
        self.check_coordinating(self.offsets_index_of(key)?)
    }

    /// Whether this broker leads partition `index` of the offsets topic and
    /// has replayed it.
    pub(crate) fn check_coordinating(&self, index: i32) -> Result<(), ResponseError> {
        let topic = self
            .topic(OFFSETS_TOPIC)
            .ok_or(ResponseError::NotCoordinator)?;
        let view = self
            .partition_view(&topic, index)
            .ok_or(ResponseError::NotCoordinator)?;
        if view.leader != self.config.node_id {
            return Err(ResponseError::NotCoordinator);
        }
        match self.coordinating.get(&index) {
            Some(epoch) if *epoch == view.leader_epoch => Ok(()),
            _ => Err(ResponseError::CoordinatorLoadInProgress),
        }
    }

    /// The partition of the offsets topic that holds `key`.
    pub(crate) fn offsets_index_of(&self, key: &str) -> Result<i32, ResponseError> {
        let topic = self
            .topic(OFFSETS_TOPIC)
            .ok_or(ResponseError::NotCoordinator)?;
        Ok(offsets_topic::partition_for(
            key,
            topic.partitions.len() as i32,
        ))
    }

    /// Runs `f` on the pending transactional offsets of partition `index`
    /// of the offsets topic, which this broker must coordinate.
    pub(crate) fn with_pending_offsets<T>(
        &self,
        index: i32,
        f: impl FnOnce(&mut PendingOffsets) -> Result<T, ResponseError>,
    ) -> Result<T, ResponseError> {
        let mut pending = self
            .pending_offsets
            .get_mut(&index)
            .ok_or(ResponseError::NotCoordinator)?;
        f(&mut pending)
    }

    /// The local replica of the offsets partition holding `group`.
    pub(crate) fn offsets_partition_of(
        &self,
        group: &str,
    ) -> Result<PartitionHandle, ResponseError> {
        let topic = self
            .topic(OFFSETS_TOPIC)
            .ok_or(ResponseError::NotCoordinator)?;
        let index = offsets_topic::partition_for(group, topic.partitions.len() as i32);
        topic
            .replica(index)
            .cloned()
            .map_err(|_| ResponseError::NotCoordinator)
    }

    /// This broker now leads partition `index` of the offsets topic in
    /// `leader_epoch`: replays it into the offset store, then coordinates
    /// its groups. Groups of a partition it no longer leads stop here (their
    /// members rejoin at the new coordinator).
    pub(crate) async fn take_offsets_partition(
        &self,
        index: i32,
        leader_epoch: i32,
        handle: PartitionHandle,
    ) {
        // The replica manager tells again on every change of the partition
        // (an ISR change): one replay per leader epoch.
        if self.taking.insert(index, leader_epoch) == Some(leader_epoch) {
            return;
        }
        // A restarting broker applies the metadata it had before it catches
        // up: it takes the partition only once registered, if it still
        // leads it then.
        self.ready().await;
        let leads = self
            .topic(OFFSETS_TOPIC)
            .and_then(|t| self.partition_view(&t, index));
        if !leads.is_some_and(|v| v.leader == self.config.node_id && v.leader_epoch == leader_epoch)
        {
            return;
        }
        let replayed = match offsets_topic::load(&handle, leader_epoch, &self.offsets).await {
            Ok(replayed) => replayed,
            Err(e) => {
                // The next change of the partition tries again.
                self.taking.remove(&index);
                return log::error!("replaying {OFFSETS_TOPIC}-{index}: {e}");
            }
        };
        log::info!(
            "coordinating the groups and transactions of {OFFSETS_TOPIC}-{index} (epoch {leader_epoch}, {} commits, {} transactional ids replayed)",
            replayed.commits,
            replayed.txns.len()
        );
        if let Some(coordinator) = self.transactions_addr() {
            if coordinator.send(Adopt(replayed.txns)).await.is_err() {
                return;
            }
        }
        self.pending_offsets.insert(index, replayed.pending);
        self.coordinating.insert(index, leader_epoch);
    }

    /// This broker no longer leads partition `index` of the offsets topic.
    pub(crate) fn release_offsets_partition(&self, index: i32) {
        self.taking.remove(&index);
        if self.coordinating.remove(&index).is_none() {
            return;
        }
        self.pending_offsets.remove(&index);
        let partitions = self
            .topic(OFFSETS_TOPIC)
            .map_or(1, |t| t.partitions.len() as i32);
        if let Some(coordinator) = self.transactions_addr() {
            let owned = move |id: &str| offsets_topic::partition_for(id, partitions) == index;
            coordinator.do_send(Release(Box::new(owned)));
        }
        self.groups.retain(|group, coordinator| {
            let keep = offsets_topic::partition_for(group, partitions) != index;
            if !keep {
                coordinator.do_send(crate::group::Stop);
            }
            keep
        });
    }

    /// Resolves once the broker may serve clients: at once on a single
    /// broker; in a cluster once the controller quorum has registered this
    /// broker in its current incarnation and unfenced it (it caught up with
    /// the metadata), as a KRaft broker enables its listeners only then.
    /// Until then Metadata could not name it or a controller.
    pub async fn ready(&self) {
        let Some(node) = &self.cluster else {
            return;
        };
        let me = self.config.node_id;
        let mut image = node.image();
        let _ = image
            .wait_for(|image| {
                image
                    .brokers
                    .get(&me)
                    .is_some_and(|b| !b.fenced && node.broker_epoch() == Some(b.epoch))
            })
            .await;
    }

    /// The cluster membership, if this broker is in a cluster.
    pub fn cluster(&self) -> Option<&ClusterNode> {
        self.cluster.as_ref()
    }

    /// This broker as clients of `listener` reach it.
    fn address(&self, listener: &Listener) -> BrokerAddress {
        BrokerAddress {
            id: self.config.node_id,
            host: listener.host.clone(),
            port: listener.port,
        }
    }

    /// The listeners this broker serves.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// How to connect to the other brokers of the cluster.
    pub(crate) fn peer_security(&self) -> &PeerSecurity {
        &self.peer_security
    }

    /// The live brokers clients of `listener` may connect to, by id: in a
    /// cluster each by the endpoint it registered for a listener of that
    /// name, or else by its first listener's.
    pub fn brokers(&self, listener: &Listener) -> Vec<BrokerAddress> {
        let Some(node) = &self.cluster else {
            return vec![self.address(listener)];
        };
        let image = node.image().borrow().clone();
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| {
                let (host, port) = b
                    .listeners
                    .iter()
                    .find(|e| e.listener == listener.name)
                    .map_or((&b.host, b.port), |e| (&e.host, e.port));
                BrokerAddress {
                    id: b.id,
                    host: host.clone(),
                    port: i32::from(port),
                }
            })
            .collect()
    }

    /// The broker clients see as the controller, where admin clients send
    /// CreateTopics and the like. As in KRaft, clients never talk to the
    /// quorum itself: any live broker forwards, so it is this one once it
    /// is live, else the first live one (-1 while none is).
    pub fn controller_id(&self) -> i32 {
        let Some(node) = &self.cluster else {
            return self.config.node_id;
        };
        let live = node.image().borrow().live_brokers();
        if live.contains(&self.config.node_id) {
            self.config.node_id
        } else {
            live.first().copied().unwrap_or(-1)
        }
    }

    /// Where partition `index` of `topic` is led and replicated; `None` past
    /// its partition count.
    pub fn partition_view(&self, topic: &Topic, index: i32) -> Option<PartitionView> {
        let Some(node) = &self.cluster else {
            topic.partition(index)?;
            let me = self.config.node_id;
            return Some(PartitionView {
                leader: me,
                leader_epoch: crate::partition::LEADER_EPOCH,
                replicas: vec![me],
                isr: vec![me],
                offline: Vec::new(),
            });
        };
        let image = node.image().borrow().clone();
        let p = image
            .topics
            .get(&*topic.name)?
            .partitions
            .get(usize::try_from(index).ok()?)?;
        Some(PartitionView {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            offline: p
                .replicas
                .iter()
                .copied()
                .filter(|r| !image.is_live(*r))
                .collect(),
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        })
    }

    /// Replica sets for `partitions` new partitions, the first numbered
    /// `first` (so leaders keep spreading round robin).
    fn assign(
        &self,
        node: &ClusterNode,
        partitions: i32,
        replication_factor: i16,
        first: usize,
    ) -> Result<Vec<Vec<i32>>, TopicError> {
        let rf = if replication_factor < 1 {
            self.default_replication_factor()
        } else {
            replication_factor as usize
        };
        let live = node.image().borrow().live_brokers();
        let rf = u16::try_from(rf).unwrap_or(u16::MAX);
        assign_replicas(&live, partitions.max(0) as u32, rf, first)
            .map_err(|e| TopicError::new(code_of(e.code()), e.to_string()))
    }

    /// The replication factor a request for `requested` (-1: the default)
    /// gets.
    pub fn replication_factor(&self, requested: i16) -> i16 {
        if requested < 1 {
            i16::try_from(self.default_replication_factor()).unwrap_or(i16::MAX)
        } else {
            requested
        }
    }

    /// Whether this many replicas (or this assignment) can be placed: on
    /// the live brokers of a cluster, or on this one broker alone.
    pub fn check_replication(
        &self,
        replication_factor: i16,
        assignment: Option<&[Vec<i32>]>,
    ) -> Result<(), TopicError> {
        let live = match &self.cluster {
            Some(node) => node.image().borrow().live_brokers(),
            None => vec![self.config.node_id],
        };
        if let Some(assignment) = assignment {
            if let Some(unknown) = assignment.iter().flatten().find(|b| !live.contains(b)) {
                return Err(TopicError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "broker {unknown} is not a live broker of this cluster (live: {live:?})"
                    ),
                ));
            }
            return Ok(());
        }
        if replication_factor < 1 || replication_factor as usize > live.len() {
            return Err(TopicError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} is larger than the {} available brokers",
                    live.len()
                ),
            ));
        }
        Ok(())
    }

    fn default_replication_factor(&self) -> usize {
        self.config
            .cluster
            .as_ref()
            .map_or(1, |c| usize::from(c.default_replication_factor()))
    }

    /// Proposes a metadata change through the controller quorum and waits
    /// until this broker applied it.
    async fn submit(&self, node: &ClusterNode, command: Command) -> Result<Applied, TopicError> {
        match node.submit(command).await {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(e)) => Err(TopicError::new(code_of(e.code()), e.to_string())),
            Err(e) => Err(TopicError::new(
                ResponseError::RequestTimedOut,
                format!("the controller quorum did not commit the change: {e}"),
            )),
        }
    }

    /// Waits until the replica manager registered a topic the controller
    /// just created.
    async fn await_local_topic(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        for _ in 0..200 {
            if let Some(topic) = self.topic(name) {
                return Ok(topic);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(TopicError::new(
            ResponseError::RequestTimedOut,
            format!("topic {name} was created but is not open on this broker yet"),
        ))
    }

    /// How long a follower may lag before it leaves the ISR.
    pub(crate) fn cluster_lag_ms(&self) -> i64 {
        self.config
            .cluster
            .as_ref()
            .map_or(10_000, |c| c.replica_lag_time_max_ms as i64)
    }

    /// The names of the topics open here.
    pub(crate) fn topic_names(&self) -> Vec<String> {
        self.topics.iter().map(|t| t.key().clone()).collect()
    }

    /// A topic as the metadata image describes it, with the partitions
    /// open here.
    pub(crate) fn topic_from_image(
        &self,
        name: &str,
        id: Uuid,
        partitions: Vec<Option<PartitionHandle>>,
        configs: &BTreeMap<String, String>,
    ) -> Topic {
        Topic {
            name: name.into(),
            id,
            partitions,
            produce: topic::config::produce_settings(&self.settings(), configs),
            configs: configs.clone(),
        }
    }

    /// Applies a topic's configs to its partitions here.
    pub(crate) fn apply_topic_configs(&self, topic: &Topic) {
        let settings = partition::SetConfigs {
            cleanup: topic::config::cleanup(&self.settings(), &topic.configs),
            log: topic::config::log_config(&self.settings(), &topic.configs),
        };
        for partition in topic.local_partitions() {
            partition.addr.do_send(settings.clone());
        }
    }

    pub(crate) fn register_local_topic(&self, topic: Arc<Topic>) {
        self.register(topic);
    }

    /// Removes a topic the metadata no longer has, with its files here.
    pub(crate) async fn drop_local_topic(&self, name: &str) {
        let Some((_, topic)) = self.topics.remove(name) else {
            return;
        };
        self.ids.remove(&topic.id);
        let deletions = topic
            .local_partitions()
            .map(|p| p.addr.send(partition::Delete));
        for result in join_all(deletions).await {
            if let Ok(Err(e)) = result {
                log::warn!("deleting a partition of {name}: {e}");
            }
        }
        log::info!("removed topic {name} from this broker");
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Open client connections and their limits.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// The committed offsets of every group.
    pub fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    /// The access control lists.
    pub fn acls(&self) -> &AclStore {
        &self.acls
    }

    /// What decides which client may do what.
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
    }

    /// Stores new ACLs durably; they are enforced from the return on.
    pub async fn create_acls(&self, acls: &[AclBinding]) -> io::Result<()> {
        let _one_change = self.acl_changes.lock().await;
        self.acls.create(acls).await?;
        self.authorizer.set_acls(&self.acls.all()?);
        Ok(())
    }

    /// Removes the ACLs each filter matches, durably; what each removed.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> io::Result<Vec<Vec<AclBinding>>> {
        let _one_change = self.acl_changes.lock().await;
        let removed = self.acls.delete(filters).await?;
        self.authorizer.set_acls(&self.acls.all()?);
        Ok(removed)
    }

    /// The SCRAM credentials of SASL users.
    pub fn scram_credentials(&self) -> &ScramStore {
        &self.scram
    }

    fn group_config(&self) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: self.config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: self.config.group_min_session_timeout_ms,
            max_session_timeout_ms: self.config.group_max_session_timeout_ms,
            max_size: 0,
        }
    }

    fn consumer_group_config(&self) -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            session_timeout_ms: self.config.group_consumer_session_timeout_ms,
            heartbeat_interval_ms: self.config.group_consumer_heartbeat_interval_ms,
            ..ConsumerGroupConfig::default()
        }
    }

    /// Every topic's partition count, as group assignors see them.
    pub fn partition_counts(&self) -> Topics {
        self.topics
            .iter()
            .map(|t| (t.key().clone(), t.value().partitions.len() as i32))
            .collect()
    }

    /// The worker arbiter for the next actor, round robin.
    pub fn next_arbiter(&self) -> ArbiterHandle {
        let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        self.arbiters[i].clone()
    }

    fn register(&self, topic: Arc<Topic>) {
        self.ids.insert(topic.id, topic.name.to_string());
        self.topics.insert(topic.name.to_string(), topic);
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{index}"))
    }

    fn start_partitions(
        &self,
        topic: &str,
        indexes: std::ops::Range<i32>,
        configs: &BTreeMap<String, String>,
    ) -> io::Result<Vec<Option<PartitionHandle>>> {
        indexes
            .map(|index| self.open_partition(topic, index, configs).map(Some))
            .collect()
    }

    /// Opens (or creates) one partition's log and starts its actor.
    pub(crate) fn open_partition(
        &self,
        topic: &str,
        index: i32,
        configs: &BTreeMap<String, String>,
    ) -> io::Result<PartitionHandle> {
        let cleanup = topic::config::cleanup(&self.settings(), configs);
        let interval = Duration::from_millis(self.config.retention_check_interval_ms);
        let (flusher, cleaner, readers) = match self.threads.lock().as_deref() {
            Ok(Some(threads)) => (
                threads.flusher.clone(),
                threads.cleaner.clone(),
                threads.readers.clone(),
            ),
            _ => return Err(io::Error::other("the broker has stopped")),
        };
        let log_config = topic::config::log_config(&self.settings(), configs);
        let log = match self.storage {
            Storage::Disk => Log::open(&self.partition_dir(topic, index), log_config)?,
            Storage::Memory => Log::in_memory(log_config)?,
        };
        let (mut partition, offsets) = Partition::new(
            format!("{topic}-{index}"),
            log,
            cleanup,
            interval,
            flusher,
            cleaner,
            readers,
        )?;
        if self.cluster.is_some() {
            partition.awaiting_role();
        }
        let addr = Partition::start_in_arbiter(&self.next_arbiter(), move |_| partition);
        Ok(PartitionHandle { addr, offsets })
    }
}

/// Creates the data directory if its parent exists, and checks that the
/// broker can write there, so a wrong path or a read-only disk stops the
/// start with a message naming `data_dir` rather than failing later.
fn check_data_dir(dir: &Path) -> io::Result<()> {
    let named = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("data_dir {}: {what}: {e}", dir.display()))
    };
    match fs::create_dir(dir) {
        Ok(()) => crate::durable::sync_dir(crate::durable::parent(dir))
            .map_err(|e| named("cannot make it durable", e))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(named("its parent directory does not exist", e));
        }
        Err(e) => return Err(named("cannot create it", e)),
    }
    let probe = dir.join(".write-check");
    fs::write(&probe, b"actorlog")
        .and_then(|()| fs::remove_file(&probe))
        .map_err(|e| named("not writable", e))
}

fn record_of(topic: &Topic) -> TopicRecord {
    TopicRecord {
        name: topic.name.to_string(),
        id: *topic.id.as_bytes(),
        partitions: topic.partitions.len() as i32,
        configs: topic.configs.clone(),
    }
}

mod placement;
#[cfg(test)]
mod tests;
