//! The one place where failures get their close codes and HTTP statuses.
//!
//! Three error types, split by who misbehaved:
//! - [`Error`]: the peer broke RFC 6455 (or RFC 7692) after the handshake. Each case maps to
//!   exactly one close code ([`Error::close_code`]): 1002, 1007 or 1009.
//! - [`HandshakeError`]: the opening handshake failed. On the server side each case maps to the
//!   HTTP status to answer with ([`HandshakeError::status`]); on the client side it says what was
//!   wrong with the server's response.
//! - [`InvalidSend`]: the local application asked for something the protocol forbids (sending after
//!   a close, an oversized control frame...). Nothing is written in that case.

use std::fmt;

use super::close_code::CloseCode;

/// A protocol violation by the peer, detected while reading frames.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// RSV1-3 bits set (shown as the 3-bit value RSV1 RSV2 RSV3) without an extension that defines them.
    ReservedBits(u8),
    /// An opcode reserved by RFC 6455 (0x3-0x7, 0xB-0xF).
    ReservedOpcode(u8),
    /// A control frame without the FIN bit (control frames must not be fragmented).
    FragmentedControlFrame,
    /// A control frame whose payload is longer than 125 bytes.
    ControlFrameTooLong(u64),
    /// A payload length encoded with more bytes than needed.
    NonMinimalLength,
    /// A 64-bit payload length with its most significant bit set.
    LengthOverflow,
    /// A client frame without a mask (a server must reject it).
    UnmaskedFrame,
    /// A server frame with a mask (a client must reject it).
    MaskedFrame,
    /// A continuation frame with no fragmented message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished.
    ExpectedContinuation,
    /// A Close frame with a 1-byte payload.
    CloseOneByte,
    /// A Close frame carrying a code that may not be sent.
    InvalidCloseCode(u16),
    /// Text (or a close reason) that is not UTF-8; `offset` is the position in the message of the
    /// first byte that cannot start or continue a valid sequence.
    InvalidUtf8 {
        /// Byte offset within the message.
        offset: u64,
    },
    /// A frame longer than the configured maximum.
    FrameTooLarge {
        /// The length announced by the frame header.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A message that would grow past the configured maximum (for a compressed message: its
    /// inflated size).
    MessageTooLarge {
        /// The message length so far, including the frame that broke the limit.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A compressed message whose data is not valid DEFLATE (RFC 7692 section 8).
    InvalidCompressedData,
    /// RSV1 ("compressed") on a continuation frame: permessage-deflate marks only the first frame
    /// of a message (RFC 7692 section 6.1).
    CompressedContinuation,
}

impl Error {
    /// The close code to fail the connection with (RFC 6455 section 7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 { .. } | Self::InvalidCompressedData => CloseCode::InvalidPayload,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::TooBig,
            Self::ReservedBits(_)
            | Self::ReservedOpcode(_)
            | Self::FragmentedControlFrame
            | Self::ControlFrameTooLong(_)
            | Self::NonMinimalLength
            | Self::LengthOverflow
            | Self::UnmaskedFrame
            | Self::MaskedFrame
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::CloseOneByte
            | Self::InvalidCloseCode(_)
            | Self::CompressedContinuation => CloseCode::ProtocolError,
        }
    }

    /// A short reason for the Close frame, within the 123 bytes a reason may have.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ReservedBits(_) => "reserved bits set",
            Self::ReservedOpcode(_) => "reserved opcode",
            Self::FragmentedControlFrame => "fragmented control frame",
            Self::ControlFrameTooLong(_) => "control frame too long",
            Self::NonMinimalLength => "non-minimal length",
            Self::LengthOverflow => "length overflow",
            Self::UnmaskedFrame => "unmasked client frame",
            Self::MaskedFrame => "masked server frame",
            Self::UnexpectedContinuation => "unexpected continuation frame",
            Self::ExpectedContinuation => "expected continuation frame",
            Self::CloseOneByte => "1-byte close payload",
            Self::InvalidCloseCode(_) => "invalid close code",
            Self::InvalidUtf8 { .. } => "invalid UTF-8",
            Self::FrameTooLarge { .. } => "frame too large",
            Self::MessageTooLarge { .. } => "message too large",
            Self::InvalidCompressedData => "invalid compressed data",
            Self::CompressedContinuation => "RSV1 on a continuation frame",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBits(bits) => write!(f, "reserved bits {bits:#05b} set without an extension"),
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::FragmentedControlFrame => f.write_str("control frame without FIN"),
            Self::ControlFrameTooLong(len) => write!(f, "control frame payload of {len} bytes (max 125)"),
            Self::NonMinimalLength => f.write_str("payload length not minimally encoded"),
            Self::LengthOverflow => f.write_str("64-bit payload length with its most significant bit set"),
            Self::UnmaskedFrame => f.write_str("client frame not masked"),
            Self::MaskedFrame => f.write_str("server frame masked"),
            Self::UnexpectedContinuation => f.write_str("continuation frame without a message to continue"),
            Self::ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            Self::CloseOneByte => f.write_str("close frame with a 1-byte payload"),
            Self::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            Self::InvalidUtf8 { offset } => write!(f, "invalid UTF-8 at byte {offset} of the message"),
            Self::FrameTooLarge { len, max } => write!(f, "frame of {len} bytes exceeds the limit of {max}"),
            Self::MessageTooLarge { len, max } => {
                write!(f, "message of at least {len} bytes exceeds the limit of {max}")
            }
            Self::InvalidCompressedData => f.write_str("compressed message is not valid DEFLATE data"),
            Self::CompressedContinuation => f.write_str("RSV1 set on a continuation frame"),
        }
    }
}

impl std::error::Error for Error {}

