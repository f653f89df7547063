//! DescribeQuorum: the controller quorum of the cluster metadata log
//! (`__cluster_metadata`, partition 0), as kafka-python's
//! `describe_metadata_quorum` and Kafka's `kafka-metadata-quorum` ask.
//!
//! Any broker answers from its own view of the raft group: the leader, the
//! epoch (raft term), the applied log end as the high watermark, voters and
//! observers. Log ends of other replicas are known only on the leader (its
//! replication progress); elsewhere they are -1, as Kafka reports what a
//! replica does not know. A single broker is the only voter of a quorum of
//! its own, as a one-node KRaft cluster is.

use crate::broker::Broker;
use crate::cluster::Quorum;
use crate::security::{Access, Operation};
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;

/// The topic of the metadata log, as Kafka names it.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn handle(
    broker: &Broker,
    access: &Access,
    req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    if let Err(error) = access.cluster(Operation::Describe) {
        return DescribeQuorumResponse::default().with_error_code(error.code());
    }
    let quorum = match broker.cluster() {
        Some(node) => node.quorum(),
        None => alone(broker),
    };
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let known = &*topic.topic_name == METADATA_TOPIC;
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| match (known, p.partition_index) {
                    (true, 0) => partition(&quorum),
                    _ => PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name)
                .with_partitions(partitions)
        })
        .collect();
    let nodes = quorum
        .addresses
        .iter()
        .map(|(&id, address)| {
            Node::default()
                .with_node_id(BrokerId(id))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_string(address.ip().to_string()))
                    .with_port(address.port())])
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}

fn partition(quorum: &Quorum) -> PartitionData {
    let replicas = |of: &[(i32, Option<i64>)]| -> Vec<ReplicaState> {
        of.iter()
            .map(|&(id, end)| {
                ReplicaState::default()
                    .with_replica_id(BrokerId(id))
                    .with_log_end_offset(end.unwrap_or(-1))
                    .with_last_fetch_timestamp(-1)
                    .with_last_caught_up_timestamp(-1)
            })
            .collect()
    };
    PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(quorum.leader.unwrap_or(-1)))
        .with_leader_epoch(quorum.epoch)
        .with_high_watermark(quorum.high_watermark)
        .with_current_voters(replicas(&quorum.voters))
        .with_observers(replicas(&quorum.observers))
}

/// A broker without a cluster: the only voter, at epoch 1, of a metadata
/// log it keeps on its own (its catalog), reachable on its first listener.
fn alone(broker: &Broker) -> Quorum {
    let id = broker.config().node_id;
    let addresses: BTreeMap<i32, std::net::SocketAddr> = broker
        .listeners()
        .first()
        .map(|l| (id, l.bind))
        .into_iter()
        .collect();
    Quorum {
        leader: Some(id),
        epoch: 1,
        high_watermark: 0,
        voters: vec![(id, Some(0))],
        observers: Vec::new(),
        addresses,
    }
}
