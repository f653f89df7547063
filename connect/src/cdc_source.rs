//! The PostgreSQL change-data-capture source task: every insert, update and
//! delete of chosen tables into a topic per table, exactly once, in commit
//! order, after a snapshot of the rows already there.
//!
//! Changes come from a logical replication slot (pgoutput) read through
//! SQL: `pg_logical_slot_peek_binary_changes` returns whole committed
//! transactions without consuming them. A round's transactions become one
//! Kafka transaction holding their records and the new source offset (the
//! end of the last one's commit record); only after the Kafka commit is the
//! slot advanced. A (re)started task fences its predecessor, reads the
//! committed offset back and skips what the slot still holds at or below
//! it, so a kill between the Kafka commit and the slot's advance repeats
//! nothing, and a kill before the commit loses nothing.
//!
//! The snapshot, when there is no offset yet: the slot is created first,
//! then the tables are read in one REPEATABLE READ transaction and produced
//! as `op: r` records in one Kafka transaction with the slot's start as the
//! offset. A change committed between the slot's creation and the
//! snapshot's start is in both, so it is delivered again as a change
//! event: SQL cannot create a slot that exports its snapshot (only a
//! replication connection can), and the window is the few milliseconds
//! between two statements.

use crate::cdc_database::{self as database, slot_busy};
use crate::change_event::{self, row, Op, Source, Table};
use crate::clients::{send, source_producer, REQUEST_TIMEOUT};
use crate::config::{CdcSource, ConnectConfig, ConnectorConfig, ConnectorKind, ErrorPolicy};
use crate::data::ConnectRecord;
use crate::dead_letter;
use crate::offsets;
use crate::pgoutput::{self, Message, OldTuple, Relation};
use crate::pipeline::Pipeline;
use crate::postgres::reason;
use crate::status::Statuses;
use crate::task::{Control, Poll, PollLoop};
use actix::prelude::*;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::{Client, IsolationLevel, NoTls};

pub struct PostgresCdcTask {
    config: Arc<ConnectConfig>,
    connector: ConnectorConfig,
    source: CdcSource,
    statuses: Statuses,
    polling: PollLoop,
    /// Out of the actor while a round runs.
    capture: Option<Capture>,
}

/// A started task: the database side and the Kafka side.
struct Capture {
    source: CdcSource,
    client: Client,
    delivery: Delivery,
    /// The end of the last transaction in the topics: the committed offset.
    delivered: u64,
    /// Where the slot was last seen or advanced to.
    slot: u64,
    /// The captured tables by relation id, as their Relation messages
    /// last described them.
    tables: HashMap<u32, Arc<Table>>,
}

/// Produces records and offsets in Kafka transactions.
struct Delivery {
    name: String,
    offsets_topic: String,
    offsets_key: Vec<u8>,
    pipeline: Pipeline,
    errors: ErrorPolicy,
    statuses: Statuses,
    producer: ThreadedProducer<DefaultProducerContext>,
    /// The open transaction's counts, added to the status at its commit.
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    records_in: u64,
    records_out: u64,
    skipped: u64,
    dead_lettered: u64,
}

/// A committed PostgreSQL transaction's changes.
struct Transaction {
    xid: u32,
    changes: Vec<Change>,
}

struct Change {
    table: Arc<Table>,
    op: Op,
    before: Option<Map<String, Value>>,
    after: Option<Map<String, Value>>,
}

impl PostgresCdcTask {
    /// `None` unless `connector` is a CDC source.
    pub fn new(
        config: Arc<ConnectConfig>,
        connector: ConnectorConfig,
        statuses: Statuses,
        paused: bool,
    ) -> Option<Self> {
        let ConnectorKind::PostgresCdcSource(source) = &connector.kind else {
            return None;
        };
        Some(Self {
            source: CdcSource::clone(source),
            config,
            connector,
            statuses,
            polling: PollLoop::new(paused),
            capture: None,
        })
    }

    fn fail(&mut self, ctx: &mut Context<Self>, trace: String) {
        self.capture = None;
        self.statuses.fail(&self.connector.name, trace);
        ctx.stop();
    }
}