/// A failed opening handshake (RFC 6455 section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    // -- server side: what was wrong with the client's request --
    /// The request head is longer than the configured maximum (431).
    HeadersTooLarge {
        /// The configured maximum in bytes.
        max: usize,
    },
    /// The request has more header fields than the configured maximum (431).
    TooManyHeaders {
        /// The configured maximum number of fields.
        max: usize,
    },
    /// The bytes are not an HTTP/1.x request (400).
    MalformedRequest(&'static str),
    /// A WebSocket upgrade with a method other than GET (405).
    MethodNotGet,
    /// A WebSocket upgrade over HTTP/1.0 (505).
    HttpVersion,
    /// No `Host` header field, or more than one (400).
    MissingHost,
    /// The `Connection` header field does not list `upgrade` (400).
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` absent or not 13 (426, answered with `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` absent, repeated, or not the base64 encoding of 16 bytes (400).
    InvalidKey,

    // -- client side: what was wrong with the server's response --
    /// The response head is longer than the configured maximum.
    ResponseTooLarge {
        /// The configured maximum in bytes.
        max: usize,
    },
    /// The bytes are not an HTTP/1.1 response.
    MalformedResponse(&'static str),
    /// The server answered with a status other than 101.
    UnexpectedStatus(u16),
    /// The response has no `Upgrade: websocket`.
    MissingUpgrade,
    /// The response's `Connection` header field does not list `upgrade`.
    ResponseMissingConnectionUpgrade,
    /// `Sec-WebSocket-Accept` is absent or does not match the key that was sent.
    BadAccept,
    /// The server selected a subprotocol the client did not offer (or several).
    UnofferedSubprotocol,
    /// The server selected an extension the client did not offer.
    UnofferedExtension,
    /// The server's permessage-deflate answer is malformed, or has a parameter or value the
    /// offer does not allow (RFC 7692 section 7.1).
    InvalidExtension(&'static str),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with; `None` for client-side errors.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            Self::HeadersTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            Self::MalformedRequest(_)
            | Self::MissingHost
            | Self::MissingConnectionUpgrade
            | Self::InvalidKey => 400,
            Self::MethodNotGet => 405,
            Self::HttpVersion => 505,
            Self::UnsupportedVersion => 426,
            Self::ResponseTooLarge { .. }
            | Self::MalformedResponse(_)
            | Self::UnexpectedStatus(_)
            | Self::MissingUpgrade
            | Self::ResponseMissingConnectionUpgrade
            | Self::BadAccept
            | Self::UnofferedSubprotocol
            | Self::UnofferedExtension
            | Self::InvalidExtension(_) => return None,
        })
    }

    /// The extra header fields the error response must carry (`Allow` for 405, the supported
    /// version for 426).
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::UnsupportedVersion => &[("Sec-WebSocket-Version", "13")],
            Self::MethodNotGet => &[("Allow", "GET")],
            _ => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadersTooLarge { max } => write!(f, "request head exceeds {max} bytes"),
            Self::TooManyHeaders { max } => write!(f, "request has more than {max} header fields"),
            Self::MalformedRequest(why) => write!(f, "malformed HTTP request: {why}"),
            Self::MethodNotGet => f.write_str("WebSocket upgrade must use GET"),
            Self::HttpVersion => f.write_str("WebSocket upgrade requires HTTP/1.1"),
            Self::MissingHost => f.write_str("exactly one Host header field is required"),
            Self::MissingConnectionUpgrade => f.write_str("Connection header field does not list upgrade"),
            Self::UnsupportedVersion => f.write_str("Sec-WebSocket-Version must be 13"),
            Self::InvalidKey => f.write_str("Sec-WebSocket-Key must be the base64 encoding of 16 bytes"),
            Self::ResponseTooLarge { max } => write!(f, "response head exceeds {max} bytes"),
            Self::MalformedResponse(why) => write!(f, "malformed HTTP response: {why}"),
            Self::UnexpectedStatus(code) => write!(f, "server answered {code} instead of 101"),
            Self::MissingUpgrade => f.write_str("response lacks Upgrade: websocket"),
            Self::ResponseMissingConnectionUpgrade => {
                f.write_str("response Connection header field does not list upgrade")
            }
            Self::BadAccept => f.write_str("Sec-WebSocket-Accept does not match the key sent"),
            Self::UnofferedSubprotocol => f.write_str("server selected a subprotocol that was not offered"),
            Self::UnofferedExtension => f.write_str("server selected an extension that was not offered"),
            Self::InvalidExtension(why) => write!(f, "invalid permessage-deflate answer: {why}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// A send the protocol forbids in the connection's current state: the connection is closing or
/// closed, a control frame or close reason is too long, the close code may not be sent, or a
/// fragment is out of sequence. Nothing was written.
///
/// The engine's `SendError` wraps it (as `Protocol`) beside the reasons of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidSend {
    /// A Close frame was already sent, so no data frame may follow (RFC 6455 section 5.5.1); or
    /// the closing handshake is over (or the connection failed), so no frame at all may.
    Closed,
    /// A control frame payload longer than 125 bytes.
    ControlTooLong,
    /// A close reason longer than 123 bytes.
    ReasonTooLong,
    /// A close code that may not be sent (1005, 1006, 1015, reserved values).
    CodeNotSendable,
    /// A new data message was started while a fragmented one is unfinished, or a continuation was
    /// sent with no fragmented message open.
    Fragmentation,
}

impl fmt::Display for InvalidSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "connection is closing: no more data frames may be sent",
            Self::ControlTooLong => "control frame payload exceeds 125 bytes",
            Self::ReasonTooLong => "close reason exceeds 123 bytes",
            Self::CodeNotSendable => "close code may not be sent on the wire",
            Self::Fragmentation => "fragment out of sequence",
        })
    }
}

impl std::error::Error for InvalidSend {}
