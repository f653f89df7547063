//! The cluster metadata image: the replicated state machine of the
//! controller quorum, as Kafka's KRaft `MetadataImage`.
//!
//! Every broker applies the same committed [`Command`]s in the same order,
//! so this module is pure: no I/O, no clocks, no randomness. Everything that
//! varies between brokers (when a session expired, which broker heartbeats)
//! is decided by the active controller *before* proposing a command, and the
//! outcome is carried inside the command. That is why, for example, the
//! cluster-wide unclean election default travels in [`Command::FenceBroker`]
//! and [`Command::UnfenceBroker`] instead of being read from local config.

use crate::dynamic_config::DynamicConfigs;
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::store::acls::{AclBinding, AclFilter};
use crate::store::scram::Change as ScramChange;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use uuid::Uuid;

/// "No leader" in [`PartitionImage::leader`], as Kafka's `-1`.
pub const NO_LEADER: i32 = -1;

/// The topic config that allows electing a replica outside the ISR.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// A registered broker. Brokers are never removed: a gone broker stays
/// fenced, as in KRaft, so its id keeps meaning the same machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    /// The log index of the registration; every broker-scoped request
    /// (AlterPartition, heartbeats, replica fetches) carries it so that a
    /// request from a previous incarnation is refused (KIP-903).
    pub epoch: i64,
    /// Random per process start: a new incarnation means the old process is
    /// gone, even if it never missed a heartbeat.
    pub incarnation: Uuid,
    /// Where other brokers reach this one: its inter-broker listener.
    pub host: String,
    pub port: u16,
    /// Every advertised listener, where clients of that listener reach it.
    pub listeners: Vec<Endpoint>,
    /// A fenced broker leads nothing and joins no ISR.
    pub fenced: bool,
}

/// One advertised listener of a broker: Metadata names a broker to a client
/// by the endpoint of the listener the client asked on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// One partition's replica set, leadership and ISR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// The assigned replicas; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// The in-sync replicas. Never empty (KIP-966): when every member is
    /// gone the last one stays, so only it can come back as a clean leader.
    pub isr: Vec<i32>,
    /// The leader's broker id, or [`NO_LEADER`].
    pub leader: i32,
    /// Bumped on every leader change; fences requests aimed at an old leader.
    pub leader_epoch: i32,
    /// Bumped on every change of this partition; the compare-and-set
    /// version of AlterPartition.
    pub partition_epoch: i32,
    /// While a reassignment runs (KIP-455): the replicas it adds, which
    /// follow but cannot lead until they join the ISR...
    pub adding: Vec<i32>,
    /// ...and those it removes once every target replica is in sync.
    pub removing: Vec<i32>,
}

/// A topic: its id, its non-default configs and its partitions in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionImage>,
}

/// The whole cluster metadata, as of `applied_index`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterImage {
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicImage>,
    /// The first producer id not handed out yet.
    pub next_producer_id: i64,
    /// The raft log index of the last applied entry; a broker compares it
    /// with its registration epoch to know it has caught up.
    pub applied_index: u64,
    /// Dynamic broker configs (KIP-226): the cluster default and per broker.
    pub dynamic_configs: DynamicConfigs,
    /// The ACLs every broker enforces, as KRaft keeps them in the metadata.
    pub acls: BTreeSet<AclBinding>,
    /// SCRAM credentials by user and hash, so a user logs in on any broker.
    pub scram: BTreeMap<(String, ScramMechanism), ScramCredential>,
}

/// A change to the image, proposed through the controller quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker (re)starts. The registration's log index becomes its epoch.
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        host: String,
        port: u16,
        listeners: Vec<Endpoint>,
    },
    /// The active controller saw no heartbeat for a session timeout.
    FenceBroker {
        id: i32,
        epoch: i64,
        /// The cluster's `unclean.leader.election.enable` default.
        unclean_default: bool,
    },
    /// A fenced broker heartbeats and has caught up with its registration.
    UnfenceBroker {
        id: i32,
        epoch: i64,
        /// The cluster's `unclean.leader.election.enable` default.
        unclean_default: bool,
    },
    CreateTopic {
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
        /// Replicas of each new partition; all of the same length.
        assignment: Vec<Vec<i32>>,
    },
    DeleteTopic {
        name: String,
    },
    /// Appends partitions with these replica sets.
    CreatePartitions {
        name: String,
        assignment: Vec<Vec<i32>>,
    },
    /// Sets (`Some`) or removes (`None`) topic configs, key by key, so that
    /// two concurrent incremental alters of different keys both survive.
    AlterTopicConfigs {
        name: String,
        configs: BTreeMap<String, Option<String>>,
    },
    /// A leader's ISR change, applied only if nothing changed since the
    /// leader last read the partition (Kafka's AlterPartition).
    AlterPartition {
        topic: String,
        partition: u32,
        leader_id: i32,
        broker_epoch: i64,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
    AllocateProducerIds {
        count: i64,
    },
    ElectPreferredLeader {
        topic: String,
        partition: u32,
    },
    /// Moves a partition to the `target` replicas (KIP-455), or with `None`
    /// cancels the reassignment in progress.
    ReassignPartition {
        topic: String,
        partition: u32,
        target: Option<Vec<i32>>,
        /// Whether the target may have another length than the replica set
        /// (KIP-860's `allow_replication_factor_change`).
        allow_replication_factor_change: bool,
    },
    /// Sets (`Some`) or removes (`None`) dynamic broker configs of one
    /// broker, or of the cluster default (`None`), key by key like
    /// [`Command::AlterTopicConfigs`]. The proposer validated them.
    AlterBrokerConfigs {
        broker: Option<i32>,
        configs: BTreeMap<String, Option<String>>,
    },
    /// Adds ACLs (validated by the proposer); one already there stays once.
    CreateAcls {
        acls: Vec<AclBinding>,
    },
    /// Removes the ACLs each filter matches.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// Upserts and deletes SCRAM credentials (validated by the proposer).
    AlterScramCredentials {
        changes: Vec<ScramChange>,
    },
}

