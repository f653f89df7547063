//! The PostgreSQL sink task: struct values of its topics into a table, one
//! row each, inserted or upserted by primary key (so a replay after a
//! crash rewrites the same rows). A member of group `connect-<name>`; each
//! round is one database transaction, and the offsets are committed only
//! after it committed.

use crate::clients::{dead_letter_producer, sink_consumer, REQUEST_TIMEOUT};
use crate::config::{ConnectConfig, ConnectorConfig, ConnectorKind};
use crate::data::Data;
use crate::dead_letter::{self, DeadLetters};
use crate::pipeline::{Pipeline, Stage, StageError};
use crate::postgres::{quoted, reason};
use crate::status::Statuses;
use crate::task::{Control, Poll};
use actix::prelude::*;
use futures_util::future::try_join_all;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Statement;

/// Records taken in one round at most.
const MAX_BATCH: usize = 1000;
/// How long a round waits for its first record.
const POLL_WAIT: Duration = Duration::from_millis(200);

pub struct PostgresSinkTask {
    config: Arc<ConnectConfig>,
    connector: ConnectorConfig,
    statuses: Statuses,
    pipeline: Pipeline,
    target: Target,
    paused: bool,
    consumer: Option<BaseConsumer>,
    dead_letters: Option<DeadLetters>,
    /// Out of the actor while a round writes.
    client: Option<tokio_postgres::Client>,
}

/// Where and how rows are written.
#[derive(Clone)]
struct Target {
    url: String,
    table_format: String,
    pk_fields: Vec<String>,
    upsert: bool,
}

/// A row to write: its table and columns.
struct Row {
    table: String,
    columns: Map<String, Value>,
}

/// What one round read.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    next_offsets: BTreeMap<(String, i32), i64>,
    records_in: u64,
    skipped: u64,
    dead_lettered: u64,
}

impl PostgresSinkTask {
    /// `None` unless `connector` is a PostgreSQL sink.
    pub fn new(
        config: Arc<ConnectConfig>,
        connector: ConnectorConfig,
        statuses: Statuses,
        paused: bool,
    ) -> Option<Self> {
        let ConnectorKind::PostgresSink {
            url,
            table_format,
            pk_fields,
            upsert,
            ..
        } = &connector.kind
        else {
            return None;
        };
        Some(Self {
            target: Target {
                url: url.clone(),
                table_format: table_format.clone(),
                pk_fields: pk_fields.clone(),
                upsert: *upsert,
            },
            pipeline: Pipeline::new(&connector),
            config,
            connector,
            statuses,
            paused,
            consumer: None,
            dead_letters: None,
            client: None,
        })
    }

    fn name(&self) -> &str {
        &self.connector.name
    }

    fn open_kafka(&mut self) -> Result<(), String> {
        let ConnectorKind::PostgresSink { topics, .. } = &self.connector.kind else {
            return Err("not a postgres sink".into());
        };
        let consumer = sink_consumer(&self.config, &self.connector)
            .map_err(|e| format!("cannot create the consumer: {e}"))?;
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
        if let Some(topic) = &self.connector.errors.dead_letter_topic {
            let producer = dead_letter_producer(&self.config)
                .map_err(|e| format!("cannot create the dead-letter producer: {e}"))?;
            self.dead_letters = Some((topic.clone(), producer));
        }
        self.consumer = Some(consumer);
        Ok(())
    }

    /// Reads a round of records into rows; conversion failures are
    /// tolerated or fail the round as the connector says.
    fn read_batch(&self) -> Result<Batch, String> {
        let mut batch = Batch::default();
        let Some(consumer) = &self.consumer else {
            return Ok(batch);
        };
        let mut wait = POLL_WAIT;
        while (batch.records_in as usize) < MAX_BATCH {
            let message = match consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    log::warn!("connector {}: {e}", self.connector.name);
                    break;
                }
                Some(Ok(m)) => m,
            };
            wait = Duration::ZERO;
            batch.records_in += 1;
            batch.next_offsets.insert(
                (message.topic().to_string(), message.partition()),
                message.offset() + 1,
            );
            let row = self
                .pipeline
                .incoming(message.topic(), message.key(), message.payload())
                .and_then(|record| match record {
                    None => Ok(None),
                    // A tombstone deletes nothing here: it is skipped.
                    Some(r) if r.value.is_null() => Ok(None),
                    Some(r) => row_of(&self.target, r.topic, r.value).map(Some),
                });
            match row {
                Ok(Some(row)) => batch.rows.push(row),
                Ok(None) => {}
                Err(error) if self.connector.errors.tolerate => {
                    batch.skipped += 1;
                    let dead_letters = self.dead_letters.as_ref();
                    if dead_letter::skip_consumed(
                        &self.connector.name,
                        &message,
                        &error,
                        dead_letters,
                    )? {
                        batch.dead_lettered += 1;
                    }
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(batch)
    }

    /// After the rows are committed: dead letters flushed, then offsets.
    fn commit(&mut self, batch: &Batch) -> Result<(), String> {
        if let Some((topic, producer)) = &self.dead_letters {
            if batch.dead_lettered > 0 {
                producer
                    .flush(REQUEST_TIMEOUT)
                    .map_err(|e| format!("cannot write to the dead-letter topic {topic}: {e}"))?;
            }
        }
        let Some(consumer) = &self.consumer else {
            return Ok(());
        };
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), next) in &batch.next_offsets {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|e| e.to_string())?;
        }
        // A failed commit (a rebalance took the partition) means the next
        // owner writes these rows again, which an upsert makes harmless.
        if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            log::warn!("connector {}: commit failed: {e}", self.connector.name);
        }
        self.statuses.update(&self.connector.name, |e| {
            e.records_in += batch.records_in;
            e.records_out += batch.rows.len() as u64;
            e.errors += batch.skipped;
            e.dead_lettered += batch.dead_lettered;
        });
        Ok(())
    }

    fn fail(&mut self, ctx: &mut Context<Self>, trace: String) {
        self.consumer = None;
        self.client = None;
        self.statuses.fail(&self.connector.name, trace);
        ctx.stop();
    }
}

