//! The state of one shard that its handler's callbacks may touch (through [`Ctx`]): the
//! connections in their slab, topics, the timing wheel, gathered output, counters.
//!
//! [`Shard`]'s methods are split over files by concern, each an `impl Shard` block of its own:
//! `handshake` (accept, decide, open), `input` (read, parse, dispatch), `output` (send, write,
//! back-pressure, the close of a socket), `broadcast` (topics and publish), `timeouts` (what a
//! passed deadline does), `drain` (shutdown). Its fields are visible to those blocks only; the
//! event loop and [`Ctx`] call its methods.
//!
//! [`Ctx`]: super::handler::Ctx

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Registry;
use mio::net::TcpListener;
use slab::Slab;

use super::config::ServerConfig;
use super::conn::Conn;
use super::cork::Cork;
use super::deadline::{Deadline, Timeouts};
use super::id::ConnId;
use super::memory::{Kind, Memory};
use super::node::Node;
use super::stats::{MemoryStats, Stats};
use super::topics::Topics;
use super::transport::IoBufs;
use super::wheel::{TimerKey, Wheel};
use crate::proto::DeflatePool;

/// How often a shard publishes its statistics for the others ([`Ctx::all_stats`]).
///
/// [`Ctx::all_stats`]: super::handler::Ctx::all_stats
pub(super) const PUBLISH_STATS_MS: u64 = 1000;

/// TLS handshake reads a shard does per loop turn (each may cost a key exchange and a
/// signature, about 0.3 ms with the default hybrid key exchange); connections past it wait for
/// the next turn, so that a flood of ClientHellos delays the established connections by about
/// a millisecond per turn. (16 let a flood make turns of 5 ms and more, and the bystanders'
/// p99 twice as long: docs/security.md.)
pub(super) const TLS_HANDSHAKES_PER_TURN: usize = 4;

/// Reads of connections in their (plain) handshake a shard does per loop turn: a burst of new
/// connections (a fleet reconnecting, an attack) is answered over several turns, each short.
pub(super) const HANDSHAKES_PER_TURN: usize = 32;

/// Connections a shard accepts per loop turn; more wait in the backlog for the next turn.
pub(super) const ACCEPTS_PER_TURN: usize = 128;

/// Connections a shard closes for memory per loop turn (see `overload.rs`).
pub(super) const SHED_PER_TURN: usize = 16;

/// Bytes of compressed messages a shard inflates per loop turn, all its connections together:
/// past it, a connection's input waits for its next turn, so that one turn's work (the latency
/// every other connection of the shard may see) stays well under a millisecond. Inflating into
/// fresh memory costs about 3 ms a mebibyte on the machines c10k is measured on (page faults
/// and buffer growth included, more than the inflating itself); a shard whose loop has nothing
/// else to do still inflates hundreds of megabytes a second, a turn after the other.
pub(super) const INFLATE_PER_TURN: usize = 64 << 10;

/// What a timer of the wheel is for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Timer {
    /// A connection's deadline (which one is in its `timer`).
    Conn {
        key: u32,
        generation: u32,
    },
    /// The deadline of the message a connection is receiving.
    Message {
        key: u32,
        generation: u32,
    },
    /// An application timer ([`Ctx::set_timer`](super::handler::Ctx::set_timer)).
    App(u64),
    AcceptResume,
    /// The end of the lame-duck period of a shutdown: start draining.
    Grace,
    /// The end of the drain: close what is left.
    Drain,
    /// Copy the statistics where other shards' handlers can read them.
    Publish,
}

/// Identifies a timer set by the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId(pub(super) TimerKey);

