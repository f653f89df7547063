//! The driver of an instance: one thread that polls the group consumer,
//! hands each partition's records to its task actor as they arrive, sends
//! what the tasks write at once, and commits the input offsets once per
//! commit interval, as Kafka Streams does.
//!
//! Between two commits the work is open: under exactly-once one
//! transaction holds every output, repartition and changelog record sent
//! since the last commit; at least once they are written already and only
//! the input offsets lag. A crash inside that window, which lasts the
//! whole commit interval, is what the guarantee is about.
//!
//! A rebalance (which happens inside a poll) that takes partitions away
//! drops their tasks and unprocessed records; the new owner restores from
//! the changelogs and reads from the committed offsets.

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

/// How long a poll waits for records when no commit is coming sooner.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// The work processed since the last commit.
#[derive(Default)]
pub(crate) struct Open {
    /// The next offset to commit, per input partition.
    offsets: BTreeMap<TaskId, i64>,
    records: usize,
    /// When its first records were processed (and, under exactly-once,
    /// its transaction begun).
    started: Option<Instant>,
}

/// Everything the driver thread owns.
pub(crate) struct Driver {
    pub consumer: BaseConsumer<GroupContext>,
    pub producer: ThreadedProducer<DeliveryContext>,
    /// Reads changelogs when a task starts.
    pub restorer: BaseConsumer,
    /// Follows the partitions of partitioned tables the tasks hold.
    pub follower: BaseConsumer,
    pub graph: Arc<Graph>,
    pub db: sled::Db,
    pub config: StreamsConfig,
    pub arbiters: Vec<ArbiterHandle>,
    pub stop: Arc<AtomicBool>,
    pub tasks: HashMap<TaskId, Addr<StreamTask>>,
    pub open: Open,
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
    /// Runs until `stop` is set or an error that cannot be recovered from;
    /// the open work is committed before it returns.
    pub fn run(mut self) -> Result<(), StreamsError> {
        let topics: Vec<&str> = self.graph.sources.keys().map(String::as_str).collect();
        self.consumer.subscribe(&topics)?;
        if self.config.guarantee == Guarantee::ExactlyOnceV2 {
            self.producer.init_transactions(REQUEST_TIMEOUT)?;
        }
        while !self.stop.load(Ordering::Relaxed) {
            let polled = self.poll_ready();
            let polled = self.after_revocations(polled)?;
            let table_updates = self.poll_tables();
            if !polled.is_empty() || !table_updates.is_empty() {
                self.process(table_updates, polled)?;
            }
            if self.commit_due() {
                self.commit()?;
            }
        }
        if self.open.started.is_some() {
            self.commit()?;
        }
        self.tasks.clear();
        self.consumer.unsubscribe();
        Ok(())
    }

    /// The records the consumer has ready: waits for the first until the
    /// commit is due (at most [`POLL_WAIT`]), then takes only what is
    /// already fetched, up to what the commit has room for.
    fn poll_ready(&mut self) -> Vec<InRecord> {
        let mut wait = match self.open.started {
            Some(started) => self
                .config
                .commit_interval
                .saturating_sub(started.elapsed()),
            None => POLL_WAIT,
        }
        .min(POLL_WAIT);
        let room = self
            .config
            .max_batch
            .saturating_sub(self.open.records)
            .max(1);
        let mut batch = Vec::new();
        while batch.len() < room {
            match self.consumer.poll(wait) {
                Some(Ok(message)) => batch.push(in_record(&message)),
                Some(Err(e)) => {
                    log::warn!("polling the source topics: {e}");
                    break;
                }
                None => break,
            }
            wait = Duration::ZERO;
        }
        batch
    }

