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
//!    with a [`InvalidSend`] when the protocol forbids them. A server can also take just the header
//!    ([`Connection::frame_header`]) and write the payload from its own buffer.
//! 3. **Getters** — [`Connection::is_closed`], [`Connection::should_close_tcp`] and friends tell
//!    the driver when to close the TCP connection.
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
//! A connection given the agreed parameters ([`Connection::with_deflate`], feature `deflate`)
//! accepts RSV1 on the first frame of a data message, inflates such a message as its bytes arrive
//! (the size limit applies to the inflated bytes, text is validated as it is inflated) and
//! delivers it owned; uncompressed messages keep the zero-copy path. [`Connection::send_with`]
//! compresses messages at or above the agreed threshold. zlib state is borrowed from the caller's
//! [`DeflatePool`] for one message at a time unless context takeover was agreed (see
//! [`super::deflate`]): call [`Connection::read_with`] and [`Connection::send_with`] with a pool
//! that lives as long as the thread; [`Connection::read`] and [`Connection::send`] use a fresh
//! one each time, which is correct but builds zlib state for every compressed message.

use std::borrow::Cow;
use std::fmt;

use super::close::{CloseFrame, MAX_CLOSE_REASON, parse_close_payload};
use super::close_code::CloseCode;
use super::deflate::DeflatePool;
#[cfg(feature = "deflate")]
use super::deflate::{DeflateState, Negotiated, RSV1, TAIL};
use super::error::{Error, InvalidSend};
pub use super::frame::MessageKind;
use super::frame::{FrameHeader, HeaderBuf, MAX_CONTROL_PAYLOAD, OpCode, decode_header, encode_header};
use super::mask::apply_mask;
use super::utf8::{Utf8Validator, validate};

/// Default maximum frame payload: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;

/// Default maximum message size: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// How much of the assembly buffer is reserved up front for a frame of announced length.
const INITIAL_RESERVE: usize = 64 << 10;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections; expects masked frames, sends unmasked ones.
    Server,
    /// Opens connections; sends masked frames, expects unmasked ones.
    Client,
}

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

