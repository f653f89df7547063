//! Embedding actorlog in a Rust application: the whole actor system runs on
//! its own threads inside your process. In-process producers and consumers
//! send actor messages straight to the partition actors and group
//! coordinators (no TCP, no Kafka request encoding), with the semantics of
//! the wire path: the Java client's partitioner, the same offsets, the same
//! group rebalances and commits. Optionally the same broker also serves
//! Kafka clients on a port; records written either way are visible both
//! ways, and in-process and remote consumers can share a group.
//!
//! ```
//! # actorlog::block_on(async {
//! use actorlog::Broker;
//!
//! let broker = Broker::builder().in_memory().start().await?;
//! broker.create_topic("orders", 3).await?;
//! let producer = broker.producer();
//! let (partition, offset) = producer.send("orders", Some(b"customer-7"), b"order 1").await?;
//! assert_eq!(offset, 0);
//!
//! let mut consumer = broker.consumer("billing").subscribe(["orders"]).await?;
//! let delivered = consumer.poll().await?;
//! assert_eq!(delivered[0].partition, partition);
//! assert_eq!(delivered[0].record.value.as_deref(), Some(&b"order 1"[..]));
//! consumer.commit().await?;
//! consumer.close().await?;
//! broker.shutdown().await
//! # }).unwrap();
//! ```
//!
//! The broker's threads do not depend on the caller's runtime: its methods
//! are plain futures (timers run on the broker's own threads), so they work
//! under tokio (multi-thread or current-thread), inside an actix `System`,
//! or driven by [`block_on`] from a program without any runtime.
//!
//! Where the data lives is the builder's choice: [`BrokerBuilder::data_dir`]
//! keeps it durable exactly as the server does, [`BrokerBuilder::in_memory`]
//! keeps nothing on disk (for tests), and [`BrokerBuilder::temporary`] uses
//! the disk layout in a directory removed at shutdown.
//!
//! A broker that also serves Kafka clients ([`BrokerBuilder::listen`]) is
//! protected from hostile requests as the server binary is, with whatever
//! global allocator your program uses: frames are bounded by the broker's
//! maximum request size, and the request decoder refuses any array, string
//! or record count larger than the bytes left in the frame before it
//! reserves memory for it, closing that one connection.

#![warn(missing_docs)]

mod checks;
mod consumer;
mod error;
mod executor;
mod partitioner;
mod producer;
mod record;

pub use self::consumer::{Consumer, ConsumerBuilder, Delivered};
pub use self::error::Error;
pub use self::executor::block_on;
pub use self::partitioner::{murmur2, partition_for_key};
pub use self::producer::Producer;
pub use self::record::ConsumedRecord;

use actorlog_actors::broker::Storage;
use actorlog_actors::partition::Read;
use actorlog_actors::store::acls::AclBinding;
use actorlog_actors::{listener, metrics_endpoint, BrokerConfig};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Most bytes one [`Broker::read`] returns.
const READ_BYTES: usize = 1 << 20;

/// Where the builder was told to keep the data.
enum Place {
    /// `config.data_dir`.
    Dir,
    /// A fresh directory, removed at shutdown.
    Temporary,
    /// Memory only.
    Memory,
}

/// Configures an embedded broker; see [`Broker::builder`].
///
/// Without [`data_dir`](Self::data_dir), [`in_memory`](Self::in_memory) or
/// [`temporary`](Self::temporary) the data goes to `./data`, as the server's.
pub struct BrokerBuilder {
    config: BrokerConfig,
    listen: Option<io::Result<SocketAddr>>,
    place: Place,
}

