//! The file sink task: the records of its topics, one line each, appended
//! to a file. A member of group `connect-<name>`, so several workers share
//! the partitions and take over a dead one's. It commits offsets only once
//! the lines are fsynced: at least once, as a file cannot be upserted (a
//! kill between the fsync and the commit writes those lines again).

use crate::clients::{dead_letter_producer, sink_consumer, REQUEST_TIMEOUT};
use crate::config::{ConnectConfig, ConnectorConfig, ConnectorKind};
use crate::dead_letter::{self, DeadLetters};
use crate::pipeline::{line_of, Pipeline};
use crate::status::Statuses;
use crate::task::{Control, Poll};
use actix::prelude::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records taken in one round at most, so pause and stop are answered soon.
const MAX_BATCH: usize = 2000;
/// How long a round waits for its first record.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// How often the lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);

pub struct FileSinkTask {
    config: Arc<ConnectConfig>,
    connector: ConnectorConfig,
    statuses: Statuses,
    pipeline: Pipeline,
    path: PathBuf,
    topics: Vec<String>,
    paused: bool,
    running: Option<Running>,
}

struct Running {
    consumer: BaseConsumer,
    file: File,
    dead_letters: Option<DeadLetters>,
    lag_reported: Instant,
}

/// What one round read: the lines to append, the offsets to commit after
/// them, and its counts.
#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
    next_offsets: BTreeMap<(String, i32), i64>,
    records_in: u64,
    written: u64,
    skipped: u64,
    dead_lettered: u64,
}

impl FileSinkTask {
    /// `None` unless `connector` is a file sink.
    pub fn new(
        config: Arc<ConnectConfig>,
        connector: ConnectorConfig,
        statuses: Statuses,
        paused: bool,
    ) -> Option<Self> {
        let ConnectorKind::FileSink { file, topics } = &connector.kind else {
            return None;
        };
        Some(Self {
            path: file.clone(),
            topics: topics.clone(),
            pipeline: Pipeline::new(&connector),
            config,
            connector,
            statuses,
            paused,
            running: None,
        })
    }

    fn name(&self) -> &str {
        &self.connector.name
    }

