//! Request versions older than the codec decodes (Kafka 4.0 dropped them,
//! KIP-896) that clients still send: Sarama with its default version
//! (Produce v0, Fetch v0, ListOffsets v0, OffsetCommit v1), Sarama's admin
//! (DescribeConfigs v0, the ACL APIs v0) and kafka-go 0.2 (CreateTopics v0,
//! Produce and Fetch v2). An old request is rewritten into the layout of the oldest
//! version the codec knows and handled as that one; its response is
//! written in the old layout.

use crate::protocol::message_set;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::StrBytes;

/// The config source of a default value (DescribeConfigs v1+); v0 has a
/// flag instead.
const SOURCE_DEFAULT: i8 = 5;

/// The resource pattern type of ACL v0 requests: names match exactly.
const PATTERN_LITERAL: i8 = 3;

/// The version whose layout `version` of `api` is decoded as, if it is an
/// old version served here.
pub fn decoded_as(api: ApiKey, version: i16) -> Option<i16> {
    match (api, version) {
        (ApiKey::Produce, 0..=2) => Some(3),
        (ApiKey::Fetch, 0..=3) => Some(4),
        (ApiKey::ListOffsets, 0) => Some(1),
        (ApiKey::OffsetCommit, 0..=1) => Some(2),
        (ApiKey::OffsetFetch, 0) => Some(1),
        (ApiKey::CreateTopics, 0..=1) => Some(2),
        (ApiKey::DeleteTopics, 0) => Some(1),
        (ApiKey::DescribeConfigs, 0) => Some(1),
        (ApiKey::DescribeAcls | ApiKey::CreateAcls | ApiKey::DeleteAcls, 0) => Some(1),
        _ => None,
    }
}

/// Rewrites the body of an old request into the layout of
/// [`decoded_as`]. Message sets in a Produce request become v2 batches; one
/// that does not convert is passed on as it is, for the produce checks to
/// refuse.
pub fn rewrite_request(api: ApiKey, version: i16, body: Bytes) -> Result<Bytes, String> {
    let mut input = Reader(body);
    let mut out = BytesMut::new();
    match api {
        ApiKey::Produce => {
            out.put_i16(-1); // no transactional id
            out.put_slice(&input.take(6)?); // acks, timeout
            input.array(&mut out, |input, out| {
                out.put_slice(&input.string()?);
                input.array(out, |input, out| {
                    out.put_slice(&input.take(4)?);
                    let records = input.records()?;
                    let records = match message_set::magic(&records) {
                        Some(0 | 1) => message_set::to_batch(records.clone()).unwrap_or(records),
                        _ => records,
                    };
                    out.put_i32(records.len() as i32);
                    out.put_slice(&records);
                    Ok(())
                })
            })?;
        }
        ApiKey::Fetch => {
            out.put_slice(&input.take(12)?); // replica, max wait, min bytes
            let max_bytes = if version >= 3 { input.i32()? } else { i32::MAX };
            out.put_i32(max_bytes);
            out.put_i8(0); // read uncommitted
            out.put_slice(&input.rest());
        }
        ApiKey::ListOffsets => {
            out.put_slice(&input.take(4)?); // replica
            input.array(&mut out, |input, out| {
                out.put_slice(&input.string()?);
                input.array(out, |input, out| {
                    out.put_slice(&input.take(12)?); // partition, timestamp
                    input.take(4)?; // max number of offsets: always one here
                    Ok(())
                })
            })?;
        }
        ApiKey::OffsetCommit => {
            out.put_slice(&input.string()?); // group
            if version == 1 {
                out.put_slice(&input.take(4)?); // generation
                out.put_slice(&input.string()?); // member
            } else {
                out.put_i32(-1);
                out.put_i16(0);
            }
            out.put_i64(-1); // the broker's retention
            input.array(&mut out, |input, out| {
                out.put_slice(&input.string()?);
                input.array(out, |input, out| {
                    out.put_slice(&input.take(12)?); // partition, offset
                    if version == 1 {
                        input.take(8)?; // commit timestamp: the broker's clock is used
                    }
                    out.put_slice(&input.string()?); // metadata
                    Ok(())
                })
            })?;
        }
        ApiKey::CreateTopics if version == 0 => {
            out.put_slice(&input.rest());
            out.put_i8(0); // not validate only
        }
        ApiKey::DescribeConfigs => {
            out.put_slice(&input.rest());
            out.put_i8(0); // no synonyms
        }
        ApiKey::DescribeAcls => acl_binding(&mut input, &mut out)?,
        ApiKey::CreateAcls | ApiKey::DeleteAcls => {
            input.array(&mut out, acl_binding)?;
        }
        _ => out.put_slice(&input.rest()),
    }
    if !input.0.is_empty() {
        return Err(format!("{} bytes after the request", input.0.len()));
    }
    Ok(out.freeze())
}

