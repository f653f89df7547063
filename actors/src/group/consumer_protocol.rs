//! The consumer protocol's bytes: what Kafka consumers put in JoinGroup
//! metadata (their subscription) and SyncGroup assignments, each a version
//! number followed by the message. The broker only stores these bytes; the
//! embedded consumer, the simulator and the admin tools read and write them.

use super::assignor::{by_topic, TopicPartition};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::fmt;

/// The protocol type of consumer groups in JoinGroup.
pub const PROTOCOL_TYPE: &str = "consumer";

/// Version 1 carries owned partitions, which cooperative assignors need,
/// and every client since Kafka 2.4 reads it.
const SUBSCRIPTION_VERSION: i16 = 1;
const ASSIGNMENT_VERSION: i16 = 0;

/// Bytes that are not a consumer-protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "consumer protocol: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// A member's subscription, as its JoinGroup metadata carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    /// Partitions the member holds (cooperative rebalancing).
    pub owned: Vec<TopicPartition>,
}

pub fn encode_subscription(subscription: &Subscription) -> Result<Bytes, ProtocolError> {
    let topics = subscription
        .topics
        .iter()
        .map(|t| StrBytes::from_string(t.clone()))
        .collect();
    let owned = by_topic(&subscription.owned)
        .into_iter()
        .map(|(topic, partitions)| {
            OwnedTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect();
    let message = ConsumerProtocolSubscription::default()
        .with_topics(topics)
        .with_owned_partitions(owned);
    encode(&message, SUBSCRIPTION_VERSION)
}

pub fn decode_subscription(bytes: Bytes) -> Result<Subscription, ProtocolError> {
    let (version, mut body) = versioned(bytes)?;
    let message = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|e| ProtocolError(e.to_string()))?;
    Ok(Subscription {
        topics: message.topics.iter().map(|t| t.to_string()).collect(),
        owned: message
            .owned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.to_string(), *p)))
            .collect(),
    })
}

pub fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes, ProtocolError> {
    let topics = by_topic(partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            AssignedTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect();
    let message = ConsumerProtocolAssignment::default().with_assigned_partitions(topics);
    encode(&message, ASSIGNMENT_VERSION)
}

/// An empty assignment (what a SyncGroup error carries) is no partitions.
pub fn decode_assignment(bytes: Bytes) -> Result<Vec<TopicPartition>, ProtocolError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (version, mut body) = versioned(bytes)?;
    let message = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|e| ProtocolError(e.to_string()))?;
    Ok(message
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.to_string(), *p)))
        .collect())
}

fn encode(message: &impl Encodable, version: i16) -> Result<Bytes, ProtocolError> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&version.to_be_bytes());
    message
        .encode(&mut out, version)
        .map_err(|e| ProtocolError(e.to_string()))?;
    Ok(out.freeze())
}

fn versioned(mut bytes: Bytes) -> Result<(i16, Bytes), ProtocolError> {
    if bytes.remaining() < 2 {
        return Err(ProtocolError("no version".into()));
    }
    let version = bytes.get_i16();
    Ok((version, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trips() {
        let subscription = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned: vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)],
        };
        let bytes = encode_subscription(&subscription).unwrap();
        assert_eq!(decode_subscription(bytes).unwrap(), subscription);
    }

    #[test]
    fn assignment_round_trips() {
        let partitions = vec![("a".to_string(), 0), ("a".to_string(), 2)];
        let bytes = encode_assignment(&partitions).unwrap();
        assert_eq!(decode_assignment(bytes).unwrap(), partitions);
        assert_eq!(decode_assignment(Bytes::new()).unwrap(), Vec::new());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_subscription(Bytes::from_static(b"\x00")).is_err());
        assert!(decode_subscription(Bytes::from_static(b"\x00\x00\xff\xff\xff\x7f")).is_err());
        assert!(decode_assignment(Bytes::from_static(b"\x00\x00\x00\x00\x00\x09")).is_err());
    }
}
