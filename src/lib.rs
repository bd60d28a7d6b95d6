//! # c10k
//!
//! A low-level WebSocket engine (RFC 6455) built to hold tens of thousands of connections per core
//! with microsecond overhead per message.
//!
//! The crate is layered; each layer only uses the ones below it:
//!
//! - [`proto`]: the sans-I/O protocol core. Handshake, frames, masking, UTF-8, close codes and
//!   the per-connection state machine, as pure functions over byte buffers.
//!
//! ```
//! use c10k::proto::{Config, Connection, Event, Message};
//!
//! // A server-side connection fed the RFC 6455 section 5.7 example: a masked "Hello".
//! let mut conn = Connection::server(Config::default());
//! let mut input = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! let mut out = Vec::new();
//! let read = conn.read(&mut input, &mut out).unwrap();
//! assert_eq!(read.consumed, 11);
//! match read.event {
//!     Some(Event::Message(Message::Text(text))) => assert_eq!(text, "Hello"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
#![deny(missing_docs, missing_debug_implementations)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod proto;

pub mod apps;
pub mod check;
pub mod client;
pub mod engine;
pub mod handler;
pub mod loadgen;
pub mod server;
pub mod topics;

pub use engine::SendError;
pub use handler::{Ctx, Decision, Handler, HttpResponse, TimerId};
pub use server::{Backpressure, ConnId, RejectReason, Server, ServerConfig, ServerHandle, Stats};