/// The row a struct value makes, in the table `table.name.format` names.
fn row_of(target: &Target, topic: String, value: Data) -> Result<Row, StageError> {
    let Data::Json(Value::Object(columns)) = value else {
        return Err(StageError {
            stage: Stage::TaskPut,
            class: "postgres-sink".into(),
            message: format!(
                "a row needs a struct value, the record has {}",
                value.kind()
            ),
        });
    };
    if let Some(missing) = target.pk_fields.iter().find(|f| !columns.contains_key(*f)) {
        return Err(StageError {
            stage: Stage::TaskPut,
            class: "postgres-sink".into(),
            message: format!("the value has no primary key field {missing:?}"),
        });
    }
    Ok(Row {
        table: target.table_format.replace("${topic}", &topic),
        columns,
    })
}

/// The statement writing `row`: its columns are read from the JSON
/// parameter `$1` with the table's own column types
/// (`jsonb_populate_record`), so PostgreSQL converts each field.
pub(crate) fn statement(
    table: &str,
    columns: &[&String],
    pk_fields: &[String],
    upsert: bool,
) -> String {
    let table = quoted(table);
    let names: Vec<String> = columns.iter().map(|c| quoted(c)).collect();
    let mut sql = format!(
        "INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_populate_record(NULL::{table}, $1::text::jsonb)",
        names = names.join(", ")
    );
    if upsert {
        let keys: Vec<String> = pk_fields.iter().map(|k| quoted(k)).collect();
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !pk_fields.contains(c))
            .map(|c| format!("{0} = EXCLUDED.{0}", quoted(c)))
            .collect();
        sql.push_str(&format!(" ON CONFLICT ({}) DO ", keys.join(", ")));
        if updates.is_empty() {
            sql.push_str("NOTHING");
        } else {
            sql.push_str(&format!("UPDATE SET {}", updates.join(", ")));
        }
    }
    sql
}

/// Writes the rows in one transaction: each distinct statement is
/// prepared once, and the rows are pipelined (sent without waiting for each
/// answer; PostgreSQL runs them in the order sent).
async fn write(
    client: &mut tokio_postgres::Client,
    target: &Target,
    rows: &[Row],
) -> Result<(), tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    let mut prepared: HashMap<String, Statement> = HashMap::new();
    let mut writes = Vec::with_capacity(rows.len());
    for row in rows {
        let columns: Vec<&String> = row.columns.keys().collect();
        let sql = statement(&row.table, &columns, &target.pk_fields, target.upsert);
        let prepared = match prepared.get(&sql) {
            Some(s) => s.clone(),
            None => {
                let s = transaction.prepare(&sql).await?;
                prepared.insert(sql, s.clone());
                s
            }
        };
        writes.push((prepared, Value::Object(row.columns.clone()).to_string()));
    }
    try_join_all(
        writes
            .iter()
            .map(|(statement, json)| transaction.execute_raw(statement, [json])),
    )
    .await?;
    transaction.commit().await
}

