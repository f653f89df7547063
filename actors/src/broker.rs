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
use crate::io_pool::IoPool;
use crate::limits::Connections;
use crate::metrics::Metrics;
use crate::partition::cleaner::Cleaner;
use crate::partition::disk::DiskThreads;
use crate::partition::local_log::Log;
use crate::partition::reader::Readers;
use crate::partition::PartitionHandle;
use crate::partition::{self, CleanupSchedule, LogThreads, Partition};
use crate::replication::txn_offsets::PendingOffsets;
use crate::security::listeners::Listener;
use crate::security::peer::PeerSecurity;
use crate::security::Authorizer;
use crate::store::acls::{AclBinding, AclFilter, AclStore};
use crate::store::dynamic_configs::DynamicConfigStore;
use crate::store::offsets::OffsetStore;
use crate::store::scram::ScramStore;
use crate::store::state_db::StoreThreads;
use crate::topic::broker_settings::{self, Settings};
use crate::topic::catalog::{Catalog, TopicRecord};
use crate::topic::{self, validate_name, Topic};
use crate::txn::{Adopt, Release, TxnCoordinator};
use actix::{Actor, Addr, Arbiter, ArbiterHandle};
use dashmap::DashMap;
use futures_util::future::join_all;
use kafka_protocol::ResponseError;
use offsets_topic::{OffsetsTopicLog, OFFSETS_TOPIC};
use replica_manager::ReplicaManager;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use txn_markers::Markers;
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

