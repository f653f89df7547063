//! The load test: many concurrent connections on loopback, each a small raw
//! Kafka protocol client on tokio (one task, one request in flight), some
//! producing `acks=all` batches and the others long-polling Fetch at the
//! end of a partition. The broker's RSS is sampled from /proc meanwhile, and
//! at the end every acknowledged record is read back and compared.

use super::broker::Broker;
use actorlog_actors::partition::batch;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, ListOffsetsRequest, ProduceRequest, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: &str = "load-test";
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 7;
const CREATE_TOPICS_VERSION: i16 = 7;
/// Largest response frame a client accepts.
const MAX_RESPONSE: usize = 64 << 20;
/// Connections opened at once, so the accept backlog never overflows.
const CONNECT_WAVE: usize = 100;

#[derive(Debug, Clone)]
pub struct Options {
    pub broker: PathBuf,
    pub connections: usize,
    /// Every n-th connection fetches; the others produce.
    pub fetch_every: usize,
    pub partitions: i32,
    pub duration: Duration,
    pub records_per_batch: usize,
    pub value_bytes: usize,
    /// Pause of a producer between one acknowledgement and its next batch.
    pub produce_pause: Duration,
}

/// One RSS sample: seconds into the run, kilobytes.
pub type Sample = (f64, u64);

#[derive(Debug, Default)]
pub struct Summary {
    pub connections: usize,
    pub producers: usize,
    pub fetchers: usize,
    pub produce_requests: u64,
    pub acknowledged_records: u64,
    pub fetch_requests: u64,
    pub fetched_records: u64,
    pub fetched_bytes: u64,
    /// What went wrong, by kind.
    pub errors: BTreeMap<String, u64>,
    pub rss: Vec<Sample>,
    pub verified_records: u64,
    /// Acknowledged records that did not read back as sent.
    pub unreadable: Vec<String>,
    pub broker_alive: bool,
    pub elapsed: Duration,
}

impl Summary {
    pub fn peak_rss_kb(&self) -> u64 {
        self.rss.iter().map(|&(_, kb)| kb).max().unwrap_or(0)
    }

    pub fn print(&self, duration: Duration) {
        let secs = duration.as_secs_f64();
        println!(
            "connections: {} ({} producers, {} fetchers)",
            self.connections, self.producers, self.fetchers
        );
        println!(
            "produce: {} requests ({:.0}/s), {} records acknowledged ({:.0}/s)",
            self.produce_requests,
            self.produce_requests as f64 / secs,
            self.acknowledged_records,
            self.acknowledged_records as f64 / secs
        );
        println!(
            "fetch: {} requests ({:.0}/s), {} records ({:.0}/s), {:.1} MB",
            self.fetch_requests,
            self.fetch_requests as f64 / secs,
            self.fetched_records,
            self.fetched_records as f64 / secs,
            self.fetched_bytes as f64 / 1e6
        );
        let errors: u64 = self.errors.values().sum();
        println!("errors: {errors}");
        for (kind, count) in &self.errors {
            println!("  {kind}: {count}");
        }
        // Every fifth sample keeps the line short over a minute.
        let rss: Vec<String> = self
            .rss
            .iter()
            .skip(4)
            .step_by(5)
            .map(|(t, kb)| format!("{t:.0}s {} MB", kb / 1024))
            .collect();
        println!("broker RSS: {}", rss.join(", "));
        println!("broker peak RSS: {} MB", self.peak_rss_kb() / 1024);
        println!(
            "read back: {} of {} acknowledged records verified, {} unreadable",
            self.verified_records,
            self.acknowledged_records,
            self.unreadable.len()
        );
        for what in self.unreadable.iter().take(20) {
            println!("  {what}");
        }
        println!("broker still running: {}", self.broker_alive);
        println!("elapsed: {:.1} s", self.elapsed.as_secs_f64());
    }

    pub fn passed(&self) -> bool {
        self.broker_alive
            && self.unreadable.is_empty()
            && self.verified_records == self.acknowledged_records
    }
}

