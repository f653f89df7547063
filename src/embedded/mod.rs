//! Embedding actorlog in a Rust application: the whole actor system runs on
//! its own threads inside your process, and in-process producers send
//! actor messages straight to the partition actors (no TCP, no
//! serialization beyond the record batch itself). Optionally the same
//! broker also serves Kafka clients on a port; records written either way
//! are visible both ways.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), actorlog::Error> {
//! let broker = actorlog::Broker::builder().temporary().start().await?;
//! broker.create_topic("orders", 3).await?;
//! let producer = broker.producer();
//! let (partition, offset) = producer.send("orders", Some(b"customer-7"), b"order 1").await?;
//! assert_eq!(offset, 0);
//! let records = broker.read("orders", partition, 0).await?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"order 1"[..]));
//! broker.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The broker's threads do not depend on the caller's runtime: its methods
//! are plain futures that work under tokio, actix or any executor.

mod consumer;
mod partitioner;
mod producer;

pub use self::consumer::{Consumer, ConsumerBuilder, Delivered};
pub use self::partitioner::{murmur2, partition_for_key};
pub use self::producer::Producer;

use actorlog_actors::partition::Read;
use actorlog_actors::{server, BrokerConfig};
use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What can go wrong with an embedded broker.
#[derive(Debug)]
pub enum Error {
    /// Starting or stopping: files, sockets, threads.
    Io(io::Error),
    /// The broker refused a request, with Kafka's error code.
    Kafka(ResponseError, String),
    /// The broker has stopped.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Kafka(code, message) => write!(f, "{message} ({code})"),
            Error::Stopped => f.write_str("the broker has stopped"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<actorlog_actors::broker::TopicError> for Error {
    fn from(e: actorlog_actors::broker::TopicError) -> Self {
        Error::Kafka(e.code, e.message)
    }
}

/// Configures an embedded broker; see [`Broker::builder`].
pub struct BrokerBuilder {
    config: BrokerConfig,
    listen: bool,
    temporary: bool,
}

impl BrokerBuilder {
    /// Keeps the data in `dir` (durable, as the server's).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = dir.into();
        self.temporary = false;
        self
    }

    /// Keeps the data in a fresh temporary directory removed at shutdown:
    /// for tests.
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// Also serves Kafka clients on `addr` (port 0 picks a free one; see
    /// [`Broker::local_addr`]).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen = addr;
        self.listen = true;
        self
    }

    /// Any other setting of the server's `config.yaml`.
    pub fn config(mut self, edit: impl FnOnce(&mut BrokerConfig)) -> Self {
        edit(&mut self.config);
        self
    }

    /// Starts the actor system on its own threads.
    pub async fn start(mut self) -> Result<Broker, Error> {
        let temp_dir = if self.temporary {
            let dir = std::env::temp_dir().join(format!("actorlog-{}", uuid_like()));
            self.config.data_dir = dir.clone();
            Some(dir)
        } else {
            None
        };
        self.config
            .validate()
            .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let (started_tx, started_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (config, listen) = (self.config, self.listen);
        let thread = std::thread::Builder::new()
            .name("actorlog-embedded".into())
            .spawn(move || {
                actix_rt::System::new().block_on(run(config, listen, started_tx, stop_rx))
            })?;
        let (inner, local_addr) = started_rx.await.map_err(|_| Error::Stopped)??;
        Ok(Broker {
            inner,
            local_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            temp_dir,
        })
    }
}

/// A name no other broker of this machine uses at the same time.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

type Started = Result<(Arc<actorlog_actors::Broker>, Option<SocketAddr>), Error>;

/// The broker's life on its own thread: start, serve, wait for the stop.
async fn run(
    config: BrokerConfig,
    listen: bool,
    started: oneshot::Sender<Started>,
    stop: oneshot::Receiver<()>,
) {
    let listener = if listen {
        match TcpListener::bind(config.listen).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                let _ = started.send(Err(Error::Io(e)));
                return;
            }
        }
    } else {
        None
    };
    let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let mut config = config;
    if let Some(addr) = local_addr {
        // Clients must be told the port really bound (port 0 picks one).
        config
            .advertised_listener
            .get_or_insert_with(|| addr.to_string());
    }
    let broker = match actorlog_actors::Broker::start(config) {
        Ok(broker) => broker,
        Err(e) => {
            let _ = started.send(Err(Error::Io(e)));
            return;
        }
    };
    if let Some(listener) = listener {
        let serving = broker.clone();
        actix_rt::spawn(async move {
            if let Err(e) = server::serve(serving, listener).await {
                log::error!("embedded listener stopped: {e}");
            }
        });
    }
    if started.send(Ok((broker.clone(), local_addr))).is_err() {
        return;
    }
    let _ = stop.await;
    broker.sync_all().await;
    broker.stop();
}

/// A broker running inside this process.
pub struct Broker {
    inner: Arc<actorlog_actors::Broker>,
    local_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    temp_dir: Option<PathBuf>,
}

/// A record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl Broker {
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: BrokerConfig::default(),
            listen: false,
            temporary: false,
        }
    }

    /// Where Kafka clients can connect, if the builder asked for a listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Creates a topic with default configs.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), Error> {
        self.inner
            .create_topic(name, partitions, BTreeMap::new())
            .await?;
        Ok(())
    }

    /// An in-process producer.
    pub fn producer(&self) -> Producer {
        Producer::new(self.inner.clone())
    }

    /// A member of consumer group `group`, to [`ConsumerBuilder::subscribe`].
    pub fn consumer(&self, group: &str) -> ConsumerBuilder {
        ConsumerBuilder {
            broker: self.inner.clone(),
            group: group.to_string(),
        }
    }

    /// The records of a partition from `offset` on (up to about 1 MiB).
    pub async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Vec<ConsumedRecord>, Error> {
        let handle = self
            .inner
            .topic(topic)
            .and_then(|t| t.partition(partition).cloned())
            .ok_or_else(|| {
                Error::Kafka(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{topic}-{partition}"),
                )
            })?;
        let read = Read {
            offset,
            max_bytes: 1 << 20,
            committed: false,
        };
        let records = handle
            .addr
            .send(read)
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(|f| {
                Error::Kafka(f.error, format!("reading {topic}-{partition} at {offset}"))
            })?;
        decode(records.records, offset)
    }

    /// Flushes everything to disk and stops the actor system.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| Error::Io(io::Error::other("the broker thread panicked")))?;
        }
        if let Some(dir) = self.temp_dir.take() {
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            log::warn!("stopping the embedded broker: {e}");
        }
    }
}

/// Decodes a read's batches into records at or after `from`.
fn decode(mut records: Bytes, from: i64) -> Result<Vec<ConsumedRecord>, Error> {
    let sets = RecordBatchDecoder::decode_all(&mut records)
        .map_err(|e| Error::Kafka(ResponseError::CorruptMessage, e.to_string()))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r: &Record| !r.control && r.offset >= from)
        .map(|r| ConsumedRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
        .collect())
}
