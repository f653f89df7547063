use super::testing::batch;
use super::*;

#[test]
fn the_last_offset_of_whole_batches() {
    let mut records = Vec::new();
    for base in [0i64, 2, 4] {
        let mut one = batch(&[1, 2]);
        set_base_offset(&mut one, base);
        records.extend_from_slice(&one);
    }
    let records = Bytes::from(records);
    assert_eq!(last_offset_of(&records), Some(5));
    // A batch cut short does not count.
    assert_eq!(last_offset_of(&records[..records.len() - 1]), Some(3));
}

#[test]
fn control_batches_are_valid_markers() {
    let marker = control_batch(7, 2, true, 0, 99).unwrap();
    let header = validate(&marker).unwrap();
    assert!(header.is_control() && header.is_transactional());
    assert_eq!((header.producer_id, header.producer_epoch), (7, 2));
    assert_eq!(header.records_count, 1);
    assert_eq!(marker_commits(&marker), Some(true));
    let abort = control_batch(7, 2, false, 0, 99).unwrap();
    assert_eq!(marker_commits(&abort), Some(false));
    assert_eq!(marker_commits(&batch(&[5, 9])), None);
}

#[test]
fn log_append_time_keeps_the_batch_valid() {
    let stamped = with_log_append_time(&batch(&[5, 9]), 1234);
    let header = validate(&stamped).unwrap();
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp, 1234);
}

#[test]
fn recompressing_a_batch_without_records_fails() {
    let empty = Bytes::from(testing::assemble(0, 0, 0, 0, 0, &[]));
    assert!(matches!(
        recompress(empty, Compression::Gzip),
        Err(BatchError::Corrupt(_))
    ));
}

#[test]
fn recompress_changes_the_codec_and_keeps_records() {
    let plain = Bytes::from(batch(&[5, 9, 7]));
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let packed = recompress(plain.clone(), codec).unwrap();
        let header = validate(&packed).unwrap();
        assert_eq!(header.compression().unwrap(), codec);
        assert_eq!(header.records_count, 3);
        assert_eq!(
            first_offset_at_or_after_timestamp(&packed, 8).unwrap(),
            Some((1, 9))
        );
        let back = recompress(packed, Compression::None).unwrap();
        assert_eq!(validate(&back).unwrap().records_count, 3);
    }
}
