//! The connection state machine: one WebSocket connection after its handshake, either role.
//!
//! # How to drive it
//!
//! A [`Connection`] never touches a socket. Its methods come in three groups, called in this order:
//!
//! 1. **Input** — [`Connection::read`]: give it the bytes received so far; it consumes a prefix,
//!    returns at most one [`Event`], and writes any automatic reply (a pong, the echo of a Close
//!    frame, the Close frame that fails the connection) into the caller's output buffer. Call it
//!    again on the unconsumed rest until it consumes nothing and returns no event; keep that rest
//!    (never more than a frame header or one control frame) and present it again, followed by the
//!    next bytes received.
//! 2. **Commands** — [`Connection::send`], [`Connection::send_fragment`], [`Connection::ping`],
//!    [`Connection::pong`], [`Connection::close`]: encode frames into the output buffer, or refuse
//!    with an [`InvalidSend`](super::InvalidSend) when the protocol forbids them. A server can
//!    also take just the header ([`Connection::frame_header`]) and write the payload from its own
//!    buffer.
//! 3. **Getters** — [`Connection::is_closed`], [`Connection::should_close_tcp`] and friends tell
//!    the driver when to close the TCP connection.
//!
//! The input side is in `conn/read.rs`, the commands in `conn/send.rs`; this file holds the
//! types, the connection's state (one `Closing` enum for the closing lifecycle) and the
//! getters.
//!
//! # Zero copy
//!
//! A message that arrives as one complete frame is unmasked in place and returned borrowing the
//! caller's buffer. A fragmented message, or a frame split over reads, is assembled in a buffer
//! owned by the connection, which is handed over to the caller when the message completes (the
//! connection then holds no buffer at all).
//!
//! # Limits
//!
//! Frame and message sizes are checked against [`Config`] from the frame header, before the payload
//! is read or any memory is reserved; the assembly buffer never grows past `max_message_size`.
//!
//! # permessage-deflate
//!
//! A connection given the agreed parameters (`Connection::with_deflate`, feature `deflate`)
//! accepts RSV1 on the first frame of a data message, inflates such a message as its bytes arrive
//! (the size limit applies to the inflated bytes, text is validated as it is inflated, and one
//! call inflates about [`MAX_INFLATE_PER_READ`] bytes at most before it returns to be called
//! again) and delivers it owned; uncompressed messages keep the zero-copy path. [`Connection::send_with`]
//! compresses messages at or above the agreed threshold. zlib state is borrowed from the caller's
//! [`DeflatePool`](super::DeflatePool) for one message at a time unless context takeover was agreed (see
//! [`super::deflate`]): call [`Connection::read_with`] and [`Connection::send_with`] with a pool
//! that lives as long as the thread; [`Connection::read`] and [`Connection::send`] use a fresh
//! one each time, which is correct but builds zlib state for every compressed message.

use std::borrow::Cow;
use std::fmt;

use super::close::CloseFrame;
#[cfg(feature = "deflate")]
use super::deflate::{DeflateState, Negotiated};
pub use super::frame::MessageKind;
use super::role::Role;
use super::utf8::Utf8Validator;

mod read;
mod send;

use read::InFrame;
pub use read::MAX_INFLATE_PER_READ;

/// Default maximum frame payload: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;

/// Default maximum message size: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Per-connection protocol settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Largest accepted frame payload; a larger one fails the connection with 1009.
    pub max_frame_size: usize,
    /// Largest accepted message (sum of its frames); a larger one fails the connection with 1009.
    pub max_message_size: usize,
    /// Answer pings with pongs automatically (RFC 6455 section 5.5.2 requires an answer).
    pub auto_pong: bool,
    /// RSV bits (as the 3-bit RSV1 RSV2 RSV3 value) that a negotiated extension gives meaning to.
    pub allowed_rsv: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            auto_pong: true,
            allowed_rsv: 0,
        }
    }
}

/// A complete data message, borrowed from the input when it came in one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, validated as UTF-8.
    Text(Cow<'a, str>),
    /// A binary message.
    Binary(Cow<'a, [u8]>),
}

impl Message<'_> {
    /// The message kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text(_) => MessageKind::Text,
            Self::Binary(_) => MessageKind::Binary,
        }
    }

    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(s) => s.as_bytes(),
            Self::Binary(b) => b,
        }
    }

    /// Whether the payload was borrowed from the input (no copy was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(
            self,
            Self::Text(Cow::Borrowed(_)) | Self::Binary(Cow::Borrowed(_))
        )
    }
}

/// Something the peer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text or binary message.
    Message(Message<'a>),
    /// A ping; the pong was already written when `auto_pong` is on.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A Close frame; the reply was already written if this end had not sent a Close frame first.
    Close(CloseFrame<'a>),
}

/// The result of one [`Connection::read`] call.
#[derive(Debug)]
pub struct Read<'a> {
    /// How many bytes at the start of the input were used; the rest must be presented again.
    pub consumed: usize,
    /// What happened, if anything.
    pub event: Option<Event<'a>>,
}

/// Source of masking keys for a client: must be a cryptographically strong generator (RFC 6455
/// section 5.3), except in load generators that say otherwise.
pub type MaskSource = Box<dyn FnMut() -> [u8; 4] + Send>;

