//! Requests that move leaders or replicas: ElectLeaders,
//! AlterPartitionReassignments, ListPartitionReassignments and
//! AlterReplicaLogDirs. On one broker with one log directory every partition
//! already has its only possible leader, replica set and directory, so each
//! answers as Kafka does when there is nothing to do, and refuses placements
//! this broker cannot satisfy.

use crate::broker::{Broker, TopicError};
use crate::security::{Access, Operation};
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, BrokerId, ElectLeadersRequest,
    ElectLeadersResponse, ListPartitionReassignmentsResponse, TopicName,
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

/// No reassignment is ever in progress.
pub fn list_partition_reassignments(access: &Access) -> ListPartitionReassignmentsResponse {
    let allowed = access.cluster(Operation::Describe);
    ListPartitionReassignmentsResponse::default()
        .with_error_code(allowed.err().map_or(0, |e| e.code()))
}

/// The only replica set a partition can have here is this broker.
pub fn alter_partition_reassignments(
    broker: &Broker,
    access: &Access,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    if let Err(error) = access.cluster(Operation::Alter) {
        return AlterPartitionReassignmentsResponse::default().with_error_code(error.code());
    }
    let node = BrokerId(broker.config().node_id);
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let outcome = if !exists(broker, &t.name, p.partition_index) {
                        Err((
                            ResponseError::UnknownTopicOrPartition,
                            "no such topic or partition".to_string(),
                        ))
                    } else {
                        check_replicas(p.replicas.as_deref(), node)
                    };
                    let response = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match outcome {
                        Ok(()) => response,
                        Err((error, message)) => response
                            .with_error_code(error.code())
                            .with_error_message(Some(StrBytes::from_string(message))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}

/// `None` replicas cancels a reassignment, and there is none to cancel.
fn check_replicas(
    replicas: Option<&[BrokerId]>,
    node: BrokerId,
) -> Result<(), (ResponseError, String)> {
    let Some(replicas) = replicas else {
        return Err((
            ResponseError::NoReassignmentInProgress,
            "no reassignment is in progress".to_string(),
        ));
    };
    let invalid = |message: String| Err((ResponseError::InvalidReplicaAssignment, message));
    match replicas {
        [] => invalid("the replica list is empty".to_string()),
        [only] if *only == node => Ok(()),
        _ => match replicas.iter().find(|&&r| r != node) {
            Some(other) => invalid(format!(
                "broker {} is not registered; this cluster has only broker {}",
                other.0, node.0
            )),
            None => invalid(format!("broker {} is listed more than once", node.0)),
        },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_broker_is_a_valid_replica_set() {
        let node = BrokerId(1);
        assert!(check_replicas(Some(&[node]), node).is_ok());
        for replicas in [
            Some(&[][..]),
            Some(&[BrokerId(2)][..]),
            Some(&[node, node][..]),
            Some(&[node, BrokerId(3)][..]),
        ] {
            let (error, _) = check_replicas(replicas, node).unwrap_err();
            assert_eq!(
                error,
                ResponseError::InvalidReplicaAssignment,
                "{replicas:?}"
            );
        }
        let (error, _) = check_replicas(None, node).unwrap_err();
        assert_eq!(error, ResponseError::NoReassignmentInProgress);
    }
}
