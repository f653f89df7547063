//! Records as the embedding API hands them out.

use super::Error;
use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use kafka_protocol::ResponseError;

/// A record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// Milliseconds since the epoch: the producer's, or the broker's with
    /// `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
    /// The key, if the record has one.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers in the order the producer wrote them.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Decodes a read's batches into the data records at or after `from`
/// (a read starts at the batch holding `from`; transaction markers are not
/// records).
pub(super) fn decode(mut records: Bytes, from: i64) -> Result<Vec<ConsumedRecord>, Error> {
    let sets = RecordBatchDecoder::decode_all(&mut records)
        .map_err(|e| Error::kafka(ResponseError::CorruptMessage, e.to_string()))?;
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r: &Record| !r.control && r.offset >= from)
        .map(|r| ConsumedRecord {
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
        .collect())
}
