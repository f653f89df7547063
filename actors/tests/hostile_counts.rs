//! Requests announcing huge element counts are refused before anything is
//! allocated for the elements, with the system allocator: the protection
//! lives in the decode path (`connection::frame`), so it holds in any
//! process that embeds the broker, not only in the broker binary.
//!
//! A counting global allocator records the largest single allocation while
//! each hostile input is decoded; without the checks, each of these inputs
//! asks for gigabytes at once (and the process aborts).

// The counting allocator: an allocator is unsafe by its trait.
#![allow(unsafe_code)]

use actorlog_actors::api::produce;
use actorlog_actors::connection::frame::{self, Rejection};
use actorlog_actors::partition::batch::Compression;
use actorlog_actors::topic::config::ProduceSettings;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The largest allocation (or reallocation) requested since the last reset.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter is a lock-free atomic that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on (GlobalAlloc's contract).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on (GlobalAlloc's contract).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the block came from the system allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's block, layout and size, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What decoding one hostile input may allocate at once: the frame itself
/// is a few hundred bytes, so this is a generous bound that the unchecked
/// decoder exceeds a thousandfold.
const LIMIT: usize = 4 << 20;

/// The largest allocation `f` makes, with its result.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    let result = f();
    (result, LARGEST.load(Ordering::Relaxed))
}

/// A request frame (without its length prefix): header, then `body`.
fn frame(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("hostile")))
        .encode(&mut buf, api.request_header_version(version))
        .expect("header encodes");
    buf.put_slice(body);
    buf.freeze()
}

/// The count of a classic array (i32) announcing 2^31 - 1 elements.
const HUGE: [u8; 4] = i32::MAX.to_be_bytes();
/// The count of a compact array (unsigned varint of count + 1) announcing
/// 2^32 - 2 elements.
const HUGE_COMPACT: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];
/// What follows the count: a few bytes, nowhere near enough elements.
const TAIL: [u8; 16] = [0; 16];

fn body(parts: &[&[u8]]) -> Vec<u8> {
    let mut body: Vec<u8> = parts.concat();
    body.extend_from_slice(&TAIL);
    body
}

/// `(what, frame)` for each hostile request: the first array of the body
/// (and for Produce, a nested one) announces billions of elements.
fn hostile_frames() -> Vec<(&'static str, Bytes)> {
    let i16_ = |v: i16| v.to_be_bytes().to_vec();
    let i32_ = |v: i32| v.to_be_bytes().to_vec();
    let string = |s: &str| [i16_(s.len() as i16), s.as_bytes().to_vec()].concat();
    let compact = |s: &str| [vec![s.len() as u8 + 1], s.as_bytes().to_vec()].concat();
    vec![
        (
            "Produce v2 (rewritten from the old layout), topics",
            frame(ApiKey::Produce, 2, &body(&[&i16_(1), &i32_(1000), &HUGE])),
        ),
        (
            "Produce v7, topics",
            frame(
                ApiKey::Produce,
                7,
                &body(&[&i16_(-1), &i16_(1), &i32_(1000), &HUGE]),
            ),
        ),
        (
            "Produce v7, partitions of the first topic",
            frame(
                ApiKey::Produce,
                7,
                &body(&[
                    &i16_(-1),
                    &i16_(1),
                    &i32_(1000),
                    &i32_(1),
                    &string("t"),
                    &HUGE,
                ]),
            ),
        ),
        (
            "Produce v9, topics",
            frame(
                ApiKey::Produce,
                9,
                &body(&[&[0], &i16_(1), &i32_(1000), &HUGE_COMPACT]),
            ),
        ),
        (
            "Fetch v4, topics",
            frame(
                ApiKey::Fetch,
                4,
                &body(&[&i32_(-1), &i32_(500), &i32_(1), &i32_(1 << 20), &[0], &HUGE]),
            ),
        ),
        (
            "Fetch v12, topics",
            frame(
                ApiKey::Fetch,
                12,
                &body(&[
                    &i32_(-1),
                    &i32_(500),
                    &i32_(1),
                    &i32_(1 << 20),
                    &[0],
                    &i32_(0),
                    &i32_(-1),
                    &HUGE_COMPACT,
                ]),
            ),
        ),
        (
            "Metadata v1, topics",
            frame(ApiKey::Metadata, 1, &body(&[&HUGE])),
        ),
        (
            "Metadata v9, topics",
            frame(ApiKey::Metadata, 9, &body(&[&HUGE_COMPACT])),
        ),
        (
            "JoinGroup v5, protocols",
            frame(
                ApiKey::JoinGroup,
                5,
                &body(&[
                    &string("g"),
                    &i32_(10_000),
                    &i32_(30_000),
                    &string(""),
                    &i16_(-1),
                    &string("consumer"),
                    &HUGE,
                ]),
            ),
        ),
        (
            "JoinGroup v6, protocols",
            frame(
                ApiKey::JoinGroup,
                6,
                &body(&[
                    &compact("g"),
                    &i32_(10_000),
                    &i32_(30_000),
                    &compact(""),
                    &[0],
                    &compact("consumer"),
                    &HUGE_COMPACT,
                ]),
            ),
        ),
        (
            "CreateTopics v4, topics",
            frame(ApiKey::CreateTopics, 4, &body(&[&HUGE])),
        ),
        (
            "CreateTopics v5, topics",
            frame(ApiKey::CreateTopics, 5, &body(&[&HUGE_COMPACT])),
        ),
    ]
}