/// Fences the task's previous incarnation (aborting its open transaction),
/// reads back the offset it committed, connects to PostgreSQL, and takes
/// the snapshot if there is no offset yet.
async fn open(
    config: Arc<ConnectConfig>,
    connector: ConnectorConfig,
    source: CdcSource,
    statuses: Statuses,
) -> Result<Capture, String> {
    let name = connector.name.clone();
    let producer = source_producer(&config, &connector)
        .map_err(|e| format!("cannot create the producer: {e}"))?;
    producer
        .init_transactions(REQUEST_TIMEOUT)
        .map_err(|e| format!("cannot start transactions: {e}"))?;
    let offsets_key = offsets::cdc_key(&name, &source.topic_prefix);
    let stored = offsets::read(&config, &offsets_key, offsets::cdc_lsn)?;
    let (client, connection) = source
        .database
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {}", reason(&e)))?;
    let task = name.clone();
    // The connection does the socket I/O of the client.
    actix_rt::spawn(async move {
        if let Err(e) = connection.await {
            log::warn!("connector {task}: PostgreSQL connection: {e}");
        }
    });
    let mut capture = Capture {
        client,
        delivery: Delivery {
            name: name.clone(),
            offsets_topic: config.offsets_topic.clone(),
            offsets_key,
            pipeline: Pipeline::new(&connector),
            errors: connector.errors.clone(),
            statuses,
            producer,
            counts: Counts::default(),
        },
        delivered: stored.unwrap_or(0),
        slot: 0,
        tables: HashMap::new(),
        source,
    };
    match stored {
        Some(lsn) => {
            let slot = &capture.source.slot;
            capture.slot = database::slot_position(&capture.client, slot)
                .await?
                .ok_or_else(|| {
                    format!(
                        "slot {slot} is gone: the changes after {} cannot be read (remove the connector's offset to start over from a snapshot)",
                        database::lsn_text(lsn)
                    )
                })?;
            log::info!(
                "connector {name}: changes after {} from slot {slot}",
                database::lsn_text(lsn)
            );
        }
        None => capture.snapshot().await?,
    }
    Ok(capture)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Capture {
    /// The publication and the slot, then every row of the tables as read
    /// events with the slot's start as the offset, in one Kafka
    /// transaction.
    async fn snapshot(&mut self) -> Result<(), String> {
        let source = &self.source;
        database::ensure_publication(
            &self.client,
            &source.publication,
            &source.tables,
            source.publication_autocreate,
        )
        .await?;
        let start = match database::slot_position(&self.client, &source.slot).await? {
            Some(lsn) => lsn,
            None => database::create_slot(&self.client, &source.slot).await?,
        };
        self.slot = start;
        let transaction = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| format!("cannot start the snapshot: {}", reason(&e)))?;
        self.delivery.begin()?;
        let at = Source {
            lsn: start,
            txid: None,
            ts_ms: now_ms(),
        };
        let mut rows = 0;
        for (schema, name) in &source.tables {
            let read = database::snapshot(&transaction, schema, name).await;
            let (table, tuples) = read.inspect_err(|_| self.delivery.abort())?;
            for tuple in &tuples {
                let after = row(&table.relation.columns, tuple, false);
                let prefix = &source.topic_prefix;
                for record in change_event::records(prefix, &table, Op::Read, None, Some(after), at)
                {
                    self.delivery.produce(record)?;
                }
            }
            rows += tuples.len();
        }
        self.delivery.commit(start)?;
        self.delivered = start;
        log::info!(
            "connector {}: snapshot of {rows} rows, changes from {}",
            self.delivery.name,
            database::lsn_text(start)
        );
        // Read only: nothing to keep.
        drop(transaction);
        Ok(())
    }

    /// One round: the slot's next transactions into the topics; the number
    /// of messages read from the slot.
    async fn step(&mut self) -> Result<usize, String> {
        let slot = &self.source.slot.clone();
        // A restart after a kill between a Kafka commit and the slot's
        // advance: the advance that did not happen.
        if self.delivered > self.slot {
            match database::advance(&self.client, slot, self.delivered).await {
                Ok(()) => self.slot = self.delivered,
                Err(e) if slot_busy(&e) => return Ok(0),
                Err(e) => return Err(format!("cannot advance slot {slot}: {}", reason(&e))),
            }
        }
        let source = &self.source;
        let messages = match database::peek(
            &self.client,
            slot,
            &source.publication,
            source.batch_size,
        )
        .await
        {
            Ok(messages) => messages,
            Err(e) if slot_busy(&e) => {
                log::info!(
                    "connector {}: slot {slot} is busy: {}",
                    self.delivery.name,
                    reason(&e)
                );
                return Ok(0);
            }
            Err(e) => return Err(format!("cannot read slot {slot}: {}", reason(&e))),
        };
        let read = messages.len();
        let committed = self.decode(&messages).await?;
        // An unfinished last transaction (none is expected: PostgreSQL
        // stops after a commit) comes again in the next round.
        let Some(&(_, last, _)) = committed.last() else {
            return Ok(read);
        };
        let new: Vec<_> = committed
            .into_iter()
            .filter(|(_, end, _)| *end > self.delivered)
            .collect();
        if !new.is_empty() {
            self.delivery.begin()?;
            for (transaction, end_lsn, ts_ms) in new {
                let at = Source {
                    lsn: end_lsn,
                    txid: Some(transaction.xid),
                    ts_ms,
                };
                for change in transaction.changes {
                    for record in change_event::records(
                        &self.source.topic_prefix,
                        &change.table,
                        change.op,
                        change.before,
                        change.after,
                        at,
                    ) {
                        self.delivery.produce(record)?;
                    }
                }
            }
            self.delivery.commit(last)?;
            self.delivered = last;
        }
        // Only now, after the Kafka commit: PostgreSQL may drop what the
        // slot is advanced past. A busy slot is advanced next round.
        if last > self.slot {
            match database::advance(&self.client, slot, last).await {
                Ok(()) => self.slot = last,
                Err(e) if slot_busy(&e) => {}
                Err(e) => return Err(format!("cannot advance slot {slot}: {}", reason(&e))),
            }
        }
        Ok(read)
    }

    /// The committed transactions among pgoutput `messages`, each with the
    /// end of its commit record and its commit time.
    async fn decode(
        &mut self,
        messages: &[Vec<u8>],
    ) -> Result<Vec<(Transaction, u64, i64)>, String> {
        let mut committed = Vec::new();
        let mut open: Option<Transaction> = None;
        for bytes in messages {
            let message = pgoutput::decode(bytes).map_err(|e| e.to_string())?;
            let change = match message {
                Message::Begin { xid } => {
                    open = Some(Transaction {
                        xid,
                        changes: Vec::new(),
                    });
                    None
                }
                Message::Commit { end_lsn, ts_ms } => {
                    committed.extend(open.take().map(|t| (t, end_lsn, ts_ms)));
                    None
                }
                Message::Relation(relation) => {
                    self.describe(relation).await?;
                    None
                }
                Message::Insert { relation, new } => {
                    let table = self.table(relation)?;
                    let after = row(&table.relation.columns, &new, false);
                    Some(Change {
                        op: Op::Create,
                        before: None,
                        after: Some(after),
                        table,
                    })
                }
                Message::Update { relation, old, new } => {
                    let table = self.table(relation)?;
                    Some(Change {
                        op: Op::Update,
                        before: old.map(|old| old_row(&table, &old)),
                        after: Some(row(&table.relation.columns, &new, false)),
                        table,
                    })
                }
                Message::Delete { relation, old } => {
                    let table = self.table(relation)?;
                    Some(Change {
                        op: Op::Delete,
                        before: Some(old_row(&table, &old)),
                        after: None,
                        table,
                    })
                }
                Message::Other(_) => None,
            };
            if let (Some(change), Some(transaction)) = (change, open.as_mut()) {
                transaction.changes.push(change);
            }
        }
        Ok(committed)
    }

    /// Keeps a Relation message's description, with the table's primary
    /// key from the catalog (asked again only when the relation changed).
    async fn describe(&mut self, relation: Relation) -> Result<(), String> {
        if self
            .tables
            .get(&relation.id)
            .is_some_and(|t| t.relation == relation)
        {
            return Ok(());
        }
        let primary_key = database::primary_key(&self.client, relation.id).await?;
        self.tables.insert(
            relation.id,
            Arc::new(Table {
                relation,
                primary_key,
            }),
        );
        Ok(())
    }

    fn table(&self, relation: u32) -> Result<Arc<Table>, String> {
        self.tables
            .get(&relation)
            .cloned()
            .ok_or_else(|| format!("a change of relation {relation} before its description"))
    }
}

