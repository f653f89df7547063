//! DeleteRecords: move partitions' log start offsets forward.

use crate::broker::Broker;
use crate::partition::DeleteRecords;
use crate::security::{Access, Operation};
use futures_util::future::join_all;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

pub async fn handle(
    broker: &Broker,
    access: &Access,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = req.topics.into_iter().map(|t| async move {
        let topic = super::authorized_topic(broker, access, Operation::Delete, &t.name);
        let partitions = t.partitions.into_iter().map(|p| {
            let target = super::authorized_replica(&topic, p.partition_index);
            async move {
                let result = super::ask(target, DeleteRecords { offset: p.offset }).await;
                let response =
                    DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                match result {
                    Ok(low_watermark) => response.with_low_watermark(low_watermark),
                    Err(e) => response.with_low_watermark(-1).with_error_code(e.code()),
                }
            }
        });
        DeleteRecordsTopicResult::default()
            .with_name(t.name)
            .with_partitions(join_all(partitions).await)
    });
    DeleteRecordsResponse::default().with_topics(join_all(topics).await)
}
