use super::records::read_varlong;
use super::testing::*;
use super::*;
use kafka_protocol::records::Record;

#[test]
fn header_fields_are_read() {
    let mut buf = batch(&[100, 300, 200]);
    set_base_offset(&mut buf, 42);
    let header = validate(&buf).unwrap();
    assert_eq!(header.base_offset, 42);
    assert_eq!(header.last_offset(), 44);
    assert_eq!(header.total_len(), buf.len());
    assert_eq!(header.records_count, 3);
    assert_eq!(header.base_timestamp, 100);
    assert_eq!(header.max_timestamp, 300);
    assert_eq!(header.producer_id, -1);
    assert_eq!(header.compression(), Ok(Compression::None));
    assert!(!header.is_transactional());
    assert!(!header.is_control());
    assert!(!header.is_log_append_time());
}

#[test]
fn records_without_a_key_are_listed_by_position() {
    let keys = [Some("a"), None, Some(""), None];
    let records: Vec<Record> = keys
        .iter()
        .zip(0..)
        .map(|(key, offset)| {
            let key = key.map(|k| Bytes::from(k.as_bytes()));
            record(offset, 1_000 + offset, key, Some(Bytes::from_static(b"v")))
        })
        .collect();
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let batch = encode_records(&records, codec).unwrap();
        // An empty key is a key.
        assert_eq!(null_key_records(&batch), Ok(vec![1, 3]), "{codec:?}");
    }
    let keyed = encode_records(&records[..1], Compression::Gzip).unwrap();
    assert_eq!(null_key_records(&keyed), Ok(vec![]));
    // A batch announcing more records than it holds is corrupt.
    let mut short = batch(&[1, 2]);
    short[57..61].copy_from_slice(&3i32.to_be_bytes());
    assert!(matches!(
        null_key_records(&short),
        Err(BatchError::Corrupt(_))
    ));
}

#[test]
fn attribute_bits() {
    let header = validate(&encode(&[1], 1, 0b11_1000)).unwrap();
    assert!(header.is_log_append_time());
    assert!(header.is_transactional());
    assert!(header.is_control());
}

#[test]
fn validate_rejects_bad_crc() {
    let mut buf = batch(&[1, 2]);
    let last = buf.len() - 1;
    buf[last] ^= 0x01;
    assert!(matches!(validate(&buf), Err(BatchError::Crc { .. })));
}

#[test]
fn base_offset_is_outside_the_crc() {
    let mut buf = batch(&[1]);
    set_base_offset(&mut buf, i64::MAX - 5);
    assert!(validate(&buf).is_ok());
}

#[test]
fn validate_rejects_wrong_magic() {
    let mut buf = batch(&[1]);
    buf[MAGIC_AT] = 1;
    assert_eq!(validate(&buf), Err(BatchError::Magic(1)));
    // An old-format message shorter than a v2 header still says magic.
    assert_eq!(parse_header(&buf[..20]), Err(BatchError::Magic(1)));
}

#[test]
fn validate_rejects_truncation_and_extra_bytes() {
    let buf = batch(&[1, 2]);
    assert_eq!(validate(&buf[..buf.len() - 1]), Err(BatchError::Truncated));
    assert_eq!(validate(&buf[..HEADER_LEN - 1]), Err(BatchError::Truncated));
    assert_eq!(validate(&buf[..10]), Err(BatchError::Truncated));
    let mut longer = buf.clone();
    longer.push(0);
    assert_eq!(validate(&longer), Err(BatchError::InvalidLength));
}

