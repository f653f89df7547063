//! DescribeLogDirs: the broker's one log directory, with the size of every
//! partition in it and (v4) the space of the file system holding it.

use crate::broker::Broker;
use crate::partition::Describe;
use crate::security::{Access, Operation};
use crate::topic::Topic;
use futures_util::future::join_all;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::path::Path;
use std::sync::Arc;

/// Kafka's value for a volume size it cannot tell.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if let Err(error) = access.cluster(Operation::Describe) {
        return DescribeLogDirsResponse::default().with_error_code(error.code());
    }
    // Requested partitions that do not exist are left out, as Kafka does.
    let wanted: Vec<(Arc<Topic>, Vec<i32>)> = match req.topics {
        None => broker
            .topics()
            .into_iter()
            .map(|t| {
                let all = (0..t.partitions.len() as i32).collect();
                (t, all)
            })
            .collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| broker.topic(&t.topic).map(|topic| (topic, t.partitions)))
            .collect(),
    };
    let topics = wanted.iter().map(|(topic, indexes)| async move {
        let partitions = indexes.iter().filter_map(|&index| {
            let handle = topic.partition(index)?;
            Some(async move {
                let size = handle.addr.send(Describe).await.ok()?.size_bytes;
                Some(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index)
                        .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX)),
                )
            })
        });
        DescribeLogDirsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.name.to_string())))
            .with_partitions(join_all(partitions).await.into_iter().flatten().collect())
    });
    let topics = join_all(topics).await;
    let dir = &broker.config().data_dir;
    let (total, usable) = volume_bytes(dir).unwrap_or((UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}

/// Total and available bytes of the file system holding `dir`.
fn volume_bytes(dir: &Path) -> Option<(i64, i64)> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let block = i64::try_from(stat.f_frsize).ok()?;
    let total = i64::try_from(stat.f_blocks).ok()?.checked_mul(block)?;
    let usable = i64::try_from(stat.f_bavail).ok()?.checked_mul(block)?;
    Some((total, usable))
}
