use super::files::parse_log_name;
use super::scan::SCAN_CHUNK;
use super::*;
use crate::partition::batch::testing::{batch, batch_sized};
use crate::partition::read_plan::ReadPlan;
use std::fs;

const INTERVAL: u32 = 100;

fn pending(bytes: &[u8], base_offset: i64) -> PendingBatch<'_> {
    PendingBatch::new(bytes, base_offset, 0).unwrap()
}

/// A segment at offset 10 with batches of 3 records, timestamps rising.
fn filled(dir: &Path, batches: i64) -> Segment {
    let mut segment = Segment::create(dir, 10, INTERVAL, 0).unwrap();
    for i in 0..batches {
        let bytes = batch_sized(&[i * 10, i * 10 + 5, i * 10 + 1], 20);
        segment.append(&[pending(&bytes, 10 + 3 * i)]).unwrap();
    }
    segment
}

#[test]
fn file_names() {
    let dir = Path::new("/d");
    assert_eq!(
        file_path(dir, 42, LOG_EXTENSION),
        Path::new("/d/00000000000000000042.log")
    );
    assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
    assert_eq!(parse_log_name("00000000000000000042.index"), None);
    assert_eq!(parse_log_name("0000000000000000042.log"), None);
    assert_eq!(parse_log_name("0000000000000000004x.log"), None);
    assert_eq!(parse_log_name("99999999999999999999.log"), None);
}

#[test]
fn pending_batch_checks_its_length() {
    let bytes = batch(&[1]);
    assert!(PendingBatch::new(&bytes[..bytes.len() - 1], 0, 0).is_err());
    assert!(PendingBatch::new(&bytes[..30], 0, 0).is_err());
    assert_eq!(pending(&bytes, 7).header().base_offset, 7);
}

#[test]
fn append_stamps_base_offset_and_leader_epoch_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = batch(&[1, 2]).to_vec();
    bytes[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    let mut segment = Segment::create(dir.path(), 5, INTERVAL, 0).unwrap();
    segment
        .append(&[PendingBatch::new(&bytes, 5, 3).unwrap()])
        .unwrap();
    let mut stored = vec![0; bytes.len()];
    segment.read_into(0, &mut stored).unwrap();
    let header = batch::parse_header(&stored).unwrap();
    assert_eq!((header.base_offset, header.partition_leader_epoch), (5, 3));
    assert_eq!(stored[8..12], bytes[8..12]);
    assert_eq!(stored[16..], bytes[16..]);
}

#[test]
fn append_writes_offsets_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let segment = filled(dir.path(), 10);
    assert_eq!(segment.next_offset(), 40);
    assert_eq!(segment.max_timestamp(), Some(95));
    let batch_len = segment.size() / 10;
    // Every batch after the first 100 bytes of log gets an entry.
    let entries = segment.offset_index.entries();
    assert_eq!(entries.len(), 9);
    assert_eq!(entries[0].position as u64, batch_len);
    assert_eq!(entries[0].relative_offset, 3);
    assert_eq!(segment.time_index.entries()[0].timestamp, 15);

    let on_disk = fs::read(segment.log_path()).unwrap();
    assert_eq!(on_disk.len() as u64, segment.size());
    for i in 0..10 {
        let at = (i * batch_len) as usize;
        let header = batch::validate(&on_disk[at..at + batch_len as usize]).unwrap();
        assert_eq!(header.base_offset, 10 + 3 * i as i64);
    }
}

#[test]
fn several_batches_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 0, INTERVAL, 0).unwrap();
    let (a, b) = (batch(&[1, 2]), batch(&[3]));
    segment.append(&[pending(&a, 0), pending(&b, 2)]).unwrap();
    assert_eq!(segment.next_offset(), 3);
    assert_eq!(segment.size(), (a.len() + b.len()) as u64);
    let second = segment.find_batch(2).unwrap().unwrap();
    assert_eq!(second.position, a.len() as u64);
    assert_eq!(second.header.base_offset, 2);
}

#[test]
fn find_batch_and_read_slices() {
    let dir = tempfile::tempdir().unwrap();
    let segment = filled(dir.path(), 10);
    let len = segment.size() / 10;
    for offset in 10..40 {
        let found = segment.find_batch(offset).unwrap().unwrap();
        assert_eq!(found.position, (offset as u64 - 10) / 3 * len);
    }
    assert!(segment.find_batch(40).unwrap().is_none());
    assert_eq!(segment.find_batch(0).unwrap().unwrap().position, 0);

    // Offset 13 is in the second batch; reads take whole batches within
    // the budget, but always that one.
    let read = |budget: u64| {
        let plan = ReadPlan {
            slices: vec![segment.read_slice(13).unwrap()],
        };
        plan.execute(budget as usize).unwrap().len() as u64
    };
    assert_eq!(read(0), len);
    assert_eq!(read(len), len);
    assert_eq!(read(3 * len - 1), 2 * len);
    assert_eq!(read(3 * len), 3 * len);
    assert_eq!(read(u64::MAX / 2), 9 * len);
    assert!(segment.read_slice(40).is_none());
}

