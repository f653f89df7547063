//! The cluster around the group's coordinator: broker processes that die
//! and start again, and the controller's metadata image, the broker's own
//! [`ClusterImage`], deciding who leads the group's partition of
//! `__consumer_offsets` and so coordinates the group.
//!
//! As in the cluster, the group's partition is the Java hash of its id
//! modulo the partition count, its replicas are placed by the same
//! rack-unaware assignment over all brokers (the topic is taken to exist
//! from the start, all brokers alive), and the leader is what the image
//! elects: the first replica, in replica order, that is live and in sync.
//! A killed broker is fenced a broker session timeout later; a broker that
//! starts again registers a new incarnation (fencing the old one at once if
//! the controller had not yet) and is unfenced. A restarted follower is
//! taken to catch up at once and rejoin the ISR if the partition has a
//! leader to catch up from.

use super::scenario::ClusterSettings;
use actorlog_actors::broker::offsets_topic::{partition_for, OFFSETS_TOPIC};
use actorlog_actors::cluster::image::NO_LEADER;
use actorlog_actors::cluster::{assign_replicas, ClusterImage, Command, PartitionImage};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The brokers and the controller's view of them.
pub struct Cluster {
    image: ClusterImage,
    /// The raft log index of the next command: brokers' epochs are the
    /// index of their registration, as in the controller.
    next_index: u64,
    /// The group's partition of the offsets topic.
    partition: u32,
    session_timeout: u64,
    /// Brokers whose process runs.
    running: BTreeSet<i32>,
    /// Killed brokers the controller has not fenced yet, with when it does.
    fencing: BTreeMap<i32, u64>,
    /// Incarnations registered so far: each process gets a new one.
    incarnations: u128,
}

