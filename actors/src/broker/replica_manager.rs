//! The replica manager: turns the cluster metadata image into this broker's
//! partitions, their roles and its fetchers, as Kafka's ReplicaManager
//! applies metadata deltas.
//!
//! It runs as one task on an actix arbiter and reacts to every image the
//! controller quorum commits: it starts the partitions this broker holds a
//! replica of (opening what the data directory already has), deletes those
//! it no longer holds, tells each partition whether it leads or follows and
//! in which epoch, and keeps one [`Fetcher`] per leader broker covering the
//! partitions followed from it. Only what changed since the last image is
//! sent, so an ISR change of one partition costs one message.

use super::offsets_topic::OFFSETS_TOPIC;
use super::Broker;
use crate::cluster::image::{ClusterImage, Command, PartitionImage, TopicImage, NO_LEADER};
use crate::cluster::ClusterNode;
use crate::partition;
use crate::partition::replication::{BecomeFollower, BecomeLeader, IsrChange, ReplicaControl};
use crate::replication::fetcher::{Fetcher, FollowedPartition};
use crate::store::acls::AclBinding;
use crate::topic::config as topic_config;
use crate::topic::{PartitionHandle, Topic};
use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use tokio::sync::watch;

/// The leader's line to the controller: AlterPartition through the quorum,
/// and which brokers may join an ISR.
struct Control {
    node: ClusterNode,
    local_id: i32,
}

impl ReplicaControl for Control {
    fn eligible(&self, broker: i32) -> bool {
        self.node.image().borrow().is_live(broker)
    }

    fn alter_isr(
        &self,
        change: IsrChange,
    ) -> BoxFuture<'static, Result<(Vec<i32>, i32), ResponseError>> {
        let node = self.node.clone();
        let local_id = self.local_id;
        Box::pin(async move {
            let broker_epoch = node.broker_epoch().ok_or(ResponseError::StaleBrokerEpoch)?;
            let command = Command::AlterPartition {
                topic: change.topic.to_string(),
                partition: u32::try_from(change.partition)
                    .map_err(|_| ResponseError::InvalidRequest)?,
                leader_id: local_id,
                broker_epoch,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                new_isr: change.isr,
            };
            match node.submit(command).await {
                Ok(Ok(crate::cluster::image::Applied::Partition(p))) => {
                    Ok((p.isr, p.partition_epoch))
                }
                Ok(Ok(_)) => Err(ResponseError::UnknownServerError),
                Ok(Err(e)) => Err(ResponseError::try_from_code(e.code())
                    .unwrap_or(ResponseError::UnknownServerError)),
                Err(e) => {
                    log::warn!("AlterPartition not committed: {e}");
                    Err(ResponseError::RequestTimedOut)
                }
            }
        })
    }
}

/// What was last applied of one partition.
#[derive(Clone, PartialEq)]
struct Applied {
    image: PartitionImage,
    min_isr: usize,
}

pub struct ReplicaManager {
    broker: Weak<Broker>,
    node: ClusterNode,
    local_id: i32,
    control: Arc<dyn ReplicaControl>,
    /// Per partition, what its actor was last told.
    applied: HashMap<(Arc<str>, i32), Applied>,
    /// One fetcher per leader broker, with the leader's address it was
    /// started for.
    fetchers: HashMap<i32, (String, Fetcher)>,
    /// This broker's epoch, for the fetchers' replica_state.
    broker_epoch: watch::Sender<i64>,
    /// The ACLs last handed to the authorizer.
    acls: Option<BTreeSet<AclBinding>>,
}

impl ReplicaManager {
    pub fn new(broker: Weak<Broker>, node: ClusterNode, local_id: i32) -> ReplicaManager {
        let control = Arc::new(Control {
            node: node.clone(),
            local_id,
        });
        ReplicaManager {
            broker,
            node,
            local_id,
            control,
            applied: HashMap::new(),
            fetchers: HashMap::new(),
            broker_epoch: watch::channel(-1).0,
            acls: None,
        }
    }

    /// Applies every image the quorum commits, until the broker is gone.
    pub async fn run(mut self) {
        let mut images = self.node.image();
        loop {
            let image = images.borrow_and_update().clone();
            let Some(broker) = self.broker.upgrade() else {
                break;
            };
            self.apply(&broker, &image).await;
            drop(broker);
            if images.changed().await.is_err() {
                break;
            }
        }
        for (_, (_, fetcher)) in self.fetchers.drain() {
            fetcher.stop();
        }
    }

    async fn apply(&mut self, broker: &Arc<Broker>, image: &ClusterImage) {
        if let Some(epoch) = self.node.broker_epoch() {
            self.broker_epoch
                .send_if_modified(|e| std::mem::replace(e, epoch) != epoch);
        }
        // Before the topics, so that they are opened and applied with the
        // dynamic broker defaults of this image.
        let defaults_changed = broker.set_dynamic_configs(&image.dynamic_configs);
        if self.acls.as_ref() != Some(&image.acls) {
            broker.enforce_cluster_acls(&self.node);
            self.acls = Some(image.acls.clone());
        }
        let mut followed: BTreeMap<i32, Vec<FollowedPartition>> = BTreeMap::new();
        for (name, topic) in &image.topics {
            let Some(local) = self
                .materialise(broker, name, topic, defaults_changed)
                .await
            else {
                continue;
            };
            for (index, p) in topic.partitions.iter().enumerate() {
                let Some(handle) = local.partitions.get(index).and_then(Option::as_ref) else {
                    continue;
                };
                let index = index as i32;
                self.assign_role(&local, index, handle, p, &topic.configs, broker);
                if p.leader != self.local_id && p.leader != NO_LEADER {
                    followed
                        .entry(p.leader)
                        .or_default()
                        .push(FollowedPartition {
                            topic: local.name.clone(),
                            topic_id: topic.id,
                            partition: index,
                            leader_epoch: p.leader_epoch,
                            addr: handle.addr.clone(),
                        });
                }
            }
        }
        for name in broker.topic_names() {
            if !image.topics.contains_key(&name) {
                self.applied.retain(|(t, _), _| **t != *name);
                broker.drop_local_topic(&name).await;
            }
        }
        self.update_fetchers(broker, image, followed);
    }

