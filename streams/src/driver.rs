//! The driver of an instance: one thread that polls the group consumer,
//! hands each partition's records to its task actor, and commits the
//! results with the input offsets, once per commit interval.
//!
//! Work is committed before the next poll, so when a rebalance (which
//! happens inside a poll) takes partitions away, nothing of theirs is
//! processed and uncommitted: their unprocessed records and tasks are
//! simply dropped, and the new owner restores from the changelogs.

use crate::clients::{DeliveryContext, GroupContext, REQUEST_TIMEOUT};
use crate::config::{Guarantee, StreamsConfig};
use crate::context::{InRecord, LocalStore, OutRecord};
use crate::error::StreamsError;
use crate::graph::Graph;
use crate::restore::restore;
use crate::store::tree_name;
use crate::task::{Process, StreamTask};
use actix::{Actor, Addr};
use actix_rt::ArbiterHandle;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A task's identity: its source topic and partition.
type TaskId = (String, i32);

/// Everything the driver thread owns.
pub(crate) struct Driver {
    pub consumer: BaseConsumer<GroupContext>,
    pub producer: ThreadedProducer<DeliveryContext>,
    /// Reads changelogs when a task starts.
    pub restorer: BaseConsumer,
    pub graph: Arc<Graph>,
    pub db: sled::Db,
    pub config: StreamsConfig,
    pub arbiters: Vec<ArbiterHandle>,
    pub stop: Arc<AtomicBool>,
    pub tasks: HashMap<TaskId, Addr<StreamTask>>,
    /// Waits for the task actors' replies.
    pub runtime: tokio::runtime::Runtime,
}

fn in_record(message: &BorrowedMessage<'_>) -> InRecord {
    InRecord {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        timestamp: message.timestamp().to_millis().unwrap_or(0),
    }
}

impl Driver {
    /// Runs until `stop` is set or an error that cannot be recovered from.
    pub fn run(mut self) -> Result<(), StreamsError> {
        let topics: Vec<&str> = self.graph.sources.keys().map(String::as_str).collect();
        self.consumer.subscribe(&topics)?;
        if self.config.guarantee == Guarantee::ExactlyOnceV2 {
            self.producer.init_transactions(REQUEST_TIMEOUT)?;
        }
        while !self.stop.load(Ordering::Relaxed) {
            let batch = self.collect();
            if !batch.is_empty() {
                self.process_and_commit(batch)?;
            }
        }
        self.tasks.clear();
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Records polled until the commit interval ends or the batch is full.
    fn collect(&mut self) -> Vec<InRecord> {
        let deadline = Instant::now() + self.config.commit_interval;
        let mut batch = Vec::new();
        while batch.len() < self.config.max_batch && !self.stop.load(Ordering::Relaxed) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let polled = self
                .consumer
                .poll(left.min(Duration::from_millis(100)))
                .map(|r| r.map(|m| in_record(&m)));
            self.drop_revoked(&mut batch);
            match polled {
                Some(Ok(record)) => batch.push(record),
                Some(Err(e)) => log::warn!("polling the source topics: {e}"),
                None => {}
            }
        }
        self.drop_revoked(&mut batch);
        batch
    }

    /// Forgets partitions a rebalance took: their unprocessed records,
    /// their tasks and their local stores.
    fn drop_revoked(&mut self, batch: &mut Vec<InRecord>) {
        for (topic, partition) in self.consumer.context().take_revoked() {
            batch.retain(|r| r.topic != topic || r.partition != partition);
            self.tasks.remove(&(topic.clone(), partition));
            for spec in self.graph.stores.iter().filter(|s| s.source_topic == topic) {
                if let Err(e) = self.db.drop_tree(tree_name(&spec.name, partition)) {
                    log::warn!("dropping store {} partition {partition}: {e}", spec.name);
                }
            }
        }
    }

    /// The task of `id`, started (its stores restored from their
    /// changelogs first) if this instance has none yet.
    fn task(&mut self, id: &TaskId) -> Result<Addr<StreamTask>, StreamsError> {
        if let Some(addr) = self.tasks.get(id) {
            return Ok(addr.clone());
        }
        let (topic, partition) = (&id.0, id.1);
        let mut stores = HashMap::new();
        for spec in self
            .graph
            .stores
            .iter()
            .filter(|s| &s.source_topic == topic)
        {
            let tree = self.db.open_tree(tree_name(&spec.name, partition))?;
            let restored = restore(&self.restorer, &spec.changelog, partition, &tree)?;
            log::info!(
                "store {} partition {partition}: restored {restored} records from {}",
                spec.name,
                spec.changelog
            );
            let store = LocalStore {
                tree,
                changelog: Some(spec.changelog.clone()),
                stream_time: i64::MIN,
            };
            stores.insert(spec.name.clone(), store);
        }
        for table in &self.graph.tables {
            let store = LocalStore {
                tree: self.db.open_tree(&table.store)?,
                changelog: None,
                stream_time: i64::MIN,
            };
            stores.insert(table.store.clone(), store);
        }
        let sources = self.graph.sources.get(topic).cloned().unwrap_or_default();
        let arbiter = &self.arbiters[partition.unsigned_abs() as usize % self.arbiters.len()];
        let addr = StreamTask::start_in_arbiter(arbiter, move |_| StreamTask {
            partition,
            sources,
            stores,
        });
        self.tasks.insert(id.clone(), addr.clone());
        Ok(addr)
    }

