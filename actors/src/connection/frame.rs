//! Framing, request decoding and response encoding around the
//! kafka-protocol codecs.
//!
//! # Bounded memory from any frame
//!
//! A frame's bytes are bounded by the length-prefix codec (`max_frame`), but
//! a request also carries counts: array lengths, string and bytes lengths,
//! a batch's record count. kafka-protocol 0.18.0 as released reserves memory
//! for the announced count before reading an element
//! (`Vec::with_capacity(n)` in `Array` and `CompactArray`), so 20 bytes
//! announcing 2^31 topics ask for hundreds of gigabytes and the failed
//! allocation aborts the process. Every element takes at least one byte on
//! the wire, so a count above the bytes left in the frame is invalid, and
//! the check has to sit where the count is read, before the reservation.
//!
//! The broker decodes through a vendored kafka-protocol
//! (`actors/vendor/kafka-protocol`, see its README) whose decoders make that
//! check at each of those points: a hostile count fails the decode here
//! with an error naming the count and the bytes left, and the connection
//! closes with the client-error log line, before anything is allocated for
//! it. Nothing else in the process is needed for this, so an embedded
//! broker serving TCP is protected exactly as the binary is, whatever the
//! global allocator and the overcommit settings.
//!
//! The alternatives do not hold up: a pre-scan of the frame would need the
//! layout of every version of every API, a second copy of what the decoder
//! already knows that would drift from it; a wrapper buffer sees only reads
//! of plain integers and cannot tell an array count from a timeout; and an
//! allocator is process-wide, which is the embedder's choice, not a
//! library's.

use super::old_versions;
use super::writer::Outgoing;
use crate::api;
use crate::protocol::response_parts::{Part, ResponseParts};
use crate::protocol::Request;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// What to do with a frame that is not a request we can serve.
#[derive(Debug)]
pub enum Rejection {
    /// An ApiVersions request of a version we do not know: answered with a
    /// v0 UNSUPPORTED_VERSION response listing our versions (KIP-511).
    ApiVersionsTooNew { correlation_id: i32 },
    /// Anything else: close the connection and log why.
    Close(String),
}

/// Splits the byte stream of a connection into frames at their 4-byte
/// length prefix; a prefix above the limit is an error, before anything is
/// allocated for the frame. The limit is shared with the connection, which
/// raises it once a SASL client has authenticated: it is read when each
/// frame's prefix is, not when the read was started.
pub struct Frames {
    codec: LengthDelimitedCodec,
    max_frame: Arc<AtomicUsize>,
}

impl Frames {
    pub fn new(max_frame: Arc<AtomicUsize>) -> Frames {
        Frames {
            codec: LengthDelimitedCodec::new(),
            max_frame,
        }
    }
}

impl Decoder for Frames {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        // Takes effect at the next prefix: a frame whose prefix was read
        // already keeps the limit it was checked against.
        self.codec
            .set_max_frame_length(self.max_frame.load(Ordering::Acquire));
        self.codec.decode(src)
    }
}

/// Decodes one frame (without its length prefix).
pub fn decode(mut frame: Bytes) -> Result<Request, Rejection> {
    if frame.len() < 8 {
        return Err(Rejection::Close(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let raw_key = (&frame[0..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let correlation_id = (&frame[4..8]).get_i32();
    let api_key = ApiKey::try_from(raw_key)
        .map_err(|_| Rejection::Close(format!("unknown api key {raw_key}")))?;
    let Some(range) = api::supported(api_key) else {
        return Err(Rejection::Close(format!(
            "api {api_key:?} (key {raw_key}) is not supported"
        )));
    };
    if api_key == ApiKey::ApiVersions && version > range.1 {
        return Err(Rejection::ApiVersionsTooNew { correlation_id });
    }
    let decodable = api_key.valid_versions();
    let old_layout = old_versions::decoded_as(api_key, version);
    let undecodable = (version < decodable.min && old_layout.is_none()) || version > decodable.max;
    if version < range.0 || version > range.1 || undecodable {
        return Err(Rejection::Close(format!(
            "{api_key:?} v{version} is not supported (supported: v{}-v{})",
            range.0, range.1
        )));
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| Rejection::Close(format!("bad {api_key:?} v{version} request header: {e}")))?;
    let bad = |e: String| Rejection::Close(format!("bad {api_key:?} v{version} request: {e}"));
    let body_version = match old_layout {
        Some(layout) => {
            frame = old_versions::rewrite_request(api_key, version, frame).map_err(bad)?;
            layout
        }
        None => version,
    };
    let body =
        RequestKind::decode(api_key, &mut frame, body_version).map_err(|e| bad(e.to_string()))?;
    Ok(Request {
        api_key,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        body,
    })
}

/// Encodes a response (header and body, without the length prefix).
pub fn encode(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, String> {
    // KIP-511: the ApiVersions response header is always v0 so that a client
    // can read it whatever version it asked for.
    let header_version = match api_key {
        ApiKey::ApiVersions => 0,
        _ => api_key.response_header_version(version),
    };
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(|e| e.to_string())?;
    if old_versions::decoded_as(api_key, version).is_some() {
        old_versions::encode_response(api_key, version, body, &mut buf)?;
    } else {
        body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    }
    Ok(buf.freeze())
}

/// Puts the response header before a body in parts (see
/// [`crate::protocol::response_parts`]).
pub fn encode_parts(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    mut body: ResponseParts,
) -> Result<Outgoing, String> {
    let mut header = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut header, api_key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    body.parts.insert(0, Part::Bytes(header.freeze()));
    Ok(Outgoing::Parts(body))
}
