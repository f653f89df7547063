//! The limits of `config.yaml`, each pushed past by raw sockets or real
//! clients: connections over `max_connections(_per_ip)` are closed at
//! accept, idle ones after `connections_max_idle_ms`, a request over the
//! in-flight budgets is not read until earlier ones are answered, and
//! partitions past `max_partitions` are refused. A normal client works
//! afterwards every time. A low soft limit on open files is raised.

mod broker_process;
mod embedded_broker;

use broker_process::{actorlog, free_port, http_get, run, sample, BrokerProcess};
use bytes::{Buf, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, FetchRequest, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// A request frame (length prefix included) with `client_id` as its client
/// id, which pads a request to any size.
fn request(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &impl Encodable,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header encodes");
    body.encode(&mut buf, version).expect("body encodes");
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    frame
}

fn api_versions(correlation_id: i32) -> Vec<u8> {
    request(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        "limits-test",
        &ApiVersionsRequest::default(),
    )
}

/// A Fetch of `topic`-0 from offset 0 that waits up to `max_wait_ms` for data.
fn long_poll(correlation_id: i32, topic: &str, max_wait_ms: i32) -> Vec<u8> {
    let body = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    request(ApiKey::Fetch, 4, correlation_id, "limits-test", &body)
}

/// CreateTopics of `topic`, padded past 1024 bytes (a whole minimal budget).
fn create_topic_request(correlation_id: i32, topic: &str) -> Vec<u8> {
    let body = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let padding = "p".repeat(1100);
    request(ApiKey::CreateTopics, 2, correlation_id, &padding, &body)
}

fn connect(bootstrap: &str) -> TcpStream {
    let stream = TcpStream::connect(bootstrap).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream
}

/// Reads one response frame; its correlation id, or `None` if the broker
/// closed the connection.
fn response(stream: &mut TcpStream) -> Option<i32> {
    let mut length = [0u8; 4];
    match stream.read_exact(&mut length) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return None
        }
        Err(e) => panic!("reading a response: {e}"),
    }
    let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).expect("the whole response");
    Some((&body[..4]).get_i32())
}

/// Whether a connection from `source` (any loopback address) is served.
async fn served_from(source: &str, broker: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("address"))
        .expect("bind");
    let mut stream = socket.connect(broker).await.expect("connect");
    if stream.write_all(&api_versions(1)).await.is_err() {
        return false;
    }
    let mut length = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut length))
        .await
        .expect("an answer or a close")
        .is_ok()
}

/// A connection from `source` that the broker accepted (it answered), kept
/// open by the caller. A connection closed at once is tried again for a
/// few seconds: the harness's readiness probe (a connection it closes right
/// away) may still hold its slot until the broker sees it closed.
async fn held_from(source: &str, broker: SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..50 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{source}:0").parse().expect("address"))
            .expect("bind");
        let mut stream = socket.connect(broker).await.expect("connect");
        stream.write_all(&api_versions(1)).await.expect("write");
        let mut length = [0u8; 4];
        if stream.read_exact(&mut length).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
        stream.read_exact(&mut body).await.expect("response");
        return stream;
    }
    panic!("no connection from {source} was accepted in 5 s");
}

