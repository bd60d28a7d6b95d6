//! permessage-deflate (RFC 7692): the negotiation, and (with the `deflate` feature) the transform.
//!
//! # Negotiation
//!
//! A client offers the extension in `Sec-WebSocket-Extensions` ([`DeflateConfig::offer`], written
//! by [`write_request`](super::handshake::write_request) when
//! [`ClientRequest::deflate`](super::handshake::ClientRequest::deflate) is set). A server reads
//! every offer of every such header field ([`negotiate`]): an offer with an unknown or repeated
//! parameter, or a parameter with an invalid value, is declined and the next one is tried
//! (section 7.1); the first acceptable one is answered under the server's [`DeflateConfig`], and
//! the answer ([`DeflateParams`], whose `Display` is the header value) goes into the 101 response.
//! The client checks that answer against its offer ([`check_response`], called by
//! [`parse_response`](super::handshake::parse_response)) and fails the handshake on anything it
//! did not offer or cannot honour. Both ends then turn the agreed parameters into their own view
//! ([`DeflateParams::negotiated`]) and give it to the connection.
//!
//! # Transform (feature `deflate`)
//!
//! A compressed message has RSV1 set on its first frame only; its payload is raw DEFLATE data
//! ending with an empty stored block whose last four bytes (`00 00 ff ff`) are removed on send
//! and appended on receive (section 7.2). The connection inflates what it receives as it arrives,
//! checking the inflated size against `max_message_size` before the output buffer grows past it,
//! and validating text as UTF-8 on the inflated bytes piece by piece.
//!
//! # Where the state lives
//!
//! zlib state is large (about 370 KiB to compress, 46 KiB to decompress, with a 32 KiB window).
//! Without context takeover (the default, both directions) a connection needs it only while it
//! compresses or inflates one message, so it borrows it from a [`DeflatePool`] that the caller
//! keeps (one per shard or thread) and gives it back when the message is done: an idle
//! connection holds no zlib state at all. With context takeover the state must survive between
//! messages, so the connection owns it for its whole life.
//!
//! # Where the code lives
//!
//! `negotiation` (the offer, the answer, the client's check, each end's view), `params` (the
//! syntax of one offer or answer element), `pool` ([`DeflatePool`]) and, with the feature,
//! `codec` (zlib, and the per-connection state); everything public is re-exported here.
//!
//! Without the `deflate` feature the negotiation code is still there (and pure), but nothing
//! offers or accepts the extension: [`AVAILABLE`] is false, [`negotiate`] declines every offer
//! and [`write_request`](super::handshake::write_request) offers nothing.

#[cfg(feature = "deflate")]
mod codec;
mod negotiation;
mod params;
mod pool;

#[cfg(feature = "deflate")]
pub use codec::{Compressor, Decompressor, InflateError, Inflated, TAIL, compress_frame};
#[cfg(feature = "deflate")]
pub(crate) use codec::{DeflateState, RSV1};
pub use negotiation::{DeflateConfig, DeflateParams, Negotiated, check_response, negotiate};
pub use pool::{DeflatePool, POOL_IDLE_COMPRESSORS, POOL_IDLE_DECOMPRESSORS};

/// The heap a compressor holds: measured for zlib-rs with a 15-bit window at level 6 (the
/// largest the extension allows) by `tests/deflate_memory.rs`; what a server counts for one.
pub const COMPRESSOR_BYTES: usize = 380 << 10;

/// The heap a decompressor holds once it inflated a message: measured for zlib-rs with a
/// 15-bit window by `tests/deflate_memory.rs`; what a server counts for one.
pub const DECOMPRESSOR_BYTES: usize = 47 << 10;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Whether this build can compress (the `deflate` feature).
pub const AVAILABLE: bool = cfg!(feature = "deflate");

/// The smallest LZ77 window a peer may ask for: 2^8 bytes.
pub const MIN_WINDOW_BITS: u8 = 8;

/// The largest LZ77 window: 2^15 = 32 KiB (the default).
pub const MAX_WINDOW_BITS: u8 = 15;

/// Messages shorter than this are sent uncompressed by default (RSV1 clear, which the RFC allows
/// for any message): below it, the DEFLATE block overhead and the time spent outweigh the saving.
pub const DEFAULT_THRESHOLD: usize = 64;

/// Default compression level (zlib's scale, 0-9): fast, and most of the ratio on JSON-like text.
pub const DEFAULT_LEVEL: u32 = 6;
