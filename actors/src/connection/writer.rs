//! The write side of a connection: a task that owns the socket's write half
//! and writes the responses the actor hands it, in the order it hands them
//! (the actor already puts them in request order).
//!
//! A response is a frame of encoded bytes, or a Fetch body in parts whose
//! record batches are file regions ([`ResponseParts`]). On a plain TCP
//! socket the bytes go out with vectored writes straight from their buffers
//! (the 4-byte length prefix and the body, and several responses ready at
//! once, in one `writev`) and each file region with `sendfile(2)` from the
//! page cache, so no record byte passes through the broker's memory.
//!
//! Why a task on the connection's arbiter rather than sending on a reader
//! thread: responses on one connection must stay in order, and a task that
//! takes them one after the other from a queue is that order, with no lock
//! around the socket. The socket stays non-blocking: a `sendfile` that
//! finds the send buffer full returns EAGAIN, or a partial count, and the
//! task waits until the socket is writable again and goes on from where
//! the kernel stopped, without holding the arbiter thread meanwhile. What
//! it can block on is the disk, for record bytes no longer in the page
//! cache; fetched data is mostly recent, still cached from its append.
//!
//! A TLS stream encrypts in user space, so it only ever gets frames (the
//! Fetch handler answers TLS connections in memory); parts there are an
//! error that closes the connection. Budgets taken for a request are given
//! back once its response is written, not merely queued.

use crate::limits::Admitted;
use crate::partition::file_records::FileRegion;
use crate::protocol::response_parts::{Part, ResponseParts};
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Buffers written by one `writev`, at most (Linux takes up to 1024).
const MAX_IOVECS: usize = 64;

/// Bytes one `sendfile` call is asked for, at most: the kernel moves at
/// most about 2 GiB at once anyway, and a bounded count keeps each call's
/// stay on the arbiter short.
const MAX_SENDFILE: u64 = 8 * 1024 * 1024;

/// The socket's write half.
pub enum WriteHalf {
    /// Plain TCP, which can send file regions.
    Tcp(OwnedWriteHalf),
    /// A stream that transforms what it writes (TLS).
    Stream(Box<dyn AsyncWrite + Unpin + Send>),
}

/// A response to write, without its length prefix.
pub enum Outgoing {
    Frame(Bytes),
    Parts(ResponseParts),
}

impl Outgoing {
    fn len(&self) -> u64 {
        match self {
            Outgoing::Frame(bytes) => bytes.len() as u64,
            Outgoing::Parts(parts) => parts.len(),
        }
    }
}

type Queued = (Outgoing, Admitted);

/// Hands responses to the writer task; dropping it lets the task write
/// what is queued, shut the socket's write side down and end.
pub struct ResponseWriter {
    tx: mpsc::UnboundedSender<Queued>,
}

impl ResponseWriter {
    /// Starts the task on the current arbiter; `done` gets its outcome once
    /// it ends: after a failed write, or once every response was written
    /// after the last handle was dropped.
    pub fn start(
        half: WriteHalf,
        done: impl FnOnce(io::Result<()>) + Send + 'static,
    ) -> ResponseWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        actix_rt::spawn(async move { done(run(half, rx).await) });
        ResponseWriter { tx }
    }

    /// Queues a response; `admitted` is released once it is written.
    pub fn write(&self, response: Outgoing, admitted: Admitted) {
        // The task has ended only after a failed write, which stops the
        // connection: nothing left to write to then.
        let _ = self.tx.send((response, admitted));
    }
}

async fn run(mut half: WriteHalf, mut rx: mpsc::UnboundedReceiver<Queued>) -> io::Result<()> {
    let mut ready = Vec::new();
    while rx.recv_many(&mut ready, MAX_IOVECS).await > 0 {
        let mut pieces = Pieces::default();
        for (response, _) in &ready {
            let len = u32::try_from(response.len())
                .ok()
                .filter(|&l| l <= i32::MAX as u32);
            let len = len.ok_or_else(|| {
                io::Error::other(format!("a response of {} bytes", response.len()))
            })?;
            pieces.bytes(Bytes::copy_from_slice(&len.to_be_bytes()));
            match response {
                Outgoing::Frame(bytes) => pieces.bytes(bytes.clone()),
                Outgoing::Parts(parts) => parts.parts.iter().for_each(|part| match part {
                    Part::Bytes(bytes) => pieces.bytes(bytes.clone()),
                    Part::File(region) => pieces.file(region.clone()),
                }),
            }
        }
        pieces.write(&mut half).await?;
        match &mut half {
            WriteHalf::Tcp(tcp) => tcp.flush().await?,
            WriteHalf::Stream(stream) => stream.flush().await?,
        }
        // The budgets of the written responses go back here.
        ready.clear();
    }
    match &mut half {
        WriteHalf::Tcp(tcp) => tcp.shutdown().await,
        WriteHalf::Stream(stream) => stream.shutdown().await,
    }
}