/// Where a connection's closing handshake stands (RFC 6455 sections 5.5.1, 7.1.7): the one
/// place the closing lifecycle lives.
///
/// ```text
///          close()               peer's Close
///  Open ───────────► CloseSent ──────────────► Closed
///   │                    │                       ▲
///   │ peer's Close, answered in the same read    │
///   ├────────────────────────────────────────────┘
///   │                    │
///   └─ protocol error ───┴─────────────────────► Failed
/// ```
///
/// There is no "Close received, not answered" state: a received Close frame is answered in the
/// same [`Connection::read`] call that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// No Close frame sent or received: data flows both ways.
    Open,
    /// This end sent its Close frame and waits for the peer's; no more data frames may be sent,
    /// pings and pongs still may.
    CloseSent,
    /// Both Close frames went: the closing handshake is complete, nothing more is sent or read.
    Closed,
    /// The connection failed on a protocol error (its Close frame, if this end had not sent one
    /// yet, was written); nothing more is sent or read.
    Failed,
}

/// One WebSocket connection's protocol state, after the opening handshake.
pub struct Connection {
    config: Config,
    role: Role,
    /// Masking keys, client role only (boxed again: a server connection pays one pointer).
    keys: Option<Box<MaskSource>>,
    /// The frame being streamed into `buffer`.
    frame: Option<InFrame>,
    /// The kind of the message being assembled, if a message is open.
    message: Option<MessageKind>,
    /// Assembled bytes of the open message. Empty (no allocation) between messages.
    buffer: Vec<u8>,
    utf8: Utf8Validator,
    /// A fragmented message is being sent ([`Connection::send_fragment`]) and its last frame is
    /// still to come. Outgoing fragmentation is orthogonal to [`Closing`]: a Close frame may be
    /// sent between two fragments (after which data frames are refused by the closing state, not
    /// by this flag), so it stays a flag of its own.
    sending_fragmented: bool,
    /// Where the closing handshake stands.
    closing: Closing,
    /// permessage-deflate, when agreed: boxed, so that other connections pay one pointer.
    #[cfg(feature = "deflate")]
    deflate: Option<Box<DeflateState>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("config", &self.config)
            .field("message", &self.message)
            .field("buffered", &self.buffer.len())
            .field("closing", &self.closing)
            .field("deflate", &self.compresses(usize::MAX))
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A server-side connection.
    pub fn server(config: Config) -> Self {
        Self::new(Role::Server, config, None)
    }

    /// A client-side connection; `keys` supplies a fresh masking key for every frame sent.
    pub fn client(config: Config, keys: MaskSource) -> Self {
        Self::new(Role::Client, config, Some(Box::new(keys)))
    }

    fn new(role: Role, config: Config, keys: Option<Box<MaskSource>>) -> Self {
        Self {
            config,
            role,
            keys,
            frame: None,
            message: None,
            buffer: Vec::new(),
            utf8: Utf8Validator::new(),
            sending_fragmented: false,
            closing: Closing::Open,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }

    /// Turns on permessage-deflate with the parameters agreed in the handshake
    /// ([`DeflateParams::negotiated`](super::deflate::DeflateParams::negotiated)).
    #[cfg(feature = "deflate")]
    pub fn with_deflate(mut self, negotiated: Negotiated) -> Self {
        self.deflate = Some(Box::new(DeflateState::new(negotiated)));
        self
    }

    // ---- getters ----

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a Close frame was sent (by a command, a reply, or a failure).
    pub fn close_sent(&self) -> bool {
        self.closing != Closing::Open
    }

    /// Whether the peer's Close frame was received.
    pub fn close_received(&self) -> bool {
        self.closing == Closing::Closed
    }

    /// Whether the connection failed on a protocol error.
    pub fn failed(&self) -> bool {
        self.closing == Closing::Failed
    }

    /// Whether the protocol is over: the closing handshake completed, or the connection failed.
    pub fn is_closed(&self) -> bool {
        matches!(self.closing, Closing::Closed | Closing::Failed)
    }

    /// Whether this end should close the TCP connection once its output is flushed.
    ///
    /// The server closes first when the protocol is over (RFC 6455 section 7.1.1); a client waits
    /// for the server to close, except after a failure.
    pub fn should_close_tcp(&self) -> bool {
        self.failed() || (self.role == Role::Server && self.is_closed())
    }

    /// Bytes held for a message being assembled (0 when idle).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Heap this connection holds beyond itself: the room reserved for the message being
    /// assembled (inflated bytes included), and zlib state while it holds some (an estimate,
    /// [`COMPRESSOR_BYTES`](super::deflate::COMPRESSOR_BYTES) and
    /// [`DECOMPRESSOR_BYTES`](super::deflate::DECOMPRESSOR_BYTES)). 0 when idle without
    /// context takeover. A server charges it against its memory budget.
    pub fn held(&self) -> usize {
        #[cfg(feature = "deflate")]
        let zlib = self.deflate.as_ref().map_or(0, |d| d.held());
        #[cfg(not(feature = "deflate"))]
        let zlib = 0;
        self.buffer.capacity() + zlib
    }

    /// Whether a data message is being received: a frame of it or the message itself is
    /// unfinished. A server bounds how long that may last.
    pub fn in_message(&self) -> bool {
        self.message.is_some() || self.frame.is_some()
    }

    /// The permessage-deflate parameters in force, if the extension was agreed.
    #[cfg(feature = "deflate")]
    pub fn deflate(&self) -> Option<&Negotiated> {
        self.deflate.as_ref().map(|d| &d.negotiated)
    }

    /// Whether [`Connection::send_with`] would send a message of `len` bytes compressed.
    pub fn compresses(&self, len: usize) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_ref() {
            return d.compresses(len);
        }
        let _ = len;
        false
    }

    /// Whether the connection holds zlib state now: never between messages without context
    /// takeover; always, once used, with it.
    pub fn holds_deflate_state(&self) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_ref() {
            return d.holds_state();
        }
        false
    }
}
