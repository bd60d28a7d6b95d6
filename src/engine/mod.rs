//! The event loop of one shard: a `mio::Poll`, its own listening socket, connections in a slab,
//! a timing wheel, an inbox for other threads, and one read buffer shared by all connections.
//!
//! The loop moves bytes and owns sockets; what the bytes mean is decided by [`crate::proto`].
//!
//! # One message through the loop
//! 1. epoll reports the socket readable; the shard reads into its read buffer, after the few
//!    bytes the connection kept from last time (a partial frame header or handshake).
//! 2. `proto::Connection::read` unmasks and validates in place and returns the message,
//!    borrowing the read buffer when it arrived as one frame.
//! 3. The handler's `on_message` runs; its `ctx.send` to the same connection appends the encoded
//!    frame to the cork (the shard's output buffer), so a batch of messages becomes one `write`.
//! 4. After the read, the cork goes through the one write path to the transport; only what the
//!    kernel did not take is copied into the connection's queue, written later when epoll
//!    reports the socket writable. (docs/architecture.md tells the same path with its reasons.)
//!
//! Sockets are registered once, for both readable and writable readiness, edge-triggered: a
//! writable edge only happens after a write filled the socket buffer, so this costs nothing while
//! the queue is empty and saves two `epoll_ctl` calls per back-pressure episode.
//!
//! permessage-deflate: the shard negotiates it in the handshake when
//! [`ServerConfig::deflate`] is set and lends zlib state from one
//! [`DeflatePool`](crate::proto::DeflatePool) to its connections, one message at a time; a
//! broadcast is compressed once per shard for every subscriber without context takeover.
//!
//! # Rooms
//!
//! | file | what |
//! |---|---|
//! | `event_loop.rs` | binding the shards; the loop: poll, dispatch readiness, timers, inbox |
//! | `shard.rs` | [`Shard`](shard::Shard), the state callbacks may touch, and its small getters |
//! | `handshake.rs`, `input.rs`, `output.rs`, `broadcast.rs`, `timeouts.rs`, `overload.rs`, `drain.rs` | the shard's work, one concern each: accept and handshake, the one read loop, the one write path, topics, deadlines, the memory budget, the end |
//! | `transport.rs` | the seam between a socket and the rest: plain, or TLS records (the only `cfg(feature = "tls")` on the message path) |
//! | `socket.rs` | what the bytes travel on under the transport: a TCP socket, or (feature `testing`) an in-memory pipe |
//! | `pipe.rs`, `harness.rs`, `fired.rs` | (feature `testing`) the in-memory pipe; a shard driven turn by turn on a virtual clock; the timers a test sees fire ([`crate::testing`]) |
//! | `memory.rs`, `dispose.rs`, `cork.rs` | what peers make the shard hold, by kind, against its budget; large blocks freed off the shard's thread; output gathered for the connection being read |
//! | `conn.rs` | a socket's slab entry and its [`Phase`](conn::Phase), changed only by its methods |
//! | `deadline.rs` | the deadlines as pure functions of state and time |
//! | `proxy.rs`, `cidr.rs` | the PROXY protocol: the header trusted senders send before the client's bytes; networks of addresses ([`Cidr`]) |
//! | `handler.rs`, `decision.rs`, `state.rs`, `guard.rs` | [`Handler`], [`Ctx`]; [`Decision`], [`HttpResponse`]; the handler's per-connection states; every call into the handler, with its panic caught |
//! | `node.rs`, `inbox.rs`, `room.rs` | what other threads see: [`ServerHandle`], [`Bridge`], the inboxes, whether a connection has room |
//! | `config.rs`, `id.rs`, `stats.rs`, `error.rs` | [`ServerConfig`], [`ConnId`], [`Stats`], [`SendError`] |
//! | `queue.rs`, `wheel.rs`, `topics.rs`, `sys.rs` | write queues, the timing wheel, topic membership, socket options |
//! | `history.rs`, `follow.rs`, `offsets.rs` | offsets and a bounded history per topic, once per node; a shard's subscriptions that follow offsets and resume; what a bridge that gives offsets calls |
//! | `tls/` | (feature `tls`) TLS settings and the sans-I/O session |

mod broadcast;
mod cidr;
mod config;
mod conn;
mod cork;
mod deadline;
mod decision;
mod dispose;
mod drain;
mod error;
mod event_loop;
#[cfg(feature = "testing")]
mod fired;
mod follow;
mod guard;
mod handler;
mod handshake;
#[cfg(feature = "testing")]
pub(crate) mod harness;
mod history;
mod id;
mod inbox;
mod input;
mod memory;
mod node;
mod offsets;
mod output;
mod overload;
#[cfg(feature = "testing")]
pub(crate) mod pipe;
mod proxy;
mod queue;
mod room;
mod shard;
mod socket;
mod state;
mod stats;
pub(crate) mod sys;
mod thin;
mod timeouts;
#[cfg(feature = "tls")]
pub(crate) mod tls;
mod topics;
mod transport;
mod wheel;

pub use self::cidr::Cidr;
pub use self::config::{
    Backpressure, DEFAULT_ACCEPT_BACKOFF, DEFAULT_BACKLOG, DEFAULT_CLOSE_TIMEOUT, DEFAULT_CONTROL_FRAME_RATE,
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_INBOX_BYTES,
    DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_TOPICS, DEFAULT_MESSAGE_TIMEOUT, DEFAULT_PING_INTERVAL,
    DEFAULT_PONG_TIMEOUT, DEFAULT_READ_BUFFER, ServerConfig, default_memory_budget,
};
pub use self::decision::{Decision, HttpResponse};
pub use self::error::SendError;
pub(crate) use self::event_loop::{Bound, bind};
pub use self::handler::{Ctx, Handler, TimerId};
pub use self::history::{
    DEFAULT_HISTORY_AGE, DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_MESSAGES, DEFAULT_HISTORY_TOTAL_BYTES,
    HistoryConfig, Position, Resume, Since,
};
pub use self::id::ConnId;
pub use self::inbox::{DecisionOutcome, Receipt};
pub(crate) use self::node::panicked;
pub use self::node::{Bridge, ServerHandle};
pub use self::room::RoomFor;
pub use self::stats::{MemoryStats, RejectReason, RttHistogram, Stats, TlsFailure, close_code_bucket};
