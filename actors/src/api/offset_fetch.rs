//! OffsetFetch: committed offsets of one group (v0-v7) or several (v8+),
//! for the listed partitions or, with a null topic list, all of them.

use crate::broker::Broker;
use crate::security::{Access, Operation};
use crate::store::offsets::PartitionOffset;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::io;

/// From this version several groups are asked at once.
const MULTI_GROUP_VERSION: i16 = 8;

/// One partition's answer: offset, leader epoch, metadata, error.
struct Answer {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<StrBytes>,
    error: i16,
}

/// The answers per topic in one of the response's two layouts, which differ
/// only in their type names: the top-level topics of v0-v7 (`Topic`,
/// `Partition`) and each group's topics from v8 (`Topics`, `Partitions`).
macro_rules! layout {
    ($topics:expr, $topic:ident, $partition:ident) => {
        $topics
            .into_iter()
            .map(|(name, answers)| {
                $topic::default().with_name(name).with_partitions(
                    answers
                        .into_iter()
                        .map(|a| {
                            $partition::default()
                                .with_partition_index(a.partition)
                                .with_committed_offset(a.offset)
                                .with_committed_leader_epoch(a.leader_epoch)
                                .with_metadata(a.metadata)
                                .with_error_code(a.error)
                        })
                        .collect(),
                )
            })
            .collect()
    };
}

pub async fn handle(
    broker: &Broker,
    access: &Access,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= MULTI_GROUP_VERSION {
        let mut groups = Vec::with_capacity(req.groups.len());
        for group in req.groups {
            let wanted = wanted(group.topics, |t| (t.name, t.partition_indexes));
            let (topics, error) = lookup(broker, access, &group.group_id, wanted).await;
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id)
                    .with_error_code(error)
                    .with_topics(layout!(
                        topics,
                        OffsetFetchResponseTopics,
                        OffsetFetchResponsePartitions
                    )),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = wanted(req.topics, |t| (t.name, t.partition_indexes));
    let (topics, error) = lookup(broker, access, &req.group_id, wanted).await;
    OffsetFetchResponse::default()
        .with_error_code(error)
        .with_topics(layout!(
            topics,
            OffsetFetchResponseTopic,
            OffsetFetchResponsePartition
        ))
}

/// The partitions asked for, by topic, from either layout of the request;
/// `None` asks for all.
fn wanted<T>(topics: Option<Vec<T>>, split: impl Fn(T) -> (TopicName, Vec<i32>)) -> Wanted {
    topics.map(|topics| topics.into_iter().map(split).collect())
}

type Wanted = Option<Vec<(TopicName, Vec<i32>)>>;

/// The answers per topic, and a group-level error. The group needs
/// DESCRIBE; of all its topics only those the requester may describe are
/// answered, and a topic it names and may not describe is
/// TOPIC_AUTHORIZATION_FAILED.
async fn lookup(
    broker: &Broker,
    access: &Access,
    group: &GroupId,
    wanted: Wanted,
) -> (Vec<(TopicName, Vec<Answer>)>, i16) {
    let ready = access
        .group(Operation::Describe, group)
        .and_then(|()| broker.check_coordinator(group));
    if let Err(e) = ready {
        return (Vec::new(), e.code());
    }
    let store = broker.offsets();
    let storage_error = |e: io::Error| {
        log::error!("offset fetch for {}: {e}", &**group);
        ResponseError::KafkaStorageError.code()
    };
    let Some(wanted) = wanted else {
        return match store.fetch_all(group).await {
            Ok(all) => {
                let visible = all
                    .into_iter()
                    .filter(|o| access.topic(Operation::Describe, &o.topic).is_ok())
                    .collect();
                (group_by_topic(visible), 0)
            }
            Err(e) => (Vec::new(), storage_error(e)),
        };
    };
    // The partitions of the topics the requester may describe, read at once.
    let allowed: Vec<(String, i32)> = wanted
        .iter()
        .filter(|(name, _)| access.topic(Operation::Describe, name).is_ok())
        .flat_map(|(name, partitions)| partitions.iter().map(|p| (name.to_string(), *p)))
        .collect();
    let mut found = match store.fetch_each(group, allowed).await {
        Ok(found) => found.into_iter(),
        Err(e) => {
            let error = storage_error(e);
            let failed = wanted
                .into_iter()
                .map(|(name, partitions)| {
                    let code = match access.topic(Operation::Describe, &name) {
                        Ok(()) => error,
                        Err(denied) => denied.code(),
                    };
                    let answers = partitions.into_iter().map(|p| none(p, code)).collect();
                    (name, answers)
                })
                .collect();
            return (failed, 0);
        }
    };
    let topics = wanted
        .into_iter()
        .map(|(name, partitions)| {
            if let Err(error) = access.topic(Operation::Describe, &name) {
                let denied = partitions
                    .into_iter()
                    .map(|partition| none(partition, error.code()))
                    .collect();
                return (name, denied);
            }
            let answers = partitions
                .into_iter()
                .map(|partition| match found.next() {
                    Some(Ok(Some(c))) => Answer {
                        partition,
                        offset: c.offset,
                        leader_epoch: c.leader_epoch,
                        metadata: Some(StrBytes::from_string(c.metadata.unwrap_or_default())),
                        error: 0,
                    },
                    Some(Ok(None)) => none(partition, 0),
                    Some(Err(e)) => none(partition, storage_error(e)),
                    // fetch_each answers every partition asked.
                    None => none(partition, ResponseError::UnknownServerError.code()),
                })
                .collect();
            (name, answers)
        })
        .collect();
    (topics, 0)
}

fn none(partition: i32, error: i16) -> Answer {
    Answer {
        partition,
        offset: -1,
        leader_epoch: -1,
        metadata: Some(StrBytes::default()),
        error,
    }
}

fn group_by_topic(offsets: Vec<PartitionOffset>) -> Vec<(TopicName, Vec<Answer>)> {
    let mut topics: Vec<(TopicName, Vec<Answer>)> = Vec::new();
    for o in offsets {
        let answer = Answer {
            partition: o.partition,
            offset: o.committed.offset,
            leader_epoch: o.committed.leader_epoch,
            metadata: Some(StrBytes::from_string(
                o.committed.metadata.unwrap_or_default(),
            )),
            error: 0,
        };
        match topics.last_mut() {
            Some((name, answers)) if name.as_str() == o.topic => answers.push(answer),
            _ => topics.push((TopicName(StrBytes::from_string(o.topic)), vec![answer])),
        }
    }
    topics
}