#[test]
fn validate_rejects_impossible_fields() {
    let mut short_length = batch(&[1]);
    short_length[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_eq!(parse_header(&short_length), Err(BatchError::InvalidLength));

    let negative_count = assemble(0, 0, 0, 0, -1, &[]);
    assert!(matches!(
        validate(&negative_count),
        Err(BatchError::Corrupt(_))
    ));
    let negative_delta = assemble(0, -1, 0, 0, 0, &[]);
    assert!(matches!(
        validate(&negative_delta),
        Err(BatchError::Corrupt(_))
    ));
    let bad_codec = assemble(7, 0, 0, 0, 0, &[]);
    assert!(matches!(validate(&bad_codec), Err(BatchError::Corrupt(_))));
}

#[test]
fn empty_batch_is_valid() {
    let empty = assemble(0, 0, 0, -1, 0, &[]);
    assert_eq!(validate(&empty).unwrap().total_len(), HEADER_LEN);
}

#[test]
fn split_multiple_batches_without_copying() {
    let (a, b) = (batch(&[1]), batch_sized(&[2, 3, 4], 100));
    let joined = Bytes::from([a.clone(), b.clone()].concat());
    let parts = split(joined.clone()).unwrap();
    assert_eq!(parts, vec![Bytes::from(a.clone()), Bytes::from(b)]);
    assert_eq!(parts[0].as_ptr(), joined.as_ptr());
    assert_eq!(parts[1].as_ptr(), joined[a.len()..].as_ptr());
    assert!(split(Bytes::new()).unwrap().is_empty());
}

#[test]
fn split_rejects_trailing_garbage() {
    let good = batch(&[1]);
    let with = |garbage: &[u8]| split(Bytes::from([&good[..], garbage].concat()));
    // Too short for a length field.
    assert_eq!(with(&[0, 0, 0]), Err(BatchError::Truncated));
    // A length field announcing more than is there.
    let mut garbage = vec![0; 8];
    garbage.extend(127i32.to_be_bytes());
    assert_eq!(with(&garbage), Err(BatchError::Truncated));
    garbage.truncate(8);
    garbage.extend((-5i32).to_be_bytes());
    assert_eq!(with(&garbage), Err(BatchError::InvalidLength));
}

#[test]
fn timestamp_lookup_inside_a_batch() {
    let mut buf = batch(&[100, 300, 200, 400]);
    set_base_offset(&mut buf, 10);
    let find = |ts| first_offset_at_or_after_timestamp(&buf, ts).unwrap();
    assert_eq!(find(0), Some((10, 100)));
    assert_eq!(find(100), Some((10, 100)));
    assert_eq!(find(101), Some((11, 300)));
    assert_eq!(find(250), Some((11, 300)));
    assert_eq!(find(301), Some((13, 400)));
    assert_eq!(find(400), Some((13, 400)));
    assert_eq!(find(401), None);
}

#[test]
fn timestamp_lookup_with_log_append_time() {
    let mut buf = encode(&[100, 300], 4, TIMESTAMP_TYPE_BIT);
    set_base_offset(&mut buf, 7);
    // Every record carries the batch's maxTimestamp.
    assert_eq!(
        first_offset_at_or_after_timestamp(&buf, 50).unwrap(),
        Some((7, 300))
    );
    assert_eq!(first_offset_at_or_after_timestamp(&buf, 301).unwrap(), None);
}

#[test]
fn timestamp_lookup_rejects_garbled_records() {
    let buf = assemble(0, 1, 0, 10, 2, &[0x04, 0, 0]);
    assert!(matches!(
        first_offset_at_or_after_timestamp(&buf, 5),
        Err(BatchError::Corrupt(_))
    ));
    let unterminated = assemble(0, 0, 0, 10, 1, &[0xff; 12]);
    assert!(matches!(
        first_offset_at_or_after_timestamp(&unterminated, 5),
        Err(BatchError::Corrupt(_))
    ));
}

fn compressed(compression: Compression, timestamps: &[i64]) -> Vec<u8> {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &timestamp)| record(i as i64, timestamp, None, Some(Bytes::from(vec![b'x'; 64]))))
        .collect();
    encode_records(&records, compression).unwrap().to_vec()
}

#[test]
fn timestamp_lookup_in_compressed_batches() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut buf = compressed(codec, &[5, 50, 20, 70]);
        let header = validate(&buf).unwrap();
        assert_eq!(header.compression(), Ok(codec));
        set_base_offset(&mut buf, 1000);
        let find = |ts| first_offset_at_or_after_timestamp(&buf, ts).unwrap();
        assert_eq!(find(21), Some((1001, 50)), "{codec:?}");
        assert_eq!(find(60), Some((1003, 70)), "{codec:?}");
        assert_eq!(find(71), None, "{codec:?}");
    }
}

#[test]
fn corrupt_compressed_records_are_an_error() {
    let buf = assemble(Compression::Gzip as i16, 0, 0, 10, 1, b"not gzip at all");
    assert!(matches!(
        first_offset_at_or_after_timestamp(&buf, 0),
        Err(BatchError::Corrupt(_))
    ));
}

#[test]
fn varints_round_trip() {
    for value in [0, 1, -1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
        let mut buf = Vec::new();
        put_varlong(&mut buf, value);
        let mut slice = &buf[..];
        assert_eq!(read_varlong(&mut slice), Ok(value));
        assert!(slice.is_empty());
    }
}
