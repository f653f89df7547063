//! Message sets, the record format of magic 0 and 1 that Produce v0-v2 and
//! Fetch v0-v3 carry (clients that predate Kafka 0.11, e.g. Sarama with its
//! default version, kafka-go 0.2). The log holds v2 batches only: produced
//! message sets become one batch, fetched batches become a message set.

use crate::partition::batch;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy};
use kafka_protocol::records::{Compression, RecordBatchDecoder, TimestampType};

/// Offset, size, CRC and magic come before anything else in a message.
const MAGIC_AT: usize = 16;
const CODEC_MASK: i8 = 0x07;
const LOG_APPEND_TIME: i8 = 0x08;

/// The magic byte of a record set that starts with a whole message (or a
/// batch), if there is one.
pub fn magic(records: &[u8]) -> Option<i8> {
    records.get(MAGIC_AT).map(|&m| m as i8)
}

/// One message of a set, its compressed wrapper already opened.
struct Message {
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

/// The v2 batch holding the messages of `set`, compressed as they were.
pub fn to_batch(set: Bytes) -> Result<Bytes, String> {
    let mut messages = Vec::new();
    let compression = read_set(set, &mut messages, true)?;
    if messages.is_empty() {
        return Err("the message set holds no message".to_string());
    }
    let records: Vec<_> = messages
        .into_iter()
        .zip(0..)
        .map(|(m, offset)| batch::record(offset, m.timestamp, m.key, m.value))
        .collect();
    batch::encode_records(&records, compression).map_err(|e| e.to_string())
}

/// Reads the messages of a set into `out`; returns the codec of its
/// wrappers (a set nested in a wrapper may not be compressed again).
fn read_set(mut set: Bytes, out: &mut Vec<Message>, outer: bool) -> Result<Compression, String> {
    let mut compression = Compression::None;
    while !set.is_empty() {
        if set.len() < 12 {
            return Err("truncated message header".to_string());
        }
        set.advance(8);
        let size = set.get_i32();
        if size < 14 || size as usize > set.len() {
            return Err(format!("message size {size} does not fit the set"));
        }
        let mut message = set.split_to(size as usize);
        let crc = message.get_u32();
        if crc32fast::hash(&message) != crc {
            return Err("message CRC mismatch".to_string());
        }
        let magic = message.get_i8();
        let attributes = message.get_i8();
        let timestamp = match magic {
            0 => -1,
            1 if message.len() >= 8 => message.get_i64(),
            _ => return Err(format!("message magic {magic} is not 0 or 1")),
        };
        let key = bytes(&mut message)?;
        let value = bytes(&mut message)?;
        let codec = match attributes & CODEC_MASK {
            0 => {
                out.push(Message {
                    timestamp,
                    key,
                    value,
                });
                continue;
            }
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            other => return Err(format!("message codec {other} is not known")),
        };
        if !outer {
            return Err("a compressed message inside a compressed message".to_string());
        }
        let inner = decompress(codec, value.unwrap_or_default())?;
        let first = out.len();
        read_set(inner, out, false)?;
        if attributes & LOG_APPEND_TIME != 0 {
            out[first..]
                .iter_mut()
                .for_each(|m| m.timestamp = timestamp);
        }
        compression = codec;
    }
    Ok(compression)
}

fn bytes(buf: &mut Bytes) -> Result<Option<Bytes>, String> {
    if buf.len() < 4 {
        return Err("truncated message".to_string());
    }
    let len = buf.get_i32();
    if len < 0 {
        return Ok(None);
    }
    if len as usize > buf.len() {
        return Err("message field longer than the message".to_string());
    }
    Ok(Some(buf.split_to(len as usize)))
}

fn decompress(codec: Compression, mut data: Bytes) -> Result<Bytes, String> {
    let whole = |b: &mut Bytes| Ok(b.split_to(b.len()));
    match codec {
        Compression::Gzip => Gzip::decompress(&mut data, whole),
        Compression::Snappy => Snappy::decompress(&mut data, whole),
        Compression::Lz4 => Lz4::decompress(&mut data, whole),
        _ => Ok(data),
    }
    .map_err(|e| format!("cannot decompress a {codec:?} message: {e}"))
}

/// The records of the v2 `batches` from offset `from` on as an
/// uncompressed message set of `magic` (0 or 1). Control batches (markers
/// of transactions) have no message form and are left out.
pub fn from_batches(batches: Bytes, magic: i8, from: i64) -> Bytes {
    let mut out = BytesMut::new();
    let mut rest = batches;
    while let Ok(header) = batch::parse_header(&rest) {
        if header.total_len() > rest.len() {
            break;
        }
        let mut one = rest.split_to(header.total_len());
        if header.is_control() {
            continue;
        }
        // The log's batches were checked when written; one that does not
        // decode now ends the set rather than the connection.
        let Ok(set) = RecordBatchDecoder::decode(&mut one) else {
            break;
        };
        for record in set.records.iter().filter(|r| r.offset >= from) {
            let log_append = record.timestamp_type == TimestampType::LogAppend;
            put_message(
                &mut out,
                magic,
                record.offset,
                record.timestamp,
                log_append,
                &record.key,
                &record.value,
            );
        }
    }
    out.freeze()
}

fn put_message(
    out: &mut BytesMut,
    magic: i8,
    offset: i64,
    timestamp: i64,
    log_append: bool,
    key: &Option<Bytes>,
    value: &Option<Bytes>,
) {
    let mut body = BytesMut::new();
    body.put_i8(magic);
    if magic == 0 {
        body.put_i8(0);
    } else {
        body.put_i8(if log_append { LOG_APPEND_TIME } else { 0 });
        body.put_i64(timestamp);
    }
    for field in [key, value] {
        match field {
            Some(data) => {
                body.put_i32(data.len() as i32);
                body.put_slice(data);
            }
            None => body.put_i32(-1),
        }
    }
    out.put_i64(offset);
    out.put_i32(body.len() as i32 + 4);
    out.put_u32(crc32fast::hash(&body));
    out.put_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::compression::Compressor;

    fn message(out: &mut BytesMut, magic: i8, offset: i64, timestamp: i64, value: &str) {
        let value = Some(Bytes::copy_from_slice(value.as_bytes()));
        put_message(out, magic, offset, timestamp, false, &None, &value);
    }

    fn set(magic: i8, first: i64, messages: &[(i64, &str)]) -> Bytes {
        let mut out = BytesMut::new();
        for (offset, (timestamp, value)) in (first..).zip(messages) {
            message(&mut out, magic, offset, *timestamp, value);
        }
        out.freeze()
    }

    #[test]
    fn a_message_set_round_trips_through_a_batch() {
        for magic in [0, 1] {
            let produced = set(magic, 0, &[(10, "a"), (11, "b")]);
            let batches = to_batch(produced.clone()).expect("converts");
            assert_eq!(batch::validate(&batches).expect("valid").records_count, 2);
            assert_eq!(from_batches(batches.clone(), magic, 0), produced);
            assert_eq!(
                from_batches(batches, magic, 1),
                set(magic, 1, &[(11, "b")]),
                "records before the fetch offset are left out"
            );
        }
    }

    #[test]
    fn a_gzip_wrapper_opens_into_its_messages() {
        let inner = set(1, 0, &[(5, "x"), (6, "y")]);
        let mut compressed = BytesMut::new();
        <Gzip as Compressor<BytesMut>>::compress(&mut compressed, |b| {
            b.put_slice(&inner);
            Ok(())
        })
        .expect("compressed");
        let mut body = BytesMut::new();
        body.put_i8(1);
        body.put_i8(1);
        body.put_i64(6);
        body.put_i32(-1);
        body.put_i32(compressed.len() as i32);
        body.put_slice(&compressed);
        let mut wrapper = BytesMut::new();
        wrapper.put_i64(1);
        wrapper.put_i32(body.len() as i32 + 4);
        wrapper.put_u32(crc32fast::hash(&body));
        wrapper.put_slice(&body);
        let batches = to_batch(wrapper.freeze()).expect("converts");
        let header = batch::validate(&batches).expect("valid");
        assert!(matches!(header.compression(), Ok(Compression::Gzip)));
        assert_eq!(from_batches(batches, 1, 0), inner);
    }

    #[test]
    fn a_bad_crc_is_refused() {
        let mut produced = BytesMut::from(&set(1, 0, &[(1, "a")])[..]);
        let last = produced.len() - 1;
        produced[last] ^= 1;
        let error = to_batch(produced.freeze()).unwrap_err();
        assert!(error.contains("CRC"), "{error}");
    }

    #[test]
    fn control_batches_have_no_message_form() {
        let marker = batch::control_batch(7, 0, true, 1, 100).expect("marker");
        assert!(from_batches(marker, 1, 0).is_empty());
    }
}