    fn open(&self) -> Result<Running, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        let consumer = sink_consumer(&self.config, &self.connector)
            .map_err(|e| format!("cannot create the consumer: {e}"))?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
        let dead_letters = match &self.connector.errors.dead_letter_topic {
            Some(topic) => Some((
                topic.clone(),
                dead_letter_producer(&self.config)
                    .map_err(|e| format!("cannot create the dead-letter producer: {e}"))?,
            )),
            None => None,
        };
        Ok(Running {
            consumer,
            file,
            dead_letters,
            // Measured after the first round.
            lag_reported: Instant::now() - LAG_EVERY,
        })
    }

    /// Reads a batch, appends and fsyncs its lines, then commits.
    fn step(&mut self) -> Result<(), String> {
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        if self.paused {
            // Polling keeps the membership; paused partitions return
            // nothing, but a rebalance can hand over new unpaused ones.
            pause_all(&running.consumer);
            if let Some(Ok(m)) = running.consumer.poll(POLL_WAIT) {
                seek_back(&running.consumer, &m);
                pause_all(&running.consumer);
            }
            return Ok(());
        }
        let mut batch = Batch::default();
        let mut wait = POLL_WAIT;
        while (batch.records_in as usize) < MAX_BATCH {
            let message = match running.consumer.poll(wait) {
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
            match self
                .pipeline
                .incoming(message.topic(), message.key(), message.payload())
            {
                Ok(Some(record)) => {
                    batch.lines.extend(line_of(&record.value));
                    batch.lines.push(b'\n');
                    batch.written += 1;
                }
                Ok(None) => {}
                Err(error) if self.connector.errors.tolerate => {
                    batch.skipped += 1;
                    let dead_letters = running.dead_letters.as_ref();
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
        self.commit(batch)
    }

    /// The batch's lines on disk and its dead letters in Kafka, then its
    /// offsets committed: never an offset past a record not yet stored.
    fn commit(&mut self, batch: Batch) -> Result<(), String> {
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        if batch.next_offsets.is_empty() {
            self.report_lag();
            return Ok(());
        }
        if !batch.lines.is_empty() {
            running
                .file
                .write_all(&batch.lines)
                .and_then(|()| running.file.sync_data())
                .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        }
        if let Some((topic, producer)) = &running.dead_letters {
            if batch.dead_lettered > 0 {
                producer
                    .flush(REQUEST_TIMEOUT)
                    .map_err(|e| format!("cannot write to the dead-letter topic {topic}: {e}"))?;
            }
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), next) in &batch.next_offsets {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|e| e.to_string())?;
        }
        // A failed commit (a rebalance took the partition) only means the
        // next owner writes these lines again: at least once.
        if let Err(e) = running.consumer.commit(&offsets, CommitMode::Sync) {
            log::warn!("connector {}: commit failed: {e}", self.connector.name);
        }
        self.statuses.update(&self.connector.name, |e| {
            e.records_in += batch.records_in;
            e.records_out += batch.written;
            e.errors += batch.skipped;
            e.dead_lettered += batch.dead_lettered;
        });
        self.report_lag();
        Ok(())
    }

    /// Records between the position and the log end of the assigned
    /// partitions. Asked of the broker, so at most every [`LAG_EVERY`].
    fn report_lag(&mut self) {
        let Some(running) = &mut self.running else {
            return;
        };
        if running.lag_reported.elapsed() < LAG_EVERY {
            return;
        }
        running.lag_reported = Instant::now();
        let consumer = &running.consumer;
        let Ok(positions) = consumer.position() else {
            return;
        };
        let mut lag = 0;
        for p in positions.elements() {
            let (Some(position), Ok((_, high))) = (
                p.offset().to_raw().filter(|o| *o >= 0),
                consumer.fetch_watermarks(p.topic(), p.partition(), REQUEST_TIMEOUT),
            ) else {
                continue;
            };
            lag += (high - position).max(0) as u64;
        }
        self.statuses.update(&self.connector.name, |e| e.lag = lag);
    }

    fn fail(&mut self, ctx: &mut Context<Self>, trace: String) {
        self.running = None;
        self.statuses.fail(&self.connector.name, trace);
        ctx.stop();
    }
}

fn pause_all(consumer: &BaseConsumer) {
    if let Ok(assigned) = consumer.assignment() {
        let _ = consumer.pause(&assigned);
    }
}

/// Puts a record read while paused back, for after the resume.
fn seek_back(consumer: &BaseConsumer, message: &BorrowedMessage<'_>) {
    let _ = consumer.seek(
        message.topic(),
        message.partition(),
        Offset::Offset(message.offset()),
        REQUEST_TIMEOUT,
    );
}

impl Actor for FileSinkTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.open() {
            Ok(running) => {
                self.running = Some(running);
                self.statuses.task_started(self.name(), self.paused);
                ctx.notify(Poll);
            }
            Err(trace) => self.fail(ctx, trace),
        }
    }
}

impl Handler<Poll> for FileSinkTask {
    type Result = ();

    /// One round, then the next right away: the poll itself waits for
    /// records, and the mailbox lets controls in between rounds.
    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        match self.step() {
            Ok(()) => ctx.notify(Poll),
            Err(trace) => self.fail(ctx, trace),
        }
    }
}

impl Handler<Control> for FileSinkTask {
    type Result = ();

    fn handle(&mut self, control: Control, ctx: &mut Self::Context) {
        let Some(running) = &self.running else {
            return;
        };
        match control {
            Control::Pause => {
                self.paused = true;
                pause_all(&running.consumer);
                self.statuses.task_paused(&self.connector.name);
            }
            Control::Resume => {
                self.paused = false;
                if let Ok(assigned) = running.consumer.assignment() {
                    let _ = running.consumer.resume(&assigned);
                }
                self.statuses.task_resumed(&self.connector.name);
            }
            Control::Stop => ctx.stop(),
        }
    }
}
