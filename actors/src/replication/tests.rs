//! The fetcher against a real leader: an in-memory broker serving Kafka on
//! 127.0.0.1 whose partition leads, and the partition of a second
//! in-memory broker following it. Every wait is bounded by [`PATIENCE`], so
//! a broken fetcher fails the test rather than hanging it.

use super::client::Client;
use super::fetcher::{Fetcher, FollowedPartition};
use crate::broker::{Broker, Storage};
use crate::config::BrokerConfig;
use crate::partition::batch::testing::batch_sized;
use crate::partition::replication::{
    BecomeFollower, BecomeLeader, FollowerPosition, IsrChange, ReplicaControl, Truncate,
};
use crate::partition::{Append, Appended, Read};
use crate::security::peer::PeerSecurity;
use crate::topic::{LogOffsets, PartitionHandle, Topic};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

const TOPIC: &str = "replicated";

/// The bound of every wait: far above what replication takes here.
const PATIENCE: Duration = Duration::from_secs(20);

/// A controller that commits every ISR change proposed.
struct AcceptAll;

impl ReplicaControl for AcceptAll {
    fn eligible(&self, _: i32) -> bool {
        true
    }

    fn alter_isr(
        &self,
        change: IsrChange,
    ) -> BoxFuture<'static, Result<(Vec<i32>, i32), ResponseError>> {
        Box::pin(async move { Ok((change.isr, change.partition_epoch + 1)) })
    }
}

/// One in-memory broker with the topic, and its Kafka listener if asked.
struct Node {
    broker: Arc<Broker>,
    topic: Arc<Topic>,
    listening: Option<(String, actix_rt::task::JoinHandle<()>)>,
}

impl Node {
    async fn start(id: i32, listen: bool) -> Node {
        let config = BrokerConfig {
            node_id: id,
            worker_threads: 1,
            ..BrokerConfig::default()
        };
        let broker = Broker::start_with(config, Storage::Memory).unwrap();
        let topic = broker
            .create_topic(TOPIC, 1, Default::default())
            .await
            .unwrap();
        let listening = if listen {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let serving = broker.clone();
            let endpoint = std::sync::Arc::new(broker.listeners()[0].clone());
            let task = actix_rt::spawn(async move {
                crate::listener::serve(serving, listener, endpoint, None).await;
            });
            Some((addr, task))
        } else {
            None
        };
        Node {
            broker,
            topic,
            listening,
        }
    }

    fn partition(&self) -> &PartitionHandle {
        self.topic.partition(0).unwrap()
    }

    fn addr(&self) -> String {
        self.listening.as_ref().unwrap().0.clone()
    }

    async fn lead(&self, leader_epoch: i32, replicas: &[i32]) {
        let become_leader = BecomeLeader {
            topic: TOPIC.into(),
            partition: 0,
            local_id: self.broker.config().node_id,
            leader_epoch,
            partition_epoch: 0,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            min_isr: 1,
            lag_ms: 60_000,
            control: Arc::new(AcceptAll),
        };
        self.partition().addr.send(become_leader).await.unwrap();
    }

    async fn follow(&self, leader: i32, leader_epoch: i32) {
        let follow = BecomeFollower {
            leader,
            leader_epoch,
        };
        self.partition().addr.send(follow).await.unwrap();
    }

    /// Appends one batch of `records` records (values of `value_len`
    /// bytes, so batches differ), acks=1.
    async fn append(&self, records: usize, value_len: usize) -> Appended {
        let timestamps: Vec<i64> = (0..records as i64).collect();
        let append = Append {
            batches: vec![Bytes::from(batch_sized(&timestamps, value_len))],
            durable: false,
        };
        self.partition().addr.send(append).await.unwrap().unwrap()
    }

    fn offsets(&self) -> LogOffsets {
        *self.partition().offsets.borrow()
    }

    /// Waits until the partition's offsets satisfy `done`.
    async fn until(&self, what: &str, mut done: impl FnMut(&LogOffsets) -> bool) {
        let mut offsets = self.partition().offsets.clone();
        let reached = tokio::time::timeout(PATIENCE, offsets.wait_for(|o| done(o)))
            .await
            .is_ok_and(|changed| changed.is_ok());
        assert!(reached, "{what}: offsets stayed at {:?}", self.offsets());
    }

