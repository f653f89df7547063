//! DescribeTopicPartitions (KIP-966): topics and their partitions by name,
//! in name order, at most `response_partition_limit` partitions per
//! response and a cursor to go on from. An empty topic list means every
//! topic. Leaders, replicas and ISRs come from the cluster metadata in a
//! cluster. Eligible leader replicas (KIP-966's ELR) are not kept, so they
//! are always null.

use crate::broker::Broker;
use crate::security::{Access, Operation};
use crate::topic::Topic;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one response holds, whatever the request asks.
const MAX_PARTITIONS: usize = 2000;
const OPERATIONS_OMITTED: i32 = i32::MIN;

pub fn handle(
    broker: &Broker,
    access: &Access,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    // Every topic means every topic the requester may describe; one it
    // names and may not describe is TOPIC_AUTHORIZATION_FAILED.
    let mut wanted: Vec<(String, super::AuthorizedTopic)> = if req.topics.is_empty() {
        broker
            .topics()
            .into_iter()
            .filter(|t| access.topic(Operation::Describe, &t.name).is_ok())
            .map(|t| (t.name.to_string(), Ok(Some(t))))
            .collect()
    } else {
        req.topics
            .into_iter()
            .map(|t| {
                let topic = super::authorized_topic(broker, access, Operation::Describe, &t.name);
                (t.name.to_string(), topic)
            })
            .collect()
    };
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    wanted.dedup_by(|a, b| a.0 == b.0);
    let (start_topic, start_partition) = req.cursor.map_or((String::new(), 0), |c| {
        (c.topic_name.to_string(), c.partition_index.max(0))
    });
    let limit = usize::try_from(req.response_partition_limit)
        .ok()
        .filter(|&l| l > 0)
        .map_or(MAX_PARTITIONS, |l| l.min(MAX_PARTITIONS));
    let mut room = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for (name, topic) in wanted.into_iter().filter(|(name, _)| *name >= start_topic) {
        let first = if name == start_topic {
            start_partition
        } else {
            0
        };
        let topic = match topic {
            Ok(Some(topic)) => topic,
            Ok(None) => {
                topics.push(failed(name, ResponseError::UnknownTopicOrPartition));
                continue;
            }
            Err(error) => {
                topics.push(failed(name, error));
                continue;
            }
        };
        let count = topic.partitions.len() as i32;
        if room == 0 {
            next_cursor = Some(cursor(&name, first));
            break;
        }
        let last = count.min(first.saturating_add(room as i32));
        room -= (last - first).max(0) as usize;
        topics.push(describe(broker, &topic, first..last));
        if last < count {
            next_cursor = Some(cursor(&name, last));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition)
}

fn failed(name: String, error: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.code())
        .with_name(Some(TopicName(StrBytes::from_string(name))))
        .with_topic_id(Uuid::nil())
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}

fn describe(
    broker: &Broker,
    topic: &Topic,
    partitions: std::ops::Range<i32>,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = partitions
        .filter_map(|index| {
            let view = broker.partition_view(topic, index)?;
            let partition =
                DescribeTopicPartitionsResponsePartition::default().with_partition_index(index);
            Some(super::with_placement!(partition, view))
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name.to_string(),
        ))))
        .with_topic_id(topic.id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}