/// The state of one shard.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(super) index: usize,
    pub(super) registry: Registry,
    pub(super) listener: Option<TcpListener>,
    /// The TLS listener, when the server has one besides (or instead of) the plain one.
    pub(super) tls_listener: Option<TcpListener>,
    /// Accepting is paused: the process ran out of descriptors (for `accept_backoff`).
    pub(super) accept_paused: bool,
    /// Since when accepting is stopped because the shard nears its share of the memory budget.
    pub(super) overloaded_since: Option<u64>,
    /// The timer that resumes accepting after a pause.
    pub(super) accept_timer: Option<TimerKey>,
    pub(super) conns: Slab<Conn>,
    pub(super) topics: Topics,
    /// Connections with queued broadcast frames to write at the end of the loop turn.
    pub(super) dirty: Vec<usize>,
    pub(super) wheel: Wheel<Timer>,
    /// Output gathered for the connection whose input is being handled.
    pub(super) cork: Cork,
    /// zlib state lent to connections for one message at a time (permessage-deflate).
    pub(super) deflate: DeflatePool,
    /// A compressed frame for a connection other than the one being read.
    pub(super) zbuf: Vec<u8>,
    pub(super) config: Arc<ServerConfig>,
    pub(super) timeouts: Timeouts,
    pub(super) stats: Stats,
    /// Connections to remove at the end of the loop turn.
    pub(super) dead: Vec<usize>,
    /// Connections whose queue emptied: the handler hears `on_drain`.
    pub(super) drained: Vec<usize>,
    /// Resumes waiting for a topic's history (see `follow.rs`).
    pub(super) waiting: Vec<super::history::Waiting>,
    /// What the handler hears through `on_resume` at the end of the inbox's turn.
    pub(super) resumed: Vec<(ConnId, Arc<str>, super::history::Resume)>,
    start: Instant,
    pub(super) now_ms: u64,
    rng: u64,
    next_generation: u32,
    pub(super) draining: bool,
    /// Shutting down, first part: still accepting, but health checks answer 503 and upgrades are
    /// refused, so that load balancers take this server out before it stops accepting.
    pub(super) lame_duck: bool,
    /// The next publication of the statistics.
    pub(super) publish_timer: Option<TimerKey>,
    /// The deadline of a graceful shutdown, cancelled if every connection closed before it.
    pub(super) drain_timer: Option<TimerKey>,
    /// When the drain ends (ms on the shard's clock), once it began.
    pub(super) drain_until_ms: u64,
    pub(super) last_accept_log_ms: Option<u64>,
    pub(super) node: Arc<Node>,
    /// The shard's buffers for transports that transform bytes (TLS).
    pub(super) io: IoBufs,
    pub(super) last_tls_log_ms: Option<u64>,
    /// The bytes held for peers, against the shard's share of the budget.
    pub(super) mem: Memory,
    /// Connections that held at least `memory::BIG_HOLDER` bytes when last looked at: the
    /// candidates when the shard must shed memory (stale entries are dropped when looked at).
    pub(super) big: Vec<usize>,
    /// TLS handshake steps left in this loop turn (see [`TLS_HANDSHAKES_PER_TURN`]).
    pub(super) tls_steps: usize,
    /// Plain handshake reads left in this loop turn (see [`HANDSHAKES_PER_TURN`]).
    pub(super) handshake_steps: usize,
    /// Accepts left in this loop turn (see [`ACCEPTS_PER_TURN`]).
    pub(super) accepts_left: usize,
    /// Closes for memory left in this loop turn (see [`SHED_PER_TURN`]).
    pub(super) shed_left: usize,
    /// A listener (plain: bit 0, TLS: bit 1) may have connections left in its backlog that this
    /// turn had no room for: accept again next turn.
    pub(super) accept_more: u8,
    /// Bytes of compressed messages that may still be inflated in this loop turn (see
    /// [`INFLATE_PER_TURN`]).
    pub(super) inflate_left: usize,
    /// The shard shed memory: the allocator's free memory is to be given back (see
    /// `overload.rs`), at most once a second.
    pub(super) trim_due: bool,
    pub(super) last_trim_ms: Option<u64>,
    /// The most the shard held since the heaps were last trimmed.
    pub(super) held_peak: u64,
    /// The client address of each connection, when connections per address are limited.
    pub(super) addresses: HashMap<usize, IpAddr>,
    /// The client's address of each connection whose PROXY header gave one (the others' is
    /// their socket's peer).
    pub(super) client_addrs: HashMap<usize, std::net::SocketAddr>,
}