    /// The whole log as a consumer reads it (up to the high watermark).
    async fn log_bytes(&self) -> Bytes {
        let read = Read {
            offset: 0,
            max_bytes: 1 << 20,
            committed: false,
            current_leader_epoch: -1,
            replica: None,
        };
        match self.partition().addr.send(read).await.unwrap() {
            Ok(records) => records.records,
            Err(failure) => panic!("reading the log: {}", failure.error),
        }
    }

    async fn truncate(&self, leader_epoch: i32, offset: i64, epoch: i32) -> FollowerPosition {
        let truncate = Truncate {
            leader_epoch,
            offset,
            epoch: Some(epoch),
            fully: false,
        };
        self.partition().addr.send(truncate).await.unwrap().unwrap()
    }

    fn stop(self) {
        if let Some((_, task)) = self.listening {
            task.abort();
        }
        self.broker.stop();
    }
}

/// A fetcher of broker 2 following `leader`'s partition in `leader_epoch`
/// into `follower`'s.
fn fetch(leader: &Node, follower: &Node, leader_epoch: i32) -> (Fetcher, watch::Sender<i64>) {
    let (broker_epoch, broker_epoch_rx) = watch::channel(7);
    let fetcher = Fetcher::start(
        2,
        broker_epoch_rx,
        1,
        leader.addr(),
        PeerSecurity::default(),
        &follower.broker.next_arbiter(),
    );
    fetcher.set_partitions(vec![FollowedPartition {
        topic: TOPIC.into(),
        topic_id: leader.topic.id,
        partition: 0,
        leader_epoch,
        addr: follower.partition().addr.clone(),
    }]);
    (fetcher, broker_epoch)
}

/// After the fetcher is gone, makes the follower lead alone (so a plain
/// read sees its whole log) and compares both logs byte for byte: the
/// same batches at the same offsets with the same leader epochs.
async fn assert_same_logs(leader: &Node, follower: &Node, next_epoch: i32) {
    follower.lead(next_epoch, &[2]).await;
    let (ours, theirs) = (leader.log_bytes().await, follower.log_bytes().await);
    assert!(!ours.is_empty());
    assert_eq!(ours, theirs);
}

#[actix_rt::test]
async fn follower_copies_the_leader_and_acks_all_waits_for_it() {
    let leader = Node::start(1, true).await;
    let follower = Node::start(2, false).await;
    leader.lead(1, &[1, 2]).await;
    follower.follow(1, 1).await;
    leader.append(3, 10).await;
    leader.append(1, 200).await;
    leader.append(5, 1).await;
    // acks=all: answered once follower 2, in the ISR, has the batch.
    let acks_all = Append {
        batches: vec![Bytes::from(batch_sized(&[1, 2], 30))],
        durable: true,
    };
    let acked = actix_rt::spawn(leader.partition().addr.send(acks_all));
    leader
        .until("the acks=all batch written", |o| o.log_end == 11)
        .await;
    assert_eq!(leader.offsets().high_watermark, 0);
    assert!(!acked.is_finished());

    let (fetcher, _broker_epoch) = fetch(&leader, &follower, 1);
    let appended = tokio::time::timeout(PATIENCE, acked)
        .await
        .expect("acks=all append answered")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(appended.base_offset, 9);
    leader
        .until("leader high watermark", |o| o.high_watermark == 11)
        .await;
    follower
        .until("follower caught up", |o| {
            o.log_end == 11 && o.high_watermark == 11
        })
        .await;
    // Appends after the fetcher caught up reach the follower too.
    leader.append(2, 5).await;
    leader
        .until("leader high watermark", |o| o.high_watermark == 13)
        .await;
    fetcher.stop();
    assert_same_logs(&leader, &follower, 2).await;
    leader.stop();
    follower.stop();
}