impl BrokerBuilder {
    /// Keeps the data in `dir`, durable as the server's: an acknowledged
    /// record is fsynced, and a broker started again on `dir` finds every
    /// topic, record and committed offset.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = dir.into();
        self.place = Place::Dir;
        self
    }

    /// Keeps everything in memory, for tests: no file is created or
    /// written. Partition segments are anonymous memory files; committed
    /// offsets are in a temporary sled database, which on Linux lives in
    /// `/dev/shm` (memory) and is deleted at shutdown.
    pub fn in_memory(mut self) -> Self {
        self.place = Place::Memory;
        self
    }

    /// Keeps the data on disk, in a fresh temporary directory removed at
    /// shutdown: the disk path without leftovers.
    pub fn temporary(mut self) -> Self {
        self.place = Place::Temporary;
        self
    }

    /// Also serves Kafka clients on `addr`, e.g. `"127.0.0.1:0"` (port 0
    /// picks a free one; see [`Broker::local_addr`]).
    pub fn listen(mut self, addr: impl ToSocketAddrs) -> Self {
        self.listen = Some(addr.to_socket_addrs().and_then(|mut addrs| {
            addrs.next().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the address resolves to nothing",
                )
            })
        }));
        self
    }

    /// Any other setting of the server's `config.yaml`.
    ///
    /// ```
    /// # actorlog::block_on(async {
    /// let broker = actorlog::Broker::builder()
    ///     .in_memory()
    ///     .config(|c| {
    ///         c.num_partitions = 4;
    ///         c.group_initial_rebalance_delay_ms = 0;
    ///     })
    ///     .start()
    ///     .await?;
    /// broker.shutdown().await
    /// # }).unwrap();
    /// ```
    pub fn config(mut self, edit: impl FnOnce(&mut BrokerConfig)) -> Self {
        edit(&mut self.config);
        self
    }

    /// Starts the actor system on its own threads, once the data is
    /// recovered (and the listener bound, if asked for).
    pub async fn start(self) -> Result<Broker, Error> {
        let BrokerBuilder {
            mut config,
            listen,
            place,
        } = self;
        let listen = match listen {
            None => false,
            Some(Ok(addr)) => {
                config.listen = Some(addr);
                true
            }
            Some(Err(e)) => return Err(Error::InvalidConfig(format!("listen: {e}"))),
        };
        let (storage, temp_dir) = match place {
            Place::Dir => (Storage::Disk, None),
            Place::Memory => (Storage::Memory, None),
            Place::Temporary => {
                let dir = std::env::temp_dir().join(format!("actorlog-{}", unique_name()));
                config.data_dir = dir.clone();
                (Storage::Disk, Some(dir))
            }
        };
        config.validate().map_err(Error::InvalidConfig)?;
        let (started_tx, started_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (stopped_tx, stopped_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("actorlog-embedded".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(run(config, storage, listen, started_tx, stop_rx));
                drop(system);
                let _ = stopped_tx.send(());
            })?;
        let failure = match started_rx.await {
            Ok(Ok((inner, local_addr))) => {
                return Ok(Broker {
                    inner,
                    local_addr,
                    stop: Some(stop_tx),
                    stopped: Some(stopped_rx),
                    thread: Some(thread),
                    temp_dir,
                })
            }
            Ok(Err(e)) => e,
            Err(_) => Error::Stopped,
        };
        // The thread ends by itself after a failed start.
        let _ = stopped_rx.await;
        if thread.join().is_err() {
            log::error!("the embedded broker thread panicked");
        }
        if let Some(dir) = temp_dir {
            std::fs::remove_dir_all(dir)?;
        }
        Err(failure)
    }
}

/// A name no other broker of this machine uses at the same time.
fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

type Started = Result<(Arc<actorlog_actors::Broker>, Option<SocketAddr>), Error>;

/// The broker's life on its own thread: start, serve, wait for the stop,
/// flush, stop the workers.
async fn run(
    mut config: BrokerConfig,
    storage: Storage,
    listen: bool,
    started: oneshot::Sender<Started>,
    stop: oneshot::Receiver<()>,
) {
    let listener = match config.listen.filter(|_| listen) {
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                let message = format!("cannot listen on {addr}: {e}");
                let _ = started.send(Err(Error::Io(io::Error::new(e.kind(), message))));
                return;
            }
        },
        None => None,
    };
    let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(addr) = local_addr {
        // Clients must be told the port really bound (port 0 picks one).
        config
            .advertised_listener
            .get_or_insert_with(|| addr.to_string());
    }
    let broker = match actorlog_actors::Broker::start_with(config, storage) {
        Ok(broker) => broker,
        Err(e) => {
            let _ = started.send(Err(Error::Io(e)));
            return;
        }
    };
    metrics_endpoint::start(&broker).await;
    let serving = listener.map(|listener| {
        let serving = broker.clone();
        // The builder's `listen` is the broker's one PLAINTEXT listener.
        let endpoint = Arc::new(broker.listeners()[0].clone());
        actix_rt::spawn(async move {
            listener::serve(serving, listener, endpoint, None).await;
        })
    });
    if started.send(Ok((broker.clone(), local_addr))).is_ok() {
        let _ = stop.await;
    }
    if let Some(serving) = serving {
        // Closes the listener; open connections finish in shut_down.
        serving.abort();
        let _ = serving.await;
    }
    crate::server::shut_down(&broker).await;
}

/// A broker running inside this process.
///
/// Stop it with [`Broker::shutdown`]: every partition is fsynced and every
/// thread of the broker has ended when it returns. Dropping it does the
/// same, blocking the dropping thread meanwhile.
pub struct Broker {
    inner: Arc<actorlog_actors::Broker>,
    local_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
    temp_dir: Option<PathBuf>,
}

