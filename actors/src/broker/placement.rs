//! Where a partition's replicas live and which one leads: preferred-leader
//! elections and replica reassignments. In a cluster each is a command to
//! the controller quorum (the image runs the reassignment itself, see
//! `cluster::reassignment`); on a single broker every partition already has
//! its only possible leader and replica set.

use super::{Broker, TopicError};
use crate::cluster::image::Command;
use kafka_protocol::ResponseError;

/// One partition being reassigned, as ListPartitionReassignments shows it.
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Broker {
    /// Makes a partition's first replica its leader again (ElectLeaders,
    /// PREFERRED), if it is alive and in the ISR. On a single broker it
    /// always is: ELECTION_NOT_NEEDED.
    pub async fn elect_preferred_leader(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(), TopicError> {
        let Some(node) = &self.cluster else {
            return Err(TopicError::new(
                ResponseError::ElectionNotNeeded,
                "the partition's leader is already its preferred leader",
            ));
        };
        let command = Command::ElectPreferredLeader {
            topic: topic.to_string(),
            partition: partition_index(partition)?,
        };
        self.submit(node, command).await.map(|_| ())
    }

    /// Moves a partition to the `target` replicas, or with `None` cancels
    /// its reassignment (AlterPartitionReassignments). Answers once the
    /// controller accepted it; the new replicas then catch up on their own.
    pub async fn reassign_partition(
        &self,
        topic: &str,
        partition: i32,
        target: Option<Vec<i32>>,
        allow_replication_factor_change: bool,
    ) -> Result<(), TopicError> {
        let Some(node) = &self.cluster else {
            return single_broker_target(target.as_deref(), self.config.node_id);
        };
        let command = Command::ReassignPartition {
            topic: topic.to_string(),
            partition: partition_index(partition)?,
            target,
            allow_replication_factor_change,
        };
        self.submit(node, command).await.map(|_| ())
    }

    /// The reassignments in progress, in topic and partition order.
    pub fn reassignments(&self) -> Vec<Reassignment> {
        let Some(node) = &self.cluster else {
            return Vec::new();
        };
        let image = node.image().borrow().clone();
        image
            .reassignments()
            .map(|(topic, partition, p)| Reassignment {
                topic: topic.to_string(),
                partition: partition as i32,
                replicas: p.replicas.clone(),
                adding: p.adding.clone(),
                removing: p.removing.clone(),
            })
            .collect()
    }
}

fn partition_index(partition: i32) -> Result<u32, TopicError> {
    u32::try_from(partition)
        .map_err(|_| TopicError::new(ResponseError::UnknownTopicOrPartition, "no such partition"))
}

/// On a single broker the only replica set there can be is this broker, and
/// with nothing ever in progress there is nothing to cancel.
fn single_broker_target(replicas: Option<&[i32]>, node: i32) -> Result<(), TopicError> {
    let Some(replicas) = replicas else {
        return Err(TopicError::new(
            ResponseError::NoReassignmentInProgress,
            "no reassignment is in progress",
        ));
    };
    let invalid = |message: String| {
        Err(TopicError::new(
            ResponseError::InvalidReplicaAssignment,
            message,
        ))
    };
    match replicas {
        [] => invalid("the replica list is empty".to_string()),
        [only] if *only == node => Ok(()),
        _ => match replicas.iter().find(|&&r| r != node) {
            Some(other) => invalid(format!(
                "broker {other} is not registered; this broker runs alone as broker {node}"
            )),
            None => invalid(format!("broker {node} is listed more than once")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_broker_is_a_valid_single_broker_target() {
        assert!(single_broker_target(Some(&[1]), 1).is_ok());
        for replicas in [&[][..], &[2], &[1, 1], &[1, 3]] {
            let error = single_broker_target(Some(replicas), 1).unwrap_err();
            assert_eq!(
                error.code,
                ResponseError::InvalidReplicaAssignment,
                "{replicas:?}"
            );
        }
        let error = single_broker_target(None, 1).unwrap_err();
        assert_eq!(error.code, ResponseError::NoReassignmentInProgress);
    }
}