impl Shard {
    pub(super) fn new(
        index: usize,
        registry: Registry,
        listener: Option<TcpListener>,
        tls_listener: Option<TcpListener>,
        config: Arc<ServerConfig>,
        node: Arc<Node>,
    ) -> Self {
        Self {
            index,
            registry,
            listener,
            tls_listener,
            accept_paused: false,
            overloaded_since: None,
            accept_timer: None,
            conns: Slab::new(),
            topics: Topics::default(),
            dirty: Vec::new(),
            wheel: Wheel::new(0),
            cork: Cork::default(),
            deflate: DeflatePool::new(),
            zbuf: Vec::new(),
            timeouts: Timeouts::of(&config),
            config,
            stats: Stats::default(),
            dead: Vec::new(),
            drained: Vec::new(),
            waiting: Vec::new(),
            resumed: Vec::new(),
            start: Instant::now(),
            now_ms: 0,
            rng: 0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            next_generation: 0,
            draining: false,
            lame_duck: false,
            drain_timer: None,
            drain_until_ms: 0,
            publish_timer: None,
            last_accept_log_ms: None,
            mem: node.memory(index),
            node,
            io: IoBufs::default(),
            last_tls_log_ms: None,
            big: Vec::new(),
            tls_steps: 0,
            handshake_steps: 0,
            accepts_left: 0,
            shed_left: 0,
            accept_more: 0,
            inflate_left: INFLATE_PER_TURN,
            trim_due: false,
            last_trim_ms: None,
            held_peak: 0,
            addresses: HashMap::new(),
            client_addrs: HashMap::new(),
        }
    }

    /// The index of this shard.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Reads the clock once per loop turn: every deadline of the turn is computed from it.
    pub(super) fn tick(&mut self) {
        self.tick_at(self.start.elapsed().as_millis() as u64);
    }

    /// Starts a loop turn at `now_ms` on the shard's clock (a virtual one under test), with
    /// the turn's allowances renewed.
    pub(super) fn tick_at(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.tls_steps = TLS_HANDSHAKES_PER_TURN;
        self.handshake_steps = HANDSHAKES_PER_TURN;
        self.accepts_left = ACCEPTS_PER_TURN;
        self.shed_left = SHED_PER_TURN;
        self.inflate_left = INFLATE_PER_TURN;
    }

    /// Accepts on the listeners that had connections left when the last turn had no more room.
    pub(super) fn accept_left_over(&mut self) {
        let more = std::mem::take(&mut self.accept_more);
        if more & 1 != 0 {
            self.accept(false);
        }
        if more & 2 != 0 {
            self.accept(true);
        }
    }

    /// Whether connection `key` waits for the next turn: the work it has left (inflating a
    /// compressed message, a TLS handshake) is of a kind this turn has no allowance left for.
    pub(super) fn waits_for_next_turn(&self, key: usize) -> bool {
        self.conns.get(key).is_some_and(|c| {
            (self.inflate_left == 0 && c.is(super::conn::Mark::Resume))
                || (self.tls_steps == 0 && c.transport.handshaking())
                || (self.handshake_steps == 0 && c.phase() == super::conn::Phase::Handshaking)
        })
    }

    /// The time until the next timer, for the poll.
    pub(super) fn poll_timeout(&self) -> Option<Duration> {
        self.wheel.timeout_ms(self.now_ms).map(Duration::from_millis)
    }

    /// The timers due by now.
    pub(super) fn expired(&mut self, out: &mut Vec<Timer>) {
        self.wheel.expire(self.now_ms, out);
    }

    pub(super) fn next_generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    /// Up to an eighth of `ms`, drawn at random: connections that arrive in a burst (a
    /// reconnecting fleet, an attack) then reach their handshake deadline spread over time, not
    /// all in the same tick of the wheel.
    pub(super) fn jitter(&mut self, ms: u64) -> u64 {
        self.random() % (ms / 8 + 1)
    }

