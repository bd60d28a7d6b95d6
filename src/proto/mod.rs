//! The sans-I/O RFC 6455 core: bytes in, events and bytes out.
//!
//! Nothing in this module performs I/O, spawns threads, reads the clock or draws random numbers:
//! input arrives as byte slices, output goes into the caller's `Vec<u8>`, and randomness (masking
//! keys, handshake keys) is supplied by the caller. Every runtime — the engine's event loop, the
//! load generator, the conformance checker, the fuzz targets — drives the same code.
//!
//! ```text
//!  bytes from socket ──► handshake::parse_request ──► Request ──► write_accept / write_response
//!                                 │ head_len
//!                                 ▼
//!  bytes from socket ──► Connection::read ──► Event (Message, Ping, Pong, Close)
//!                             │   ├─ frame::decode_header   (structure)
//!                             │   ├─ mask::apply_mask       (in place)
//!                             │   └─ utf8::Utf8Validator     (incremental, fail fast)
//!                             ▼
//!                     automatic replies ──► out: Vec<u8> ◄── send / ping / close (commands)
//! ```
//!
//! Failures are mapped to close codes and HTTP statuses in one place: [`error`].
//!
//! permessage-deflate (RFC 7692) is negotiated and applied by [`deflate`]: a connection given the
//! agreed parameters inflates compressed messages inside `Connection::read_with` and compresses
//! inside `Connection::send_with`, with zlib state lent by a [`DeflatePool`].
//!
//! The module has no `unsafe` code, and the compiler holds it to that: text is validated by a
//! safe SIMD helper that returns the `&str` ([`utf8::validate`]), masking works on plain slices.

#![forbid(unsafe_code)]

pub mod close;
pub mod close_code;
pub mod conn;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod http_token;
pub mod mask;
pub mod proxy;
pub mod role;
pub mod utf8;

pub use close::CloseFrame;
pub use close_code::CloseCode;
pub use conn::{Config, Connection, Event, MaskSource, Message, MessageKind, Read};
pub use deflate::{DeflateConfig, DeflateParams, DeflatePool, Negotiated};
pub use error::{Error, HandshakeError, InvalidSend};
pub use frame::{FrameHeader, OpCode};
pub use handshake::{Accept, ClientRequest, HeadLimits, Request, Response};
pub use role::Role;