/// An ACL binding or filter: resource type and name, then the pattern type
/// that v0 lacks, then principal, host, operation and permission.
fn acl_binding(input: &mut Reader, out: &mut BytesMut) -> Result<(), String> {
    out.put_slice(&input.take(1)?);
    out.put_slice(&input.string()?);
    out.put_i8(PATTERN_LITERAL);
    out.put_slice(&input.string()?);
    out.put_slice(&input.string()?);
    out.put_slice(&input.take(2)?);
    Ok(())
}

/// Writes the response to an old request in its version's layout.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), String> {
    let as_version = decoded_as(api, version).ok_or("not an old version")?;
    match body {
        ResponseKind::Produce(response) => {
            put_array(out, &response.responses, |out, topic| {
                put_string(out, Some(&topic.name));
                put_array(out, &topic.partition_responses, |out, p| {
                    out.put_i32(p.index);
                    out.put_i16(p.error_code);
                    out.put_i64(p.base_offset);
                    if version >= 2 {
                        out.put_i64(p.log_append_time_ms);
                    }
                });
            });
            if version >= 1 {
                out.put_i32(response.throttle_time_ms);
            }
        }
        ResponseKind::Fetch(response) => {
            if version >= 1 {
                out.put_i32(response.throttle_time_ms);
            }
            put_array(out, &response.responses, |out, topic| {
                put_string(out, Some(&topic.topic));
                put_array(out, &topic.partitions, |out, p| {
                    out.put_i32(p.partition_index);
                    out.put_i16(p.error_code);
                    out.put_i64(p.high_watermark);
                    let records = p.records.clone().unwrap_or_default();
                    out.put_i32(records.len() as i32);
                    out.put_slice(&records);
                });
            });
        }
        ResponseKind::ListOffsets(response) => {
            put_array(out, &response.topics, |out, topic| {
                put_string(out, Some(&topic.name));
                put_array(out, &topic.partitions, |out, p| {
                    out.put_i32(p.partition_index);
                    out.put_i16(p.error_code);
                    let offsets: &[i64] = if p.error_code == 0 { &[p.offset] } else { &[] };
                    put_array(out, offsets, |out, offset| out.put_i64(*offset));
                });
            });
        }
        ResponseKind::CreateTopics(response) => {
            put_array(out, &response.topics, |out, topic| {
                put_string(out, Some(&topic.name));
                out.put_i16(topic.error_code);
                if version >= 1 {
                    put_string(out, topic.error_message.as_ref());
                }
            });
        }
        ResponseKind::DeleteTopics(response) => {
            put_array(out, &response.responses, |out, topic| {
                put_string(out, topic.name.as_deref());
                out.put_i16(topic.error_code);
            });
        }
        ResponseKind::DescribeConfigs(response) => {
            out.put_i32(response.throttle_time_ms);
            put_array(out, &response.results, |out, result| {
                out.put_i16(result.error_code);
                put_string(out, result.error_message.as_ref());
                out.put_i8(result.resource_type);
                put_string(out, Some(&result.resource_name));
                put_array(out, &result.configs, |out, config| {
                    put_string(out, Some(&config.name));
                    put_string(out, config.value.as_ref());
                    out.put_u8(config.read_only.into());
                    out.put_u8((config.config_source == SOURCE_DEFAULT).into());
                    out.put_u8(config.is_sensitive.into());
                });
            });
        }
        ResponseKind::DescribeAcls(response) => {
            out.put_i32(response.throttle_time_ms);
            out.put_i16(response.error_code);
            put_string(out, response.error_message.as_ref());
            put_array(out, &response.resources, |out, resource| {
                out.put_i8(resource.resource_type);
                put_string(out, Some(&resource.resource_name));
                put_array(out, &resource.acls, |out, acl| {
                    put_string(out, Some(&acl.principal));
                    put_string(out, Some(&acl.host));
                    out.put_i8(acl.operation);
                    out.put_i8(acl.permission_type);
                });
            });
        }
        ResponseKind::DeleteAcls(response) => {
            out.put_i32(response.throttle_time_ms);
            put_array(out, &response.filter_results, |out, result| {
                out.put_i16(result.error_code);
                put_string(out, result.error_message.as_ref());
                put_array(out, &result.matching_acls, |out, acl| {
                    out.put_i16(acl.error_code);
                    put_string(out, acl.error_message.as_ref());
                    out.put_i8(acl.resource_type);
                    put_string(out, Some(&acl.resource_name));
                    put_string(out, Some(&acl.principal));
                    put_string(out, Some(&acl.host));
                    out.put_i8(acl.operation);
                    out.put_i8(acl.permission_type);
                });
            });
        }
        // OffsetCommit v0-v1, OffsetFetch v0 and CreateAcls v0 answer as
        // the next version.
        other => other.encode(out, as_version).map_err(|e| e.to_string())?,
    }
    Ok(())
}

