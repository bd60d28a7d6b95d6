//! The seam between a connection's socket and the rest of the shard: how bytes come off the
//! socket as plaintext, and how plaintext goes onto it. A plain connection reads and writes the
//! socket as it is; a TLS one (feature `tls`) opens and seals records on the way, with buffers
//! the shard owns ([`IoBufs`]). The one read loop (`input.rs`) and the one write path
//! (`output.rs`) call this and nothing else, so `#[cfg(feature = "tls")]` stays in this file.
//!
//! The seam is narrow on purpose: [`Transport::read`] fills the caller's buffer with plaintext,
//! [`Transport::write_now`] takes plaintext when nothing is queued, [`Transport::flush`] writes a
//! queue; each says what happened, and the shard decides what it means.

use std::io::{self, IoSlice, Read, Write};

use super::socket::Socket;

use super::memory::{Kind, Memory};
use super::queue::WriteQueue;
#[cfg(feature = "tls")]
use super::queue::{SEAL_BATCH, Seal};
use super::stats::TlsFailure;

/// The answer to a plain HTTP request sent to the TLS port.
#[cfg(feature = "tls")]
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 45\r\nConnection: close\r\n\r\nthis port speaks TLS: use https:// or wss://\n";

/// An unfinished record kept between reads may not take more than this share of the read
/// buffer (a handshake message spread over many records is joined in place).
#[cfg(feature = "tls")]
const MAX_PENDING_SHARE: usize = 2;

/// What a TLS session holds beside its unfinished record (keys, handshake state), charged per
/// connection as `Kind::Tls`: measured as the memory of idle TLS connections less that of idle
/// plain ones (docs/benchmarks.md).
pub(crate) const TLS_SESSION_BYTES: usize = 3_700;

/// How a connection's bytes travel.
#[derive(Debug)]
pub(crate) enum Transport {
    /// The socket carries the WebSocket bytes as they are.
    Plain,
    /// TLS records (boxed: a plain connection pays one pointer).
    #[cfg(feature = "tls")]
    Tls(Box<super::tls::Session>),
}

/// The shard's buffers for transports that transform bytes; empty for plain connections.
#[derive(Debug, Default)]
pub(crate) struct IoBufs {
    /// Ciphertext read from a TLS connection (allocated at its first read).
    #[cfg(feature = "tls")]
    rx: Vec<u8>,
    /// Records made while reading (handshake messages, alerts) or to write now.
    #[cfg(feature = "tls")]
    pub(crate) tx: Vec<u8>,
    /// A frame header and the start of its payload joined into one record.
    #[cfg(feature = "tls")]
    join: Vec<u8>,
    /// Queued plaintext taken for one batch of records.
    #[cfg(feature = "tls")]
    plain: Vec<u8>,
}

impl IoBufs {
    /// Wire bytes the last read produced (TLS handshake messages, an alert, an answer to plain
    /// HTTP on the TLS port), to write before anything else; taken, leaving the buffer empty.
    pub(crate) fn take_wire(&mut self) -> Vec<u8> {
        #[cfg(feature = "tls")]
        return std::mem::take(&mut self.tx);
        #[cfg(not(feature = "tls"))]
        Vec::new()
    }

    /// Gives back the buffer [`IoBufs::take_wire`] took, emptied, to be used again.
    pub(crate) fn give_back(&mut self, mut wire: Vec<u8>) {
        wire.clear();
        #[cfg(feature = "tls")]
        if wire.capacity() <= SEAL_BATCH * 2 {
            self.tx = wire;
        }
    }
}

/// What one read of the transport gave.
#[derive(Debug)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) enum Input {
    /// `raw` bytes came off the socket; `plain` bytes of plaintext are at the start of the
    /// caller's buffer.
    Data {
        raw: usize,
        plain: usize,
        /// The socket gave less than was asked: it is drained until the next edge.
        drained: bool,
        /// The peer said it sends no more (TLS close_notify).
        peer_closed: bool,
    },
    /// Nothing more to read now.
    Blocked,
    /// The peer closed its side; `clean` unless TLS ended without close_notify.
    Closed { clean: bool },
    /// The socket failed.
    Failed,
    /// TLS refused the input: count `why`; wire bytes to send are waiting ([`IoBufs::take_wire`]).
    Refused(TlsFailure, String),
}

impl Transport {
    /// A transport for a socket accepted on the TLS listener if `tls` is given, else plain.
    #[cfg(feature = "tls")]
    pub(crate) fn accepted(tls: Option<&super::tls::TlsConfig>) -> Result<Self, String> {
        match tls {
            None => Ok(Self::Plain),
            Some(config) => super::tls::Session::new(config.current())
                .map(|s| Self::Tls(Box::new(s)))
                .map_err(|e| e.to_string()),
        }
    }