#[test]
fn lookups_start_from_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let segment = filled(dir.path(), 10);
    // Spoil the first batch's magic: lookups that the indexes send past
    // it still work, which shows they never read it.
    segment.file.write_all_at(&[0], 16).unwrap();
    assert!(segment.find_batch(10).is_err());
    assert!(segment.offset_for_timestamp(0).is_err());
    assert_eq!(
        segment.find_batch(13).unwrap().unwrap().header.base_offset,
        13
    );
    assert_eq!(segment.offset_for_timestamp(16).unwrap(), Some((16, 20)));
    let last = segment.find_batch(39).unwrap().unwrap();
    assert_eq!(last.end(), segment.size());
}

#[test]
fn timestamps_within_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let segment = filled(dir.path(), 10);
    let find = |ts| segment.offset_for_timestamp(ts).unwrap();
    assert_eq!(find(i64::MIN), Some((10, 0)));
    assert_eq!(find(2), Some((11, 5)));
    assert_eq!(find(41), Some((23, 45)));
    assert_eq!(find(90), Some((37, 90)));
    assert_eq!(find(95), Some((38, 95)));
    assert_eq!(find(96), None);
}

#[test]
fn sealed_segment_loads_from_its_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let segment = filled(dir.path(), 10);
    segment.seal().unwrap();
    let (loaded, cut) = Segment::load(dir.path(), 10, 40, INTERVAL).unwrap();
    assert_eq!(cut, None);
    assert_eq!(loaded.next_offset(), 40);
    assert_eq!(loaded.size(), segment.size());
    assert_eq!(loaded.max_timestamp(), Some(95));
    assert_eq!(loaded.offset_index, segment.offset_index);
    assert_eq!(loaded.time_index, segment.time_index);
}

#[test]
fn partly_saved_index_is_completed() {
    let dir = tempfile::tempdir().unwrap();
    let segment = filled(dir.path(), 10);
    segment.seal().unwrap();
    let index = file_path(dir.path(), 10, INDEX_EXTENSION);
    let time_index = file_path(dir.path(), 10, TIME_INDEX_EXTENSION);
    let bytes = fs::read(&index).unwrap();
    fs::write(&index, &bytes[..16]).unwrap();
    let bytes = fs::read(&time_index).unwrap();
    fs::write(&time_index, &bytes[..24]).unwrap();

    let (loaded, cut) = Segment::load(dir.path(), 10, 40, INTERVAL).unwrap();
    assert_eq!(cut, None);
    assert_eq!(loaded.offset_index, segment.offset_index);
    assert_eq!(loaded.time_index, segment.time_index);
    assert_eq!(fs::read(&index).unwrap().len(), 9 * 8);
}

#[test]
fn disagreeing_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let segment = filled(dir.path(), 10);
    segment.seal().unwrap();
    let time_index = file_path(dir.path(), 10, TIME_INDEX_EXTENSION);
    let mut bytes = fs::read(&time_index).unwrap();
    // The first entry now names offset 2 instead of 3: still plausible
    // alone, but not in step with the offset index.
    bytes[11] = 2;
    fs::write(&time_index, &bytes).unwrap();
    let (loaded, cut) = Segment::load(dir.path(), 10, 40, INTERVAL).unwrap();
    assert_eq!(cut, None);
    assert_eq!(loaded.time_index, segment.time_index);
    assert_eq!(fs::read(&time_index).unwrap()[11], 3);
}

#[test]
fn recovery_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let size = filled(dir.path(), 10).size();
    let len = size / 10;
    let file = OpenOptions::new()
        .write(true)
        .open(file_path(dir.path(), 10, LOG_EXTENSION))
        .unwrap();
    file.set_len(size - 5).unwrap();
    let (segment, cut) = Segment::recover(dir.path(), 10, INTERVAL).unwrap();
    let cut = cut.unwrap();
    assert_eq!((cut.position, cut.bytes), (9 * len, len - 5));
    assert_eq!(segment.size(), 9 * len);
    assert_eq!(segment.next_offset(), 37);
    assert_eq!(file.metadata().unwrap().len(), 9 * len);
}

#[test]
fn recovery_keeps_offset_gaps_and_cuts_offsets_going_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 0, INTERVAL, 0).unwrap();
    let bytes = batch(&[1]);
    segment.append(&[pending(&bytes, 0)]).unwrap();
    segment.append(&[pending(&bytes, 5)]).unwrap();
    segment.append(&[pending(&bytes, 3)]).unwrap();
    let (segment, cut) = Segment::recover(dir.path(), 0, INTERVAL).unwrap();
    assert_eq!(cut.unwrap().position, 2 * bytes.len() as u64);
    assert_eq!(segment.next_offset(), 6);
}

#[test]
fn scanner_handles_batches_larger_than_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 0, INTERVAL, 0).unwrap();
    let big = batch_sized(&[1, 2], SCAN_CHUNK);
    let small = batch(&[3]);
    segment.append(&[pending(&small, 0)]).unwrap();
    segment.append(&[pending(&big, 1)]).unwrap();
    segment.append(&[pending(&small, 3)]).unwrap();
    let (recovered, cut) = Segment::recover(dir.path(), 0, INTERVAL).unwrap();
    assert_eq!(cut, None);
    assert_eq!(recovered.next_offset(), 4);
    assert_eq!(recovered.offset_index, segment.offset_index);
}

#[test]
fn corrupt_header_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let segment = filled(dir.path(), 2);
    assert!(segment.batch_at(1).is_err());
    assert!(segment.batch_at(segment.size() - 10).is_err());
    assert!(segment.batch_at(segment.size()).is_err());
}