#[actix_rt::test]
async fn diverged_follower_truncates_and_then_matches_the_leader() {
    let leader = Node::start(1, true).await;
    let follower = Node::start(2, false).await;
    // Epoch 1: both got [0, 2); the follower, leading alone, also [2, 8).
    follower.lead(1, &[2]).await;
    follower.append(2, 8).await;
    follower.append(3, 9).await;
    follower.append(3, 10).await;
    leader.lead(1, &[1]).await;
    leader.append(2, 8).await;
    // Epoch 2: broker 1 leads and writes other records from offset 2.
    leader.lead(2, &[1, 2]).await;
    leader.append(1, 50).await;
    leader.append(2, 60).await;
    follower.follow(1, 2).await;
    assert_eq!(follower.offsets().log_end, 8);

    let (fetcher, _broker_epoch) = fetch(&leader, &follower, 2);
    leader
        .until("leader high watermark", |o| o.high_watermark == 5)
        .await;
    follower
        .until("follower caught up", |o| o.log_end == 5)
        .await;
    fetcher.stop();
    assert_same_logs(&leader, &follower, 3).await;
    leader.stop();
    follower.stop();
}

#[actix_rt::test]
async fn follower_truncation_stops_where_its_own_epoch_ends() {
    let node = Node::start(2, false).await;
    // Epoch 1 holds [0, 2) and [2, 5); epoch 3 holds [5, 8).
    node.lead(1, &[2]).await;
    node.append(2, 8).await;
    node.append(3, 8).await;
    node.lead(3, &[2]).await;
    node.append(3, 8).await;
    node.follow(1, 4).await;
    // The leader's epoch 2 ends at 8; this log never had epoch 2, so its
    // epoch 3 records are not the leader's: it cuts where its own epoch
    // before 2 ends, and the next fetch checks again from there.
    let position = node.truncate(4, 8, 2).await;
    assert_eq!((position.log_end, position.last_epoch), (5, 1));
    // The leader's epoch 1 ends at 3, inside the batch [2, 5): the whole
    // batch goes.
    let position = node.truncate(4, 3, 1).await;
    assert_eq!((position.log_end, position.last_epoch), (2, 1));
    // The leader's epoch 1 ends later than ours: nothing to cut.
    let position = node.truncate(4, 9, 1).await;
    assert_eq!((position.log_end, position.last_epoch), (2, 1));
    node.stop();
}

/// A peer that reads one request frame and answers `answer` (the bytes
/// after the length prefix, or a bare length prefix if `length` is given).
async fn fake_peer(answer: Vec<u8>, length: Option<i32>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    actix_rt::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let request_length = stream.read_i32().await.unwrap();
        let mut request = vec![0; request_length as usize];
        stream.read_exact(&mut request).await.unwrap();
        let length = length.unwrap_or(answer.len() as i32);
        stream.write_all(&length.to_be_bytes()).await.unwrap();
        stream.write_all(&answer).await.unwrap();
        // Held open until the client has read what it wanted.
        let _ = stream.read_i32().await;
    });
    addr
}

async fn api_versions_from(addr: &str) -> std::io::Result<()> {
    use kafka_protocol::messages::ApiVersionsRequest;
    let mut client =
        Client::connect(addr, "test".into(), PATIENCE, &PeerSecurity::default()).await?;
    client
        .request(3, &ApiVersionsRequest::default())
        .await
        .map(drop)
}

#[actix_rt::test]
async fn client_refuses_oversized_and_mismatched_responses() {
    let oversized = fake_peer(Vec::new(), Some(200 << 20)).await;
    let error = api_versions_from(&oversized).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("response length"), "{error}");
    // A response header naming another correlation id than the request's 0.
    let mismatched = fake_peer(99i32.to_be_bytes().to_vec(), None).await;
    let error = api_versions_from(&mismatched).await.unwrap_err();
    assert!(error.to_string().contains("correlation id 99"), "{error}");
}

#[actix_rt::test]
async fn client_gets_a_brokers_answer() {
    use kafka_protocol::messages::ApiVersionsRequest;
    let node = Node::start(1, true).await;
    let mut client = Client::connect(
        &node.addr(),
        "test".into(),
        PATIENCE,
        &PeerSecurity::default(),
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let versions = client
            .request(3, &ApiVersionsRequest::default())
            .await
            .unwrap();
        assert_eq!(versions.error_code, 0);
        assert!(versions
            .api_keys
            .iter()
            .any(|k| k.api_key == 1 && k.max_version >= 15));
    }
    drop(client);
    node.stop();
}