/// The `before` of an update or delete: the replica identity's columns,
/// or the whole row with `REPLICA IDENTITY FULL`.
fn old_row(table: &Table, old: &OldTuple) -> Map<String, Value> {
    match old {
        OldTuple::Key(tuple) => row(&table.relation.columns, tuple, true),
        OldTuple::Full(tuple) => row(&table.relation.columns, tuple, false),
    }
}

impl Delivery {
    fn begin(&mut self) -> Result<(), String> {
        self.counts = Counts::default();
        self.producer
            .begin_transaction()
            .map_err(|e| format!("cannot begin a transaction: {e}"))
    }

    fn abort(&self) {
        let _ = self.producer.abort_transaction(REQUEST_TIMEOUT);
    }

    /// Converts and queues a record in the open transaction; one that
    /// cannot be converted or transformed is skipped (and dead-lettered)
    /// or aborts the transaction, as the connector says.
    fn produce(&mut self, record: ConnectRecord) -> Result<(), String> {
        self.counts.records_in += 1;
        // Kept for the dead-letter topic, as it was before the pipeline.
        let original = self
            .errors
            .dead_letter_topic
            .as_ref()
            .map(|_| record.value.clone());
        match self.pipeline.outgoing(record) {
            Ok(Some(o)) => {
                let mut r = BaseRecord::<[u8], [u8]>::to(&o.topic);
                if let Some(k) = &o.key {
                    r = r.key(k);
                }
                if let Some(v) = &o.value {
                    r = r.payload(v);
                }
                send(&self.producer, r).inspect_err(|_| self.abort())?;
                self.counts.records_out += 1;
            }
            Ok(None) => {}
            Err(error) if self.errors.tolerate => {
                log::warn!("connector {}: skipped a change: {error}", self.name);
                self.counts.skipped += 1;
                if let (Some(dlq), Some(value)) = (&self.errors.dead_letter_topic, original) {
                    let headers = dead_letter::headers(&self.name, &error, None);
                    let payload = crate::pipeline::line_of(&value);
                    send(
                        &self.producer,
                        BaseRecord::<[u8], [u8]>::to(dlq)
                            .payload(&payload)
                            .headers(headers),
                    )
                    .inspect_err(|_| self.abort())?;
                    self.counts.dead_lettered += 1;
                }
            }
            Err(error) => {
                self.abort();
                return Err(error.to_string());
            }
        }
        Ok(())
    }

