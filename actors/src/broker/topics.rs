//! Topic administration: creating topics (auto-created, or replicated
//! through the controller quorum), deleting them, adding partitions and
//! changing their configs, within the broker's partition budget.

use super::*;

impl Broker {
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
            .await
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
            .await
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
            .await
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
            .await
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
            .await
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
            .await
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
}