    /// Bytes the transport itself holds (TLS: the session and an unfinished record).
    pub(crate) fn held(&self) -> usize {
        match self {
            Self::Plain => 0,
            #[cfg(feature = "tls")]
            Self::Tls(s) => TLS_SESSION_BYTES + s.pending.len(),
        }
    }

    /// Whether the TLS handshake (done) resumed an earlier session.
    pub(crate) fn resumed(&self) -> bool {
        match self {
            Self::Plain => false,
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.resumed(),
        }
    }

    /// Whether this is a TLS connection still in its TLS handshake.
    pub(crate) fn handshaking(&self) -> bool {
        match self {
            Self::Plain => false,
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.is_handshaking(),
        }
    }

    /// Reads once: plaintext into `plain` (the caller's buffer after what it kept).
    pub(crate) fn read(
        &mut self,
        socket: &mut Socket,
        plain: &mut [u8],
        io: &mut IoBufs,
        mem: &mut Memory,
    ) -> Input {
        match self {
            Self::Plain => {
                let _ = (io, mem);
                match read_retrying(socket, plain) {
                    Ok(0) => Input::Closed { clean: true },
                    Ok(n) => Input::Data {
                        raw: n,
                        plain: n,
                        drained: n < plain.len(),
                        peer_closed: false,
                    },
                    Err(e) => blocked_or_failed(&e),
                }
            }
            #[cfg(feature = "tls")]
            Self::Tls(s) => read_tls(s, socket, plain, io, mem),
        }
    }

    /// Writes `a` then `b` now, the queue being empty; what the socket does not take goes to
    /// `queue` (on TLS, as records when they were made, or as plaintext to make them from
    /// later when there is much).
    pub(crate) fn write_now(
        &mut self,
        socket: &mut Socket,
        a: &[u8],
        b: &[u8],
        queue: &mut WriteQueue,
        io: &mut IoBufs,
        mem: &mut Memory,
    ) -> io::Result<()> {
        debug_assert!(queue.is_empty());
        match self {
            Self::Plain => {
                let _ = io;
                let written = write_two(socket, a, b)?;
                if written < a.len() {
                    queue.push_copy(&a[written..], mem);
                    queue.push_copy(b, mem);
                } else {
                    queue.push_copy(&b[written - a.len()..], mem);
                }
                Ok(())
            }
            #[cfg(feature = "tls")]
            Self::Tls(s) => {
                if a.len() + b.len() > SEAL_BATCH {
                    // Encrypt as the socket takes it, a batch at a time.
                    queue.push_copy(a, mem);
                    queue.push_copy(b, mem);
                    return self.flush(socket, queue, io, mem).map(|_| ());
                }
                let mut out = std::mem::take(&mut io.tx);
                let sealed = s.seal(a, b, &mut io.join, &mut out).map_err(io::Error::other);
                io.join.clear();
                let res = sealed.and_then(|()| write_wire(socket, &out, queue, mem));
                io.give_back(out);
                res
            }
        }
    }

    /// Writes what is queued (on TLS, making records of at most a batch of plaintext at a time,
    /// as the socket takes them). `Ok(true)` when the queue is empty.
    pub(crate) fn flush(
        &mut self,
        socket: &mut Socket,
        queue: &mut WriteQueue,
        io: &mut IoBufs,
        mem: &mut Memory,
    ) -> io::Result<bool> {
        match self {
            Self::Plain => {
                let _ = io;
                queue.flush(socket, None, mem)
            }
            #[cfg(feature = "tls")]
            Self::Tls(s) => {
                let mut sealer = Sealer {
                    session: s,
                    join: &mut io.join,
                };
                queue.flush(socket, Some((&mut sealer, &mut io.plain)), mem)
            }
        }
    }

    /// Says close_notify (TLS, once, after a complete handshake): the records are left in
    /// `io` for the caller to write ([`IoBufs::take_wire`]). False for a plain connection.
    pub(crate) fn close_notify(&mut self, io: &mut IoBufs) -> bool {
        match self {
            Self::Plain => {
                let _ = io;
                false
            }
            #[cfg(feature = "tls")]
            Self::Tls(s) => {
                if !s.closed && !s.is_handshaking() {
                    s.close_notify(&mut io.tx);
                }
                true
            }
        }
    }

    /// Nothing more is to be encrypted (the connection failed); an unfinished record is dropped.
    pub(crate) fn fail(&mut self, mem: &mut Memory) {
        match self {
            Self::Plain => {
                let _ = mem;
            }
            #[cfg(feature = "tls")]
            Self::Tls(s) => {
                s.closed = true;
                mem.sub(Kind::Input, s.pending.len());
                s.pending = Vec::new();
            }
        }
    }

