//! # c10k
//!
//! A low-level WebSocket engine (RFC 6455) built to hold tens of thousands of connections per core
//! with microsecond overhead per message.
//!
//! What it is: one single-threaded event loop per core ("shard"), each with its own `SO_REUSEPORT`
//! listening socket and its connections in a slab, handler callbacks on the loop thread, topics
//! with broadcast, and a sans-I/O protocol core that every runtime (server, client, load
//! generator, conformance checker, fuzz targets) shares; with the `tls` feature, TLS (wss) inside
//! the same loop. Every byte a peer makes the server hold is counted against a memory budget
//! (`ServerConfig::memory_budget`), with a bound and an answer for each path (docs/security.md).
//! What it is not: an HTTP framework (plain HTTP requests get one response and a close) or an
//! async runtime.
//!
//! ```text
//!   socket ──read──► shard read buffer ──► proto::Connection::read ──► Handler::on_message(ctx, id, state, msg)
//!                                                                         │ ctx.send / ctx.publish
//!   socket ◄─write── gathered output (one write per batch) ◄── frames ◄───┘
//!   other threads ──ServerHandle──► shard inbox + waker      other nodes ──Bridge (Redis)──► shards
//! ```
//!
//! The crate is layered; each layer only uses the ones below it (`tests/layering.rs` checks it):
//!
//! - [`proto`]: the sans-I/O protocol core. Handshake, frames, masking, UTF-8, close codes and
//!   the per-connection state machine, as pure functions over byte buffers.
//! - the engine (private): the event loop of one shard (mio, slab, timing wheel, write queues)
//!   and the types it runs on, re-exported here: [`Handler`] and its [`Ctx`], [`Decision`],
//!   [`ServerConfig`], [`ServerHandle`], [`Stats`], [`ConnId`], [`Bridge`].
//! - [`Server`]: bound shards on threads of their own; [`client`]: a blocking client.
//! - [`ops`], [`bridge`]: health and metrics around any handler; bridges between nodes.
//!
//! The command line, the load generator and the conformance checker are another package
//! (`c10k-tools`), built on this API; an embedder never compiles them.
//!
//! # Embedding
//!
//! ```no_run
//! use c10k::proto::{Message, Request};
//! use c10k::{ConnId, Ctx, Handler, Server, ServerConfig};
//!
//! /// Echoes every message, and tells everyone in the "all" topic who joined. Each connection
//! /// keeps a count of its messages (its state).
//! struct App;
//!
//! impl Handler for App {
//!     type State = u64;
//!
//!     fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _count: &mut u64, _req: &Request<'_>) {
//!         let _ = ctx.subscribe(id, "all");
//!         ctx.publish("all", c10k::proto::MessageKind::Text, format!("{id} joined").as_bytes());
//!     }
//!
//!     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, count: &mut u64, msg: Message<'_>) {
//!         *count += 1;
//!         let _ = ctx.send(id, msg.kind(), msg.as_bytes());
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     let server = Server::bind(ServerConfig::default(), |_shard| App)?;
//!     let handle = server.handle(); // Clone + Send + Sync: send, close, decide, stats, shutdown
//!     std::thread::spawn(move || {
//!         std::thread::sleep(std::time::Duration::from_secs(60));
//!         handle.shutdown(); // 1001 Going Away to everyone, then the shards stop
//!     });
//!     server.run()
//! }
//! ```
//!
//! # Deciding a handshake later
//!
//! [`Handler::on_handshake`] may answer [`Decision::Pending`]: the connection waits, reading
//! nothing more, while another thread (a call to an authentication service) decides with
//! [`ServerHandle::decide`]; the handshake timeout still bounds the wait (503). The shard serves
//! its other connections meanwhile.
//!
//! ```no_run
//! use c10k::proto::{Message, Request};
//! use c10k::{ConnId, Ctx, Decision, Handler, ServerHandle};
//!
//! struct Authed {
//!     server: ServerHandle,
//! }
//!
//! impl Handler for Authed {
//!     type State = String; // the user's name
//!
//!     fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, req: &Request<'_>) -> Decision<String> {
//!         let token = req.header("authorization").map(String::from_utf8_lossy).unwrap_or_default();
//!         let token = token.into_owned();
//!         let server = self.server.clone();
//!         std::thread::spawn(move || {
//!             // Ask the authentication service (milliseconds), then answer.
//!             let decision = match token.strip_prefix("Bearer ") {
//!                 Some("good") => Decision::accept_with("ann".to_owned()),
//!                 _ => Decision::reject(401, "unauthorized\n")
//!                     .with_header("WWW-Authenticate", "Bearer"),
//!             };
//!             server.decide(id, decision);
//!         });
//!         Decision::Pending
//!     }
//!
//!     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, user: &mut String, msg: Message<'_>) {
//!         let _ = ctx.send_text(id, &format!("{user}: {}", String::from_utf8_lossy(msg.as_bytes())));
//!     }
//! }
//! ```
//!
//! # The core alone
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

// The protocol core is portable, but the engine is not, and saying so here beats a page of
// unresolved names from `libc`.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "c10k runs on Linux only: the engine relies on SO_REUSEPORT spreading new connections over \
     the shards' listening sockets (other kernels hand them all to one socket, or lack the \
     option), calls getrandom(2) for masking keys and handshake nonces and \
     sched_setaffinity(2) to pin each shard to a CPU, and reads its default memory budget from \
     /proc/self/cgroup and /sys/fs/cgroup"
);

pub mod proto;

pub mod bridge;
pub mod client;
mod engine;
pub mod handover;
pub mod ops;
mod server;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;

pub use engine::sys::{PROMPT_RELEASE_FROM, fd_limits, raise_fd_limit, release_memory_promptly};
pub use engine::{
    Backpressure, Bridge, Cidr, ConnId, Ctx, DEFAULT_ACCEPT_BACKOFF, DEFAULT_BACKLOG, DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_CONTROL_FRAME_RATE, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HISTORY_AGE,
    DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_MESSAGES, DEFAULT_HISTORY_TOTAL_BYTES, DEFAULT_MAX_HANDSHAKES,
    DEFAULT_MAX_INBOX_BYTES, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_TOPICS, DEFAULT_MESSAGE_TIMEOUT,
    DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT, DEFAULT_READ_BUFFER, Decision, DecisionOutcome, Handler,
    HistoryConfig, HttpResponse, MemoryStats, Position, Receipt, RejectReason, Resume, RoomFor, RttHistogram,
    SendError, ServerConfig, ServerHandle, Since, Stats, TimerId, TlsFailure, close_code_bucket,
    default_memory_budget,
};
pub use server::Server;

/// The README's examples, compiled by `cargo test --doc` so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
