//! What the fuzz targets share: the layout of a fuzz input, the split into fuzzer-chosen pieces,
//! and the driver of a [`Connection`] that follows the documented rule of `Connection::read`.
//!
//! Nothing here mocks a socket: the targets call the pure functions of `c10k::proto` directly.

use c10k::proto::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use c10k::proto::{Config, Connection, Error, Event, Message, Role};

/// The layout of a `server_conn` / `client_conn` input:
///
/// ```text
/// [config byte][k][k piece sizes][stream: handshake head, then frames]
/// ```
#[derive(Debug)]
pub struct ConnInput<'a> {
    /// The connection settings chosen by the config byte.
    pub config: Config,
    /// Config bit 7: the stream is frames only, with no handshake head in front.
    pub skip_handshake: bool,
    /// Piece sizes for the split run (see [`pieces`]).
    pub sizes: &'a [u8],
    /// The bytes the peer sends.
    pub stream: &'a [u8],
}

impl<'a> ConnInput<'a> {
    /// Splits a fuzz input; `None` when it is too short to hold the prefix.
    ///
    /// Config byte: bit 0 `auto_pong`; bits 1-3 `allowed_rsv`; bits 4-5 `max_message_size`
    /// (64 KiB, 4 KiB, 256 or 16 bytes); bit 6 halves `max_frame_size`; bit 7 skips the handshake.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&cfg, data) = data.split_first()?;
        let (&k, data) = data.split_first()?;
        let k = usize::from(k % 32);
        if data.len() < k {
            return None;
        }
        let (sizes, stream) = data.split_at(k);
        let max_message_size = [64 << 10, 4 << 10, 256, 16][usize::from((cfg >> 4) & 0x3)];
        let config = Config {
            max_frame_size: max_message_size >> ((cfg >> 6) & 0x1),
            max_message_size,
            auto_pong: cfg & 0x1 != 0,
            allowed_rsv: (cfg >> 1) & 0x7,
        };
        Some(Self {
            config,
            skip_handshake: cfg & 0x80 != 0,
            sizes,
            stream,
        })
    }
}

/// Cuts `data` into consecutive pieces whose sizes are the bytes of `sizes`, cycled (a zero gives
/// an empty piece); one byte at a time when `sizes` is empty or all zero.
pub fn pieces<'a>(data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let sizes: &[u8] = if sizes.iter().all(|&s| s == 0) {
        &[1]
    } else {
        sizes
    };
    let mut rest = data;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = usize::from(sizes[i % sizes.len()]).min(rest.len());
        i += 1;
        let (piece, tail) = rest.split_at(size);
        rest = tail;
        Some(piece)
    })
}

/// An [`Event`] as owned data, to compare runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEvent {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A Close frame: code and reason.
    Close(u16, String),
}

impl OwnedEvent {
    fn from_event(event: Event<'_>) -> Self {
        match event {
            Event::Message(Message::Text(text)) => {
                assert!(
                    std::str::from_utf8(text.as_bytes()).is_ok(),
                    "text message is not UTF-8"
                );
                Self::Text(text.into_owned())
            }
            Event::Message(Message::Binary(bytes)) => Self::Binary(bytes.into_owned()),
            Event::Ping(p) => Self::Ping(p.to_vec()),
            Event::Pong(p) => Self::Pong(p.to_vec()),
            Event::Close(frame) => Self::Close(frame.code.as_u16(), frame.reason.to_owned()),
        }
    }
}

/// Everything a run of [`drive`] observed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The events, in order.
    pub events: Vec<OwnedEvent>,
    /// The error that failed the connection, if any.
    pub error: Option<Error>,
    /// Everything written to the output buffer (automatic replies, the failure's Close frame).
    pub out: Vec<u8>,
    /// `close_sent`, `close_received`, `failed` at the end.
    pub flags: (bool, bool, bool),
}

/// The most bytes the driver may have to keep between reads: a frame header, or one whole control
/// frame less a byte (the documented bound).
const MAX_KEPT: usize = MAX_HEADER_LEN + MAX_CONTROL_PAYLOAD;

