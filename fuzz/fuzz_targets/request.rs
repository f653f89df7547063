//! The request path of a connection, up to the point where a request would
//! meet the broker's state: framing at the length prefix, the request header,
//! the body of every API the broker accepts, and for Produce the checks each
//! record batch gets (split, header, CRC, size, keys for a compacted topic)
//! and the rewrites a topic's settings ask for (recompression decodes every
//! record; log append time).
//!
//! Every allocation must stay within libFuzzer's malloc limit: a request
//! announcing more elements than its bytes could hold is a decode error
//! before anything is reserved for them.
//!
//! The first input byte picks the variant, the rest is the byte stream a
//! client sends. Random bytes almost never carry a valid CRC32C, so one bit
//! asks for the CRCs of Produce batches to be fixed up first: that is what
//! lets the fuzzer reach the record decoder behind the CRC check.

#![no_main]

use actorlog_actors::api::produce;
use actorlog_actors::connection::frame;
use actorlog_actors::partition::batch::{self, Compression};
use actorlog_actors::topic::config::ProduceSettings;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

// No global allocator of the broker's here: the request path must refuse
// announced counts the frame cannot hold before allocating for them, with
// the system allocator, as an embedded broker runs. libFuzzer's
// `-malloc_limit_mb` (by default its `-rss_limit_mb`, 2 GiB) reports any
// single allocation above it as a crash.

/// Smaller than the broker's default so that the fuzzer also meets frames
/// over the limit.
const MAX_FRAME: usize = 1 << 20;
const FIX_CRCS: u8 = 1;
const LOG_APPEND_TIME: u8 = 2;
/// The top bit (the codec comes from the bits below it, modulo 6, so every
/// codec still meets both values).
const COMPACTED: u8 = 128;
const CODECS: [Option<Compression>; 6] = [
    None,
    Some(Compression::None),
    Some(Compression::Gzip),
    Some(Compression::Snappy),
    Some(Compression::Lz4),
    Some(Compression::Zstd),
];

fuzz_target!(|data: &[u8]| {
    let Some((&variant, stream)) = data.split_first() else {
        return;
    };
    let mut codec = frame::codec(MAX_FRAME);
    let mut buf = BytesMut::from(stream);
    while let Ok(Some(one)) = codec.decode(&mut buf) {
        let Ok(request) = frame::decode(one.freeze()) else {
            continue;
        };
        if let RequestKind::Produce(produce) = request.body {
            let settings = ProduceSettings {
                max_message_bytes: MAX_FRAME,
                log_append_time: variant & LOG_APPEND_TIME != 0,
                compression: CODECS[usize::from(variant >> 2) % CODECS.len()],
                compacted: variant & COMPACTED != 0,
            };
            let append_time = settings.log_append_time.then_some(1_700_000_000_000);
            for partition in produce
                .topic_data
                .into_iter()
                .flat_map(|t| t.partition_data)
            {
                let records = match partition.records {
                    Some(records) if variant & FIX_CRCS != 0 => Some(with_valid_crcs(records)),
                    records => records,
                };
                let _ = produce::prepare(records, &settings, append_time);
            }
        }
    }
});

/// The record set with each batch's CRC recomputed, where the batches split.
fn with_valid_crcs(records: Bytes) -> Bytes {
    const CRC_AT: usize = 17;
    const CRC_START: usize = 21;
    let Ok(batches) = batch::split(records.clone()) else {
        return records;
    };
    let mut fixed = Vec::with_capacity(records.len());
    for one in batches {
        let start = fixed.len();
        fixed.extend_from_slice(&one);
        if one.len() > CRC_START {
            let crc = crc32c::crc32c(&fixed[start + CRC_START..]);
            fixed[start + CRC_AT..start + CRC_START].copy_from_slice(&crc.to_be_bytes());
        }
    }
    Bytes::from(fixed)
}