    /// Queues the offset `lsn` and commits: the records and the offset
    /// become visible together, or (on any failure, or a kill before this
    /// returns) none of them.
    fn commit(&mut self, lsn: u64) -> Result<(), String> {
        let offset = offsets::cdc_value(lsn);
        send(
            &self.producer,
            BaseRecord::to(&self.offsets_topic)
                .key(&self.offsets_key[..])
                .payload(&offset[..]),
        )
        .inspect_err(|_| self.abort())?;
        if let Err(e) = self.producer.commit_transaction(REQUEST_TIMEOUT) {
            self.abort();
            return Err(format!("cannot commit the transaction: {e}"));
        }
        let counts = std::mem::take(&mut self.counts);
        self.statuses.update(&self.name, |e| {
            e.records_in += counts.records_in;
            e.records_out += counts.records_out;
            e.errors += counts.skipped;
            e.dead_lettered += counts.dead_lettered;
        });
        Ok(())
    }
}

impl Actor for PostgresCdcTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let opening = open(
            Arc::clone(&self.config),
            self.connector.clone(),
            self.source.clone(),
            self.statuses.clone(),
        );
        ctx.wait(
            opening
                .into_actor(self)
                .map(|opened, task, ctx| match opened {
                    Ok(capture) => {
                        task.capture = Some(capture);
                        task.statuses
                            .task_started(&task.connector.name, task.polling.paused());
                        task.polling.schedule(ctx, Duration::ZERO);
                    }
                    Err(trace) => task.fail(ctx, trace),
                }),
        );
    }
}

impl Handler<Poll> for PostgresCdcTask {
    type Result = ();

    /// Runs a round off the actor (holding the capture); the mailbox waits,
    /// so a Stop lets the round finish.
    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        if !self.polling.polled() {
            return;
        }
        let Some(mut capture) = self.capture.take() else {
            return;
        };
        let round = async move {
            let result = capture.step().await;
            (capture, result)
        };
        ctx.wait(round.into_actor(self).map(|(capture, result), task, ctx| {
            task.capture = Some(capture);
            match result {
                // A full round: more may be waiting.
                Ok(n) if n >= task.source.batch_size => task.polling.schedule(ctx, Duration::ZERO),
                Ok(_) => task.polling.schedule(ctx, task.source.poll_interval),
                Err(trace) => task.fail(ctx, trace),
            }
        }));
    }
}

impl Handler<Control> for PostgresCdcTask {
    type Result = ();

    fn handle(&mut self, control: Control, ctx: &mut Self::Context) {
        let name = &self.connector.name;
        self.polling.control(control, name, &self.statuses, ctx);
    }
}