/// librdkafka can still talk to the broker.
fn librdkafka_works(bootstrap: &str) {
    let client: BaseConsumer = embedded_broker::config(bootstrap).create().expect("client");
    client
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("librdkafka gets metadata");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limits_are_closed_at_accept() {
    let broker =
        BrokerProcess::start_with_config("max_connections: 3\nmax_connections_per_ip: 2\n");
    let addr: SocketAddr = broker.bootstrap().parse().expect("address");
    let first = held_from("127.0.0.1", addr).await;
    let second = held_from("127.0.0.1", addr).await;
    assert!(
        !served_from("127.0.0.1", addr).await,
        "a third connection from one IP is closed"
    );
    let other = held_from("127.0.0.2", addr).await;
    assert!(
        !served_from("127.0.0.3", addr).await,
        "a fourth connection in all is closed"
    );
    drop((first, second, other));
    // The broker notices the closes on its own time.
    let start = Instant::now();
    while !served_from("127.0.0.1", addr).await {
        assert!(start.elapsed() < Duration::from_secs(20), "places freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    librdkafka_works(&broker.bootstrap());
}

#[test]
fn idle_connections_are_closed_and_busy_ones_are_not() {
    let broker = BrokerProcess::start_with_config("connections_max_idle_ms: 200\n");
    let b = broker.bootstrap();
    let (ok, _, stderr) = actorlog(&["--bootstrap", &b, "topics", "create", "waiting"], "");
    assert!(ok, "{stderr}");
    let mut idle = connect(&b);
    idle.write_all(&api_versions(1)).expect("write");
    assert_eq!(response(&mut idle), Some(1));
    assert_eq!(response(&mut idle), None, "closed after the idle timeout");
    // A long poll in flight is not idleness: it gets its answer when data comes.
    let mut polling = connect(&b);
    polling
        .write_all(&long_poll(2, "waiting", 60_000))
        .expect("write");
    std::thread::sleep(Duration::from_millis(600));
    let (ok, _, stderr) = run(
        Command::new("kcat").args(["-b", &b, "-P", "-t", "waiting"]),
        "wake up\n",
    );
    assert!(ok, "kcat: {stderr}");
    assert_eq!(response(&mut polling), Some(2), "the fetch is answered");
    librdkafka_works(&b);
}

/// How a long poll ends in [`created_while_a_poll_waits`].
enum PollEnd {
    /// A record arrives from another client.
    Data,
    /// Its wait runs out: nothing else gets in while the broker's whole
    /// budget is spoken for.
    Timeout,
}

/// A long poll holds part of the in-flight budget; a CreateTopics request
/// that needs the whole budget is sent after it (on the same connection or
/// another). Returns whether the topic appeared while the poll still waited,
/// after checking that the poll and then the creation are answered.
fn created_while_a_poll_waits(config: &str, same_connection: bool, end: PollEnd) -> bool {
    let metrics = free_port();
    let broker = BrokerProcess::start_with_config(&format!(
        "auto_create_topics: false\nmetrics_listen: \"127.0.0.1:{metrics}\"\n{config}"
    ));
    let b = broker.bootstrap();
    let (ok, _, stderr) = actorlog(&["--bootstrap", &b, "topics", "create", "quiet"], "");
    assert!(ok, "{stderr}");
    let max_wait = match end {
        PollEnd::Data => 60_000,
        PollEnd::Timeout => 5_000,
    };
    let mut polling = connect(&b);
    polling
        .write_all(&long_poll(1, "quiet", max_wait))
        .expect("write");
    // Only the poll is in flight now: it holds its share of the budgets.
    let start = Instant::now();
    let in_flight = || {
        sample(
            &http_get(metrics, "/metrics"),
            "actorlog_in_flight_request_bytes",
        )
    };
    while !in_flight().is_some_and(|bytes| bytes > 0.0) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the poll is read"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut other = connect(&b);
    let creating = if same_connection {
        &mut polling
    } else {
        &mut other
    };
    creating
        .write_all(&create_topic_request(2, "pushed"))
        .expect("write");
    // The partition directory shows the creation without asking the broker
    // (a request would wait behind the creation for the budget too).
    let created = || broker.data_dir().join("pushed-0").is_dir();
    let start = Instant::now();
    let mut created_early = created();
    while !created_early && start.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(50));
        created_early = created();
    }
    if let PollEnd::Data = end {
        let (ok, _, stderr) = run(
            Command::new("kcat").args(["-b", &b, "-P", "-t", "quiet"]),
            "wake up\n",
        );
        assert!(ok, "kcat: {stderr}");
    }
    assert_eq!(response(&mut polling), Some(1), "the poll is answered");
    let creating = if same_connection {
        &mut polling
    } else {
        &mut other
    };
    assert_eq!(response(creating), Some(2), "then the creation");
    assert!(created());
    librdkafka_works(&b);
    created_early
}

#[test]
fn a_connection_over_its_in_flight_budget_is_not_read() {
    assert!(
        !created_while_a_poll_waits(
            "max_in_flight_bytes_per_connection: 1024\n",
            true,
            PollEnd::Data
        ),
        "the creation waited for the poll"
    );
}

#[test]
fn connections_over_the_total_in_flight_budget_are_not_read() {
    assert!(
        !created_while_a_poll_waits("max_in_flight_bytes: 1024\n", false, PollEnd::Timeout),
        "the creation waited for the other connection's poll"
    );
}

#[test]
fn within_the_budget_pipelined_requests_run_concurrently() {
    assert!(
        created_while_a_poll_waits("", true, PollEnd::Data),
        "the creation ran while the poll waited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_past_max_partitions_are_refused() {
    let (_broker, bootstrap) = embedded_broker::start(|c| c.max_partitions = 4).await;
    let admin: AdminClient<DefaultClientContext> = embedded_broker::config(&bootstrap)
        .create()
        .expect("admin client");
    let options = AdminOptions::new();
    let create = |name: &'static str, partitions: i32| {
        let admin = &admin;
        let options = &options;
        async move {
            let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
            admin
                .create_topics([&topic], options)
                .await
                .expect("answered")[0]
                .clone()
        }
    };
    assert!(create("three", 3).await.is_ok());
    assert_eq!(
        create("two", 2).await,
        Err(("two".to_string(), RDKafkaErrorCode::PolicyViolation))
    );
    let grown = admin
        .create_partitions([&NewPartitions::new("three", 5)], &options)
        .await
        .expect("answered");
    assert_eq!(
        grown[0],
        Err(("three".to_string(), RDKafkaErrorCode::PolicyViolation))
    );
    assert!(create("one", 1).await.is_ok(), "the last place is taken");
    // Auto-creation too: Metadata names the topic with the error.
    let client: BaseConsumer = embedded_broker::config(&bootstrap)
        .set("allow.auto.create.topics", "true")
        .create()
        .expect("client");
    let metadata = client
        .fetch_metadata(Some("auto"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(
        metadata.topics()[0].error().map(RDKafkaErrorCode::from),
        Some(RDKafkaErrorCode::PolicyViolation)
    );
    embedded_broker::produce(&bootstrap, "three", 3, 30).await;
}

/// Started under the common soft limit of open files (here 64, so the test
/// stays small), the service raises it to the hard limit: more partitions
/// than the soft limit allows open files are created and written.
#[test]
fn the_service_outgrows_a_low_soft_file_limit() {
    let broker = BrokerProcess::start_with_file_limit(64);
    let b = broker.bootstrap();
    let (ok, _, stderr) = actorlog(
        &[
            "--bootstrap",
            &b,
            "topics",
            "create",
            "wide",
            "--partitions",
            "200",
        ],
        "",
    );
    assert!(ok, "create: {stderr}");
    let (ok, _, stderr) = actorlog(
        &[
            "--bootstrap",
            &b,
            "produce",
            "--topic",
            "wide",
            "--partition",
            "199",
        ],
        "last\n",
    );
    assert!(ok, "produce: {stderr}");
    let (ok, stdout, stderr) = actorlog(
        &[
            "--bootstrap",
            &b,
            "consume",
            "--topic",
            "wide",
            "--partition",
            "199",
            "--from-beginning",
            "--max-messages",
            "1",
        ],
        "",
    );
    assert!(ok, "consume: {stderr}");
    assert_eq!(stdout.trim(), "last");
}

/// A consumer whose fetch budget allows more than 8 MiB per response gets
/// it: no frame limit on the broker's writes but the protocol's (a limit on
/// responses dropped such consumers' connections, over and over).
#[test]
fn fetch_responses_over_8_mib_reach_the_consumer() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{Offset, TopicPartitionList};

    const RECORDS: usize = 120;
    let broker = BrokerProcess::start();
    let producer: ThreadedProducer<DefaultProducerContext> =
        embedded_broker::config(&broker.bootstrap())
            .set("linger.ms", "50")
            .create()
            .expect("producer");
    let value = vec![b'v'; 100 * 1024];
    for _ in 0..RECORDS {
        producer
            .send(BaseRecord::<(), _>::to("large-fetches").payload(&value))
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
    let consumer: BaseConsumer = embedded_broker::config(&broker.bootstrap())
        .set("group.id", "large-fetches")
        .set("max.partition.fetch.bytes", "16777216")
        .set("fetch.max.bytes", "33554432")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("large-fetches", 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&assignment).expect("assign");
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < RECORDS && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                assert_eq!(message.payload_len(), value.len());
                read += 1;
            }
            Some(Err(e)) => panic!("the consumer failed: {e}"),
            None => {}
        }
    }
    assert_eq!(read, RECORDS, "records read back through large fetches");
}