impl Cluster {
    /// All brokers running, the offsets topic placed.
    pub fn new(settings: &ClusterSettings, group: &str) -> Result<Cluster, String> {
        let brokers: Vec<i32> = (1..=settings.brokers.0).collect();
        let partitions = settings.offsets_partitions.0;
        let mut cluster = Cluster {
            image: ClusterImage::default(),
            next_index: 1,
            partition: u32::try_from(partition_for(group, partitions)).unwrap_or(0),
            session_timeout: settings.broker_session_timeout.0,
            running: brokers.iter().copied().collect(),
            fencing: BTreeMap::new(),
            incarnations: 0,
        };
        for &id in &brokers {
            cluster.start(id)?;
        }
        let rf = u16::try_from(settings.replication_factor()).unwrap_or(u16::MAX);
        // The cluster creates the offsets topic with its first leader on the
        // first broker (`Broker::create_offsets_topic`).
        let partitions = u32::try_from(partitions).unwrap_or(1);
        let assignment = assign_replicas(&brokers, partitions, rf, 0)
            .map_err(|e| format!("cluster: placing {OFFSETS_TOPIC}: {e}"))?;
        cluster.apply(Command::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            id: Uuid::nil(),
            configs: BTreeMap::new(),
            assignment,
        })?;
        Ok(cluster)
    }

    fn apply(&mut self, command: Command) -> Result<(), String> {
        let index = self.next_index;
        self.next_index += 1;
        self.image
            .apply(command, index)
            .map(|_| ())
            .map_err(|e| format!("cluster metadata: {e}"))
    }

    /// Registers a new process of broker `id` and unfences it (it has
    /// caught up with the metadata).
    fn start(&mut self, id: i32) -> Result<(), String> {
        self.incarnations += 1;
        self.apply(Command::RegisterBroker {
            id,
            incarnation: Uuid::from_u128(self.incarnations),
            host: "simulated".to_string(),
            port: 9092,
            listeners: Vec::new(),
        })?;
        let epoch = self.epoch(id);
        self.apply(Command::UnfenceBroker {
            id,
            epoch,
            unclean_default: false,
        })
    }

    fn epoch(&self, id: i32) -> i64 {
        self.image.brokers.get(&id).map_or(-1, |b| b.epoch)
    }

    /// The group's partition of the offsets topic, as the image has it.
    fn offsets(&self) -> Option<&PartitionImage> {
        self.image
            .topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(self.partition as usize))
    }

    /// The index of the group's partition of the offsets topic.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Its replicas, preferred leader first.
    pub fn replicas(&self) -> Vec<i32> {
        self.offsets().map_or_else(Vec::new, |p| p.replicas.clone())
    }

    /// How many brokers the cluster has.
    pub fn brokers(&self) -> i32 {
        i32::try_from(self.image.brokers.len()).unwrap_or(i32::MAX)
    }

    /// The broker coordinating the group now: the partition's leader, if
    /// its process runs (a killed leader stays leader in the metadata
    /// until it is fenced, but answers nothing).
    pub fn coordinator(&self) -> Option<i32> {
        self.offsets()
            .map(|p| p.leader)
            .filter(|l| *l != NO_LEADER && self.running.contains(l))
    }

    /// The broker's process dies; the controller fences it once its
    /// session times out.
    pub fn kill(&mut self, id: i32, now: u64) {
        if self.running.remove(&id) {
            self.fencing.insert(id, now + self.session_timeout);
        }
    }

    /// A killed broker starts again: a new incarnation, unfenced.
    pub fn restart(&mut self, id: i32) -> Result<(), String> {
        if !self.running.insert(id) {
            return Ok(());
        }
        // Registration fences the old incarnation if the controller had not.
        self.fencing.remove(&id);
        self.start(id)?;
        self.catch_up(id)
    }

    /// A replica out of the ISR that the leader sees caught up: the
    /// leader's AlterPartition brings it back in.
    fn catch_up(&mut self, id: i32) -> Result<(), String> {
        let Some(p) = self.offsets().cloned() else {
            return Ok(());
        };
        if p.leader == NO_LEADER || !p.replicas.contains(&id) || p.isr.contains(&id) {
            return Ok(());
        }
        let mut new_isr = p.isr.clone();
        new_isr.push(id);
        self.apply(Command::AlterPartition {
            topic: OFFSETS_TOPIC.to_string(),
            partition: self.partition,
            leader_id: p.leader,
            broker_epoch: self.epoch(p.leader),
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr,
        })
    }

    /// When the controller next fences a broker.
    pub fn next_due(&self) -> Option<u64> {
        self.fencing.values().min().copied()
    }

    /// Fences the brokers whose session has timed out by `now`.
    pub fn advance(&mut self, now: u64) -> Result<(), String> {
        let due: Vec<i32> = self
            .fencing
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.fencing.remove(&id);
            let epoch = self.epoch(id);
            self.apply(Command::FenceBroker {
                id,
                epoch,
                unclean_default: false,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::scenario::{Count, Millis};

    fn cluster(brokers: i32, rf: i32) -> Cluster {
        let settings = ClusterSettings {
            brokers: Count(brokers),
            offsets_replication_factor: Some(Count(rf)),
            offsets_partitions: Count(50),
            broker_session_timeout: Millis(2_000),
        };
        Cluster::new(&settings, "simulated").expect("the cluster starts")
    }

    fn isr(c: &Cluster) -> Vec<i32> {
        c.offsets().map_or_else(Vec::new, |p| p.isr.clone())
    }

    #[test]
    fn the_group_lands_where_the_cluster_puts_it() {
        let c = cluster(3, 3);
        assert_eq!(c.partition(), partition_for("simulated", 50) as u32);
        let placed = assign_replicas(&[1, 2, 3], 50, 3, 0).unwrap();
        assert_eq!(c.replicas(), placed[c.partition() as usize]);
        assert_eq!(c.coordinator(), c.replicas().first().copied());
    }

    #[test]
    fn a_dead_leader_is_replaced_after_the_session_timeout() {
        let mut c = cluster(3, 3);
        let replicas = c.replicas();
        c.kill(replicas[0], 10_000);
        assert_eq!(c.coordinator(), None, "the dead leader answers nothing");
        assert_eq!(c.next_due(), Some(12_000));
        c.advance(11_999).unwrap();
        assert_eq!(c.coordinator(), None);
        c.advance(12_000).unwrap();
        assert_eq!(c.coordinator(), Some(replicas[1]));
        assert!(!isr(&c).contains(&replicas[0]));
        c.restart(replicas[0]).unwrap();
        assert_eq!(c.coordinator(), Some(replicas[1]), "no preferred election");
        assert!(isr(&c).contains(&replicas[0]), "back in sync");
    }

    #[test]
    fn a_single_replica_leads_again_only_when_restarted() {
        let mut c = cluster(3, 1);
        let only = c.replicas()[0];
        c.kill(only, 0);
        c.advance(2_000).unwrap();
        assert_eq!(c.coordinator(), None);
        c.restart(only).unwrap();
        assert_eq!(c.coordinator(), Some(only));
    }

    #[test]
    fn a_restart_before_the_fence_fences_the_old_process() {
        let mut c = cluster(3, 3);
        let leader = c.replicas()[0];
        c.kill(leader, 0);
        c.restart(leader).unwrap();
        assert_eq!(c.next_due(), None);
        assert_eq!(c.coordinator(), Some(c.replicas()[1]));
    }
}