/// What a successfully applied command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// The command changed what it said, or was a no-op by nature.
    Done,
    /// A fence or unfence naming an epoch that is no longer the broker's.
    StaleIgnored,
    Registered {
        epoch: i64,
    },
    TopicCreated {
        id: Uuid,
    },
    /// The partition after an AlterPartition or an election.
    Partition(PartitionImage),
    /// The first id of a block of `count` producer ids.
    ProducerIds {
        first: i64,
    },
    /// What each filter of a DeleteAcls removed.
    AclsDeleted(Vec<Vec<AclBinding>>),
}

/// Why a command was refused; each maps to the Kafka error a client expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataError {
    TopicAlreadyExists,
    UnknownTopicOrPartition,
    InvalidReplicationFactor,
    InvalidReplicaAssignment,
    InvalidPartitions,
    InvalidRequest,
    BrokerIdNotRegistered,
    StaleBrokerEpoch,
    FencedLeaderEpoch,
    InvalidUpdateVersion,
    NotLeaderOrFollower,
    IneligibleReplica,
    ElectionNotNeeded,
    PreferredLeaderNotAvailable,
    NoReassignmentInProgress,
}

impl MetadataError {
    /// The Kafka protocol error code.
    pub fn code(self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            MetadataError::TopicAlreadyExists => E::TopicAlreadyExists,
            MetadataError::UnknownTopicOrPartition => E::UnknownTopicOrPartition,
            MetadataError::InvalidReplicationFactor => E::InvalidReplicationFactor,
            MetadataError::InvalidReplicaAssignment => E::InvalidReplicaAssignment,
            MetadataError::InvalidPartitions => E::InvalidPartitions,
            MetadataError::InvalidRequest => E::InvalidRequest,
            MetadataError::BrokerIdNotRegistered => E::BrokerIdNotRegistered,
            MetadataError::StaleBrokerEpoch => E::StaleBrokerEpoch,
            MetadataError::FencedLeaderEpoch => E::FencedLeaderEpoch,
            MetadataError::InvalidUpdateVersion => E::InvalidUpdateVersion,
            MetadataError::NotLeaderOrFollower => E::NotLeaderOrFollower,
            MetadataError::IneligibleReplica => E::IneligibleReplica,
            MetadataError::ElectionNotNeeded => E::ElectionNotNeeded,
            MetadataError::PreferredLeaderNotAvailable => E::PreferredLeaderNotAvailable,
            MetadataError::NoReassignmentInProgress => E::NoReassignmentInProgress,
        }
        .code()
    }
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} (Kafka error code {})", self.code())
    }
}

impl std::error::Error for MetadataError {}

/// The result of applying one command; the raft response type.
pub type CommandResult = Result<Applied, MetadataError>;

impl ClusterImage {
    /// Applies one committed command found at `log_index` of the raft log.
    pub fn apply(&mut self, cmd: Command, log_index: u64) -> CommandResult {
        self.applied_index = log_index;
        match cmd {
            Command::RegisterBroker {
                id,
                incarnation,
                host,
                port,
                listeners,
            } => Ok(self.register_broker(id, incarnation, (host, port), listeners, log_index)),
            Command::FenceBroker {
                id,
                epoch,
                unclean_default,
            } => Ok(self.fence_broker(id, epoch, unclean_default)),
            Command::UnfenceBroker {
                id,
                epoch,
                unclean_default,
            } => Ok(self.unfence_broker(id, epoch, unclean_default)),
            Command::CreateTopic {
                name,
                id,
                configs,
                assignment,
            } => self.create_topic(name, id, configs, assignment),
            Command::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => Ok(Applied::Done),
                None => Err(MetadataError::UnknownTopicOrPartition),
            },
            Command::CreatePartitions { name, assignment } => {
                self.create_partitions(&name, assignment)
            }
            Command::AlterTopicConfigs { name, configs } => {
                let topic = self
                    .topics
                    .get_mut(&name)
                    .ok_or(MetadataError::UnknownTopicOrPartition)?;
                for (key, value) in configs {
                    match value {
                        Some(value) => topic.configs.insert(key, value),
                        None => topic.configs.remove(&key),
                    };
                }
                Ok(Applied::Done)
            }
            Command::AlterPartition {
                topic,
                partition,
                leader_id,
                broker_epoch,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => self.alter_partition(
                &topic,
                partition,
                leader_id,
                broker_epoch,
                leader_epoch,
                partition_epoch,
                new_isr,
            ),
            Command::AllocateProducerIds { count } => {
                if count <= 0 {
                    return Err(MetadataError::InvalidRequest);
                }
                let first = self.next_producer_id;
                self.next_producer_id = first
                    .checked_add(count)
                    .ok_or(MetadataError::InvalidRequest)?;
                Ok(Applied::ProducerIds { first })
            }
            Command::ElectPreferredLeader { topic, partition } => {
                self.elect_preferred(&topic, partition)
            }
            Command::ReassignPartition {
                topic,
                partition,
                target,
                allow_replication_factor_change,
            } => self.reassign(&topic, partition, target, allow_replication_factor_change),
            Command::AlterBrokerConfigs { broker, configs } => {
                if broker.is_some_and(|id| !self.brokers.contains_key(&id)) {
                    return Err(MetadataError::BrokerIdNotRegistered);
                }
                self.dynamic_configs.alter(broker, configs);
                Ok(Applied::Done)
            }
            Command::CreateAcls { acls } => {
                self.acls.extend(acls);
                Ok(Applied::Done)
            }
            Command::DeleteAcls { filters } => {
                // Each filter reports every ACL it matches, as if alone.
                let removed: Vec<Vec<AclBinding>> = filters
                    .iter()
                    .map(|filter| {
                        self.acls
                            .iter()
                            .filter(|a| filter.matches(a))
                            .cloned()
                            .collect()
                    })
                    .collect();
                for acl in removed.iter().flatten() {
                    self.acls.remove(acl);
                }
                Ok(Applied::AclsDeleted(removed))
            }
            Command::AlterScramCredentials { changes } => {
                for change in changes {
                    match change {
                        ScramChange::Upsert(user, mechanism, credential) => {
                            self.scram.insert((user, mechanism), credential);
                        }
                        ScramChange::Delete(user, mechanism) => {
                            self.scram.remove(&(user, mechanism));
                        }
                    }
                }
                Ok(Applied::Done)
            }
        }
    }

