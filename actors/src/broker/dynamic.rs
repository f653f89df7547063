//! Dynamic broker configs (KIP-226) on the broker: the settings in force,
//! altering them (through the controller quorum in a cluster, in the state
//! database alone), and applying a change to every open topic.

use super::*;

impl Broker {
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
    pub(super) fn reapply_topic_configs(&self) {
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
}
