//! Coordinators in a cluster: which broker coordinates a group or a
//! transactional id (the leader of its partition of the replicated offsets
//! topic), and taking over or handing off an offsets partition's groups
//! and transactions when its leadership moves.

use super::*;

impl Broker {
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

    pub(super) async fn create_offsets_topic(&self) -> Result<Arc<Topic>, ResponseError> {
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
}
