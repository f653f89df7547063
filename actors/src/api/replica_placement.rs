//! Requests that move leaders or replicas: ElectLeaders,
//! AlterPartitionReassignments, ListPartitionReassignments and
//! AlterReplicaLogDirs. The broker carries them out (see
//! `broker::placement`); on one broker with one log directory every
//! partition already has its only possible leader, replica set and
//! directory, so each answers as Kafka does when there is nothing to do, and
//! refuses placements this broker cannot satisfy.

use crate::broker::{Broker, TopicError};
use crate::security::{Access, Operation};
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, BrokerId, ElectLeadersRequest,
    ElectLeadersResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::path::Path;

fn exists(broker: &Broker, topic: &TopicName, partition: i32) -> bool {
    broker
        .topic(topic)
        .is_some_and(|t| t.has_partition(partition))
}

/// Preferred-leader elections: each named partition's first replica
/// becomes its leader again if it is alive and in the ISR (on a single
/// broker it always leads already). Without a partition list Kafka reports
/// only partitions it elected, so the answer is empty.
pub async fn elect_leaders(
    broker: &Broker,
    access: &Access,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let allowed = access.cluster(Operation::Alter);
    let mut results = Vec::new();
    for t in req.topic_partitions.unwrap_or_default() {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for &p in &t.partitions {
            let outcome = if let Err(error) = allowed {
                Err(TopicError::new(error, "not authorized"))
            } else if exists(broker, &t.topic, p) {
                broker.elect_preferred_leader(&t.topic, p).await
            } else {
                Err(TopicError::new(
                    ResponseError::UnknownTopicOrPartition,
                    "no such topic or partition",
                ))
            };
            let result = PartitionResult::default().with_partition_id(p);
            partitions.push(match outcome {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            });
        }
        results.push(
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partitions),
        );
    }
    ElectLeadersResponse::default()
        .with_error_code(allowed.err().map_or(0, |e| e.code()))
        .with_replica_election_results(results)
}

/// The reassignments in progress, of every partition or of those named.
pub fn list_partition_reassignments(
    broker: &Broker,
    access: &Access,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if let Err(error) = access.cluster(Operation::Describe) {
        return ListPartitionReassignmentsResponse::default().with_error_code(error.code());
    }
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| *t.name.0 == *topic && t.partition_indexes.contains(&partition)),
    };
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for r in broker.reassignments() {
        if !wanted(&r.topic, r.partition) {
            continue;
        }
        let partition = OngoingPartitionReassignment::default()
            .with_partition_index(r.partition)
            .with_replicas(ids(r.replicas))
            .with_adding_replicas(ids(r.adding))
            .with_removing_replicas(ids(r.removing));
        match topics.last_mut() {
            Some(t) if *t.name.0 == *r.topic => t.partitions.push(partition),
            _ => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(r.topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// Starts or cancels reassignments, partition by partition: each answer
/// says whether the controller accepted that one.
pub async fn alter_partition_reassignments(
    broker: &Broker,
    access: &Access,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    if let Err(error) = access.cluster(Operation::Alter) {
        return AlterPartitionReassignmentsResponse::default().with_error_code(error.code());
    }
    let allow = req.allow_replication_factor_change;
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let outcome = if exists(broker, &t.name, p.partition_index) {
                let target = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
                broker
                    .reassign_partition(&t.name, p.partition_index, target, allow)
                    .await
            } else {
                Err(TopicError::new(
                    ResponseError::UnknownTopicOrPartition,
                    "no such topic or partition",
                ))
            };
            let response =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match outcome {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(e.code.code())
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            });
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow)
        .with_responses(responses)
}

/// A replica can move only to the one directory it is already in.
pub fn alter_replica_log_dirs(
    broker: &Broker,
    access: &Access,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let allowed = access.cluster(Operation::Alter);
    let data_dir = &broker.config().data_dir;
    let ours = |path: &str| same_dir(Path::new(path), data_dir);
    let results = req
        .dirs
        .into_iter()
        .flat_map(|dir| {
            let known = ours(&dir.path);
            dir.topics.into_iter().map(move |t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|&p| {
                        let error = if let Err(error) = allowed {
                            error.code()
                        } else if !known {
                            ResponseError::LogDirNotFound.code()
                        } else if !exists(broker, &t.name, p) {
                            ResponseError::UnknownTopicOrPartition.code()
                        } else {
                            0
                        };
                        AlterReplicaLogDirPartitionResult::default()
                            .with_partition_index(p)
                            .with_error_code(error)
                    })
                    .collect();
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(t.name)
                    .with_partitions(partitions)
            })
        })
        .collect();
    AlterReplicaLogDirsResponse::default().with_results(results)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