    /// Whether `id` is registered and not fenced.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// The unfenced broker ids, sorted: the input of [`assign_replicas`].
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    fn register_broker(
        &mut self,
        id: i32,
        incarnation: Uuid,
        (host, port): (String, u16),
        listeners: Vec<Endpoint>,
        log_index: u64,
    ) -> Applied {
        if let Some(existing) = self.brokers.get_mut(&id) {
            if existing.incarnation == incarnation {
                // A retry by the same process (its first answer was lost):
                // it keeps its epoch and its fencing state.
                existing.host = host;
                existing.port = port;
                existing.listeners = listeners;
                return Applied::Registered {
                    epoch: existing.epoch,
                };
            }
        }
        // A new process: whatever the old one led or was in sync with is
        // gone with it, so fence the old epoch before replacing it.
        if let Some(old_epoch) = self.brokers.get(&id).map(|b| b.epoch) {
            self.fence_broker(id, old_epoch, false);
        }
        let epoch = log_index as i64;
        self.brokers.insert(
            id,
            BrokerInfo {
                id,
                epoch,
                incarnation,
                host,
                port,
                listeners,
                fenced: true,
            },
        );
        Applied::Registered { epoch }
    }

    fn current_epoch(&self, id: i32, epoch: i64) -> bool {
        self.brokers.get(&id).is_some_and(|b| b.epoch == epoch)
    }

    fn fence_broker(&mut self, id: i32, epoch: i64, unclean_default: bool) -> Applied {
        if !self.current_epoch(id, epoch) {
            return Applied::StaleIgnored;
        }
        if let Some(broker) = self.brokers.get_mut(&id) {
            broker.fenced = true;
        }
        let live = self.live_set();
        for topic in self.topics.values_mut() {
            let unclean = unclean_enabled(&topic.configs, unclean_default);
            for p in &mut topic.partitions {
                if !p.replicas.contains(&id) {
                    continue;
                }
                let mut changed = false;
                if p.isr.len() > 1 && p.isr.contains(&id) {
                    p.isr.retain(|&r| r != id);
                    changed = true;
                }
                if p.leader == id {
                    elect(p, &live, unclean);
                } else if changed {
                    p.partition_epoch += 1;
                }
            }
        }
        Applied::Done
    }

    fn unfence_broker(&mut self, id: i32, epoch: i64, unclean_default: bool) -> Applied {
        if !self.current_epoch(id, epoch) {
            return Applied::StaleIgnored;
        }
        if let Some(broker) = self.brokers.get_mut(&id) {
            broker.fenced = false;
        }
        let live = self.live_set();
        for topic in self.topics.values_mut() {
            let unclean = unclean_enabled(&topic.configs, unclean_default);
            for p in &mut topic.partitions {
                if p.leader == NO_LEADER && p.replicas.contains(&id) {
                    elect(p, &live, unclean);
                }
            }
        }
        Applied::Done
    }

    pub(super) fn live_set(&self) -> BTreeSet<i32> {
        self.live_brokers().into_iter().collect()
    }

    /// Replica sets must name registered brokers, each once, all sets of
    /// the same, non-zero length.
    fn check_assignment(&self, assignment: &[Vec<i32>]) -> Result<(), MetadataError> {
        let Some(first) = assignment.first() else {
            return Err(MetadataError::InvalidPartitions);
        };
        if first.is_empty() {
            return Err(MetadataError::InvalidReplicationFactor);
        }
        for replicas in assignment {
            if replicas.len() != first.len() {
                return Err(MetadataError::InvalidReplicaAssignment);
            }
            let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
            if distinct.len() != replicas.len()
                || replicas.iter().any(|r| !self.brokers.contains_key(r))
            {
                return Err(MetadataError::InvalidReplicaAssignment);
            }
        }
        Ok(())
    }

    fn new_partitions(&self, assignment: Vec<Vec<i32>>) -> Vec<PartitionImage> {
        let live = self.live_set();
        assignment
            .into_iter()
            .map(|replicas| {
                let leader = replicas
                    .iter()
                    .copied()
                    .find(|r| live.contains(r))
                    .unwrap_or(NO_LEADER);
                PartitionImage {
                    isr: replicas.clone(),
                    replicas,
                    leader,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    adding: Vec::new(),
                    removing: Vec::new(),
                }
            })
            .collect()
    }

    fn create_topic(
        &mut self,
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
        assignment: Vec<Vec<i32>>,
    ) -> CommandResult {
        if self.topics.contains_key(&name) {
            return Err(MetadataError::TopicAlreadyExists);
        }
        self.check_assignment(&assignment)?;
        let partitions = self.new_partitions(assignment);
        self.topics.insert(
            name,
            TopicImage {
                id,
                configs,
                partitions,
            },
        );
        Ok(Applied::TopicCreated { id })
    }

    fn create_partitions(&mut self, name: &str, assignment: Vec<Vec<i32>>) -> CommandResult {
        if !self.topics.contains_key(name) {
            return Err(MetadataError::UnknownTopicOrPartition);
        }
        self.check_assignment(&assignment)?;
        let partitions = self.new_partitions(assignment);
        if let Some(topic) = self.topics.get_mut(name) {
            topic.partitions.extend(partitions);
        }
        Ok(Applied::Done)
    }