    /// The records of partitioned tables the follower has fetched.
    fn poll_tables(&mut self) -> Vec<InRecord> {
        let mut records = Vec::new();
        loop {
            match self.follower.poll(Duration::ZERO) {
                Some(Ok(message)) => records.push(in_record(&message)),
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    log::warn!("following the tables: {e}");
                    break;
                }
                None => break,
            }
        }
        records
    }

    /// Forgets partitions a rebalance took: their tasks, local stores
    /// (partitioned tables included), open offsets and polled records. If they had open work under
    /// exactly-once, the transaction is aborted and the instance goes back
    /// to its committed offsets: committing offsets of partitions another
    /// instance may already be reading would process their records twice.
    fn after_revocations(
        &mut self,
        mut batch: Vec<InRecord>,
    ) -> Result<Vec<InRecord>, StreamsError> {
        let mut had_open_work = false;
        let graph = Arc::clone(&self.graph);
        for (topic, partition) in self.consumer.context().take_revoked() {
            batch.retain(|r| r.topic != topic || r.partition != partition);
            let id = (topic, partition);
            self.tasks.remove(&id);
            had_open_work |= self.open.offsets.remove(&id).is_some();
            let stores = graph.stores.iter().filter(|s| s.source_topic == id.0);
            let tables: Vec<_> = graph.tables_joined_by(&id.0).collect();
            let mut followed = TopicPartitionList::new();
            for table in &tables {
                followed.add_partition(&table.topic, partition);
            }
            if followed.count() > 0 {
                self.follower.incremental_unassign(&followed)?;
            }
            for store in stores
                .map(|s| &s.name)
                .chain(tables.iter().map(|t| &t.store))
            {
                if let Err(e) = self.db.drop_tree(tree_name(store, partition)) {
                    log::warn!("dropping store {store} partition {partition}: {e}");
                }
            }
        }
        if had_open_work && self.config.guarantee == Guarantee::ExactlyOnceV2 {
            log::info!("partitions with open work were revoked: aborting the transaction");
            self.abort()?;
            return Ok(Vec::new());
        }
        Ok(batch)
    }

    /// The task of `id`, started (its stores restored from their
    /// changelogs first, its partitioned tables from their topics, which
    /// it then follows) if this instance has none yet.
    fn task(&mut self, id: &TaskId) -> Result<Addr<StreamTask>, StreamsError> {
        if let Some(addr) = self.tasks.get(id) {
            return Ok(addr.clone());
        }
        let graph = Arc::clone(&self.graph);
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
                "store {} partition {partition}: restored {} records from {}",
                spec.name,
                restored.records,
                spec.changelog
            );
            let store = LocalStore {
                tree,
                changelog: Some(spec.changelog.clone()),
                stream_time: i64::MIN,
            };
            stores.insert(spec.name.clone(), store);
        }
        let mut sources = HashMap::from([(
            topic.clone(),
            graph.sources.get(topic).cloned().unwrap_or_default(),
        )]);
        for table in graph.tables_joined_by(topic) {
            let tree = self.db.open_tree(tree_name(&table.store, partition))?;
            let restored = restore(&self.restorer, &table.topic, partition, &tree)?;
            log::info!(
                "table {} partition {partition}: restored {} records from {}",
                table.store,
                restored.records,
                table.topic
            );
            let mut follow = TopicPartitionList::new();
            follow.add_partition_offset(&table.topic, partition, restored.next)?;
            self.follower.incremental_assign(&follow)?;
            let store = LocalStore {
                tree,
                changelog: None,
                stream_time: i64::MIN,
            };
            stores.insert(table.store.clone(), store);
            sources.insert(
                table.topic.clone(),
                graph
                    .table_sources
                    .get(&table.topic)
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        for table in &self.graph.tables {
            let store = LocalStore {
                tree: self.db.open_tree(&table.store)?,
                changelog: None,
                stream_time: i64::MIN,
            };
            stores.insert(table.store.clone(), store);
        }
        let arbiter = &self.arbiters[partition.unsigned_abs() as usize % self.arbiters.len()];
        let addr = StreamTask::start_in_arbiter(arbiter, move |_| StreamTask {
            partition,
            sources,
            stores,
        });
        self.tasks.insert(id.clone(), addr.clone());
        Ok(addr)
    }

    /// Runs records in their tasks — the updates of their partitioned
    /// tables first, then the polled records — and sends what they write
    /// at once, inside the open transaction under exactly-once (begun by
    /// the first records after a commit).
    fn process(
        &mut self,
        table_updates: Vec<InRecord>,
        batch: Vec<InRecord>,
    ) -> Result<(), StreamsError> {
        let mut by_task: BTreeMap<TaskId, Vec<InRecord>> = BTreeMap::new();
        for record in table_updates {
            if let Some(id) = self.holder(&record) {
                by_task.entry(id).or_default().push(record);
            }
        }
        for record in batch {
            let id = (record.topic.clone(), record.partition);
            self.open.offsets.insert(id.clone(), record.offset + 1);
            self.open.records += 1;
            by_task.entry(id).or_default().push(record);
        }
        if by_task.is_empty() {
            return Ok(());
        }
        let mut requests = Vec::new();
        for (id, records) in by_task {
            requests.push(self.task(&id)?.send(Process(records)));
        }
        let replies = self
            .runtime
            .block_on(futures_util::future::join_all(requests));
        let mut out = Vec::new();
        for reply in replies {
            out.extend(reply.map_err(|e| StreamsError::Stopped(e.to_string()))??);
        }
        if self.open.started.is_none() {
            if self.config.guarantee == Guarantee::ExactlyOnceV2 {
                self.producer.begin_transaction()?;
            }
            self.open.started = Some(Instant::now());
        }
        match self.send_all(&out) {
            Ok(()) => Ok(()),
            Err(e) => self.recover(e),
        }
    }

    /// The running task holding the partitioned table a record updates.
    fn holder(&self, record: &InRecord) -> Option<TaskId> {
        let table = self
            .graph
            .partitioned_tables
            .iter()
            .find(|t| t.topic == record.topic)?;
        let id = (table.joined_by.clone()?, record.partition);
        self.tasks.contains_key(&id).then_some(id)
    }

    /// Whether the commit interval of the open work ended or it is full.
    fn commit_due(&self) -> bool {
        self.open
            .started
            .is_some_and(|started| started.elapsed() >= self.config.commit_interval)
            || self.open.records >= self.config.max_batch
    }

    /// Commits the open work with its input offsets, as the guarantee asks.
    fn commit(&mut self) -> Result<(), StreamsError> {
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.open.offsets {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        self.open = Open::default();
        match self.config.guarantee {
            Guarantee::AtLeastOnce => self.commit_at_least_once(&offsets),
            Guarantee::ExactlyOnceV2 => match self.commit_transaction(&offsets) {
                Ok(()) => Ok(()),
                Err(e) => self.recover(e),
            },
        }
    }

    /// Waits for every record sent to be acknowledged, then commits the
    /// input offsets.
    fn commit_at_least_once(&mut self, offsets: &TopicPartitionList) -> Result<(), StreamsError> {
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

    /// Adds the input offsets to the open transaction and commits it.
    fn commit_transaction(&self, offsets: &TopicPartitionList) -> Result<(), KafkaError> {
        let group = self
            .consumer
            .group_metadata()
            .ok_or(KafkaError::Rebalance(RDKafkaErrorCode::State))?;
        self.producer
            .send_offsets_to_transaction(offsets, &group, REQUEST_TIMEOUT)?;
        self.producer.commit_transaction(REQUEST_TIMEOUT)
    }

    /// After a failed send or commit: at least once, the instance stops;
    /// under exactly-once an error the producer can recover from (say the
    /// group rebalanced meanwhile) aborts the transaction instead.
    fn recover(&mut self, e: KafkaError) -> Result<(), StreamsError> {
        let fatal = match &e {
            KafkaError::Transaction(inner) => inner.is_fatal(),
            _ => false,
        };
        if fatal || self.config.guarantee == Guarantee::AtLeastOnce {
            return Err(e.into());
        }
        log::warn!("aborting a transaction, going back to the committed offsets: {e}");
        self.abort()
    }

    /// Aborts the open transaction and goes back to the committed offsets
    /// with freshly restored stores.
    fn abort(&mut self) -> Result<(), StreamsError> {
        self.producer.abort_transaction(REQUEST_TIMEOUT)?;
        self.producer.context().take_failures();
        self.open = Open::default();
        self.rewind()
    }

    /// Drops every task (their stores are restored again when they next
    /// get records, and their tables followed again) and seeks the
    /// consumer back to the committed offsets.
    fn rewind(&mut self) -> Result<(), StreamsError> {
        self.tasks.clear();
        let followed = self.follower.assignment()?;
        if followed.count() > 0 {
            self.follower.incremental_unassign(&followed)?;
        }
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