    /// Starts the partitions of `topic` this broker holds a replica of and
    /// registers the topic locally; deletes replicas moved away; applies its
    /// configs again if they or the broker defaults (`defaults_changed`)
    /// changed. `None` if a partition cannot be opened (logged; retried on
    /// the next image).
    async fn materialise(
        &mut self,
        broker: &Arc<Broker>,
        name: &str,
        topic: &TopicImage,
        defaults_changed: bool,
    ) -> Option<Arc<Topic>> {
        let existing = broker.topic(name).filter(|t| t.id == topic.id);
        if existing.is_none() && broker.topic(name).is_some() {
            // The topic was deleted and created again under the same name.
            self.applied.retain(|(t, _), _| **t != *name);
            broker.drop_local_topic(name).await;
        }
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        let mut changed = existing.is_none();
        for (index, p) in topic.partitions.iter().enumerate() {
            let index = index as i32;
            let have = existing
                .as_ref()
                .and_then(|t| t.partitions.get(index as usize).cloned().flatten());
            let want = p.replicas.contains(&self.local_id);
            let handle = match (have, want) {
                (Some(handle), true) => Some(handle),
                (None, true) => match broker.open_partition(name, index, &topic.configs).await {
                    Ok(handle) => {
                        changed = true;
                        Some(handle)
                    }
                    Err(e) => {
                        log::error!("cannot open partition {name}-{index}: {e}");
                        return None;
                    }
                },
                (Some(handle), false) => {
                    changed = true;
                    self.applied.remove(&(Arc::from(name), index));
                    if let Err(e) = handle.addr.send(partition::Delete).await {
                        log::warn!("deleting the moved replica {name}-{index}: {e}");
                    }
                    None
                }
                (None, false) => None,
            };
            partitions.push(handle);
        }
        let configs_changed = existing
            .as_ref()
            .is_some_and(|t| defaults_changed || t.configs != topic.configs);
        if !changed && !configs_changed {
            return existing;
        }
        let local = Arc::new(broker.topic_from_image(name, topic.id, partitions, &topic.configs));
        if configs_changed {
            broker.apply_topic_configs(&local);
        }
        broker.register_local_topic(local.clone());
        Some(local)
    }

    /// Tells a partition actor whether it leads or follows, if that changed.
    fn assign_role(
        &mut self,
        topic: &Topic,
        index: i32,
        handle: &PartitionHandle,
        p: &PartitionImage,
        configs: &BTreeMap<String, String>,
        broker: &Arc<Broker>,
    ) {
        let addr = &handle.addr;
        let min_isr = topic_config::effective(&broker.settings(), configs, "min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let now = Applied {
            image: p.clone(),
            min_isr,
        };
        let key = (topic.name.clone(), index);
        if self.applied.get(&key) == Some(&now) {
            return;
        }
        self.applied.insert(key, now);
        if p.leader == self.local_id {
            addr.do_send(BecomeLeader {
                topic: topic.name.clone(),
                partition: index,
                local_id: self.local_id,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                min_isr,
                lag_ms: broker.cluster_lag_ms(),
                control: self.control.clone(),
            });
            if *topic.name == *OFFSETS_TOPIC {
                let (broker, handle, epoch) = (broker.clone(), handle.clone(), p.leader_epoch);
                actix::spawn(async move {
                    broker.take_offsets_partition(index, epoch, handle).await;
                });
            }
        } else {
            if *topic.name == *OFFSETS_TOPIC {
                broker.release_offsets_partition(index);
            }
            addr.do_send(BecomeFollower {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
            });
        }
    }

    /// One fetcher per leader broker followed; fetchers of leaders no
    /// longer followed (or that moved address) stop.
    fn update_fetchers(
        &mut self,
        broker: &Broker,
        image: &ClusterImage,
        mut followed: BTreeMap<i32, Vec<FollowedPartition>>,
    ) {
        self.fetchers.retain(|leader, (addr, fetcher)| {
            let keep = followed.contains_key(leader)
                && image
                    .brokers
                    .get(leader)
                    .is_some_and(|b| format!("{}:{}", b.host, b.port) == *addr);
            if !keep {
                fetcher.stop();
            }
            keep
        });
        for (leader, partitions) in std::mem::take(&mut followed) {
            let Some(info) = image.brokers.get(&leader) else {
                continue;
            };
            let entry = self.fetchers.entry(leader).or_insert_with(|| {
                let addr = format!("{}:{}", info.host, info.port);
                let fetcher = Fetcher::start(
                    self.local_id,
                    self.broker_epoch.subscribe(),
                    leader,
                    addr.clone(),
                    broker.peer_security().clone(),
                    &broker.next_arbiter(),
                );
                (addr, fetcher)
            });
            entry.1.set_partitions(partitions);
        }
    }
}