    /// Processes a batch in its tasks and commits the results with the
    /// input offsets, as the guarantee asks.
    fn process_and_commit(&mut self, batch: Vec<InRecord>) -> Result<(), StreamsError> {
        let mut by_task: BTreeMap<TaskId, Vec<InRecord>> = BTreeMap::new();
        let mut offsets = TopicPartitionList::new();
        for record in batch {
            let id = (record.topic.clone(), record.partition);
            by_task.entry(id).or_default().push(record);
        }
        let mut requests = Vec::new();
        for (id, records) in by_task {
            if let Some(last) = records.last() {
                offsets.add_partition_offset(&id.0, id.1, Offset::Offset(last.offset + 1))?;
            }
            requests.push(self.task(&id)?.send(Process(records)));
        }
        let replies = self
            .runtime
            .block_on(futures_util::future::join_all(requests));
        let mut out = Vec::new();
        for reply in replies {
            out.extend(reply.map_err(|e| StreamsError::Stopped(e.to_string()))??);
        }
        match self.config.guarantee {
            Guarantee::AtLeastOnce => self.commit_at_least_once(&out, &offsets),
            Guarantee::ExactlyOnceV2 => self.commit_exactly_once(&out, &offsets),
        }
    }

    fn commit_at_least_once(
        &mut self,
        out: &[OutRecord],
        offsets: &TopicPartitionList,
    ) -> Result<(), StreamsError> {
        self.send_all(out)?;
        self.producer.flush(REQUEST_TIMEOUT)?;
        let failed = self.producer.context().take_failures();
        if failed > 0 {
            return Err(StreamsError::Delivery(failed));
        }
        if let Err(e) = self.consumer.commit(offsets, CommitMode::Sync) {
            log::warn!("committing offsets (the records will be processed again): {e}");
        }
        Ok(())
    }

    /// One transaction for the batch; if it cannot commit (say the group
    /// rebalanced meanwhile), it is aborted and the instance goes back to
    /// its committed offsets with freshly restored stores.
    fn commit_exactly_once(
        &mut self,
        out: &[OutRecord],
        offsets: &TopicPartitionList,
    ) -> Result<(), StreamsError> {
        let Err(e) = self.transaction(out, offsets) else {
            return Ok(());
        };
        if let KafkaError::Transaction(inner) = &e {
            if inner.is_fatal() {
                return Err(e.into());
            }
        }
        log::warn!("aborting a transaction, going back to the committed offsets: {e}");
        self.producer.abort_transaction(REQUEST_TIMEOUT)?;
        self.producer.context().take_failures();
        self.rewind()
    }

    fn transaction(
        &self,
        out: &[OutRecord],
        offsets: &TopicPartitionList,
    ) -> Result<(), KafkaError> {
        self.producer.begin_transaction()?;
        self.send_all(out)?;
        let group = self
            .consumer
            .group_metadata()
            .ok_or(KafkaError::Rebalance(RDKafkaErrorCode::State))?;
        self.producer
            .send_offsets_to_transaction(offsets, &group, REQUEST_TIMEOUT)?;
        self.producer.commit_transaction(REQUEST_TIMEOUT)
    }

    /// Drops every task (their stores are restored again when they next
    /// get records) and seeks the consumer back to the committed offsets.
    fn rewind(&mut self) -> Result<(), StreamsError> {
        self.tasks.clear();
        let assignment = self.consumer.assignment()?;
        let committed = self
            .consumer
            .committed_offsets(assignment, REQUEST_TIMEOUT)?;
        let mut positions = TopicPartitionList::new();
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            positions.add_partition_offset(element.topic(), element.partition(), offset)?;
        }
        self.consumer.seek_partitions(positions, REQUEST_TIMEOUT)?;
        Ok(())
    }

    /// Queues every record with the producer, waiting while its queue is full.
    fn send_all(&self, out: &[OutRecord]) -> Result<(), KafkaError> {
        for r in out {
            let mut record = BaseRecord::<Vec<u8>, Vec<u8>>::to(&r.topic).timestamp(r.timestamp);
            if let Some(key) = &r.key {
                record = record.key(key);
            }
            if let Some(value) = &r.value {
                record = record.payload(value);
            }
            if let Some(partition) = r.partition {
                record = record.partition(partition);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