fn put_array<T>(out: &mut BytesMut, items: &[T], mut put: impl FnMut(&mut BytesMut, &T)) {
    out.put_i32(items.len() as i32);
    for item in items {
        put(out, item);
    }
}

fn put_string(out: &mut BytesMut, value: Option<&StrBytes>) {
    match value {
        Some(s) => {
            out.put_i16(s.len() as i16);
            out.put_slice(s.as_bytes());
        }
        None => out.put_i16(-1),
    }
}

/// Reads fields of an old request, each kept as its raw bytes.
struct Reader(Bytes);

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, String> {
        if self.0.len() < n {
            return Err("the request ends early".to_string());
        }
        Ok(self.0.split_to(n))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(self.take(4)?.get_i32())
    }

    fn rest(&mut self) -> Bytes {
        self.0.split_off(0)
    }

    /// A (nullable) string with its length prefix.
    fn string(&mut self) -> Result<Bytes, String> {
        let len = (&self.take(2)?[..]).get_i16();
        let mut raw = BytesMut::new();
        raw.put_i16(len);
        raw.put_slice(&self.take(len.max(0) as usize)?);
        Ok(raw.freeze())
    }

    /// A record set, without its length prefix.
    fn records(&mut self) -> Result<Bytes, String> {
        let len = self.i32()?;
        self.take(len.max(0) as usize)
    }

    /// An array: copies its count to `out`, then runs `item` for each.
    fn array(
        &mut self,
        out: &mut BytesMut,
        mut item: impl FnMut(&mut Reader, &mut BytesMut) -> Result<(), String>,
    ) -> Result<(), String> {
        let count = self.i32()?;
        out.put_i32(count);
        for _ in 0..count.max(0) {
            item(self, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{DescribeConfigsRequest, FetchRequest, OffsetCommitRequest};
    use kafka_protocol::protocol::Decodable;

    fn string(out: &mut BytesMut, s: &str) {
        put_string(out, Some(&StrBytes::from_string(s.to_string())));
    }

    #[test]
    fn offset_commit_v1_keeps_generation_member_and_offsets() {
        let mut old = BytesMut::new();
        string(&mut old, "group");
        old.put_i32(3);
        string(&mut old, "member");
        old.put_i32(1);
        string(&mut old, "topic");
        old.put_i32(1);
        old.put_i32(2); // partition
        old.put_i64(42); // offset
        old.put_i64(1_700_000_000_000); // timestamp
        string(&mut old, "meta");
        let mut body = rewrite_request(ApiKey::OffsetCommit, 1, old.freeze()).expect("rewritten");
        let req = OffsetCommitRequest::decode(&mut body, 2).expect("decodes as v2");
        assert_eq!(req.group_id.as_str(), "group");
        assert_eq!(req.generation_id_or_member_epoch, 3);
        assert_eq!(req.member_id.as_str(), "member");
        let partition = &req.topics[0].partitions[0];
        assert_eq!(
            (partition.partition_index, partition.committed_offset),
            (2, 42)
        );
        assert_eq!(
            partition.committed_metadata.as_ref().map(|m| m.as_str()),
            Some("meta")
        );
    }

    #[test]
    fn offset_commit_v0_is_a_commit_outside_any_generation() {
        let mut old = BytesMut::new();
        string(&mut old, "group");
        old.put_i32(0);
        let mut body = rewrite_request(ApiKey::OffsetCommit, 0, old.freeze()).expect("rewritten");
        let req = OffsetCommitRequest::decode(&mut body, 2).expect("decodes as v2");
        assert_eq!(req.generation_id_or_member_epoch, -1);
        assert!(req.member_id.is_empty());
    }

    #[test]
    fn fetch_v2_reads_uncommitted_without_a_response_limit() {
        let mut old = BytesMut::new();
        old.put_i32(-1);
        old.put_i32(500);
        old.put_i32(1);
        old.put_i32(0);
        let mut body = rewrite_request(ApiKey::Fetch, 2, old.freeze()).expect("rewritten");
        let req = FetchRequest::decode(&mut body, 4).expect("decodes as v4");
        assert_eq!((req.max_wait_ms, req.min_bytes), (500, 1));
        assert_eq!((req.max_bytes, req.isolation_level), (i32::MAX, 0));
    }

    #[test]
    fn describe_configs_v0_answers_with_a_default_flag() {
        let mut old = BytesMut::new();
        old.put_i32(0);
        let mut body =
            rewrite_request(ApiKey::DescribeConfigs, 0, old.freeze()).expect("rewritten");
        DescribeConfigsRequest::decode(&mut body, 1).expect("decodes as v1");

        use kafka_protocol::messages::describe_configs_response::{
            DescribeConfigsResourceResult, DescribeConfigsResult,
        };
        use kafka_protocol::messages::DescribeConfigsResponse;
        let config = DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_static_str("a"))
            .with_value(Some(StrBytes::from_static_str("b")))
            .with_config_source(SOURCE_DEFAULT);
        let response =
            DescribeConfigsResponse::default().with_results(vec![DescribeConfigsResult::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_configs(vec![config])]);
        let mut out = BytesMut::new();
        encode_response(
            ApiKey::DescribeConfigs,
            0,
            &ResponseKind::DescribeConfigs(response),
            &mut out,
        )
        .expect("encoded");
        let mut want = BytesMut::new();
        want.put_i32(0); // throttle
        want.put_i32(1);
        want.put_i16(0);
        string(&mut want, ""); // the codec's default error message
        want.put_i8(2);
        string(&mut want, "t");
        want.put_i32(1);
        string(&mut want, "a");
        string(&mut want, "b");
        want.put_slice(&[0, 1, 0]); // read only, default, sensitive
        assert_eq!(out, want);
    }

    #[test]
    fn create_topics_v0_and_v1_answer_without_a_throttle_time() {
        use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
        use kafka_protocol::messages::{CreateTopicsResponse, TopicName};
        let response = CreateTopicsResponse::default()
            .with_throttle_time_ms(7)
            .with_topics(vec![CreatableTopicResult::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_error_code(36)
                .with_error_message(None)]);
        for version in [0, 1] {
            let mut out = BytesMut::new();
            let body = ResponseKind::CreateTopics(response.clone());
            encode_response(ApiKey::CreateTopics, version, &body, &mut out).expect("encoded");
            let mut want = BytesMut::new();
            want.put_i32(1);
            string(&mut want, "t");
            want.put_i16(36);
            if version == 1 {
                want.put_i16(-1); // no error message
            }
            assert_eq!(out, want, "v{version}");
        }
    }

    #[test]
    fn acl_v0_bindings_match_names_literally() {
        use kafka_protocol::messages::CreateAclsRequest;
        let mut old = BytesMut::new();
        old.put_i32(1);
        old.put_i8(2); // topic
        string(&mut old, "t");
        string(&mut old, "User:alice");
        string(&mut old, "*");
        old.put_slice(&[3, 3]); // read, allow
        let mut body = rewrite_request(ApiKey::CreateAcls, 0, old.freeze()).expect("rewritten");
        let req = CreateAclsRequest::decode(&mut body, 1).expect("decodes as v1");
        let creation = &req.creations[0];
        assert_eq!(creation.resource_pattern_type, PATTERN_LITERAL);
        assert_eq!(creation.principal.as_str(), "User:alice");
        assert_eq!((creation.operation, creation.permission_type), (3, 3));
    }

    #[test]
    fn every_advertised_version_is_decoded_directly_or_through_an_old_layout() {
        for api in crate::api::api_versions::handle(None).api_keys {
            let key = ApiKey::try_from(api.api_key).expect("a known api");
            let decodable = key.valid_versions();
            for version in api.min_version..=api.max_version {
                let layout = decoded_as(key, version).unwrap_or(version);
                assert!(
                    (decodable.min..=decodable.max).contains(&layout),
                    "{key:?} v{version} is advertised but not decoded"
                );
            }
        }
    }

    #[test]
    fn a_truncated_old_request_is_an_error() {
        let error =
            rewrite_request(ApiKey::ListOffsets, 0, Bytes::from_static(&[0, 0])).unwrap_err();
        assert!(error.contains("ends early"), "{error}");
    }
}
