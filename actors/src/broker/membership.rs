//! This broker as a member of a cluster: when it may serve, which brokers
//! and leaders clients are told about, replica placement for new topics,
//! and the local topics the replica manager keeps in step with the image.

use super::*;

impl Broker {
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
    pub(super) fn address(&self, listener: &Listener) -> BrokerAddress {
        BrokerAddress {
            id: self.config.node_id,
            host: listener.host.clone(),
            port: listener.port,
        }
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
        let me = self.config.node_id;
        // A replica on a log directory that went offline (a failed fsync)
        // serves nothing until a restart: Metadata says so, as Kafka's
        // `offline_replicas` does.
        let offline_here = self.log_dir_offline();
        let Some(node) = &self.cluster else {
            topic.partition(index)?;
            return Some(PartitionView {
                leader: me,
                leader_epoch: crate::partition::LEADER_EPOCH,
                replicas: vec![me],
                isr: vec![me],
                offline: if offline_here { vec![me] } else { Vec::new() },
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
                .filter(|&r| !image.is_live(r) || (r == me && offline_here))
                .collect(),
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        })
    }

    /// Whether this broker's log directory is offline.
    fn log_dir_offline(&self) -> bool {
        match self.threads.lock().as_deref() {
            Ok(Some(threads)) => threads.log.flusher.log_dir().is_offline(),
            _ => false,
        }
    }

    /// Replica sets for `partitions` new partitions, the first numbered
    /// `first` (so leaders keep spreading round robin).
    pub(super) fn assign(
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

    pub(super) fn default_replication_factor(&self) -> usize {
        self.config
            .cluster
            .as_ref()
            .map_or(1, |c| usize::from(c.default_replication_factor()))
    }

    /// Proposes a metadata change through the controller quorum and waits
    /// until this broker applied it.
    pub(super) async fn submit(
        &self,
        node: &ClusterNode,
        command: Command,
    ) -> Result<Applied, TopicError> {
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
    pub(super) async fn await_local_topic(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
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
}