/// Counters the connection tasks share.
#[derive(Default)]
struct Counters {
    produce_requests: AtomicU64,
    acknowledged_records: AtomicU64,
    fetch_requests: AtomicU64,
    fetched_records: AtomicU64,
    fetched_bytes: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().unwrap().entry(kind.into()).or_default() += 1;
    }
}

/// An acknowledged batch: where it went and what it held.
#[derive(Debug, Clone, Copy)]
struct Acked {
    partition: i32,
    base_offset: i64,
    connection: usize,
    seq: u64,
    records: usize,
}

/// The value of record `index` of batch `seq` of `connection`.
fn value(connection: usize, seq: u64, index: usize, len: usize) -> Bytes {
    let mut value = format!("c{connection}-{seq}-{index}-").into_bytes();
    value.resize(len.max(value.len()), b'x');
    Bytes::from(value)
}

/// The nofile limit raised to what `connections` need (the broker, started
/// after this, inherits it); an error if the hard limit is too low.
pub fn raise_fd_limit(connections: usize) -> Result<u64, String> {
    let needed = connections as u64 + 512;
    // `None` is RLIM_INFINITY.
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if soft >= needed {
        return Ok(soft);
    }
    if hard < needed {
        return Err(format!(
            "{connections} connections need {needed} open files; the hard limit is {hard} (ulimit -Hn)"
        ));
    }
    let raised = Rlimit {
        current: Some(needed),
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised)
        .map_err(|e| format!("setrlimit(RLIMIT_NOFILE) failed: {e}"))?;
    Ok(needed)
}