/// What to write, in order: runs of buffers, each run followed by a file
/// region.
#[derive(Default)]
struct Pieces {
    runs: Vec<(VecDeque<Bytes>, Option<FileRegion>)>,
}

impl Pieces {
    fn bytes(&mut self, bytes: Bytes) {
        match self.runs.last_mut() {
            Some((run, None)) => run.push_back(bytes),
            _ => self.runs.push((VecDeque::from([bytes]), None)),
        }
    }

    fn file(&mut self, region: FileRegion) {
        match self.runs.last_mut() {
            Some((_, slot @ None)) => *slot = Some(region),
            _ => self.runs.push((VecDeque::new(), Some(region))),
        }
    }

    async fn write(self, half: &mut WriteHalf) -> io::Result<()> {
        for (mut run, region) in self.runs {
            match half {
                WriteHalf::Tcp(tcp) => write_buffers(tcp, &mut run).await?,
                WriteHalf::Stream(stream) => write_buffers(stream, &mut run).await?,
            }
            match (region, &mut *half) {
                (None, _) => {}
                (Some(region), WriteHalf::Tcp(tcp)) => send_file(tcp.as_ref(), &region).await?,
                (Some(_), WriteHalf::Stream(_)) => {
                    return Err(io::Error::other(
                        "a response with file regions on a TLS connection",
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Writes every buffer, as many as possible per `writev`.
async fn write_buffers(
    out: &mut (impl AsyncWrite + Unpin),
    buffers: &mut VecDeque<Bytes>,
) -> io::Result<()> {
    while !buffers.is_empty() {
        let slices: Vec<IoSlice> = buffers
            .iter()
            .take(MAX_IOVECS)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut written = out.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(front) = buffers.front_mut() else {
                break;
            };
            let taken = written.min(front.len());
            front.advance(taken);
            written -= taken;
            if front.is_empty() {
                buffers.pop_front();
            }
        }
        buffers.retain(|b| !b.is_empty());
    }
    Ok(())
}

/// Sends `region` with `sendfile(2)`, waiting whenever the socket's send
/// buffer is full.
async fn send_file(socket: &TcpStream, region: &FileRegion) -> io::Result<()> {
    let mut offset = region.offset;
    let end = region.offset + region.len;
    while offset < end {
        socket.writable().await?;
        let count = (end - offset).min(MAX_SENDFILE) as usize;
        let sent = socket.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(socket, &*region.file, Some(&mut offset), count)
                .map_err(io::Error::from)
        });
        match sent {
            // The plan saw these bytes in the file, and no segment shrinks
            // under a plan (a truncated active segment, after a leader
            // change, would): the client gets a closed connection, not a
            // response shorter than its length prefix.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a segment file ended before its planned range",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::limits::Connections;
    use std::io::Write;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    /// Responses of bytes and of parts whose file regions are far larger
    /// than the socket buffers (so `sendfile` stops at EAGAIN and partial
    /// counts) arrive in order, each under its length prefix, with exactly
    /// the planned ranges of the file.
    #[actix_rt::test]
    async fn responses_arrive_in_order_with_the_planned_ranges() {
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..6 << 20).map(|i: u32| (i % 253) as u8).collect();
        file.write_all(&content).unwrap();
        let file = Arc::new(file);
        let region = |offset: u64, len: u64| {
            Part::File(FileRegion {
                file: file.clone(),
                offset,
                len,
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        let (ended, outcome) = tokio::sync::oneshot::channel();
        let writer = ResponseWriter::start(WriteHalf::Tcp(write), move |result| {
            let _ = ended.send(result);
        });
        let connections = Connections::new(&BrokerConfig::default());
        let budget = connections.admit([127, 0, 0, 1].into()).unwrap().budget();
        let header = Bytes::from_static(b"header");
        let responses = vec![
            Outgoing::Frame(Bytes::from_static(b"first")),
            Outgoing::Parts(ResponseParts {
                parts: vec![
                    Part::Bytes(header.clone()),
                    region(3, 5 << 20),
                    Part::Bytes(Bytes::from_static(b"between")),
                    region(1, 10),
                    region(0, 1 << 20),
                ],
            }),
            Outgoing::Frame(Bytes::from_static(b"last")),
        ];
        for response in responses {
            writer.write(response, budget.admit(0).await);
        }
        drop(writer);
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        outcome.await.unwrap().unwrap();
        let body = [
            &header[..],
            &content[3..3 + (5 << 20)],
            b"between",
            &content[1..11],
            &content[..1 << 20],
        ]
        .concat();
        let frame = |bytes: &[u8]| [&(bytes.len() as u32).to_be_bytes()[..], bytes].concat();
        let expected = [frame(b"first"), frame(&body), frame(b"last")].concat();
        assert_eq!(received.len(), expected.len());
        assert!(
            received == expected,
            "the bytes differ from the planned ranges"
        );
    }
}