/// The broker's threads and the handles that keep the flusher, cleaner,
/// reader and disk threads alive (the partitions hold clones).
struct Threads {
    arbiters: Vec<Arbiter>,
    log: LogThreads,
    /// The state database's threads.
    store: StoreThreads,
    /// Writes the catalog and opens new partition logs, one at a time;
    /// `None` in memory, where neither waits on a disk.
    topic_io: Option<IoPool>,
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
        let (catalog, topic_io, state_db) = match storage {
            Storage::Disk => {
                check_data_dir(&config.data_dir)?;
                let (writer, threads) = IoPool::start("actorlog-topic-io", 1)?;
                let catalog = Catalog::open(&config.data_dir, writer.clone())?;
                let dir = config.data_dir.join(STATE_DB_DIR);
                (catalog, Some((writer, threads)), Some(dir))
            }
            Storage::Memory => (Catalog::in_memory(), None, None),
        };
        let threads = match config.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let metrics = Arc::new(Metrics::default());
        let (flusher, flusher_thread) = Flusher::start(metrics.clone())?;
        let (cleaner, cleaner_thread) = Cleaner::start(config.compaction_bytes_per_sec)?;
        let (readers, reader_threads) = Readers::start(config.io_threads)?;
        let (disk, disk_threads) = DiskThreads::start(config.io_threads)?;
        let state_db = crate::store::state_db::open(state_db.as_deref())?;
        let offsets = OffsetStore::open(&state_db)?;
        let acls = AclStore::open(&state_db)?;
        let authorizer = Arc::new(Authorizer::new(
            config.authorizer,
            &config.super_users,
            config.allow_everyone_if_no_acl_found,
        ));
        authorizer.set_acls(&acls.load()?);
        let scram = ScramStore::open(&state_db)?;
        let dynamic_store = DynamicConfigStore::open(&state_db)?;
        let dynamic = match config.cluster {
            // The image brings them once the replica manager applies it.
            Some(_) => DynamicConfigs::default(),
            None => dynamic_store.load()?,
        };
        // In a cluster, the offsets topic holds the transactions instead.
        let txn_tree = match config.cluster {
            Some(_) => None,
            None => Some(TxnCoordinator::open_tree(&state_db)?),
        };
        let (store, store_threads) = state_db.into_threads();
        let (topic_io, topic_io_thread) = topic_io.unzip();
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
                    flusher.log_dir().clone(),
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
                log: LogThreads {
                    flusher,
                    cleaner,
                    readers,
                    disk,
                },
                store,
                topic_io,
                services: [flusher_thread, cleaner_thread]
                    .into_iter()
                    .chain(reader_threads)
                    .chain(disk_threads)
                    .chain(store_threads)
                    .chain(topic_io_thread.into_iter().flatten())
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
        let coordinator = match txn_tree {
            Some(tree) => TxnCoordinator::open(tree, markers, broker.offsets.clone())?,
            None => {
                let log = Arc::new(OffsetsTopicLog {
                    broker: Arc::downgrade(&broker),
                });
                TxnCoordinator::replicated(log, markers, broker.offsets.clone())
            }
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
                partitions: self.recover_partitions(
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
    /// closed), then the flusher, the cleaner, the reader and disk threads,
    /// the store threads and the topic I/O thread. A store or catalog
    /// change asked after fails.
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
        drop(threads.log);
        // The stores and the catalog outlive the workers, in the broker:
        // their threads are told to end once what was asked is done.
        threads.store.stop();
        if let Some(topic_io) = &threads.topic_io {
            topic_io.stop();
        }
        for thread in threads.services {
            if thread.join().is_err() {
                log::error!("the flusher, the cleaner, a reader, disk or store thread panicked");
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
            None => catalog.reserve_producer_ids(PRODUCER_ID_BLOCK).await?,
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

    /// The listeners this broker serves.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// How to connect to the other brokers of the cluster.
    pub(crate) fn peer_security(&self) -> &PeerSecurity {
        &self.peer_security
    }

    /// The reader threads, for a fetch that reads located batches into
    /// memory; `None` once the broker has stopped.
    pub(crate) fn readers(&self) -> Option<Readers> {
        match self.threads.lock().as_deref() {
            Ok(Some(threads)) => Some(threads.log.readers.clone()),
            _ => None,
        }
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

    /// What decides which client may do what.
    pub fn authorizer(&self) -> &Arc<Authorizer> {
        &self.authorizer
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

    /// Opens partitions of a topic off the arbiters and starts them.
    async fn start_partitions(
        &self,
        topic: &str,
        indexes: std::ops::Range<i32>,
        configs: &BTreeMap<String, String>,
    ) -> io::Result<Vec<Option<PartitionHandle>>> {
        let mut handles = Vec::with_capacity(indexes.len());
        for index in indexes {
            handles.push(Some(self.open_partition(topic, index, configs).await?));
        }
        Ok(handles)
    }

    /// Opens and starts the partitions of a topic on the calling thread:
    /// while the broker opens, before it serves anything.
    fn recover_partitions(
        &self,
        topic: &str,
        indexes: std::ops::Range<i32>,
        configs: &BTreeMap<String, String>,
    ) -> io::Result<Vec<Option<PartitionHandle>>> {
        indexes
            .map(|index| {
                let opened = self.partition_opener(topic, index, configs)?()?;
                Ok(Some(self.start_partition(opened)))
            })
            .collect()
    }

    /// Opens (or creates) one partition on the topic I/O thread, since
    /// creating its directory and files, their fsyncs, recovering what is
    /// there and replaying its producers' state wait on the disk, and
    /// starts its actor. (Not on tokio's blocking pool: an embedded
    /// broker's topics may be created from a caller outside any tokio
    /// runtime.)
    pub(crate) async fn open_partition(
        &self,
        topic: &str,
        index: i32,
        configs: &BTreeMap<String, String>,
    ) -> io::Result<PartitionHandle> {
        let open = self.partition_opener(topic, index, configs)?;
        let topic_io = match self.threads.lock().as_deref() {
            Ok(Some(threads)) => threads.topic_io.clone(),
            _ => return Err(io::Error::other("the broker has stopped")),
        };
        let opened = match topic_io {
            Some(topic_io) => topic_io.run(open).await?,
            // In memory: a memfd, nothing to wait for.
            None => open()?,
        };
        Ok(self.start_partition(opened))
    }

    /// What opens one partition (its log, and the partition's state
    /// rebuilt from it), to run on any thread.
    fn partition_opener(
        &self,
        topic: &str,
        index: i32,
        configs: &BTreeMap<String, String>,
    ) -> io::Result<impl FnOnce() -> io::Result<OpenedPartition> + Send + 'static> {
        let threads = match self.threads.lock().as_deref() {
            Ok(Some(threads)) => threads.log.clone(),
            _ => return Err(io::Error::other("the broker has stopped")),
        };
        let log_config = topic::config::log_config(&self.settings(), configs);
        let cleanup = topic::config::cleanup(&self.settings(), configs);
        let schedule = CleanupSchedule {
            retention_check: Duration::from_millis(self.config.retention_check_interval_ms),
            cleaner_backoff: Duration::from_millis(self.config.log_cleaner_backoff_ms),
        };
        let dir = self.partition_dir(topic, index);
        let (storage, clustered) = (self.storage, self.cluster.is_some());
        let name = format!("{topic}-{index}");
        Ok(move || {
            let log = match storage {
                Storage::Disk => Log::open(&dir, log_config)?,
                Storage::Memory => Log::in_memory(log_config)?,
            };
            let (mut partition, offsets) = Partition::new(name, log, cleanup, schedule, threads)?;
            if clustered {
                partition.awaiting_role();
            }
            Ok(OpenedPartition { partition, offsets })
        })
    }

    /// Starts the actor of an opened partition.
    fn start_partition(&self, opened: OpenedPartition) -> PartitionHandle {
        let OpenedPartition { partition, offsets } = opened;
        let addr = Partition::start_in_arbiter(&self.next_arbiter(), move |_| partition);
        PartitionHandle { addr, offsets }
    }
}

/// A partition whose log is open, before its actor starts.
struct OpenedPartition {
    partition: Partition,
    offsets: tokio::sync::watch::Receiver<partition::LogOffsets>,
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

mod coordination;
mod dynamic;
mod groups;
mod membership;
pub mod offsets_topic;
mod placement;
mod replica_manager;
mod security;
#[cfg(test)]
mod tests;
mod topics;
pub mod txn_markers;