impl Actor for PostgresSinkTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Err(trace) = self.open_kafka() {
            return self.fail(ctx, trace);
        }
        let url = self.target.url.clone();
        let connecting = async move { tokio_postgres::connect(&url, tokio_postgres::NoTls).await };
        ctx.spawn(connecting.into_actor(self).map(|connected, task, ctx| {
            match connected {
                Ok((client, connection)) => {
                    let name = task.connector.name.clone();
                    // The connection does the socket I/O of the client.
                    actix_rt::spawn(async move {
                        if let Err(e) = connection.await {
                            log::warn!("connector {name}: PostgreSQL connection: {e}");
                        }
                    });
                    task.client = Some(client);
                    task.statuses
                        .task_started(&task.connector.name, task.paused);
                    ctx.notify(Poll);
                }
                Err(e) => task.fail(ctx, format!("cannot connect to PostgreSQL: {}", reason(&e))),
            }
        }));
    }
}

impl Handler<Poll> for PostgresSinkTask {
    type Result = ResponseActFuture<Self, ()>;

    /// Reads a round, writes it in a database transaction off the actor
    /// (holding the client), then commits and asks for the next round.
    fn handle(&mut self, _: Poll, _: &mut Self::Context) -> Self::Result {
        if self.paused {
            if let Some(consumer) = &self.consumer {
                // Keep the membership; paused partitions return nothing.
                if let Ok(assigned) = consumer.assignment() {
                    let _ = consumer.pause(&assigned);
                }
                if let Some(Ok(m)) = consumer.poll(POLL_WAIT) {
                    let _ = consumer.seek(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(m.offset()),
                        REQUEST_TIMEOUT,
                    );
                }
            }
            return Box::pin(
                actix::fut::ready(()).map(|(), _, ctx: &mut Context<Self>| ctx.notify(Poll)),
            );
        }
        let batch = match self.read_batch() {
            Ok(batch) => batch,
            Err(trace) => {
                return Box::pin(
                    actix::fut::ready(())
                        .map(move |(), task: &mut Self, ctx| task.fail(ctx, trace)),
                )
            }
        };
        if batch.next_offsets.is_empty() {
            return Box::pin(
                actix::fut::ready(()).map(|(), _, ctx: &mut Context<Self>| ctx.notify(Poll)),
            );
        }
        // Taken only for a write, and put back when it ends.
        let Some(mut client) = self.client.take() else {
            return Box::pin(actix::fut::ready(()).map(|(), task: &mut Self, ctx| {
                task.fail(ctx, "the PostgreSQL client is gone".into())
            }));
        };
        let target = self.target.clone();
        let writing = async move {
            let result = write(&mut client, &target, &batch.rows).await;
            (client, batch, result)
        };
        Box::pin(
            writing
                .into_actor(self)
                .map(|(client, batch, result), task, ctx| {
                    task.client = Some(client);
                    let committed = result
                        .map_err(|e| format!("cannot write to PostgreSQL: {}", reason(&e)))
                        .and_then(|()| task.commit(&batch));
                    match committed {
                        Ok(()) => ctx.notify(Poll),
                        Err(trace) => task.fail(ctx, trace),
                    }
                }),
        )
    }
}

impl Handler<Control> for PostgresSinkTask {
    type Result = ();

    fn handle(&mut self, control: Control, ctx: &mut Self::Context) {
        match control {
            Control::Pause => {
                self.paused = true;
                self.statuses.task_paused(self.name());
            }
            Control::Resume => {
                self.paused = false;
                if let Some(consumer) = &self.consumer {
                    if let Ok(assigned) = consumer.assignment() {
                        let _ = consumer.resume(&assigned);
                    }
                }
                self.statuses.task_resumed(self.name());
            }
            Control::Stop => ctx.stop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_insert_or_upsert_the_records_columns() {
        let (id, name) = ("id".to_string(), "na\"me".to_string());
        assert_eq!(
            statement("orders", &[&id, &name], &[], false),
            r#"INSERT INTO "orders" ("id", "na""me") SELECT "id", "na""me" FROM jsonb_populate_record(NULL::"orders", $1::text::jsonb)"#
        );
        let upsert = statement("orders", &[&id, &name], std::slice::from_ref(&id), true);
        assert!(
            upsert.ends_with(r#"ON CONFLICT ("id") DO UPDATE SET "na""me" = EXCLUDED."na""me""#),
            "{upsert}"
        );
        assert!(statement("t", &[&id], std::slice::from_ref(&id), true).ends_with("DO NOTHING"));
    }

    #[test]
    fn rows_need_a_struct_with_the_key() {
        let target = Target {
            url: String::new(),
            table_format: "db_${topic}".into(),
            pk_fields: vec!["id".into()],
            upsert: true,
        };
        let row = row_of(
            &target,
            "orders".into(),
            Data::Json(serde_json::json!({"id": 1})),
        )
        .unwrap();
        assert_eq!(row.table, "db_orders");
        let e = row_of(&target, "t".into(), Data::Json(serde_json::json!({"n": 1})))
            .err()
            .unwrap();
        assert_eq!(e.stage, Stage::TaskPut);
        assert!(row_of(&target, "t".into(), Data::Json(serde_json::json!("x"))).is_err());
    }
}
