//! TLS (wss) as a transport between the socket and the protocol core, inside the shard loop.
//!
//! - `config`: the listener's settings ([`TlsConfig`]): certificates from PEM, SNI, ALPN, the
//!   swap at run time.
//! - `session`: one connection's TLS state over rustls' unbuffered API, sans-I/O: records in
//!   from a buffer the shard owns, plaintext out into the shard's read buffer; frames in from
//!   the write path, records out into a buffer the shard owns.
//!
//! The shard's side (reading ciphertext, handing the plaintext to the protocol core, encrypting
//! what the write path sends, close_notify, the failures and their counters) is
//! `engine/tls_io.rs`, an `impl Shard` block like `input.rs` and `output.rs`.
//!
//! A TLS connection's state is a box in its slab entry (`Conn::tls`; a plain connection pays
//! one pointer). Between reads it keeps at most an unfinished record; between writes nothing:
//! ciphertext the kernel does not take goes to the connection's write queue like any other
//! bytes, so an idle TLS connection holds its keys and handshake state and no buffer.

mod config;
mod session;

pub(crate) use self::config::provider;
pub use self::config::{CertFiles, CertSources, TlsConfig, TlsError, certified_key};
pub(crate) use self::session::Session;
