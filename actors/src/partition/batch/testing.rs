//! Builds valid batches for the tests of this module and its siblings.

use super::*;

/// A batch with one record per timestamp, each with a `value_len`-byte
/// value, CreateTime, uncompressed, base offset 0.
pub fn batch_sized(timestamps: &[i64], value_len: usize) -> Vec<u8> {
    encode(timestamps, value_len, 0)
}

/// Like [`batch_sized`] with 16-byte values.
pub fn batch(timestamps: &[i64]) -> Vec<u8> {
    batch_sized(timestamps, 16)
}

/// A batch with the given attributes (records stay uncompressed).
pub fn encode(timestamps: &[i64], value_len: usize, attributes: i16) -> Vec<u8> {
    let base_ts = timestamps.iter().copied().min().unwrap_or(0);
    let max_ts = timestamps.iter().copied().max().unwrap_or(-1);
    let mut records = Vec::new();
    for (delta, ts) in timestamps.iter().enumerate() {
        let mut record = vec![0u8]; // attributes
        put_varlong(&mut record, ts - base_ts);
        put_varlong(&mut record, delta as i64);
        put_varlong(&mut record, -1); // null key
        put_varlong(&mut record, value_len as i64);
        record.extend((0..value_len).map(|i| (i + delta) as u8));
        put_varlong(&mut record, 0); // no headers
        put_varlong(&mut records, record.len() as i64);
        records.extend(record);
    }
    let last_delta = timestamps.len().saturating_sub(1) as i32;
    assemble(
        attributes,
        last_delta,
        base_ts,
        max_ts,
        timestamps.len() as i32,
        &records,
    )
}

/// Header plus `records` bytes, with length and CRC filled in.
pub fn assemble(
    attributes: i16,
    last_offset_delta: i32,
    base_ts: i64,
    max_ts: i64,
    count: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend(0i64.to_be_bytes());
    out.extend(((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    out.extend(0i32.to_be_bytes()); // leader epoch
    out.push(MAGIC as u8);
    out.extend(0u32.to_be_bytes()); // crc, filled below
    out.extend(attributes.to_be_bytes());
    out.extend(last_offset_delta.to_be_bytes());
    out.extend(base_ts.to_be_bytes());
    out.extend(max_ts.to_be_bytes());
    out.extend((-1i64).to_be_bytes()); // producer id
    out.extend((-1i16).to_be_bytes()); // producer epoch
    out.extend((-1i32).to_be_bytes()); // base sequence
    out.extend(count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}
