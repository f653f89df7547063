//! The file source task: lines of a file into a topic, exactly once. Each
//! batch of lines is one transaction holding the records and the new
//! position in the offsets topic, so a restart resumes at the position of
//! the last committed batch: nothing lost, nothing produced twice.

use crate::clients::{send, source_producer, REQUEST_TIMEOUT};
use crate::config::{ConnectConfig, ConnectorConfig, ConnectorKind};
use crate::data::{ConnectRecord, Data};
use crate::dead_letter;
use crate::offsets;
use crate::pipeline::Pipeline;
use crate::status::Statuses;
use crate::tail::Tail;
use crate::task::{Control, Poll, PollLoop};
use actix::prelude::*;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct FileSourceTask {
    config: Arc<ConnectConfig>,
    connector: ConnectorConfig,
    statuses: Statuses,
    pipeline: Pipeline,
    file: PathBuf,
    topic: String,
    batch_size: usize,
    poll_interval: Duration,
    polling: PollLoop,
    running: Option<Running>,
}

/// What a started task holds.
struct Running {
    producer: ThreadedProducer<DefaultProducerContext>,
    tail: Tail,
    offsets_key: Vec<u8>,
}

impl FileSourceTask {
    /// `None` unless `connector` is a file source.
    pub fn new(
        config: Arc<ConnectConfig>,
        connector: ConnectorConfig,
        statuses: Statuses,
        paused: bool,
    ) -> Option<Self> {
        let ConnectorKind::FileSource {
            file,
            topic,
            batch_size,
            poll_interval,
        } = &connector.kind
        else {
            return None;
        };
        Some(Self {
            file: file.clone(),
            topic: topic.clone(),
            batch_size: *batch_size,
            poll_interval: *poll_interval,
            pipeline: Pipeline::new(&connector),
            config,
            connector,
            statuses,
            polling: PollLoop::new(paused),
            running: None,
        })
    }

    fn name(&self) -> &str {
        &self.connector.name
    }

    /// Fences the task's previous incarnation (aborting its open
    /// transaction), then reads back the position it committed.
    fn open(&self) -> Result<Running, String> {
        let producer = source_producer(&self.config, &self.connector)
            .map_err(|e| format!("cannot create the producer: {e}"))?;
        producer
            .init_transactions(REQUEST_TIMEOUT)
            .map_err(|e| format!("cannot start transactions: {e}"))?;
        let offsets_key = offsets::key(self.name(), &self.file);
        let stored = offsets::read(&self.config, &offsets_key, offsets::file_position)?;
        let tail = Tail::open(&self.file, stored).map_err(|e| e.to_string())?;
        log::info!(
            "connector {}: {} from byte {}",
            self.name(),
            self.file.display(),
            tail.position().offset
        );
        Ok(Running {
            producer,
            tail,
            offsets_key,
        })
    }

    /// Produces up to one batch of lines in one transaction; the number of
    /// lines read.
    fn step(&mut self) -> Result<usize, String> {
        let Some(running) = self.running.as_mut() else {
            return Ok(0);
        };
        let lines = running
            .tail
            .read_lines(self.batch_size)
            .map_err(|e| format!("cannot read {}: {e}", self.file.display()))?;
        let lag = running.tail.remaining();
        self.statuses.update(&self.connector.name, |e| e.lag = lag);
        if lines.is_empty() {
            return Ok(0);
        }
        let producer = &running.producer;
        producer
            .begin_transaction()
            .map_err(|e| format!("cannot begin a transaction: {e}"))?;
        let (mut out, mut skipped, mut dead) = (0, 0, 0);
        for line in &lines {
            let record = ConnectRecord {
                topic: self.topic.clone(),
                key: Data::NULL,
                value: Data::Json(Value::String(line.clone())),
            };
            match self.pipeline.outgoing(record) {
                Ok(Some(o)) => {
                    let mut r = BaseRecord::<[u8], [u8]>::to(&o.topic);
                    if let Some(k) = &o.key {
                        r = r.key(k);
                    }
                    if let Some(v) = &o.value {
                        r = r.payload(v);
                    }
                    send(producer, r)?;
                    out += 1;
                }
                Ok(None) => {}
                Err(error) if self.connector.errors.tolerate => {
                    log::warn!("connector {}: skipped a line: {error}", self.connector.name);
                    skipped += 1;
                    if let Some(dlq) = &self.connector.errors.dead_letter_topic {
                        let headers = dead_letter::headers(&self.connector.name, &error, None);
                        send(
                            producer,
                            BaseRecord::<[u8], [u8]>::to(dlq)
                                .payload(line.as_bytes())
                                .headers(headers),
                        )?;
                        dead += 1;
                    }
                }
                Err(error) => {
                    let _ = producer.abort_transaction(REQUEST_TIMEOUT);
                    return Err(error.to_string());
                }
            }
        }
        let position = offsets::value(running.tail.position());
        send(
            producer,
            BaseRecord::to(&self.config.offsets_topic)
                .key(&running.offsets_key[..])
                .payload(&position[..]),
        )?;
        // Lines, dead letters and the position become visible together, or
        // (on any failure, or a kill before this returns) none of them.
        if let Err(e) = producer.commit_transaction(REQUEST_TIMEOUT) {
            let _ = producer.abort_transaction(REQUEST_TIMEOUT);
            return Err(format!("cannot commit the transaction: {e}"));
        }
        self.statuses.update(&self.connector.name, |e| {
            e.records_in += lines.len() as u64;
            e.records_out += out;
            e.errors += skipped;
            e.dead_lettered += dead;
        });
        Ok(lines.len())
    }

    fn fail(&mut self, ctx: &mut Context<Self>, trace: String) {
        self.running = None;
        self.statuses.fail(&self.connector.name, trace);
        ctx.stop();
    }
}

impl Actor for FileSourceTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.open() {
            Ok(running) => {
                self.running = Some(running);
                self.statuses
                    .task_started(self.name(), self.polling.paused());
                self.polling.schedule(ctx, Duration::ZERO);
            }
            Err(trace) => self.fail(ctx, trace),
        }
    }
}

impl Handler<Poll> for FileSourceTask {
    type Result = ();

    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        if !self.polling.polled() {
            return;
        }
        match self.step() {
            // A full batch: more may be waiting.
            Ok(n) if n == self.batch_size => self.polling.schedule(ctx, Duration::ZERO),
            Ok(_) => self.polling.schedule(ctx, self.poll_interval),
            Err(trace) => self.fail(ctx, trace),
        }
    }
}

impl Handler<Control> for FileSourceTask {
    type Result = ();

    fn handle(&mut self, control: Control, ctx: &mut Self::Context) {
        let name = &self.connector.name;
        self.polling.control(control, name, &self.statuses, ctx);
    }
}