    /// Up to half of `ms`, drawn at random: how much earlier than a whole ping interval a new
    /// connection's first ping comes (see `deadline::opened`). Not more than half, so
    /// that a short-lived connection, or a client that reads only what it expects, sees no
    /// ping in its first half interval.
    pub(super) fn phase(&mut self, ms: u64) -> u64 {
        self.random() % (ms / 2 + 1)
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: spreads timers, nothing secret depends on it.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn id(&self, key: usize, conn: &Conn) -> ConnId {
        ConnId {
            shard: self.index as u16,
            key: key as u32,
            generation: conn.generation,
        }
    }

    /// The id of an open connection the handler knows.
    pub(super) fn id_of(&self, key: usize) -> Option<ConnId> {
        let conn = self.conns.get(key)?;
        conn.is_known().then(|| self.id(key, conn))
    }

    /// The slab entry behind `id`, if it is still there and not closed.
    pub(super) fn entry(&self, id: ConnId) -> Option<&Conn> {
        let conn = self.conns.get(id.key as usize)?;
        (usize::from(id.shard) == self.index && conn.generation == id.generation && !conn.is_closed())
            .then_some(conn)
    }

    pub(crate) fn is_open(&self, id: ConnId) -> bool {
        self.entry(id).is_some_and(|c| c.proto.is_some())
    }

    pub(crate) fn buffered_amount(&self, id: ConnId) -> Option<usize> {
        let conn = self.entry(id)?;
        Some(conn.queue.len() + self.cork.gathered(id.key as usize))
    }

    /// Arms the deadline `at` of connection `key`, replacing the one it had.
    pub(super) fn set_deadline(&mut self, key: usize, (at_ms, deadline): (u64, Deadline)) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some((t, _)) = conn.timer.take() {
            self.wheel.cancel(t);
        }
        let t = self.wheel.arm(
            at_ms,
            Timer::Conn {
                key: key as u32,
                generation: conn.generation,
            },
        );
        conn.timer = Some((t, deadline));
    }

    pub(super) fn cancel_deadline(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && let Some((t, _)) = conn.timer.take()
        {
            self.wheel.cancel(t);
        }
    }

    pub(crate) fn set_timer(&mut self, delay: Duration, token: u64) -> TimerId {
        TimerId(
            self.wheel
                .arm(self.now_ms + delay.as_millis() as u64, Timer::App(token)),
        )
    }

    pub(crate) fn cancel_timer(&mut self, timer: TimerId) -> bool {
        matches!(self.wheel.cancel(timer.0), Some(Timer::App(_)))
    }

    /// This shard's counters so far.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The statistics with the current sizes of the slab and the wheel.
    pub(crate) fn snapshot(&self) -> Stats {
        let mut s = self.stats.clone();
        s.topics = self.topics.len() as u64;
        s.sockets = self.conns.len() as u64;
        // Connection and application timers: the shard's own bookkeeping ones are not counted.
        let own = [self.publish_timer, self.drain_timer, self.accept_timer]
            .iter()
            .flatten()
            .count();
        s.timers = self.wheel.len().saturating_sub(own) as u64;
        s.deflated = self.deflate.compressed();
        // Counters kept as the bytes come and go: a snapshot costs the same at any size.
        s.queued_bytes = self.mem.held(Kind::Queued);
        s.memory = MemoryStats {
            queued: self.mem.held(Kind::Queued),
            messages: self.mem.held(Kind::Messages),
            input: self.mem.held(Kind::Input),
            tls: self.mem.held(Kind::Tls),
            topics: self.mem.held(Kind::Topics),
            inbox: self.mem.inbox(),
            shared: self.mem.shared(),
            bridge: self.mem.bridge(),
            disposing: self.mem.disposing(),
            budget: self.mem.share(),
        };
        s.inbox_drops = self.node.inbox_refused(self.index);
        s.snapshot_ms = self.now_ms;
        s
    }

    /// Copies the statistics where handlers of other shards can read them, and arms the next
    /// copy.
    pub(super) fn publish_stats(&mut self) {
        self.node.publish_stats(self.index, self.snapshot());
        let at = self.now_ms + PUBLISH_STATS_MS;
        self.publish_timer = Some(self.wheel.arm(at, Timer::Publish));
    }

    /// Every shard's statistics: this shard's now, the others' as last published (at most about
    /// a second old).
    pub(crate) fn all_stats(&self) -> Vec<Stats> {
        (0..self.node.shards())
            .map(|i| {
                if i == self.index {
                    self.snapshot()
                } else {
                    self.node.published_stats(i)
                }
            })
            .collect()
    }

    /// Whether the server is shutting down (lame duck or draining).
    pub(crate) fn is_draining(&self) -> bool {
        self.lame_duck || self.draining
    }

    /// A handle on the whole server.
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }
}
