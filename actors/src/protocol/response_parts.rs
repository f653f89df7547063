//! A response body made of encoded bytes and file regions, in wire order:
//! what a Fetch answers on a plaintext connection, so that the record
//! batches go from the page cache to the socket with `sendfile(2)` and are
//! never copied through the broker's memory. The handler encodes the fields
//! around the records; the connection writes the parts in order.

use crate::partition::file_records::FileRegion;
use bytes::{Bytes, BytesMut};

pub enum Part {
    Bytes(Bytes),
    File(FileRegion),
}

/// The parts of one response body.
pub struct ResponseParts {
    pub parts: Vec<Part>,
}

impl ResponseParts {
    /// Bytes of the whole body.
    pub fn len(&self) -> u64 {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Bytes(bytes) => bytes.len() as u64,
                Part::File(region) => region.len,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds [`ResponseParts`]: fields are encoded into `buf`, which becomes a
/// bytes part whenever a file region follows.
#[derive(Default)]
pub struct PartsWriter {
    pub buf: BytesMut,
    parts: Vec<Part>,
}

impl PartsWriter {
    pub fn file(&mut self, region: FileRegion) {
        if !self.buf.is_empty() {
            self.parts.push(Part::Bytes(self.buf.split().freeze()));
        }
        if region.len > 0 {
            self.parts.push(Part::File(region));
        }
    }

    pub fn finish(mut self) -> ResponseParts {
        if !self.buf.is_empty() {
            self.parts.push(Part::Bytes(self.buf.freeze()));
        }
        ResponseParts { parts: self.parts }
    }
}