pub async fn run(options: &Options) -> Result<Summary, String> {
    let started = Instant::now();
    let mut broker = Broker::start(&options.broker, "")?;
    let bootstrap = broker.bootstrap();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut first = Client::connect(&bootstrap).await?;
    first
        .create_topic(options.partitions)
        .await
        .map_err(|e| format!("creating {TOPIC}: {e}"))?;
    let mut tasks = Vec::new();
    let mut summary = Summary::default();
    for wave in (0..options.connections)
        .collect::<Vec<_>>()
        .chunks(CONNECT_WAVE)
    {
        let mut clients = Vec::new();
        for &id in wave {
            clients.push((id, tokio::spawn(Client::connect_owned(bootstrap.clone()))));
        }
        for (id, client) in clients {
            let client = match client.await.map_err(|e| e.to_string())? {
                Ok(client) => client,
                Err(e) => {
                    counters.error(format!("connect: {e}"));
                    continue;
                }
            };
            summary.connections += 1;
            // A fetcher and the producers after it share a partition.
            let group = id / options.fetch_every.max(1);
            let partition = (group % options.partitions.max(1) as usize) as i32;
            let (counters, stop) = (counters.clone(), stop.clone());
            if options.fetch_every > 0 && id % options.fetch_every == 0 {
                summary.fetchers += 1;
                tasks.push(tokio::spawn(fetcher(client, partition, counters, stop)));
            } else {
                summary.producers += 1;
                let job = ProducerJob {
                    id,
                    partition,
                    options: options.clone(),
                };
                tasks.push(tokio::spawn(producer(
                    client,
                    job,
                    counters,
                    stop,
                    acked.clone(),
                )));
            }
        }
    }
    let run_started = Instant::now();
    while run_started.elapsed() < options.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(kb) = broker.rss_kb() {
            summary.rss.push((run_started.elapsed().as_secs_f64(), kb));
        }
    }
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.map_err(|e| format!("connection task: {e}"))?;
    }
    summary.broker_alive = broker.is_running();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    if summary.broker_alive {
        verify(&mut first, options, &acked, &mut summary).await;
    }
    summary.produce_requests = counters.produce_requests.load(Ordering::SeqCst);
    summary.acknowledged_records = counters.acknowledged_records.load(Ordering::SeqCst);
    summary.fetch_requests = counters.fetch_requests.load(Ordering::SeqCst);
    summary.fetched_records = counters.fetched_records.load(Ordering::SeqCst);
    summary.fetched_bytes = counters.fetched_bytes.load(Ordering::SeqCst);
    summary.errors = std::mem::take(&mut *counters.errors.lock().unwrap());
    for line in broker.panics() {
        summary.unreadable.push(format!("broker log: {line}"));
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

struct ProducerJob {
    id: usize,
    partition: i32,
    options: Options,
}

async fn producer(
    mut client: Client,
    job: ProducerJob,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let mut mine = Vec::new();
    let mut seq = 0;
    let n = job.options.records_per_batch.max(1);
    while !stop.load(Ordering::SeqCst) {
        let values: Vec<Bytes> = (0..n)
            .map(|i| value(job.id, seq, i, job.options.value_bytes))
            .collect();
        counters.produce_requests.fetch_add(1, Ordering::Relaxed);
        match client.produce(job.partition, &values).await {
            Ok(base_offset) => {
                counters
                    .acknowledged_records
                    .fetch_add(n as u64, Ordering::Relaxed);
                mine.push(Acked {
                    partition: job.partition,
                    base_offset,
                    connection: job.id,
                    seq,
                    records: n,
                });
            }
            Err(ClientError::Kafka(code)) => counters.error(format!("produce error code {code}")),
            Err(ClientError::Io(e)) => {
                counters.error(format!("produce connection: {e}"));
                break;
            }
        }
        seq += 1;
        tokio::time::sleep(job.options.produce_pause).await;
    }
    acked.lock().unwrap().extend(mine);
}

async fn fetcher(
    mut client: Client,
    partition: i32,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut offset = match client.end_offset(partition).await {
        Ok(offset) => offset,
        Err(e) => return counters.error(format!("list offsets: {e}")),
    };
    while !stop.load(Ordering::SeqCst) {
        counters.fetch_requests.fetch_add(1, Ordering::Relaxed);
        match client.fetch(partition, offset, 500, 1 << 20).await {
            Ok(records) => {
                counters
                    .fetched_bytes
                    .fetch_add(records.bytes as u64, Ordering::Relaxed);
                counters
                    .fetched_records
                    .fetch_add(records.values.len() as u64, Ordering::Relaxed);
                if let Some((last, _)) = records.values.last() {
                    offset = last + 1;
                }
            }
            Err(ClientError::Kafka(code)) => counters.error(format!("fetch error code {code}")),
            Err(ClientError::Io(e)) => {
                counters.error(format!("fetch connection: {e}"));
                break;
            }
        }
    }
}

/// Reads every partition back from the start and compares each
/// acknowledged record.
async fn verify(client: &mut Client, options: &Options, acked: &[Acked], summary: &mut Summary) {
    let mut by_partition: BTreeMap<i32, Vec<&Acked>> = BTreeMap::new();
    for batch in acked {
        by_partition.entry(batch.partition).or_default().push(batch);
    }
    for (partition, batches) in by_partition {
        let log = match read_partition(client, partition).await {
            Ok(log) => log,
            Err(e) => {
                summary
                    .unreadable
                    .push(format!("partition {partition} cannot be read: {e}"));
                continue;
            }
        };
        for batch in batches {
            for index in 0..batch.records {
                let offset = batch.base_offset + index as i64;
                let want = value(batch.connection, batch.seq, index, options.value_bytes);
                match log.get(&offset) {
                    Some(found) if *found == want => summary.verified_records += 1,
                    found => summary.unreadable.push(format!(
                        "partition {partition} offset {offset}: sent {:?}, read {:?}",
                        String::from_utf8_lossy(&want),
                        found.map(|f| String::from_utf8_lossy(f).into_owned())
                    )),
                }
            }
        }
    }
}

async fn read_partition(
    client: &mut Client,
    partition: i32,
) -> Result<BTreeMap<i64, Bytes>, ClientError> {
    let end = client.end_offset(partition).await?;
    let mut log = BTreeMap::new();
    let mut offset = 0;
    while offset < end {
        let records = client.fetch(partition, offset, 0, 8 << 20).await?;
        let Some(&(last, _)) = records.values.last() else {
            break;
        };
        log.extend(records.values);
        offset = last + 1;
    }
    Ok(log)
}

#[derive(Debug)]
enum ClientError {
    /// The broker answered with this error code.
    Kafka(i16),
    /// The connection failed or the bytes made no sense.
    Io(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Kafka(code) => write!(f, "error code {code}"),
            ClientError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Records of a fetch response: (offset, value), and the bytes they took.
struct Fetched {
    values: Vec<(i64, Bytes)>,
    bytes: usize,
}

/// One connection speaking the Kafka protocol, one request at a time.
struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    async fn connect(bootstrap: &str) -> Result<Client, String> {
        let stream = TcpStream::connect(bootstrap)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Client {
            stream,
            correlation_id: 0,
        })
    }

    async fn connect_owned(bootstrap: String) -> Result<Client, String> {
        Client::connect(&bootstrap).await
    }

    async fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let io = |e: &dyn std::fmt::Display| ClientError::Io(e.to_string());
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("load-test")));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(|e| io(&e))?;
        request.encode(&mut frame, version).map_err(|e| io(&e))?;
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&frame).await.map_err(|e| io(&e))?;
        let len = self.stream.read_i32().await.map_err(|e| io(&e))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_RESPONSE)
            .ok_or_else(|| ClientError::Io(format!("response frame of {len} bytes")))?;
        let mut body = vec![0; len];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| io(&e))?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| io(&e))?;
        if header.correlation_id != self.correlation_id {
            return Err(ClientError::Io(format!(
                "response to request {} where {} was expected",
                header.correlation_id, self.correlation_id
            )));
        }
        R::Response::decode(&mut body, version).map_err(|e| io(&e))
    }

    /// Sends one batch with `acks=all`; its base offset.
    async fn produce(&mut self, partition: i32, values: &[Bytes]) -> Result<i64, ClientError> {
        // Every record's sequence is -1 (no producer), so the encoder
        // writes each record as a batch of its own.
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, value)| Record {
                sequence: -1,
                ..batch::record(i as i64, 0, None, Some(value.clone()))
            })
            .collect();
        let batch = batch::encode_records(&records, Compression::None)
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let response = self.call(PRODUCE_VERSION, &request).await?;
        let answer = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| ClientError::Io("produce response without the partition".to_string()))?;
        match answer.error_code {
            0 => Ok(answer.base_offset),
            code => Err(ClientError::Kafka(code)),
        }
    }

    async fn create_topic(&mut self, partitions: i32) -> Result<(), ClientError> {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic())
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let response = self.call(CREATE_TOPICS_VERSION, &request).await?;
        match response.topics.first().map(|t| t.error_code) {
            Some(0) => Ok(()),
            Some(code) => Err(ClientError::Kafka(code)),
            None => Err(ClientError::Io(
                "create topics response without the topic".to_string(),
            )),
        }
    }

    /// The log end offset of a partition.
    async fn end_offset(&mut self, partition: i32) -> Result<i64, ClientError> {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic())
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(-1)])]);
        let response = self.call(LIST_OFFSETS_VERSION, &request).await?;
        let answer = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| {
                ClientError::Io("list offsets response without the partition".to_string())
            })?;
        match answer.error_code {
            0 => Ok(answer.offset),
            code => Err(ClientError::Kafka(code)),
        }
    }

    /// The records of one fetch, each batch decoded (so a torn or corrupt
    /// batch is an error).
    async fn fetch(
        &mut self,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        max_bytes: i32,
    ) -> Result<Fetched, ClientError> {
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)])]);
        let response = self.call(FETCH_VERSION, &request).await?;
        let answer = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Io("fetch response without the partition".to_string()))?;
        if answer.error_code != 0 {
            return Err(ClientError::Kafka(answer.error_code));
        }
        let mut records = answer.records.clone().unwrap_or_default();
        let bytes = records.len();
        let mut values = Vec::new();
        while records.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut records)
                .map_err(|e| ClientError::Io(format!("a batch that does not decode: {e}")))?;
            values.extend(
                set.records
                    .into_iter()
                    .filter(|r| r.offset >= offset)
                    .map(|r| (r.offset, r.value.unwrap_or_default())),
            );
        }
        Ok(Fetched { values, bytes })
    }
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}