    #[allow(clippy::too_many_arguments)]
    fn alter_partition(
        &mut self,
        topic: &str,
        partition: u32,
        leader_id: i32,
        broker_epoch: i64,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> CommandResult {
        if !self.current_epoch(leader_id, broker_epoch) {
            return Err(MetadataError::StaleBrokerEpoch);
        }
        let live = self.live_set();
        let p = partition_mut(&mut self.topics, topic, partition)?;
        if p.leader != leader_id {
            return Err(MetadataError::NotLeaderOrFollower);
        }
        if p.leader_epoch != leader_epoch {
            return Err(MetadataError::FencedLeaderEpoch);
        }
        if p.partition_epoch != partition_epoch {
            return Err(MetadataError::InvalidUpdateVersion);
        }
        let distinct: BTreeSet<i32> = new_isr.iter().copied().collect();
        if distinct.len() != new_isr.len()
            || !new_isr.contains(&leader_id)
            || new_isr.iter().any(|r| !p.replicas.contains(r))
        {
            return Err(MetadataError::InvalidRequest);
        }
        if new_isr
            .iter()
            .any(|r| !p.isr.contains(r) && !live.contains(r))
        {
            return Err(MetadataError::IneligibleReplica);
        }
        p.isr = new_isr;
        p.partition_epoch += 1;
        p.finish_reassignment(&live);
        Ok(Applied::Partition(p.clone()))
    }

    /// The partitions to hand back to their preferred leader (the first
    /// replica, live and in the ISR but not leading), as Kafka's
    /// `auto.leader.rebalance.enable` picks them: only on brokers for which
    /// more than `percentage` % of the partitions they prefer are led
    /// elsewhere (`leader.imbalance.per.broker.percentage`).
    pub fn imbalanced(&self, percentage: u32) -> Vec<(String, u32)> {
        let live = self.live_set();
        // Per preferred broker: how many it prefers, and which it should lead.
        let mut by_broker: BTreeMap<i32, (usize, Vec<(String, u32)>)> = BTreeMap::new();
        for (name, topic) in &self.topics {
            for (index, p) in topic.partitions.iter().enumerate() {
                let Some(&preferred) = p.replicas.first() else {
                    continue;
                };
                let entry = by_broker.entry(preferred).or_default();
                entry.0 += 1;
                if p.leader != preferred && live.contains(&preferred) && p.isr.contains(&preferred)
                {
                    entry.1.push((name.clone(), index as u32));
                }
            }
        }
        by_broker
            .into_values()
            .filter(|(preferred, misplaced)| {
                misplaced.len() * 100 > *preferred * percentage as usize
            })
            .flat_map(|(_, misplaced)| misplaced)
            .collect()
    }

    fn elect_preferred(&mut self, topic: &str, partition: u32) -> CommandResult {
        let live = self.live_set();
        let p = partition_mut(&mut self.topics, topic, partition)?;
        let Some(&preferred) = p.replicas.first() else {
            return Err(MetadataError::PreferredLeaderNotAvailable);
        };
        if p.leader == preferred {
            return Err(MetadataError::ElectionNotNeeded);
        }
        if !p.isr.contains(&preferred) || !live.contains(&preferred) {
            return Err(MetadataError::PreferredLeaderNotAvailable);
        }
        set_leader(p, preferred);
        Ok(Applied::Partition(p.clone()))
    }
}

/// One partition of the image, to change.
pub(super) fn partition_mut<'a>(
    topics: &'a mut BTreeMap<String, TopicImage>,
    topic: &str,
    partition: u32,
) -> Result<&'a mut PartitionImage, MetadataError> {
    topics
        .get_mut(topic)
        .and_then(|t| t.partitions.get_mut(partition as usize))
        .ok_or(MetadataError::UnknownTopicOrPartition)
}

fn unclean_enabled(configs: &BTreeMap<String, String>, default: bool) -> bool {
    match configs.get(UNCLEAN_LEADER_ELECTION_ENABLE) {
        Some(v) => v.eq_ignore_ascii_case("true"),
        None => default,
    }
}

fn set_leader(p: &mut PartitionImage, leader: i32) {
    p.leader = leader;
    p.leader_epoch += 1;
    p.partition_epoch += 1;
}

/// Picks a leader for `p` among live brokers: the first replica (in replica
/// order) in the ISR; failing that, if `unclean`, the first live replica,
/// which then forms the ISR alone (it may lack acknowledged records: that is
/// the data loss unclean election accepts). Otherwise no leader, and the ISR
/// is left as it is so its members stay the only clean candidates.
pub(super) fn elect(p: &mut PartitionImage, live: &BTreeSet<i32>, unclean: bool) {
    let clean = p
        .replicas
        .iter()
        .copied()
        .find(|r| live.contains(r) && p.isr.contains(r));
    let chosen = match clean {
        Some(r) => Some(r),
        None if unclean => {
            let r = p.replicas.iter().copied().find(|r| live.contains(r));
            if let Some(r) = r {
                p.isr = vec![r];
            }
            r
        }
        None => None,
    };
    match chosen {
        Some(r) if r == p.leader => {}
        Some(r) => set_leader(p, r),
        None if p.leader != NO_LEADER => set_leader(p, NO_LEADER),
        None => {}
    }
}

