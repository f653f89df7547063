//! Source positions in the offsets topic, in Kafka Connect's shapes. A
//! file source's: key `["<connector>",{"filename":"<file>"}]`, value
//! `{"position":N}` (with the file's inode, so a restart can tell a rotated
//! file). A CDC source's, as Debezium's: key
//! `["<connector>",{"server":"<topic.prefix>"}]`, value `{"lsn":N}`, the
//! end of the last delivered transaction's commit record. Written in the
//! transaction of the records they cover; read back `read_committed`.

use crate::clients::{offsets_reader, REQUEST_TIMEOUT};
use crate::config::ConnectConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where a file source stands: the byte after the last line produced, in
/// the file with this inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePosition {
    pub inode: u64,
    pub offset: u64,
}

pub fn key(connector: &str, file: &Path) -> Vec<u8> {
    json!([connector, { "filename": file.to_string_lossy() }])
        .to_string()
        .into_bytes()
}

pub fn value(position: FilePosition) -> Vec<u8> {
    json!({ "position": position.offset, "inode": position.inode })
        .to_string()
        .into_bytes()
}

pub fn file_position(bytes: &[u8]) -> Option<FilePosition> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    Some(FilePosition {
        offset: v.get("position")?.as_u64()?,
        inode: v.get("inode")?.as_u64()?,
    })
}

pub fn cdc_key(connector: &str, topic_prefix: &str) -> Vec<u8> {
    json!([connector, { "server": topic_prefix }])
        .to_string()
        .into_bytes()
}

pub fn cdc_value(lsn: u64) -> Vec<u8> {
    json!({ "lsn": lsn }).to_string().into_bytes()
}

pub fn cdc_lsn(bytes: &[u8]) -> Option<u64> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("lsn")?.as_u64()
}

/// The last committed position under `key`, reading the whole offsets
/// topic. Called after the task's producer fenced its predecessor, so no
/// transaction of an earlier incarnation is still open: every position it
/// wrote is either committed (and read here) or aborted.
pub fn read<T>(
    config: &ConnectConfig,
    key: &[u8],
    parse: fn(&[u8]) -> Option<T>,
) -> Result<Option<T>, String> {
    let topic = &config.offsets_topic;
    // The log end now is past every position written before the fence; a
    // read_committed reader gets there once other connectors' open
    // transactions (bounded by their timeout) end. Asked of a
    // read_uncommitted client: librdkafka asks for the last stable offset
    // otherwise, which an open transaction can hold before our position.
    let (start, end) = offsets_reader(config, "read_uncommitted")
        .map_err(|e| e.to_string())?
        .fetch_watermarks(topic, 0, REQUEST_TIMEOUT)
        .map_err(|e| format!("cannot read the end of {topic}: {e}"))?;
    if end <= start {
        return Ok(None);
    }
    let consumer = offsets_reader(config, "read_committed").map_err(|e| e.to_string())?;
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    consumer.assign(&partitions).map_err(|e| e.to_string())?;
    let mut found = None;
    let started = Instant::now();
    loop {
        let positions = consumer.position().map_err(|e| e.to_string())?;
        let position = positions
            .find_partition(topic, 0)
            .and_then(|p| p.offset().to_raw())
            .unwrap_or(0);
        if position >= end {
            return Ok(found);
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "{topic} was not read to its end ({end}) in time: is a transaction open on it?"
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.key() == Some(key) => found = m.payload().and_then(parse),
            Some(Ok(_)) | None => {}
            Some(Err(e)) => return Err(format!("cannot read {topic}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_have_kafka_connects_shape() {
        let k = key("lines", Path::new("/tmp/a.txt"));
        assert_eq!(k, br#"["lines",{"filename":"/tmp/a.txt"}]"#);
        let p = FilePosition {
            inode: 12,
            offset: 345,
        };
        assert_eq!(value(p), br#"{"inode":12,"position":345}"#);
        assert_eq!(file_position(&value(p)), Some(p));
        assert_eq!(file_position(b"{\"position\":1}"), None);
        assert_eq!(cdc_key("cdc", "shop"), br#"["cdc",{"server":"shop"}]"#);
        assert_eq!(cdc_lsn(&cdc_value(23_803_792)), Some(23_803_792));
    }
}