    /// The connection is gone: releases what the transport held.
    pub(crate) fn release(&mut self, mem: &mut Memory) {
        if matches!(self, Self::Plain) {
            return;
        }
        self.fail(mem);
        mem.sub(Kind::Tls, TLS_SESSION_BYTES);
    }

    /// Charges what a new connection's transport holds.
    pub(crate) fn charge(&self, mem: &mut Memory) {
        if !matches!(self, Self::Plain) {
            mem.add(Kind::Tls, TLS_SESSION_BYTES);
        }
    }
}

/// Writes `a` then `b` (vectored when both are there); the bytes written, 0 when it would block.
fn write_two(socket: &mut Socket, a: &[u8], b: &[u8]) -> io::Result<usize> {
    loop {
        let res = if b.is_empty() {
            socket.write(a)
        } else {
            socket.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
        };
        match res {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes wire bytes (already encoded for the transport) now if nothing is queued, queueing
/// what the socket does not take; after what is queued otherwise.
pub(crate) fn write_wire(
    socket: &mut Socket,
    wire: &[u8],
    queue: &mut WriteQueue,
    mem: &mut Memory,
) -> io::Result<()> {
    if !queue.is_empty() {
        queue.push_sealed(wire, mem);
        return Ok(());
    }
    let written = write_two(socket, wire, &[])?;
    queue.push_sealed(&wire[written..], mem);
    Ok(())
}

/// Reads the socket, again when a signal interrupted the call.
fn read_retrying(socket: &mut Socket, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match socket.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn blocked_or_failed(e: &io::Error) -> Input {
    if e.kind() == io::ErrorKind::WouldBlock {
        Input::Blocked
    } else {
        Input::Failed
    }
}

/// A TLS session making records of queued plaintext.
#[cfg(feature = "tls")]
struct Sealer<'a> {
    session: &'a mut super::tls::Session,
    join: &'a mut Vec<u8>,
}

#[cfg(feature = "tls")]
impl Seal for Sealer<'_> {
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let res = self.session.seal(plain, &[], self.join, out);
        self.join.clear();
        res.map_err(io::Error::other)
    }
}

/// One read of a TLS connection: ciphertext into the shard's buffer, after the unfinished
/// record kept from last time, plaintext into `plain`.
#[cfg(feature = "tls")]
fn read_tls(
    s: &mut super::tls::Session,
    socket: &mut Socket,
    plain: &mut [u8],
    io: &mut IoBufs,
    mem: &mut Memory,
) -> Input {
    // Plaintext is never longer than its records: what is read fits in `plain`.
    let room = plain.len();
    if io.rx.len() < room {
        io.rx.resize(room, 0);
    }
    let pend = s.pending.len();
    if pend >= room / MAX_PENDING_SHARE {
        return Input::Refused(
            TlsFailure::BadRecord,
            "record or handshake message too large".into(),
        );
    }
    io.rx[..pend].copy_from_slice(&s.pending);
    let n = match read_retrying(socket, &mut io.rx[pend..room]) {
        Ok(0) => return Input::Closed { clean: s.peer_closed },
        Ok(n) => n,
        Err(e) => return blocked_or_failed(&e),
    };
    let opened = s.open(&mut io.rx[..pend + n], plain, &mut io.tx);
    s.pending.clear();
    s.pending.extend_from_slice(&io.rx[opened.consumed..pend + n]);
    if s.pending.is_empty() {
        // An idle connection keeps no buffer.
        s.pending = Vec::new();
    }
    mem.change(Kind::Input, pend, s.pending.len());
    if let Some(e) = opened.error {
        if opened.plain == 0 && pend == 0 && looks_like_http(&io.rx[..n]) {
            io.tx.clear();
            io.tx.extend_from_slice(PLAIN_HTTP_ANSWER);
            return Input::Refused(TlsFailure::PlainHttp, "plain HTTP on the TLS port".into());
        }
        let why = match e {
            rustls::Error::AlertReceived(_) => TlsFailure::PeerAlert,
            _ if s.is_handshaking() => TlsFailure::Handshake,
            _ => TlsFailure::BadRecord,
        };
        return Input::Refused(why, e.to_string());
    }
    Input::Data {
        raw: n,
        plain: opened.plain,
        drained: n < room - pend,
        peer_closed: opened.peer_closed,
    }
}

/// Whether `input` starts like an HTTP request line (a method in capitals, then a space).
#[cfg(feature = "tls")]
fn looks_like_http(input: &[u8]) -> bool {
    let method = input.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=7).contains(&method) && input.get(method) == Some(&b' ')
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::looks_like_http;

    #[test]
    fn plain_http_is_told_from_a_client_hello() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"OPTIONS * HTTP/1.1\r\n"));
        assert!(!looks_like_http(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(!looks_like_http(b"GETX"));
    }
}