/// Assigns `partitions` partitions of `replication_factor` replicas over the
/// unfenced `brokers` (sorted), as Kafka's rack-unaware assignment: the
/// leaders go round robin from `start`, and the followers of each partition
/// follow its leader at a shift that grows each time the leaders wrap around,
/// so followers spread too. Callers pick `start` (Kafka picks it at random)
/// so that repeated creations do not all lead on the same broker.
pub fn assign_replicas(
    brokers: &[i32],
    partitions: u32,
    replication_factor: u16,
    start: usize,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let n = brokers.len();
    let rf = usize::from(replication_factor);
    if rf == 0 || rf > n {
        return Err(MetadataError::InvalidReplicationFactor);
    }
    if partitions == 0 {
        return Err(MetadataError::InvalidPartitions);
    }
    let mut shift = start % n;
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = Vec::with_capacity(rf);
        replicas.push(brokers[first]);
        for j in 0..rf - 1 {
            let offset = 1 + (shift + j) % (n - 1);
            replicas.push(brokers[(first + offset) % n]);
        }
        out.push(replicas);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamic_config::Source;

    /// An image with brokers 1..=n registered (epochs 1..=n) and unfenced.
    fn cluster(n: i32) -> ClusterImage {
        let mut image = ClusterImage::default();
        for id in 1..=n {
            let r = image.apply(register(id, Uuid::new_v4()), id as u64);
            assert_eq!(r, Ok(Applied::Registered { epoch: id as i64 }));
            let r = image.apply(unfence(id, id as i64), 100 + id as u64);
            assert_eq!(r, Ok(Applied::Done));
        }
        image
    }

    fn register(id: i32, incarnation: Uuid) -> Command {
        Command::RegisterBroker {
            id,
            incarnation,
            host: "127.0.0.1".into(),
            port: 9090 + id as u16,
            listeners: Vec::new(),
        }
    }

    fn fence(id: i32, epoch: i64) -> Command {
        Command::FenceBroker {
            id,
            epoch,
            unclean_default: false,
        }
    }

    fn unfence(id: i32, epoch: i64) -> Command {
        Command::UnfenceBroker {
            id,
            epoch,
            unclean_default: false,
        }
    }

    fn create(image: &mut ClusterImage, name: &str, assignment: Vec<Vec<i32>>) {
        let r = image.apply(
            Command::CreateTopic {
                name: name.into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                assignment,
            },
            200,
        );
        assert!(matches!(r, Ok(Applied::TopicCreated { .. })), "{r:?}");
    }

    #[test]
    fn imbalance_hands_leadership_back_past_the_threshold() {
        let mut image = cluster(3);
        // Broker 1 prefers ten partitions.
        create(&mut image, "t", vec![vec![1, 2, 3]; 10]);
        assert!(image.imbalanced(10).is_empty());
        // It dies: its partitions move to 2; back, it leads none of them.
        image.apply(fence(1, 1), 300).unwrap();
        assert!(
            image.imbalanced(10).is_empty(),
            "a fenced broker leads nothing"
        );
        image.apply(register(1, Uuid::new_v4()), 301).unwrap();
        image.apply(unfence(1, 301), 302).unwrap();
        for p in 0..10 {
            let isr = vec![2, 3, 1];
            let partition_epoch = part(&image, "t", p).partition_epoch;
            let leader_epoch = part(&image, "t", p).leader_epoch;
            let r = image.apply(
                Command::AlterPartition {
                    topic: "t".into(),
                    partition: p as u32,
                    leader_id: 2,
                    broker_epoch: 2,
                    leader_epoch,
                    partition_epoch,
                    new_isr: isr,
                },
                303 + p as u64,
            );
            assert!(r.is_ok(), "{r:?}");
        }
        assert_eq!(image.imbalanced(10).len(), 10);
        // One misplaced partition of ten is within 10 %.
        for p in 1..10 {
            image
                .apply(
                    Command::ElectPreferredLeader {
                        topic: "t".into(),
                        partition: p,
                    },
                    400 + p as u64,
                )
                .unwrap();
        }
        assert!(image.imbalanced(10).is_empty());
        assert_eq!(image.imbalanced(5), vec![("t".to_string(), 0)]);
    }

    fn part<'a>(image: &'a ClusterImage, topic: &str, p: usize) -> &'a PartitionImage {
        &image.topics[topic].partitions[p]
    }

    #[test]
    fn registration_epoch_is_the_log_index_and_starts_fenced() {
        let mut image = ClusterImage::default();
        let inc = Uuid::new_v4();
        assert_eq!(
            image.apply(register(1, inc), 7),
            Ok(Applied::Registered { epoch: 7 })
        );
        assert!(image.brokers[&1].fenced);
        assert_eq!(image.applied_index, 7);
        // A retry of the same incarnation keeps the epoch.
        assert_eq!(
            image.apply(register(1, inc), 9),
            Ok(Applied::Registered { epoch: 7 })
        );
        assert_eq!(image.apply(unfence(1, 7), 10), Ok(Applied::Done));
        assert!(!image.brokers[&1].fenced);
    }

    #[test]
    fn new_incarnation_fences_the_old_epoch() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        let r = image.apply(register(1, Uuid::new_v4()), 300);
        assert_eq!(r, Ok(Applied::Registered { epoch: 300 }));
        let b = &image.brokers[&1];
        assert!(b.fenced);
        assert_eq!(b.epoch, 300);
        let p = part(&image, "t", 0);
        assert_eq!(p.leader, 2);
        assert_eq!(p.isr, vec![2, 3]);
        assert_eq!(p.leader_epoch, 1);
        // Commands naming the old epoch are now stale.
        assert_eq!(image.apply(unfence(1, 1), 301), Ok(Applied::StaleIgnored));
        assert!(image.brokers[&1].fenced);
    }

    #[test]
    fn fence_removes_from_isr_and_elects_next_in_replica_order() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2, 3], vec![3, 1, 2]]);
        assert_eq!(image.apply(fence(1, 1), 300), Ok(Applied::Done));
        let p0 = part(&image, "t", 0);
        assert_eq!((p0.leader, p0.leader_epoch, p0.partition_epoch), (2, 1, 1));
        assert_eq!(p0.isr, vec![2, 3]);
        // Follower removed from the ISR: partition epoch only.
        let p1 = part(&image, "t", 1);
        assert_eq!((p1.leader, p1.leader_epoch, p1.partition_epoch), (3, 0, 1));
        assert_eq!(p1.isr, vec![3, 2]);
        assert!(image.brokers[&1].fenced);
    }

    #[test]
    fn stale_fence_is_ignored() {
        let mut image = cluster(2);
        create(&mut image, "t", vec![vec![1, 2]]);
        assert_eq!(image.apply(fence(1, 99), 300), Ok(Applied::StaleIgnored));
        assert_eq!(image.apply(fence(9, 1), 301), Ok(Applied::StaleIgnored));
        assert!(!image.brokers[&1].fenced);
        assert_eq!(part(&image, "t", 0).leader, 1);
    }

    #[test]
    fn fenced_brokers_are_never_elected() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        image.apply(fence(2, 2), 300).unwrap();
        image.apply(fence(1, 1), 301).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.leader, 3);
        assert_eq!(p.isr, vec![3]);
    }

    #[test]
    fn last_isr_member_stays_and_leaderless_partition_waits_for_it() {
        let mut image = cluster(2);
        create(&mut image, "t", vec![vec![1, 2]]);
        image.apply(fence(2, 2), 300).unwrap();
        assert_eq!(part(&image, "t", 0).isr, vec![1]);
        image.apply(fence(1, 1), 301).unwrap();
        let p = part(&image, "t", 0).clone();
        assert_eq!(p.leader, NO_LEADER);
        assert_eq!(p.isr, vec![1], "KIP-966: the ISR keeps its last member");
        assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
        // Broker 2 comes back: not in the ISR, so no clean election.
        image.apply(unfence(2, 2), 302).unwrap();
        assert_eq!(part(&image, "t", 0), &p);
        // Broker 1 comes back: the last ISR member leads again.
        image.apply(unfence(1, 1), 303).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.leader, 1);
        assert_eq!((p.leader_epoch, p.partition_epoch), (2, 3));
        assert_eq!(p.isr, vec![1]);
    }

    #[test]
    fn unclean_election_by_topic_config() {
        let mut image = cluster(2);
        create(&mut image, "t", vec![vec![1, 2]]);
        let mut configs = BTreeMap::new();
        configs.insert(UNCLEAN_LEADER_ELECTION_ENABLE.into(), Some("true".into()));
        image
            .apply(
                Command::AlterTopicConfigs {
                    name: "t".into(),
                    configs,
                },
                250,
            )
            .unwrap();
        image.apply(fence(2, 2), 300).unwrap();
        image.apply(fence(1, 1), 301).unwrap();
        assert_eq!(part(&image, "t", 0).leader, NO_LEADER);
        image.apply(unfence(2, 2), 302).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.leader, 2);
        assert_eq!(p.isr, vec![2]);
    }

    #[test]
    fn unclean_election_by_cluster_default_and_topic_override() {
        let mut image = cluster(2);
        create(&mut image, "t", vec![vec![1, 2]]);
        image.apply(fence(2, 2), 300).unwrap();
        image.apply(fence(1, 1), 301).unwrap();
        let cmd = Command::UnfenceBroker {
            id: 2,
            epoch: 2,
            unclean_default: true,
        };
        image.apply(cmd.clone(), 302).unwrap();
        assert_eq!(part(&image, "t", 0).leader, 2);

        // A topic saying false wins over the cluster default.
        let mut image = cluster(2);
        create(&mut image, "u", vec![vec![1, 2]]);
        let mut configs = BTreeMap::new();
        configs.insert(UNCLEAN_LEADER_ELECTION_ENABLE.into(), Some("false".into()));
        image
            .apply(
                Command::AlterTopicConfigs {
                    name: "u".into(),
                    configs,
                },
                250,
            )
            .unwrap();
        image.apply(fence(2, 2), 300).unwrap();
        image.apply(fence(1, 1), 301).unwrap();
        image.apply(cmd, 302).unwrap();
        assert_eq!(part(&image, "u", 0).leader, NO_LEADER);
    }

    #[test]
    fn unclean_fence_elects_a_live_replica_outside_the_isr() {
        let mut image = cluster(2);
        create(&mut image, "t", vec![vec![1, 2]]);
        // The leader shrank the ISR to itself, then dies.
        image
            .apply(alter("t", 1, 1, 0, 0, vec![1]), 250)
            .expect("shrink");
        let cmd = Command::FenceBroker {
            id: 1,
            epoch: 1,
            unclean_default: true,
        };
        image.apply(cmd, 300).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(p.leader, 2);
        assert_eq!(p.isr, vec![2]);
    }

    fn alter(topic: &str, leader: i32, epoch: i64, le: i32, pe: i32, isr: Vec<i32>) -> Command {
        Command::AlterPartition {
            topic: topic.into(),
            partition: 0,
            leader_id: leader,
            broker_epoch: epoch,
            leader_epoch: le,
            partition_epoch: pe,
            new_isr: isr,
        }
    }

    fn reassign(target: Option<Vec<i32>>) -> Command {
        Command::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            target,
            allow_replication_factor_change: true,
        }
    }

    /// The leader of t-0 proposes `isr` with the partition's current epochs.
    fn alter_now(image: &mut ClusterImage, isr: Vec<i32>) -> CommandResult {
        let p = part(image, "t", 0).clone();
        let epoch = image.brokers[&p.leader].epoch;
        let cmd = alter("t", p.leader, epoch, p.leader_epoch, p.partition_epoch, isr);
        image.apply(cmd, 500)
    }

    #[test]
    fn reassignment_adds_catches_up_then_removes_and_moves_the_leader() {
        let mut image = cluster(4);
        create(&mut image, "t", vec![vec![1, 2]]);
        image.apply(reassign(Some(vec![3, 4])), 400).unwrap();
        let p = part(&image, "t", 0);
        assert_eq!(
            (&p.replicas[..], &p.adding[..], &p.removing[..]),
            (&[3, 4, 1, 2][..], &[3, 4][..], &[1, 2][..])
        );
        assert_eq!((p.leader, &p.isr[..]), (1, &[1, 2][..]));
        assert_eq!(image.reassignments().count(), 1);
        // One new replica in sync is not enough.
        alter_now(&mut image, vec![1, 2, 3]).unwrap();
        assert!(part(&image, "t", 0).reassigning());
        let leader_epoch = part(&image, "t", 0).leader_epoch;
        // The second completes it: 1 and 2 leave, 3 leads in a new epoch.
        alter_now(&mut image, vec![1, 2, 3, 4]).unwrap();
        let p = part(&image, "t", 0);
        assert!(!p.reassigning());
        assert_eq!((&p.replicas[..], &p.isr[..]), (&[3, 4][..], &[3, 4][..]));
        assert_eq!((p.leader, p.leader_epoch), (3, leader_epoch + 1));
        assert_eq!(image.reassignments().count(), 0);
    }

    #[test]
    fn reassignment_within_the_isr_completes_at_once() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        image.apply(reassign(Some(vec![2, 3])), 400).unwrap();
        let p = part(&image, "t", 0);
        assert!(!p.reassigning());
        assert_eq!(
            (&p.replicas[..], &p.isr[..], p.leader),
            (&[2, 3][..], &[2, 3][..], 2)
        );
    }

    #[test]
    fn cancelling_drops_the_added_replicas() {
        let mut image = cluster(4);
        create(&mut image, "t", vec![vec![1, 2]]);
        let before = part(&image, "t", 0).clone();
        assert_eq!(
            image.apply(reassign(None), 400),
            Err(MetadataError::NoReassignmentInProgress)
        );
        image.apply(reassign(Some(vec![3, 4])), 401).unwrap();
        alter_now(&mut image, vec![1, 2, 3]).unwrap();
        image.apply(reassign(None), 402).unwrap();
        let p = part(&image, "t", 0);
        assert!(!p.reassigning());
        assert_eq!(
            (&p.replicas[..], &p.isr[..]),
            (&before.replicas[..], &before.isr[..])
        );
        assert_eq!(
            (p.leader, p.leader_epoch),
            (before.leader, before.leader_epoch)
        );
    }

    #[test]
    fn reassignment_refuses_bad_targets() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2]]);
        for target in [vec![], vec![1, 1], vec![1, 9]] {
            assert_eq!(
                image.apply(reassign(Some(target.clone())), 400),
                Err(MetadataError::InvalidReplicaAssignment),
                "{target:?}"
            );
        }
        let keep_factor = Command::ReassignPartition {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2, 3]),
            allow_replication_factor_change: false,
        };
        assert_eq!(
            image.apply(keep_factor, 401),
            Err(MetadataError::InvalidReplicationFactor)
        );
        let unknown = Command::ReassignPartition {
            topic: "t".into(),
            partition: 5,
            target: Some(vec![1]),
            allow_replication_factor_change: true,
        };
        assert_eq!(
            image.apply(unknown, 402),
            Err(MetadataError::UnknownTopicOrPartition)
        );
        assert!(!part(&image, "t", 0).reassigning());
    }

    #[test]
    fn alter_partition_is_a_compare_and_set() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        let r = image.apply(alter("t", 1, 1, 0, 0, vec![1, 2]), 300);
        let p = match r {
            Ok(Applied::Partition(p)) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(p.isr, vec![1, 2]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
        // Same request again: partition epoch moved on.
        let r = image.apply(alter("t", 1, 1, 0, 0, vec![1, 2, 3]), 301);
        assert_eq!(r, Err(MetadataError::InvalidUpdateVersion));
        assert_eq!(
            image.apply(alter("t", 1, 5, 0, 1, vec![1]), 302),
            Err(MetadataError::StaleBrokerEpoch)
        );
        assert_eq!(
            image.apply(alter("t", 2, 2, 0, 1, vec![2]), 303),
            Err(MetadataError::NotLeaderOrFollower)
        );
        assert_eq!(
            image.apply(alter("t", 1, 1, 3, 1, vec![1]), 304),
            Err(MetadataError::FencedLeaderEpoch)
        );
        assert_eq!(
            image.apply(alter("t", 1, 1, 0, 1, vec![2]), 305),
            Err(MetadataError::InvalidRequest),
            "the ISR must keep its leader"
        );
        assert_eq!(
            image.apply(alter("t", 1, 1, 0, 1, vec![1, 4]), 306),
            Err(MetadataError::InvalidRequest),
            "only replicas join the ISR"
        );
        assert_eq!(
            image.apply(alter("nope", 1, 1, 0, 1, vec![1]), 307),
            Err(MetadataError::UnknownTopicOrPartition)
        );
        // A fenced broker may not be added back.
        image.apply(fence(3, 3), 308).unwrap();
        assert_eq!(
            image.apply(alter("t", 1, 1, 0, 1, vec![1, 2, 3]), 309),
            Err(MetadataError::IneligibleReplica)
        );
        assert_eq!(part(&image, "t", 0).isr, vec![1, 2]);
        image.apply(unfence(3, 3), 310).unwrap();
        let r = image.apply(alter("t", 1, 1, 0, 1, vec![1, 2, 3]), 311);
        assert!(matches!(r, Ok(Applied::Partition(_))), "{r:?}");
        assert_eq!(part(&image, "t", 0).partition_epoch, 2);
    }

    #[test]
    fn topic_lifecycle() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2], vec![2, 3]]);
        let dup = Command::CreateTopic {
            name: "t".into(),
            id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            assignment: vec![vec![1]],
        };
        assert_eq!(
            image.apply(dup, 300),
            Err(MetadataError::TopicAlreadyExists)
        );
        let p = part(&image, "t", 1);
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (2, vec![2, 3], 0)
        );

        let add = |a: Vec<Vec<i32>>| Command::CreatePartitions {
            name: "t".into(),
            assignment: a,
        };
        assert_eq!(image.apply(add(vec![vec![3, 1]]), 301), Ok(Applied::Done));
        assert_eq!(image.topics["t"].partitions.len(), 3);
        assert_eq!(part(&image, "t", 2).leader, 3);
        assert_eq!(
            image.apply(add(vec![vec![3, 3]]), 302),
            Err(MetadataError::InvalidReplicaAssignment)
        );
        assert_eq!(
            image.apply(add(vec![vec![9, 1]]), 303),
            Err(MetadataError::InvalidReplicaAssignment)
        );
        assert_eq!(
            image.apply(add(vec![]), 304),
            Err(MetadataError::InvalidPartitions)
        );

        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), Some("1000".to_string()));
        let alter = |c| Command::AlterTopicConfigs {
            name: "t".into(),
            configs: c,
        };
        image.apply(alter(configs.clone()), 305).unwrap();
        assert_eq!(image.topics["t"].configs["retention.ms"], "1000");
        configs.insert("retention.ms".to_string(), None);
        image.apply(alter(configs), 306).unwrap();
        assert!(image.topics["t"].configs.is_empty());

        let del = || Command::DeleteTopic { name: "t".into() };
        assert_eq!(image.apply(del(), 307), Ok(Applied::Done));
        assert_eq!(
            image.apply(del(), 308),
            Err(MetadataError::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn producer_id_blocks_do_not_overlap() {
        let mut image = ClusterImage::default();
        let alloc = |count| Command::AllocateProducerIds { count };
        assert_eq!(
            image.apply(alloc(1000), 1),
            Ok(Applied::ProducerIds { first: 0 })
        );
        assert_eq!(
            image.apply(alloc(1000), 2),
            Ok(Applied::ProducerIds { first: 1000 })
        );
        assert_eq!(image.apply(alloc(0), 3), Err(MetadataError::InvalidRequest));
        assert_eq!(image.next_producer_id, 2000);
    }

    #[test]
    fn preferred_leader_election() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        let elect = || Command::ElectPreferredLeader {
            topic: "t".into(),
            partition: 0,
        };
        assert_eq!(
            image.apply(elect(), 300),
            Err(MetadataError::ElectionNotNeeded)
        );
        image.apply(fence(1, 1), 301).unwrap();
        assert_eq!(
            image.apply(elect(), 302),
            Err(MetadataError::PreferredLeaderNotAvailable)
        );
        image.apply(unfence(1, 1), 303).unwrap();
        // Back but not in the ISR yet.
        assert_eq!(
            image.apply(elect(), 304),
            Err(MetadataError::PreferredLeaderNotAvailable)
        );
        let p = part(&image, "t", 0).clone();
        assert_eq!(p.leader, 2);
        let grow = Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader_id: 2,
            broker_epoch: 2,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: vec![2, 3, 1],
        };
        image.apply(grow, 305).unwrap();
        let r = image.apply(elect(), 306);
        let p = match r {
            Ok(Applied::Partition(p)) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(p.leader, 1);
        assert_eq!(p.leader_epoch, 2);
    }

    #[test]
    fn assignment_spreads_leaders_and_followers() {
        let brokers = [1, 2, 3];
        let a = assign_replicas(&brokers, 6, 3, 0).unwrap();
        assert_eq!(a.len(), 6);
        for replicas in &a {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3);
        }
        let leaders: Vec<i32> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        // Followers shift after the leaders wrap around.
        assert_eq!(a[0], vec![1, 2, 3]);
        assert_eq!(a[3], vec![1, 3, 2]);
        // Leaders start at `start`.
        let a = assign_replicas(&brokers, 2, 2, 1).unwrap();
        assert_eq!(a[0][0], 2);
        assert_eq!(a[1][0], 3);
        // Every broker holds the same number of replicas.
        let a = assign_replicas(&[1, 2, 3, 4], 8, 2, 3).unwrap();
        let mut count = BTreeMap::new();
        for r in a.iter().flatten() {
            *count.entry(*r).or_insert(0) += 1;
        }
        assert!(count.values().all(|&c| c == 4), "{count:?}");
        assert_eq!(
            assign_replicas(&[7], 2, 1, 5).unwrap(),
            vec![vec![7], vec![7]]
        );
    }

    #[test]
    fn assignment_refuses_bad_factors() {
        assert_eq!(
            assign_replicas(&[1, 2], 1, 3, 0),
            Err(MetadataError::InvalidReplicationFactor)
        );
        assert_eq!(
            assign_replicas(&[1, 2], 1, 0, 0),
            Err(MetadataError::InvalidReplicationFactor)
        );
        assert_eq!(
            assign_replicas(&[], 1, 1, 0),
            Err(MetadataError::InvalidReplicationFactor)
        );
        assert_eq!(
            assign_replicas(&[1], 0, 1, 0),
            Err(MetadataError::InvalidPartitions)
        );
    }

    #[test]
    fn image_round_trips_through_bincode() {
        let mut image = cluster(3);
        create(&mut image, "t", vec![vec![1, 2, 3]]);
        let bytes = bincode::serialize(&image).unwrap();
        let back: ClusterImage = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back, image);
        let cmd = register(4, Uuid::new_v4());
        let bytes = bincode::serialize(&cmd).unwrap();
        assert_eq!(bincode::deserialize::<Command>(&bytes).unwrap(), cmd);
    }

    #[test]
    fn broker_configs_are_altered_key_by_key_per_resource() {
        let mut image = cluster(2);
        let set = |broker, pairs: &[(&str, Option<&str>)]| Command::AlterBrokerConfigs {
            broker,
            configs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        };
        let retention = "log.retention.ms";
        image
            .apply(set(None, &[(retention, Some("1000"))]), 300)
            .unwrap();
        image
            .apply(set(Some(2), &[("min.insync.replicas", Some("2"))]), 301)
            .unwrap();
        // A second alter of another key leaves the first in place.
        image
            .apply(set(None, &[("log.retention.bytes", Some("10"))]), 302)
            .unwrap();
        let dynamic = &image.dynamic_configs;
        assert_eq!(
            dynamic.lookup(1, retention),
            Some(("1000", Source::DynamicDefault))
        );
        assert_eq!(dynamic.lookup(1, "min.insync.replicas"), None);
        assert_eq!(
            dynamic.lookup(2, "min.insync.replicas"),
            Some(("2", Source::DynamicBroker))
        );
        assert_eq!(dynamic.of(None).len(), 2);
        image.apply(set(None, &[(retention, None)]), 303).unwrap();
        assert_eq!(image.dynamic_configs.lookup(1, retention), None);
        assert_eq!(
            image.apply(set(Some(9), &[(retention, Some("1"))]), 304),
            Err(MetadataError::BrokerIdNotRegistered)
        );
        let bytes = bincode::serialize(&image).unwrap();
        assert_eq!(bincode::deserialize::<ClusterImage>(&bytes).unwrap(), image);
    }
}