/// A RecordBatch v2 with a valid CRC holding `records` (compressed with
/// the codec in `attributes`) that announces `count` records.
fn batch(attributes: i16, count: i32, records: &[u8]) -> Bytes {
    let mut batch = BytesMut::new();
    batch.put_i64(0); // base offset
    batch.put_i32((49 + records.len()) as i32); // batch length
    batch.put_i32(0); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // crc, below
    batch.put_i16(attributes);
    batch.put_i32(count - 1); // last offset delta
    batch.put_i64(1_700_000_000_000); // base timestamp
    batch.put_i64(1_700_000_000_000); // max timestamp
    batch.put_i64(-1); // producer id
    batch.put_i16(-1); // producer epoch
    batch.put_i32(-1); // base sequence
    batch.put_i32(count);
    batch.put_slice(records);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

/// `(what, batch)` for each hostile record batch.
fn hostile_batches() -> Vec<(&'static str, Bytes)> {
    const SNAPPY: i16 = 2;
    let one_record: &[u8] = &[
        14, // length 7, zigzag
        0,  // attributes
        0,  // timestamp delta
        0,  // offset delta
        1,  // key: null
        2, b'v', // value: one byte
        0,    // no headers
    ];
    // A raw snappy block whose header (a varint) announces 2^32 - 1
    // uncompressed bytes.
    let snappy_block: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0];
    vec![
        (
            "one record announced as 2^31 - 1",
            batch(0, i32::MAX, one_record),
        ),
        (
            "a snappy block announcing 4 GiB",
            batch(SNAPPY, 1, snappy_block),
        ),
    ]
}

// The counter is process-wide: the hostile inputs are decoded one after the
// other in this test, and the other test of this binary allocates only
// small buffers.
#[test]
fn hostile_counts_are_refused_without_allocating_for_them() {
    for (what, frame) in hostile_frames() {
        let len = frame.len();
        let (result, largest) = largest_allocation(|| frame::decode(frame));
        match result {
            Err(Rejection::Close(why)) => assert!(why.starts_with("bad "), "{what}: {why}"),
            Err(other) => panic!("{what}: refused as {other:?}"),
            Ok(request) => panic!("{what}: decoded as {:?}", request.api_key),
        }
        assert!(
            largest < LIMIT,
            "{what}: a frame of {len} bytes allocated {largest} bytes at once"
        );
    }

    // A Produce batch goes on to be decoded record by record when the topic
    // recompresses: what its header and compressed blocks announce must not
    // size an allocation either.
    let settings = ProduceSettings {
        max_message_bytes: 1 << 20,
        log_append_time: false,
        compression: Some(Compression::Gzip),
        // Not compacted: the key check would refuse the batches before the
        // recompression decodes them.
        compacted: false,
    };
    for (what, batch) in hostile_batches() {
        let (result, largest) =
            largest_allocation(|| produce::prepare(Some(batch), &settings, None));
        assert!(result.is_err(), "{what}: refused");
        assert!(
            largest < LIMIT,
            "{what}: recompression allocated {largest} bytes at once"
        );
    }
}

#[test]
fn the_check_leaves_real_requests_alone() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, TopicName};
    for version in [1, 9, 12] {
        let topics = ["a", "b", "c"].map(|name| {
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(name))))
        });
        let mut body = BytesMut::new();
        MetadataRequest::default()
            .with_topics(Some(topics.to_vec()))
            .encode(&mut body, version)
            .expect("request encodes");
        let request = frame::decode(frame(ApiKey::Metadata, version, &body))
            .unwrap_or_else(|_| panic!("Metadata v{version} decodes"));
        assert_eq!(request.api_key, ApiKey::Metadata);
    }
}