/// A data frame whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    remaining: u64,
    mask: Option<[u8; 4]>,
    /// Payload bytes of this frame already read (for the mask phase).
    done: u64,
    fin: bool,
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
    /// Masking keys, client role only.
    keys: Option<MaskSource>,
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
        Self::new(Role::Client, config, Some(keys))
    }

    fn new(role: Role, config: Config, keys: Option<MaskSource>) -> Self {
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

    // ---- input ----

    /// Consumes bytes received from the peer and returns at most one event.
    ///
    /// Automatic replies (pong, close echo, the Close frame of a failure) are appended to `out`.
    /// On a protocol error the Close frame with the error's code is written to `out` and the error
    /// is returned; the connection is then failed and ignores further input. After the peer's Close
    /// frame, further input is ignored too (consumed, no events).
    ///
    /// With permessage-deflate, zlib state for the message comes from a new [`DeflatePool`]
    /// each call: use [`Connection::read_with`] to reuse it.
    pub fn read<'b>(&mut self, buf: &'b mut [u8], out: &mut Vec<u8>) -> Result<Read<'b>, Error> {
        self.read_with(buf, out, &mut DeflatePool::new())
    }

    /// [`Connection::read`], borrowing zlib state from `pool` for a compressed message (from its
    /// first frame to its last) and giving it back when the message is done.
    pub fn read_with<'b>(
        &mut self,
        buf: &'b mut [u8],
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
    ) -> Result<Read<'b>, Error> {
        let result = match self.read_inner(buf, out, pool) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.fail(&e, out);
                Err(e)
            }
        };
        #[cfg(feature = "deflate")]
        let closed = self.is_closed();
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut() {
            if closed {
                d.release(pool);
            } else if d.inflating && self.message.is_none() {
                d.end_message(pool);
            }
        }
        result
    }

    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    fn read_inner<'b>(
        &mut self,
        buf: &'b mut [u8],
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
    ) -> Result<Read<'b>, Error> {
        if self.is_closed() {
            return Ok(Read {
                consumed: buf.len(),
                event: None,
            });
        }
        let mut pos = 0;
        loop {
            if let Some(frame) = self.frame {
                let n = usize::try_from(frame.remaining).map_or(buf.len() - pos, |r| r.min(buf.len() - pos));
                let chunk = &mut buf[pos..pos + n];
                pos += n;
                if let Some(key) = frame.mask {
                    apply_mask(chunk, key, frame.done as usize);
                }
                self.take_payload(chunk)?;
                let remaining = frame.remaining - n as u64;
                if remaining > 0 {
                    self.frame = Some(InFrame {
                        remaining,
                        done: frame.done + n as u64,
                        ..frame
                    });
                    return Ok(Read {
                        consumed: pos,
                        event: None,
                    });
                }
                self.frame = None;
                if frame.fin {
                    let message = self.finish_message()?;
                    return Ok(Read {
                        consumed: pos,
                        event: Some(Event::Message(message)),
                    });
                }
                continue;
            }

            let Some((header, header_len)) = decode_header(&buf[pos..])? else {
                return Ok(Read {
                    consumed: pos,
                    event: None,
                });
            };
            self.check_header(&header)?;
            let available = buf.len() - pos - header_len;

            if header.opcode.is_control() {
                // At most 125 bytes: wait until the whole frame is there.
                let len = header.len as usize;
                if available < len {
                    return Ok(Read {
                        consumed: pos,
                        event: None,
                    });
                }
                let start = pos + header_len;
                let consumed = start + len;
                // Split the borrow: the payload lives until the event is used.
                let payload = &mut buf[start..consumed];
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                let payload: &'b [u8] = payload;
                let event = self.control(header.opcode, payload, out)?;
                return Ok(Read {
                    consumed,
                    event: Some(event),
                });
            }

            let compressed = self.is_compressed(&header);
            let kind = match (header.opcode, self.message) {
                (OpCode::Continuation, None) => return Err(Error::UnexpectedContinuation),
                (OpCode::Continuation, Some(kind)) => kind,
                (OpCode::Text | OpCode::Binary, Some(_)) => return Err(Error::ExpectedContinuation),
                (OpCode::Text, None) => MessageKind::Text,
                _ => MessageKind::Binary,
            };
            if header.len > self.config.max_frame_size as u64 {
                return Err(Error::FrameTooLarge {
                    len: header.len,
                    max: self.config.max_frame_size,
                });
            }
            let total = self.buffer.len() as u64 + header.len;
            // A compressed message is measured as it inflates.
            if !compressed && total > self.config.max_message_size as u64 {
                return Err(Error::MessageTooLarge {
                    len: total,
                    max: self.config.max_message_size,
                });
            }

            // The common case: a whole message in one frame, already in the input. No copy.
            if header.fin && self.message.is_none() && !compressed && available as u64 >= header.len {
                let start = pos + header_len;
                let end = start + header.len as usize;
                let payload = &mut buf[start..end];
                if let Some(key) = header.mask {
                    apply_mask(payload, key, 0);
                }
                let payload: &'b [u8] = payload;
                let message = match kind {
                    MessageKind::Binary => Message::Binary(Cow::Borrowed(payload)),
                    MessageKind::Text => Message::Text(Cow::Borrowed(
                        validate(payload).map_err(|e| Error::InvalidUtf8 { offset: e.offset })?,
                    )),
                };
                return Ok(Read {
                    consumed: end,
                    event: Some(Event::Message(message)),
                });
            }

            // Otherwise the frame is streamed into the assembly buffer.
            if self.message.is_none() {
                self.message = Some(kind);
                self.utf8.reset();
                #[cfg(feature = "deflate")]
                if let Some(d) = self.deflate.as_mut()
                    && compressed
                {
                    d.begin_message(pool);
                }
            }
            let want = (self.buffer.len() as u64 + header.len.min(INITIAL_RESERVE as u64)) as usize;
            if !compressed && self.buffer.capacity() < want {
                self.buffer.reserve_exact(want - self.buffer.len());
            }
            pos += header_len;
            self.frame = Some(InFrame {
                remaining: header.len,
                mask: header.mask,
                done: 0,
                fin: header.fin,
            });
            if header.len == 0 {
                continue;
            }
            if pos == buf.len() {
                return Ok(Read {
                    consumed: pos,
                    event: None,
                });
            }
        }
    }

    /// Takes a piece of the open message's payload (unmasked): inflated onto the assembly buffer
    /// if the message is compressed, appended otherwise; text is validated on the way.
    fn take_payload(&mut self, chunk: &[u8]) -> Result<(), Error> {
        let text = self.message == Some(MessageKind::Text);
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut()
            && d.inflating
        {
            let utf8 = &mut self.utf8;
            return d.inflate(
                chunk,
                &mut self.buffer,
                self.config.max_message_size,
                &mut |piece| {
                    if text {
                        utf8.feed(piece)
                            .map_err(|e| Error::InvalidUtf8 { offset: e.offset })?;
                    }
                    Ok(())
                },
            );
        }
        if text {
            self.utf8
                .feed(chunk)
                .map_err(|e| Error::InvalidUtf8 { offset: e.offset })?;
        }
        self.append(chunk);
        Ok(())
    }

    /// Whether a data frame belongs to a compressed message: its own RSV1 for a first frame, the
    /// open message's for a continuation.
    fn is_compressed(&self, header: &FrameHeader) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_ref() {
            return match header.opcode {
                OpCode::Continuation => d.inflating,
                _ => header.rsv & RSV1 != 0,
            };
        }
        let _ = header;
        false
    }

    /// Appends to the assembly buffer without ever reserving past `max_message_size` (the frame
    /// header checks guarantee the bytes themselves fit).
    fn append(&mut self, chunk: &[u8]) {
        let need = self.buffer.len() + chunk.len();
        if need > self.buffer.capacity() {
            let target = (self.buffer.capacity() * 2)
                .max(need)
                .min(self.config.max_message_size.max(need));
            self.buffer.reserve_exact(target - self.buffer.len());
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The checks that depend on this connection: RSV bits, mask bit per role.
    fn check_header(&self, header: &FrameHeader) -> Result<(), Error> {
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut allowed = self.config.allowed_rsv;
        #[cfg(feature = "deflate")]
        if self.deflate.is_some() {
            // RSV1 marks the first frame of a compressed message, and only that frame.
            if header.opcode == OpCode::Continuation && header.rsv & RSV1 != 0 {
                return Err(Error::CompressedContinuation);
            }
            allowed |= RSV1;
        }
        let rsv = if header.opcode.is_control() {
            header.rsv
        } else {
            header.rsv & !allowed
        };
        if rsv != 0 {
            return Err(Error::ReservedBits(header.rsv));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => Err(Error::UnmaskedFrame),
            (Role::Client, true) => Err(Error::MaskedFrame),
            _ => Ok(()),
        }
    }

    /// Completes the open message: the end of a compressed one (its removed tail), final UTF-8
    /// check, and hands over the buffer.
    fn finish_message<'b>(&mut self) -> Result<Message<'b>, Error> {
        #[cfg(feature = "deflate")]
        if self.deflate.as_ref().is_some_and(|d| d.inflating) {
            self.take_payload(&TAIL)?;
        }
        let kind = self.message.take();
        let data = std::mem::take(&mut self.buffer);
        Ok(match kind {
            Some(MessageKind::Text) => {
                self.utf8
                    .finish()
                    .map_err(|e| Error::InvalidUtf8 { offset: e.offset })?;
                // Every byte went through `self.utf8` already, so this cannot fail; it is the
                // price of owning the text without `unsafe` (off the single-frame path, which
                // validates once and borrows).
                let text = String::from_utf8(data).map_err(|e| Error::InvalidUtf8 {
                    offset: e.utf8_error().valid_up_to() as u64,
                })?;
                Message::Text(Cow::Owned(text))
            }
            _ => Message::Binary(Cow::Owned(data)),
        })
    }

    fn control<'b>(
        &mut self,
        opcode: OpCode,
        payload: &'b [u8],
        out: &mut Vec<u8>,
    ) -> Result<Event<'b>, Error> {
        Ok(match opcode {
            OpCode::Ping => {
                if self.config.auto_pong {
                    self.write_frame(OpCode::Pong, true, payload, out);
                }
                Event::Ping(payload)
            }
            OpCode::Pong => Event::Pong(payload),
            _ => {
                let frame = parse_close_payload(payload)?;
                // A Close frame received is answered at once (unless this end's went first), so
                // both ends' frames are then sent: the handshake is complete either way.
                if self.closing == Closing::Open {
                    let reply: &[u8] = if frame.code == CloseCode::NoStatus {
                        &[]
                    } else {
                        &payload[..2]
                    };
                    self.write_frame(OpCode::Close, true, reply, out);
                }
                self.closing = Closing::Closed;
                // Whatever was half-received is abandoned.
                self.frame = None;
                self.message = None;
                self.buffer = Vec::new();
                Event::Close(frame)
            }
        })
    }

    /// Fails the connection (RFC 6455 section 7.1.7): sends a Close frame with the error's code
    /// unless one was sent already, and drops any partial message.
    fn fail(&mut self, e: &Error, out: &mut Vec<u8>) {
        let was_open = self.closing == Closing::Open;
        self.closing = Closing::Failed;
        self.frame = None;
        self.message = None;
        self.buffer = Vec::new();
        if was_open {
            let mut payload = [0u8; 2 + MAX_CLOSE_REASON];
            let reason = e.reason().as_bytes();
            payload[..2].copy_from_slice(&e.close_code().as_u16().to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason);
            self.write_frame(OpCode::Close, true, &payload[..2 + reason.len()], out);
        }
    }

    // ---- commands ----

    /// Sends a whole message in one frame.
    ///
    /// With permessage-deflate, a message at or above the agreed threshold is compressed, with
    /// zlib state from a new [`DeflatePool`] (or the connection's own with context takeover): use
    /// [`Connection::send_with`] to reuse it.
    pub fn send(&mut self, kind: MessageKind, payload: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidSend> {
        self.send_with(kind, payload, out, &mut DeflatePool::new())
    }

    /// [`Connection::send`], borrowing a compressor from `pool` when the message is compressed
    /// without context takeover. Such a message is sent plain (RSV1 clear) when compressing did
    /// not make it shorter.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub fn send_with(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
    ) -> Result<(), InvalidSend> {
        self.check_open()?;
        if self.sending_fragmented {
            return Err(InvalidSend::Fragmentation);
        }
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut()
            && d.compresses(payload.len())
        {
            let mask = self.keys.as_mut().map(|k| k());
            if d.write_message(kind.opcode(), payload, mask, out, pool) {
                return Ok(());
            }
        }
        self.write_frame(kind.opcode(), true, payload, out);
        Ok(())
    }

    /// Sends a whole message in frames of at most `fragment` payload bytes (at least one frame).
    /// With permessage-deflate and a message at or above the threshold, the compressed payload is
    /// what is split, and RSV1 is set on the first frame only.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    pub fn send_fragmented(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        fragment: usize,
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
    ) -> Result<(), InvalidSend> {
        self.check_open()?;
        if self.sending_fragmented {
            return Err(InvalidSend::Fragmentation);
        }
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let (mut data, mut rsv) = (std::borrow::Cow::Borrowed(payload), 0);
        #[cfg(feature = "deflate")]
        if let Some(d) = self.deflate.as_mut()
            && d.compresses(payload.len())
        {
            data = std::borrow::Cow::Owned(d.compress(payload, pool));
            rsv = RSV1;
        }
        let mut chunks = data.chunks(fragment.max(1)).peekable();
        if data.is_empty() {
            self.write_frame_rsv(kind.opcode(), true, rsv, &[], out);
        }
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let fin = chunks.peek().is_none();
            if first {
                self.write_frame_rsv(kind.opcode(), fin, rsv, chunk, out);
            } else {
                self.write_frame(OpCode::Continuation, fin, chunk, out);
            }
            first = false;
        }
        Ok(())
    }

    /// Sends one fragment of a message: `Some(kind)` starts a message, `None` continues the open
    /// one, and `fin` ends it. Control frames may be sent between fragments.
    pub fn send_fragment(
        &mut self,
        kind: Option<MessageKind>,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidSend> {
        self.check_open()?;
        let opcode = self.fragment_opcode(kind)?;
        self.sending_fragmented = !fin;
        self.write_frame(opcode, fin, payload, out);
        Ok(())
    }

    /// The header of a whole-message frame of `len` bytes, for a server that writes the payload
    /// itself (for example with vectored I/O straight from the application's buffer).
    ///
    /// In the client role the payload must be masked with the returned key before it is sent.
    /// The frame is never compressed (RSV1 clear), which permessage-deflate allows for any
    /// message; use [`Connection::compresses`] and [`Connection::send_with`] to compress.
    pub fn frame_header(
        &mut self,
        kind: MessageKind,
        len: usize,
    ) -> Result<(HeaderBuf, Option<[u8; 4]>), InvalidSend> {
        self.check_open()?;
        if self.sending_fragmented {
            return Err(InvalidSend::Fragmentation);
        }
        let mask = self.keys.as_mut().map(|k| k());
        Ok((encode_header(true, 0, kind.opcode(), len as u64, mask), mask))
    }

    /// Sends a ping with up to 125 bytes of payload. Allowed after this end's Close frame, until
    /// the peer's arrives.
    pub fn ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidSend> {
        self.control_command(OpCode::Ping, payload, out)
    }

    /// Sends a pong (unsolicited, as a heartbeat, or to answer a ping when `auto_pong` is off).
    /// Allowed after this end's Close frame, until the peer's arrives.
    pub fn pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidSend> {
        self.control_command(OpCode::Pong, payload, out)
    }

    /// Starts the closing handshake. [`CloseCode::NoStatus`] sends an empty Close frame (and then
    /// `reason` must be empty); any other code must be sendable.
    pub fn close(&mut self, code: CloseCode, reason: &str, out: &mut Vec<u8>) -> Result<(), InvalidSend> {
        self.check_open()?;
        if reason.len() > MAX_CLOSE_REASON {
            return Err(InvalidSend::ReasonTooLong);
        }
        let mut payload = [0u8; 2 + MAX_CLOSE_REASON];
        let len = if code == CloseCode::NoStatus {
            if !reason.is_empty() {
                return Err(InvalidSend::CodeNotSendable);
            }
            0
        } else {
            if !code.is_sendable() {
                return Err(InvalidSend::CodeNotSendable);
            }
            payload[..2].copy_from_slice(&code.as_u16().to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        };
        self.closing = Closing::CloseSent;
        self.write_frame(OpCode::Close, true, &payload[..len], out);
        Ok(())
    }

    fn check_open(&self) -> Result<(), InvalidSend> {
        if self.closing != Closing::Open {
            Err(InvalidSend::Closed)
        } else {
            Ok(())
        }
    }

    fn fragment_opcode(&self, kind: Option<MessageKind>) -> Result<OpCode, InvalidSend> {
        match (kind, self.sending_fragmented) {
            (Some(k), false) => Ok(k.opcode()),
            (None, true) => Ok(OpCode::Continuation),
            _ => Err(InvalidSend::Fragmentation),
        }
    }

    fn control_command(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), InvalidSend> {
        // Pings and pongs may follow this end's Close frame (only data frames may not, RFC 6455
        // section 5.5.1); once the peer's Close arrived, or the connection failed, nothing may.
        if self.is_closed() {
            return Err(InvalidSend::Closed);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(InvalidSend::ControlTooLong);
        }
        self.write_frame(opcode, true, payload, out);
        Ok(())
    }

    /// Appends one frame to `out`, masked in the client role.
    fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
        self.write_frame_rsv(opcode, fin, 0, payload, out);
    }

    /// Appends one frame with the RSV bits `rsv` to `out`, masked in the client role.
    fn write_frame_rsv(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8], out: &mut Vec<u8>) {
        let mask = self.keys.as_mut().map(|k| k());
        let header = encode_header(fin, rsv, opcode, payload.len() as u64, mask);
        out.reserve(header.as_bytes().len() + payload.len());
        out.extend_from_slice(header.as_bytes());
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut out[start..], key, 0);
        }
    }
}