impl Broker {
    /// A builder with the server's defaults.
    ///
    /// ```
    /// # actorlog::block_on(async {
    /// let broker = actorlog::Broker::builder()
    ///     .in_memory()
    ///     .listen("127.0.0.1:0")
    ///     .start()
    ///     .await?;
    /// let kafka_clients_connect_to = broker.local_addr().unwrap();
    /// assert!(kafka_clients_connect_to.port() > 0);
    /// broker.shutdown().await
    /// # }).unwrap();
    /// ```
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            config: BrokerConfig::default(),
            listen: None,
            place: Place::Dir,
        }
    }

    /// Where Kafka clients can connect, if the builder asked for a listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The settings the broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        self.inner.config()
    }

    /// Creates a topic with default configs. A topic of that name already
    /// there is [`ResponseError::TopicAlreadyExists`].
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), Error> {
        self.create_topic_with(name, partitions, std::iter::empty::<(&str, &str)>())
            .await
    }

    /// Creates a topic with config overrides, the keys of Kafka's topic
    /// configs (`cleanup.policy`, `retention.ms`, ...).
    ///
    /// ```
    /// # actorlog::block_on(async {
    /// # let broker = actorlog::Broker::builder().in_memory().start().await?;
    /// broker
    ///     .create_topic_with("totals", 1, [("cleanup.policy", "compact")])
    ///     .await?;
    /// # broker.shutdown().await
    /// # }).unwrap();
    /// ```
    pub async fn create_topic_with<K: Into<String>, V: Into<String>>(
        &self,
        name: &str,
        partitions: i32,
        configs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), Error> {
        let configs: BTreeMap<String, String> = configs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let inner = &self.inner;
        for (key, value) in &configs {
            actorlog_actors::topic::config::validate(inner.config(), key, value)
                .map_err(|m| Error::kafka(ResponseError::InvalidConfig, m))?;
        }
        inner.create_topic(name, partitions, configs).await?;
        Ok(())
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        Ok(self.inner.delete_topic(name).await?)
    }

    /// The names of the topics, sorted.
    pub fn topics(&self) -> Vec<String> {
        self.inner
            .topics()
            .iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    /// An in-process producer; cheap, and cheap to clone.
    pub fn producer(&self) -> Producer {
        Producer::new(self.inner.clone())
    }

    /// A member of consumer group `group`, to
    /// [`subscribe`](ConsumerBuilder::subscribe).
    pub fn consumer(&self, group: &str) -> ConsumerBuilder {
        ConsumerBuilder::new(self.inner.clone(), group)
    }

    /// Adds ACLs, durably (as CreateAcls does); they are enforced from the
    /// return on when the broker runs with `authorizer: acl`. Each is
    /// checked as Kafka checks a new ACL (an invalid one is
    /// [`ResponseError::InvalidRequest`] and none is added).
    ///
    /// ```
    /// # actorlog::block_on(async {
    /// use actorlog::actors::security::authorizer::acl;
    /// use actorlog::actors::security::{Operation, ResourceType};
    /// use actorlog::actors::store::acls::code;
    /// # let broker = actorlog::Broker::builder().in_memory().start().await?;
    /// let billing_reads_orders = acl(
    ///     ResourceType::Topic,
    ///     "orders",
    ///     code::LITERAL,
    ///     "User:billing",
    ///     Operation::Read,
    ///     code::ALLOW,
    /// );
    /// broker.create_acls(&[billing_reads_orders]).await?;
    /// # broker.shutdown().await
    /// # }).unwrap();
    /// ```
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), Error> {
        for acl in acls {
            acl.validate()
                .map_err(|why| Error::kafka(ResponseError::InvalidRequest, why))?;
        }
        Ok(self.inner.create_acls(acls).await?)
    }

    /// The records of a partition from `offset` on (up to about 1 MiB), as
    /// an `assign`ed consumer outside any group would read them.
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
                Error::kafka(
                    ResponseError::UnknownTopicOrPartition,
                    format!("no partition {topic}-{partition}"),
                )
            })?;
        let read = Read {
            offset,
            max_bytes: READ_BYTES,
            committed: false,
            current_leader_epoch: -1,
            replica: None,
        };
        let records = handle
            .addr
            .send(read)
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(|f| {
                Error::kafka(f.error, format!("reading {topic}-{partition} at {offset}"))
            })?;
        record::decode(records.records, offset)
    }

    /// Stops the broker as the server stops on SIGTERM: no new connections,
    /// in-flight requests of Kafka clients finish (for at most
    /// `shutdown_timeout_ms`), every partition is fsynced. When it returns,
    /// the broker's threads have ended (and a temporary directory is gone).
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            // Sent as the thread ends, so the join below does not block.
            let _ = stopped.await;
        }
        self.finish()
    }

    /// Joins the broker thread and removes a temporary directory.
    fn finish(&mut self) -> Result<(), Error> {
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
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = self.finish() {
            log::warn!("stopping the embedded broker: {e}");
        }
    }
}
