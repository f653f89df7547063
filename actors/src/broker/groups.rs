//! The registry of consumer group coordinators (one actor per group) and
//! the committed offsets they leave behind: lookups, idle groups, deletions
//! and the expiry of offsets of empty groups.

use super::*;

impl Broker {
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

    pub(super) fn start_group(&self, group_id: &str) -> Addr<GroupCoordinator> {
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
    pub async fn group_ids(&self) -> io::Result<Vec<String>> {
        let mut ids = self.offsets.groups().await?;
        ids.extend(self.groups.iter().map(|g| g.key().clone()));
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Whether the group has a coordinator or committed offsets.
    pub async fn group_exists(&self, group_id: &str) -> io::Result<bool> {
        Ok(self.groups.contains_key(group_id) || self.offsets.has_group(group_id).await?)
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
                    .await
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
        for group in self.offsets.groups().await? {
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
                .fetch_all(&group)
                .await?
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
    pub(super) fn start_offset_expiry(self: &Arc<Self>) {
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

    pub(super) fn group_config(&self) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: self.config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: self.config.group_min_session_timeout_ms,
            max_session_timeout_ms: self.config.group_max_session_timeout_ms,
            max_size: 0,
        }
    }

    pub(super) fn consumer_group_config(&self) -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            session_timeout_ms: self.config.group_consumer_session_timeout_ms,
            heartbeat_interval_ms: self.config.group_consumer_heartbeat_interval_ms,
            ..ConsumerGroupConfig::default()
        }
    }
}