/// Feeds `chunks` to `conn` by the documented rule: call `read` on the unconsumed input until it
/// consumes nothing and returns no event, keep the rest and put it in front of the next chunk.
///
/// Checks on the way: `consumed` stays within the input, `buffered()` never exceeds
/// `max_message_size`, text messages are UTF-8, the kept rest stays within the documented bound,
/// and once the connection failed it ignores all further input and writes nothing more.
pub fn drive<'a>(conn: &mut Connection, mut chunks: impl Iterator<Item = &'a [u8]>) -> Transcript {
    let max = conn.config().max_message_size;
    let mut t = Transcript::default();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = chunks.next() {
        pending.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            let len = pending.len() - pos;
            match conn.read(&mut pending[pos..], &mut t.out) {
                Ok(read) => {
                    assert!(read.consumed <= len, "consumed {} of {len}", read.consumed);
                    let consumed = read.consumed;
                    let event = read.event.map(OwnedEvent::from_event);
                    assert!(conn.buffered() <= max, "buffered {} > {max}", conn.buffered());
                    pos += consumed;
                    match event {
                        Some(e) => t.events.push(e),
                        None if consumed == 0 => break,
                        None => {}
                    }
                }
                Err(e) => {
                    assert!(
                        conn.failed() && conn.is_closed(),
                        "error {e:?} did not fail the connection"
                    );
                    assert_eq!(conn.buffered(), 0);
                    t.error = Some(e);
                    // A failed connection ignores the rest of the input.
                    let written = t.out.len();
                    ignores(conn, &mut pending[pos..], &mut t.out);
                    for more in chunks.by_ref() {
                        ignores(conn, &mut more.to_vec(), &mut t.out);
                    }
                    assert_eq!(t.out.len(), written, "failed connection wrote more");
                    t.flags = (conn.close_sent(), conn.close_received(), conn.failed());
                    return t;
                }
            }
        }
        pending.drain(..pos);
        assert!(
            pending.len() < MAX_KEPT,
            "kept {} bytes between reads",
            pending.len()
        );
    }
    t.flags = (conn.close_sent(), conn.close_received(), conn.failed());
    t
}

/// Checks that `conn` swallows `buf` whole with no event.
fn ignores(conn: &mut Connection, buf: &mut [u8], out: &mut Vec<u8>) {
    let n = buf.len();
    let read = conn
        .read(buf, out)
        .expect("a failed connection returned a second error");
    assert_eq!(
        (read.consumed, read.event.is_none()),
        (n, true),
        "a failed connection read on"
    );
}

/// A deterministic source of masking keys, so that two runs write the same bytes.
pub fn counter_keys() -> Box<dyn FnMut() -> [u8; 4] + Send> {
    let mut n: u32 = 0x0102_0304;
    Box::new(move || {
        n = n.wrapping_mul(0x9e37_79b9).wrapping_add(1);
        n.to_be_bytes()
    })
}

/// Checks that what a connection of role `role` wrote is a valid frame stream for its peer: a
/// connection of the other role, with no limits that could bite, reads it all without an error.
pub fn check_output(role: Role, out: &[u8]) {
    let config = Config {
        auto_pong: false,
        ..Config::default()
    };
    let mut peer = match role {
        Role::Server => Connection::client(config, counter_keys()),
        Role::Client => Connection::server(config),
    };
    let mut buf = out.to_vec();
    let mut pos = 0;
    loop {
        let mut scratch = Vec::new();
        let read = peer
            .read(&mut buf[pos..], &mut scratch)
            .unwrap_or_else(|e| panic!("{role:?} wrote bytes its peer rejects: {e:?}"));
        if read.consumed == 0 && read.event.is_none() {
            break;
        }
        if let Some(event) = &read.event {
            assert!(
                matches!(event, Event::Pong(_) | Event::Close(_)),
                "{role:?} wrote an unexpected {event:?}"
            );
        }
        pos += read.consumed;
    }
    assert_eq!(pos, buf.len(), "{role:?} wrote a truncated frame");
}
