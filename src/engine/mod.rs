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
//!    frame to the shard's output buffer (`tx`), so a batch of messages becomes one `write`.
//! 4. After the read, `tx` is written to the socket; only what the kernel did not take is copied
//!    into the connection's queue, written later when epoll reports the socket writable.
//!
//! Sockets are registered once, for both readable and writable readiness, edge-triggered: a
//! writable edge only happens after a write filled the socket buffer, so this costs nothing while
//! the queue is empty and saves two `epoll_ctl` calls per back-pressure episode.
//!
//! permessage-deflate: the shard negotiates it in the handshake when
//! [`ServerConfig::deflate`] is set and lends zlib state from one [`DeflatePool`] to its
//! connections, one message at a time; a broadcast is compressed once per shard for every
//! subscriber without context takeover.

pub(crate) mod queue;
pub mod sys;
pub(crate) mod topics;
pub(crate) mod wheel;

use std::io::{self, IoSlice, Read, Write};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use self::queue::WriteQueue;
use self::topics::{Change, Memberships, Topics};
use self::wheel::{TimerKey, Wheel};
use crate::handler::{Ctx, Decision, Handler, HttpResponse, TimerId};
use crate::proto::handshake::{self, Accept};
use crate::proto::{self, CloseCode, Connection, DeflateParams, DeflatePool, Event, MessageKind};
use crate::server::{Backpressure, ConnId, RejectReason, ServerConfig, ServerHandle, Stats};

/// Token of the shard's listening socket.
pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the shard's waker.
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Messages up to this size sent to the connection being read are gathered into one write.
const CORK_MAX: usize = 16 << 10;
/// Gathered output is written once it would grow past this size (or past the queue cap), so that
/// a handler sending many small messages from one callback is bounded like any other sender.
const CORK_FLUSH: usize = 64 << 10;
/// A subscriber's queue is written during a burst of publishes once it holds this much.
const BROADCAST_FLUSH: usize = 32 << 10;
/// Bytes read from one connection before the others get their turn.
const READ_BUDGET: usize = 512 << 10;
/// Readiness events taken per poll.
const EVENTS: usize = 1024;

/// What other threads ask of a shard.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        id: ConnId,
        kind: MessageKind,
        data: Vec<u8>,
    },
    Close {
        id: ConnId,
        code: CloseCode,
        reason: String,
    },
    /// A frame published on `topic` elsewhere (another shard, another thread, another node).
    Publish {
        topic: Arc<str>,
        frame: Arc<[u8]>,
    },
    Shutdown,
    Stats(mpsc::Sender<Stats>),
}

/// Why a send did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No such connection: it closed (the id is stale) or belongs to another shard.
    UnknownConnection,
    /// The connection is still in its handshake.
    NotOpen,
    /// The connection is closing: no more messages may be sent.
    Closing,
    /// The protocol forbids it (oversized control frame, bad close code, ...).
    Protocol(proto::InvalidSend),
    /// The back-pressure policy dropped the message (the queue is over its cap).
    Dropped,
}

impl From<proto::InvalidSend> for SendError {
    fn from(e: proto::InvalidSend) -> Self {
        match e {
            proto::InvalidSend::Closed => Self::Closing,
            e => Self::Protocol(e),
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownConnection => f.write_str("no such connection"),
            Self::NotOpen => f.write_str("connection not open yet"),
            Self::Closing => f.write_str("connection is closing"),
            Self::Protocol(e) => write!(f, "{e}"),
            Self::Dropped => f.write_str("message dropped: write queue over its cap"),
        }
    }
}

impl std::error::Error for SendError {}

/// Encodes a whole server frame (unmasked) into one shared buffer.
pub(crate) fn encode_frame(kind: MessageKind, payload: &[u8]) -> Arc<[u8]> {
    let opcode = match kind {
        MessageKind::Text => proto::OpCode::Text,
        MessageKind::Binary => proto::OpCode::Binary,
    };
    let header = proto::frame::encode_header(true, 0, opcode, payload.len() as u64, None);
    let mut v = Vec::with_capacity(header.as_bytes().len() + payload.len());
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(payload);
    Arc::from(v)
}

/// The payload length of a frame made by [`encode_frame`].
fn payload_len(frame: &[u8]) -> usize {
    match proto::frame::decode_header(frame) {
        Ok(Some((h, _))) => h.len as usize,
        _ => 0,
    }
}

/// The opcode and payload of a frame made by [`encode_frame`].
#[cfg(feature = "deflate")]
fn frame_parts(frame: &[u8]) -> Option<(proto::OpCode, &[u8])> {
    match proto::frame::decode_header(frame) {
        Ok(Some((h, n))) => Some((h.opcode, frame.get(n..)?)),
        _ => None,
    }
}

/// The compressed versions of one broadcast frame, built on first need: one per compression
/// window (8 to 15), `Some(None)` when the message is not compressed for that window.
#[cfg(feature = "deflate")]
#[derive(Default)]
struct Deflated {
    frames: [Option<Option<Arc<[u8]>>>; 8],
}

/// The frame to queue for a subscriber `p` that compresses a message of this size: the shard's
/// one compressed frame for its window without context takeover (built on first need), one of
/// its own with context takeover; `None` to send the plain frame (compressing did not pay).
#[cfg(feature = "deflate")]
fn compressed_frame(
    p: &mut Connection,
    frame: &Arc<[u8]>,
    cache: &mut Deflated,
    pool: &mut DeflatePool,
) -> Option<Arc<[u8]>> {
    let n = *p.deflate()?;
    let (opcode, payload) = frame_parts(frame)?;
    if n.compress_context_takeover {
        let kind = match opcode {
            proto::OpCode::Text => MessageKind::Text,
            _ => MessageKind::Binary,
        };
        let mut out = Vec::new();
        p.send_with(kind, payload, &mut out, pool).ok()?;
        return Some(Arc::from(out));
    }
    let bits = n.compress_window_bits.clamp(8, 15);
    cache.frames[usize::from(bits - 8)]
        .get_or_insert_with(|| {
            let mut out = Vec::new();
            proto::deflate::compress_frame(opcode, payload, bits, n.level, pool, &mut out);
            (out.len() < frame.len()).then(|| Arc::from(out))
        })
        .clone()
}

/// Buffers larger than this are not kept between compressed sends.
const ZBUF_KEEP: usize = 256 << 10;

/// What a timer is for.
#[derive(Debug, Clone, Copy)]
enum Timer {
    Conn {
        key: u32,
        generation: u32,
    },
    App(u64),
    AcceptResume,
    /// The end of the lame-duck period of a shutdown: start draining.
    Grace,
    Drain,
    /// Copy the statistics where other shards' handlers can read them.
    Publish,
}

/// How often a shard publishes its statistics for the others (`ServerHandle::published_stats`).
const PUBLISH_STATS_MS: u64 = 1000;

/// Which deadline a connection's timer stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Handshake,
    Keepalive,
    Pong,
    Closing,
}

/// One socket of the shard.
#[derive(Debug)]
struct Conn {
    socket: TcpStream,
    generation: u32,
    /// `None` while the handshake is in progress.
    proto: Option<Connection>,
    /// Bytes of an unfinished frame header, control frame or handshake.
    leftover: Vec<u8>,
    queue: WriteQueue,
    timer: Option<(TimerKey, Deadline)>,
    last_read_ms: u64,
    /// When the keep-alive ping was sent, while its answer is awaited.
    ping_sent_ms: Option<u64>,
    /// Close the socket once the queue is empty (after an HTTP answer, a failure, a close).
    close_after_flush: bool,
    /// Write side shut down; waiting for the peer's FIN, discarding input.
    lingering: bool,
    dead: bool,
    /// The code to report: the peer's close code, or the code this end failed with.
    close_code: Option<CloseCode>,
    close_reason: Option<Box<str>>,
    /// The topics this connection subscribes to (unallocated when none).
    topics: Memberships,
    /// The last write did not take everything: wait for the writable edge.
    blocked: bool,
    /// Listed in `Core::dirty`: its queue is written at the end of the loop turn.
    dirty: bool,
}

/// The state of a shard that callbacks may touch (through [`Ctx`]).
#[derive(Debug)]
pub struct Core {
    pub(crate) shard: usize,
    registry: Registry,
    listener: Option<TcpListener>,
    accept_paused: bool,
    /// The timer that resumes accepting after a pause.
    accept_timer: Option<TimerKey>,
    conns: Slab<Conn>,
    topics: Topics,
    /// Connections with queued broadcast frames to write at the end of the loop turn.
    dirty: Vec<usize>,
    wheel: Wheel<Timer>,
    /// Output gathered for the connection whose input is being handled.
    tx: Vec<u8>,
    /// zlib state lent to connections for one message at a time (permessage-deflate).
    deflate: DeflatePool,
    /// A compressed frame for a connection other than the one being read.
    zbuf: Vec<u8>,
    current: Option<usize>,
    config: Arc<ServerConfig>,
    pub(crate) stats: Stats,
    dead: Vec<usize>,
    drained: Vec<usize>,
    start: Instant,
    now_ms: u64,
    rng: u64,
    next_generation: u32,
    draining: bool,
    /// Shutting down, first part: still accepting, but health checks answer 503 and upgrades are
    /// refused, so that load balancers take this server out before it stops accepting.
    lame_duck: bool,
    /// The next publication of the statistics.
    publish_timer: Option<TimerKey>,
    /// The deadline of a graceful shutdown, cancelled if every connection closed before it.
    drain_timer: Option<TimerKey>,
    last_accept_log_ms: Option<u64>,
    handle: ServerHandle,
}

/// Runs one shard until it has drained after a shutdown; returns its final statistics.
pub(crate) fn run_shard<H: Handler>(
    shard: usize,
    mut poll: Poll,
    mut listener: TcpListener,
    inbox: mpsc::Receiver<Command>,
    config: Arc<ServerConfig>,
    handler: H,
    handle: ServerHandle,
) -> Stats {
    let registry = match poll.registry().try_clone() {
        Ok(r) => r,
        Err(e) => {
            log::error!("shard {shard}: cannot clone the poll registry: {e}");
            return Stats::default();
        }
    };
    if let Err(e) = registry.register(&mut listener, LISTENER, Interest::READABLE) {
        log::error!("shard {shard}: cannot register the listener: {e}");
        return Stats::default();
    }
    let scratch = vec![0u8; config.read_buffer.max(4096) + config.head_limits.max_bytes];
    let mut shard = Shard {
        handler,
        scratch,
        inbox,
        fired: Vec::new(),
        pending_reads: Vec::new(),
        core: Core {
            shard,
            registry,
            listener: Some(listener),
            accept_paused: false,
            accept_timer: None,
            conns: Slab::new(),
            topics: Topics::default(),
            dirty: Vec::new(),
            wheel: Wheel::new(0),
            tx: Vec::new(),
            deflate: DeflatePool::new(),
            zbuf: Vec::new(),
            current: None,
            config,
            stats: Stats::default(),
            dead: Vec::new(),
            drained: Vec::new(),
            start: Instant::now(),
            now_ms: 0,
            rng: 0x9e37_79b9_7f4a_7c15 ^ (shard as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            next_generation: 0,
            draining: false,
            lame_duck: false,
            drain_timer: None,
            publish_timer: None,
            last_accept_log_ms: None,
            handle,
        },
    };
    shard.core.publish_stats();
    shard.core.publish_timer = Some(shard.core.wheel.arm(PUBLISH_STATS_MS, Timer::Publish));
    shard.run(&mut poll);
    let stats = shard.core.snapshot();
    // Published before the inbox closes, so that a caller never finds the shard gone and its
    // final statistics not there yet.
    if let Some(r) = shard.core.handle.shared.remotes.get(shard.core.shard)
        && let Ok(mut s) = r.final_stats.lock()
    {
        *s = Some(stats.clone());
    }
    stats
}

struct Shard<H> {
    handler: H,
    scratch: Vec<u8>,
    inbox: mpsc::Receiver<Command>,
    fired: Vec<Timer>,
    pending_reads: Vec<usize>,
    core: Core,
}

impl<H: Handler> Shard<H> {
    fn run(&mut self, poll: &mut Poll) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout = if self.pending_reads.is_empty() {
                self.core
                    .wheel
                    .timeout_ms(self.core.now_ms)
                    .map(Duration::from_millis)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("shard {}: poll failed: {e}", self.core.shard);
                break;
            }
            self.core.now_ms = self.core.start.elapsed().as_millis() as u64;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => self.drain_inbox(),
                    Token(key) => {
                        if ev.is_writable() {
                            self.on_writable(key);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(key, ev.is_read_closed() || ev.is_error());
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.pending_reads) {
                self.on_readable(key, false);
            }
            self.expire_timers();
            self.core.flush_dirty();
            self.reap();
            if self.core.draining && self.core.conns.is_empty() {
                // Leave no timer of the shard's own behind (the shard's final statistics show
                // what is left).
                for t in [self.core.drain_timer.take(), self.core.publish_timer.take()]
                    .into_iter()
                    .flatten()
                {
                    self.core.wheel.cancel(t);
                }
                break;
            }
        }
    }

    fn accept(&mut self) {
        let core = &mut self.core;
        if core.accept_paused || core.draining {
            return;
        }
        loop {
            let Some(listener) = core.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => core.add(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if sys::is_per_connection_accept_error(&e) => core.stats.accept_errors += 1,
                Err(e) => {
                    // Out of descriptors (or worse): the pending connection stays in the backlog.
                    // Stop accepting for a while instead of spinning on it.
                    core.stats.accept_errors += 1;
                    core.stats.accept_pauses += 1;
                    if core.last_accept_log_ms.is_none_or(|t| core.now_ms >= t + 1000) {
                        core.last_accept_log_ms = Some(core.now_ms);
                        let kind = if sys::is_resource_exhaustion(&e) {
                            "resources exhausted"
                        } else {
                            "error"
                        };
                        log::warn!(
                            "shard {}: accept {kind} ({e}); pausing accepts for {:?} ({} pauses so far)",
                            core.shard,
                            core.config.accept_backoff,
                            core.stats.accept_pauses
                        );
                    }
                    core.accept_paused = true;
                    let at = core.now_ms + core.config.accept_backoff.as_millis() as u64;
                    core.accept_timer = Some(core.wheel.arm(at, Timer::AcceptResume));
                    return;
                }
            }
        }
    }

    fn drain_inbox(&mut self) {
        if let Some(r) = self.core.handle.shared.remotes.get(self.core.shard) {
            r.woken.store(false, std::sync::atomic::Ordering::Release);
        }
        while let Ok(cmd) = self.inbox.try_recv() {
            match cmd {
                Command::Send { id, kind, data } => {
                    let _ = self.core.send(id, kind, &data);
                }
                Command::Close { id, code, reason } => {
                    let _ = self.core.close(id, code, &reason);
                }
                Command::Publish { topic, frame } => {
                    self.core.deliver(&topic, &frame);
                }
                Command::Shutdown => self.core.shutdown(),
                Command::Stats(reply) => {
                    let _ = reply.send(self.core.snapshot());
                }
            }
        }
    }

    fn on_writable(&mut self, key: usize) {
        let core = &mut self.core;
        let Some(conn) = core.conns.get_mut(key) else {
            return;
        };
        conn.blocked = false;
        if conn.dead || conn.queue.is_empty() {
            return;
        }
        match conn.queue.flush(&mut conn.socket) {
            Ok(true) => {
                let notify = conn.proto.as_ref().is_some_and(|p| !p.close_sent()) && !conn.close_after_flush;
                if notify {
                    core.drained.push(key);
                }
                core.after_io(key);
            }
            Ok(false) => conn.blocked = true,
            Err(_) => core.kill(key),
        }
        self.notify_drained();
    }

    fn notify_drained(&mut self) {
        while let Some(key) = self.core.drained.pop() {
            if let Some(id) = self.core.id_of(key) {
                self.handler.on_drain(&mut Ctx { core: &mut self.core }, id);
            }
        }
    }

    fn on_readable(&mut self, key: usize, read_closed: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.core.conns.get_mut(key) else {
                return;
            };
            if conn.dead {
                return;
            }
            if conn.lingering {
                return self.core.linger_read(key, &mut self.scratch);
            }
            let kept = conn.leftover.len();
            self.scratch[..kept].copy_from_slice(&conn.leftover);
            let space = self.scratch.len() - kept;
            match conn.socket.read(&mut self.scratch[kept..]) {
                Ok(0) => {
                    // The peer closed its side. After a completed close handshake this is the
                    // expected end; otherwise the connection ends abnormally (1006).
                    self.core.kill(key);
                    return;
                }
                Ok(n) => {
                    conn.last_read_ms = self.core.now_ms;
                    conn.leftover.clear();
                    self.process(key, kept + n);
                    budget = budget.saturating_sub(n);
                    if n < space && !read_closed {
                        // The socket is drained; the next byte brings a new edge.
                        return;
                    }
                    if budget == 0 {
                        self.pending_reads.push(key);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.core.kill(key);
                    return;
                }
            }
        }
    }

    /// Handles `scratch[..filled]`, the input of connection `key`.
    fn process(&mut self, key: usize, filled: usize) {
        self.core.current = Some(key);
        let mut pos = 0;
        while pos < filled {
            let core = &mut self.core;
            let Some(conn) = core.conns.get_mut(key) else {
                break;
            };
            if conn.dead || conn.close_after_flush || conn.lingering {
                pos = filled;
                break;
            }
            let Some(proto) = conn.proto.as_mut() else {
                match handshake(&mut self.handler, core, key, &self.scratch[pos..filled]) {
                    Handshake::Incomplete => break,
                    Handshake::Done => pos = filled,
                    Handshake::Open(head_len) => pos += head_len,
                }
                continue;
            };
            match proto.read_with(&mut self.scratch[pos..filled], &mut core.tx, &mut core.deflate) {
                Ok(read) => {
                    pos += read.consumed;
                    match read.event {
                        Some(event) => dispatch(&mut self.handler, core, key, event),
                        None if read.consumed == 0 => break,
                        None => {}
                    }
                }
                Err(e) => {
                    core.stats.protocol_errors += 1;
                    conn.close_code = Some(e.close_code());
                    conn.close_reason = Some(e.reason().into());
                    log::debug!("shard {}: connection {key}: {e}", core.shard);
                    pos = filled;
                }
            }
        }
        if let Some(conn) = self.core.conns.get_mut(key)
            && !conn.dead
            && pos < filled
        {
            conn.leftover.extend_from_slice(&self.scratch[pos..filled]);
        } else if let Some(conn) = self.core.conns.get_mut(key)
            && conn.leftover.capacity() > 0
        {
            // An idle connection keeps no buffer.
            conn.leftover = Vec::new();
        }
        self.core.flush_tx(key);
        self.core.current = None;
        self.core.after_io(key);
    }

    fn expire_timers(&mut self) {
        self.core.wheel.expire(self.core.now_ms, &mut self.fired);
        for timer in std::mem::take(&mut self.fired) {
            match timer {
                Timer::Conn { key, generation } => self.core.conn_timer(key as usize, generation),
                Timer::App(token) => self.handler.on_timer(&mut Ctx { core: &mut self.core }, token),
                Timer::AcceptResume => {
                    self.core.accept_timer = None;
                    self.core.accept_paused = false;
                    self.accept();
                }
                Timer::Grace => self.core.begin_drain(),
                Timer::Publish => {
                    self.core.publish_stats();
                    let at = self.core.now_ms + PUBLISH_STATS_MS;
                    self.core.publish_timer = Some(self.core.wheel.arm(at, Timer::Publish));
                }
                Timer::Drain => {
                    self.core.drain_timer = None;
                    for (key, _) in self.core.conns.iter_mut() {
                        self.core.dead.push(key);
                    }
                    for (_, c) in self.core.conns.iter_mut() {
                        c.dead = true;
                    }
                }
            }
        }
    }

    /// Removes dead connections, telling the handler about each opened one.
    fn reap(&mut self) {
        while let Some(key) = self.core.dead.pop() {
            let Some(mut conn) = self.core.conns.try_remove(key) else {
                continue;
            };
            let _ = self.core.registry.deregister(&mut conn.socket);
            if let Some((t, _)) = conn.timer.take() {
                self.core.wheel.cancel(t);
            }
            self.core.leave_all(key, &mut conn.topics);
            if conn.proto.is_none() {
                self.core.stats.handshaking -= 1;
                continue;
            }
            self.core.stats.connections_open -= 1;
            // The peer's code, or the code this end failed the connection with; a closing
            // handshake this end started and the peer never answered is an abnormal closure.
            let code = conn.close_code.unwrap_or(CloseCode::Abnormal);
            *self.core.stats.closes.entry(code.as_u16()).or_default() += 1;
            let id = ConnId {
                shard: self.core.shard as u16,
                key: key as u32,
                generation: conn.generation,
            };
            drop(conn.socket);
            let reason = conn.close_reason.unwrap_or_default();
            self.handler
                .on_close(&mut Ctx { core: &mut self.core }, id, code, &reason);
        }
        self.notify_drained();
    }
}

/// How a handshake attempt ended.
enum Handshake {
    /// The request head is not complete yet: keep the bytes.
    Incomplete,
    /// Answered (rejection, error, plain HTTP): the socket closes after the answer.
    Done,
    /// Accepted; frames start after this many bytes.
    Open(usize),
}

fn handshake<H: Handler>(handler: &mut H, core: &mut Core, key: usize, input: &[u8]) -> Handshake {
    let req = match handshake::parse_request(input, &core.config.head_limits) {
        Ok(None) => return Handshake::Incomplete,
        Ok(Some(req)) => req,
        Err(e) => {
            *core.stats.rejected.entry(RejectReason::of(&e)).or_default() += 1;
            handshake::write_error_response(&e, &mut core.tx);
            core.close_after_flush(key);
            return Handshake::Done;
        }
    };
    if !req.is_websocket() {
        core.stats.http_requests += 1;
        let resp = handler.on_http(&mut Ctx { core }, &req);
        core.respond(key, &resp);
        return Handshake::Done;
    }
    if core.lame_duck {
        *core.stats.rejected.entry(RejectReason::Draining).or_default() += 1;
        let mut resp = HttpResponse::text(503, "server shutting down\n");
        resp.headers.push(("Retry-After".to_owned(), "1".to_owned()));
        core.respond(key, &resp);
        return Handshake::Done;
    }
    match handler.on_handshake(&req) {
        Decision::Reject(resp) => {
            *core.stats.rejected.entry(RejectReason::Application).or_default() += 1;
            core.respond(key, &resp);
            Handshake::Done
        }
        Decision::Accept { protocol, headers } => {
            let mut headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            // permessage-deflate, unless the application answered the extension offers itself.
            let deflate = match core.config.deflate.as_ref() {
                Some(policy)
                    if !headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions")) =>
                {
                    proto::deflate::negotiate(req.header_values("sec-websocket-extensions"), policy)
                }
                _ => None,
            };
            let answer = deflate.map(|p| p.to_string());
            if let Some(a) = answer.as_deref() {
                headers.push(("Sec-WebSocket-Extensions", a));
            }
            let accept = Accept {
                protocol: protocol.as_deref(),
                headers: &headers,
            };
            if let Err(e) = handshake::write_accept(&req, &accept, &mut core.tx) {
                log::error!(
                    "shard {}: the handler's handshake answer is invalid: {e}",
                    core.shard
                );
                core.respond(key, &HttpResponse::text(500, "internal error\n"));
                return Handshake::Done;
            }
            let id = core.open(key, deflate);
            handler.on_open(&mut Ctx { core }, id, &req);
            Handshake::Open(req.head_len())
        }
    }
}

fn dispatch<H: Handler>(handler: &mut H, core: &mut Core, key: usize, event: Event<'_>) {
    let Some(id) = core.id_of(key) else { return };
    match event {
        Event::Message(msg) => {
            core.stats.messages_in += 1;
            core.stats.bytes_in += msg.as_bytes().len() as u64;
            handler.on_message(&mut Ctx { core }, id, msg);
        }
        Event::Ping(payload) => handler.on_ping(&mut Ctx { core }, id, payload),
        Event::Pong(payload) => {
            core.pong_received(key);
            handler.on_pong(&mut Ctx { core }, id, payload);
        }
        Event::Close(frame) => {
            if let Some(conn) = core.conns.get_mut(key) {
                conn.close_code = Some(frame.code);
                conn.close_reason = (!frame.reason.is_empty()).then(|| frame.reason.into());
            }
        }
    }
}

impl Core {
    fn add(&mut self, socket: TcpStream) {
        let _ = socket.set_nodelay(true);
        let mut socket = socket;
        let handshake_ms = self.spread(self.config.handshake_timeout);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.registry
                .register(&mut socket, Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!("shard {}: cannot register a connection: {e}", self.shard);
            return;
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let deadline = self.now_ms + handshake_ms;
        let timer = self.wheel.arm(
            deadline,
            Timer::Conn {
                key: key as u32,
                generation,
            },
        );
        entry.insert(Conn {
            socket,
            generation,
            proto: None,
            leftover: Vec::new(),
            queue: WriteQueue::default(),
            timer: Some((timer, Deadline::Handshake)),
            last_read_ms: self.now_ms,
            ping_sent_ms: None,
            close_after_flush: false,
            lingering: false,
            dead: false,
            close_code: None,
            close_reason: None,
            topics: Memberships::new(),
            blocked: false,
            dirty: false,
        });
        self.stats.accepted += 1;
        self.stats.handshaking += 1;
    }

    /// The handshake of `key` succeeded, with permessage-deflate if `deflate` was agreed.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    fn open(&mut self, key: usize, deflate: Option<DeflateParams>) -> ConnId {
        let protocol = self.config.protocol;
        let conn = &mut self.conns[key];
        let proto = Connection::server(protocol);
        #[cfg(feature = "deflate")]
        let proto = match (deflate, self.config.deflate.as_ref()) {
            (Some(params), Some(policy)) => {
                proto.with_deflate(params.negotiated(proto::Role::Server, policy))
            }
            _ => proto,
        };
        conn.proto = Some(proto);
        self.stats.handshaking -= 1;
        self.stats.connections_open += 1;
        self.stats.handshakes += 1;
        let id = ConnId {
            shard: self.shard as u16,
            key: key as u32,
            generation: conn.generation,
        };
        match self.config.ping_interval {
            Some(interval) => {
                let at = self.now_ms + self.spread(interval);
                self.set_conn_timer(key, at, Deadline::Keepalive);
            }
            None => self.cancel_conn_timer(key),
        }
        id
    }

    /// `d` in milliseconds plus up to an eighth more, drawn at random: connections that arrive
    /// in a burst (a reconnecting fleet, an attack) then reach their first ping or their handshake
    /// deadline spread over time, not all in the same tick of the wheel.
    fn spread(&mut self, d: Duration) -> u64 {
        let ms = d.as_millis() as u64;
        ms + self.random() % (ms / 8 + 1)
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: spreads timers, nothing secret depends on it.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn id_of(&self, key: usize) -> Option<ConnId> {
        let conn = self.conns.get(key)?;
        (!conn.dead && conn.proto.is_some()).then_some(ConnId {
            shard: self.shard as u16,
            key: key as u32,
            generation: conn.generation,
        })
    }

    /// The live connection behind `id`, if it is still there.
    fn lookup(&mut self, id: ConnId) -> Result<usize, SendError> {
        let key = id.key as usize;
        match self.conns.get(key) {
            Some(c) if usize::from(id.shard) == self.shard && c.generation == id.generation && !c.dead => {
                Ok(key)
            }
            _ => Err(SendError::UnknownConnection),
        }
    }

    pub(crate) fn is_open(&self, id: ConnId) -> bool {
        usize::from(id.shard) == self.shard
            && self
                .conns
                .get(id.key as usize)
                .is_some_and(|c| c.generation == id.generation && !c.dead && c.proto.is_some())
    }

    pub(crate) fn buffered_amount(&self, id: ConnId) -> Option<usize> {
        let conn = self.conns.get(id.key as usize)?;
        (usize::from(id.shard) == self.shard && conn.generation == id.generation && !conn.dead).then(|| {
            conn.queue.len()
                + if self.current == Some(id.key as usize) {
                    self.tx.len()
                } else {
                    0
                }
        })
    }

    pub(crate) fn send(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        let key = self.lookup(id)?;
        let corked = self.current == Some(key);
        let conn = &self.conns[key];
        if conn.close_after_flush || conn.lingering {
            return Err(SendError::Closing);
        }
        let proto = conn.proto.as_ref().ok_or(SendError::NotOpen)?;
        if proto.close_sent() {
            // Checked before the cap: a connection already closing is not closed again.
            return Err(SendError::Closing);
        }
        let cap = self.config.max_queued_bytes;
        if corked
            && !self.tx.is_empty()
            && (payload.len() > CORK_MAX || self.tx.len() + payload.len() > CORK_FLUSH.min(cap))
        {
            // Keep what is gathered small: hand it to the kernel (or to the queue, where the
            // cap applies) before gathering more.
            self.flush_tx(key);
            if self.conns[key].dead {
                return Err(SendError::UnknownConnection);
            }
        }
        let conn = &mut self.conns[key];
        let gathered = if corked { self.tx.len() } else { 0 };
        if conn.queue.len() + gathered > cap {
            return self.over_cap(key);
        }
        let proto = conn.proto.as_mut().ok_or(SendError::NotOpen)?;
        if corked && payload.len() <= CORK_MAX {
            proto.send_with(kind, payload, &mut self.tx, &mut self.deflate)?;
        } else if proto.compresses(payload.len()) {
            let mut frame = std::mem::take(&mut self.zbuf);
            let sent = proto.send_with(kind, payload, &mut frame, &mut self.deflate);
            if sent.is_ok() {
                self.write(key, &frame, &[]);
            }
            frame.clear();
            if frame.capacity() <= ZBUF_KEEP {
                self.zbuf = frame;
            }
            sent?;
        } else {
            let (header, _) = proto.frame_header(kind, payload.len())?;
            self.write(key, header.as_bytes(), payload);
        }
        self.stats.messages_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        Ok(())
    }

    /// Applies the back-pressure policy to `key`, whose queue is over its cap.
    fn over_cap(&mut self, key: usize) -> Result<(), SendError> {
        match self.config.backpressure {
            Backpressure::Drop => {
                self.stats.backpressure_drops += 1;
                Err(SendError::Dropped)
            }
            Backpressure::Close => {
                self.stats.backpressure_closes += 1;
                let conn = &mut self.conns[key];
                conn.close_code = Some(CloseCode::PolicyViolation);
                conn.close_reason = Some("write queue over its cap".into());
                self.close_key(key, CloseCode::PolicyViolation, "back-pressure");
                Err(SendError::Closing)
            }
        }
    }

    pub(crate) fn ping(&mut self, id: ConnId, payload: &[u8]) -> Result<(), SendError> {
        let key = self.lookup(id)?;
        let mut frame = Vec::new();
        let proto = self.conns[key].proto.as_mut().ok_or(SendError::NotOpen)?;
        proto.ping(payload, &mut frame)?;
        self.write_ordered(key, &frame);
        Ok(())
    }

    pub(crate) fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let key = self.lookup(id)?;
        let conn = &mut self.conns[key];
        let proto = conn.proto.as_mut().ok_or(SendError::NotOpen)?;
        let mut frame = Vec::new();
        proto.close(code, reason, &mut frame)?;
        self.write_ordered(key, &frame);
        self.set_conn_timer(
            key,
            self.now_ms + self.config.close_timeout.as_millis() as u64,
            Deadline::Closing,
        );
        Ok(())
    }

    /// Sends a Close frame past the queue cap (best effort) and arms the close timeout.
    fn close_key(&mut self, key: usize, code: CloseCode, reason: &str) {
        let mut frame = Vec::new();
        if let Some(proto) = self.conns[key].proto.as_mut()
            && proto.close(code, reason, &mut frame).is_ok()
        {
            self.write_ordered(key, &frame);
        }
        self.set_conn_timer(
            key,
            self.now_ms + self.config.close_timeout.as_millis() as u64,
            Deadline::Closing,
        );
    }

    /// Writes bytes after whatever was gathered for `key` so far.
    fn write_ordered(&mut self, key: usize, bytes: &[u8]) {
        if self.current == Some(key) {
            self.tx.extend_from_slice(bytes);
        } else {
            self.write(key, bytes, &[]);
        }
    }

    /// Writes `a` then `b` to the socket if nothing is queued, and queues what the kernel does
    /// not take.
    fn write(&mut self, key: usize, a: &[u8], b: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.dead {
            return;
        }
        if !conn.queue.is_empty() {
            conn.queue.push_copy(a);
            conn.queue.push_copy(b);
            return;
        }
        let written = loop {
            let res = if b.is_empty() {
                conn.socket.write(a)
            } else {
                conn.socket.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            };
            match res {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.kill(key),
            }
        };
        if written < a.len() {
            conn.queue.push_copy(&a[written..]);
            conn.queue.push_copy(b);
        } else {
            conn.queue.push_copy(&b[written - a.len()..]);
        }
        conn.blocked = !conn.queue.is_empty();
    }

    /// Writes what was gathered in `tx` for `key`.
    fn flush_tx(&mut self, key: usize) {
        if self.tx.is_empty() {
            return;
        }
        let tx = std::mem::take(&mut self.tx);
        self.write(key, &tx, &[]);
        self.tx = tx;
        self.tx.clear();
    }

    fn respond(&mut self, key: usize, resp: &HttpResponse) {
        let headers: Vec<(&str, &str)> = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if let Err(e) = handshake::write_response(resp.status, &headers, &resp.body, &mut self.tx) {
            log::error!(
                "shard {}: the handler's HTTP response is invalid: {e}",
                self.shard
            );
            let _ = handshake::write_response(500, &[], b"internal error\n", &mut self.tx);
        }
        self.close_after_flush(key);
    }

    fn close_after_flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.close_after_flush = true;
        }
        self.set_conn_timer(
            key,
            self.now_ms + self.config.close_timeout.as_millis() as u64,
            Deadline::Closing,
        );
    }

    /// After reading or writing: close the socket if the protocol is over and the queue is empty.
    fn after_io(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.dead || conn.lingering {
            return;
        }
        let over = conn.close_after_flush || conn.proto.as_ref().is_some_and(|p| p.should_close_tcp());
        if !over {
            if conn.proto.as_ref().is_some_and(|p| p.close_sent())
                && !conn.timer.is_some_and(|(_, d)| d == Deadline::Closing)
            {
                // This end started the closing handshake: bound the wait for the reply.
                let at = self.now_ms + self.config.close_timeout.as_millis() as u64;
                self.set_conn_timer(key, at, Deadline::Closing);
            }
            return;
        }
        if !conn.queue.is_empty() {
            conn.close_after_flush = true;
            return;
        }
        // Close the write side first and wait for the peer's FIN, so that the last bytes
        // (a close frame, an HTTP answer) are not lost to a reset.
        let _ = conn.socket.shutdown(std::net::Shutdown::Write);
        conn.lingering = true;
        let at = self.now_ms + self.config.close_timeout.as_millis() as u64;
        self.set_conn_timer(key, at, Deadline::Closing);
    }

    /// Reads and discards input from a socket whose write side is shut, until the peer closes.
    fn linger_read(&mut self, key: usize, scratch: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        loop {
            match conn.socket.read(scratch) {
                Ok(0) => return self.kill(key),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.kill(key),
            }
        }
    }

    fn set_conn_timer(&mut self, key: usize, at_ms: u64, deadline: Deadline) {
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

    /// A pong ends the wait for it: the connection is back to keep-alive, pinged again after
    /// `ping_interval` of silence, not only once the pong deadline is over (a pong timeout longer
    /// than the interval would otherwise stretch the silence between pings, past a load
    /// balancer's idle timeout).
    fn pong_received(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.ping_sent_ms = None;
        if let (Some((_, Deadline::Pong)), Some(interval)) = (conn.timer, self.config.ping_interval) {
            let at = conn.last_read_ms + interval.as_millis() as u64;
            self.set_conn_timer(key, at, Deadline::Keepalive);
        }
    }

    fn cancel_conn_timer(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && let Some((t, _)) = conn.timer.take()
        {
            self.wheel.cancel(t);
        }
    }

    fn conn_timer(&mut self, key: usize, generation: u32) {
        let now = self.now_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.generation != generation || conn.dead {
            return;
        }
        let Some((_, deadline)) = conn.timer.take() else {
            return;
        };
        match deadline {
            Deadline::Handshake => {
                *self.stats.rejected.entry(RejectReason::Timeout).or_default() += 1;
                let resp = HttpResponse::text(408, "handshake timeout\n");
                self.current = Some(key);
                self.respond(key, &resp);
                self.flush_tx(key);
                self.current = None;
                self.after_io(key);
            }
            Deadline::Closing => {
                if !conn.lingering {
                    self.stats.close_timeouts += 1;
                }
                self.kill(key);
            }
            Deadline::Pong if conn.ping_sent_ms.is_some_and(|sent| conn.last_read_ms <= sent) => {
                // No byte at all since the ping: the peer is gone.
                self.stats.pong_timeouts += 1;
                self.kill(key);
            }
            Deadline::Pong | Deadline::Keepalive => {
                conn.ping_sent_ms = None;
                let Some(interval) = self.config.ping_interval else {
                    return;
                };
                let interval = interval.as_millis() as u64;
                if now >= conn.last_read_ms + interval {
                    let mut frame = Vec::new();
                    if let Some(proto) = conn.proto.as_mut()
                        && proto.ping(b"", &mut frame).is_ok()
                    {
                        conn.ping_sent_ms = Some(now);
                        self.stats.pings_sent += 1;
                        self.write(key, &frame, &[]);
                        let at = now + self.config.pong_timeout.as_millis() as u64;
                        self.set_conn_timer(key, at, Deadline::Pong);
                    }
                } else {
                    let at = conn.last_read_ms + interval;
                    self.set_conn_timer(key, at, Deadline::Keepalive);
                }
            }
        }
    }

    fn kill(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.dead
        {
            conn.dead = true;
            conn.queue.clear();
            self.dead.push(key);
        }
    }

    /// A shutdown was asked for: a lame-duck period first if one is configured, then the drain.
    fn shutdown(&mut self) {
        if self.lame_duck || self.draining {
            return;
        }
        if self.config.drain_grace.is_zero() {
            return self.begin_drain();
        }
        self.lame_duck = true;
        let at = self.now_ms + self.config.drain_grace.as_millis() as u64;
        self.wheel.arm(at, Timer::Grace);
    }

    /// Whether the server is shutting down (lame duck or draining).
    pub(crate) fn is_draining(&self) -> bool {
        self.lame_duck || self.draining
    }

    /// Copies the statistics where handlers of other shards can read them.
    fn publish_stats(&self) {
        if let Some(r) = self.handle.shared.remotes.get(self.shard)
            && let Ok(mut p) = r.published.lock()
        {
            *p = self.snapshot();
        }
    }

    /// Every shard's statistics: this shard's now, the others' as last published (at most about
    /// a second old).
    pub(crate) fn all_stats(&self) -> Vec<Stats> {
        self.handle
            .shared
            .remotes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if i == self.shard {
                    self.snapshot()
                } else {
                    r.published.lock().map(|s| s.clone()).unwrap_or_default()
                }
            })
            .collect()
    }

    fn begin_drain(&mut self) {
        if self.draining {
            return;
        }
        self.lame_duck = false;
        self.draining = true;
        if let Some(mut l) = self.listener.take() {
            let _ = self.registry.deregister(&mut l);
        }
        if let Some(t) = self.accept_timer.take() {
            self.wheel.cancel(t);
        }
        let at = self.now_ms + self.config.drain_timeout.as_millis() as u64;
        self.drain_timer = Some(self.wheel.arm(at, Timer::Drain));
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let conn = &self.conns[key];
            if conn.dead {
                continue;
            }
            match conn.proto.as_ref() {
                None => self.kill(key),
                Some(p) if !p.close_sent() => {
                    self.close_key(key, CloseCode::GoingAway, "server shutting down");
                    self.after_io(key);
                }
                Some(_) => {}
            }
        }
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
        s
    }

    pub(crate) fn subscribe(&mut self, id: ConnId, topic: &str) -> Result<bool, SendError> {
        let key = self.lookup(id)?;
        let conn = &mut self.conns[key];
        if conn.proto.is_none() {
            return Err(SendError::NotOpen);
        }
        match self.topics.subscribe(key as u32, &mut conn.topics, topic) {
            None => Ok(false),
            Some(change) => {
                if change == Change::First
                    && let Some(b) = self.handle.shared.bridge.as_ref()
                {
                    b.subscribe(topic);
                }
                Ok(true)
            }
        }
    }

    pub(crate) fn unsubscribe(&mut self, id: ConnId, topic: &str) -> Result<bool, SendError> {
        let key = self.lookup(id)?;
        let Some(tid) = self.topics.id(topic) else {
            return Ok(false);
        };
        let mut mine = std::mem::take(&mut self.conns[key].topics);
        let change = self.topics.unsubscribe(key as u32, &mut mine, tid);
        self.conns[key].topics = mine;
        if let Some((_, Some((k, pos)))) = change {
            topics::moved(&mut self.conns[k as usize].topics, tid, pos);
        }
        if matches!(change, Some((Change::Last, _)))
            && let Some(b) = self.handle.shared.bridge.as_ref()
        {
            b.unsubscribe(topic);
        }
        Ok(change.is_some())
    }

    /// Removes a departing connection from all its topics.
    fn leave_all(&mut self, key: usize, mine: &mut Memberships) {
        while let Some(&(tid, _)) = mine.last() {
            let name = self.topics.name(tid).cloned();
            let change = self.topics.unsubscribe(key as u32, mine, tid);
            if change.is_none() {
                mine.pop();
            }
            if let Some((_, Some((k, pos)))) = change
                && let Some(c) = self.conns.get_mut(k as usize)
            {
                topics::moved(&mut c.topics, tid, pos);
            }
            if matches!(change, Some((Change::Last, _)))
                && let (Some(b), Some(name)) = (self.handle.shared.bridge.as_ref(), name)
            {
                b.unsubscribe(&name);
            }
        }
        *mine = Memberships::new();
    }

    /// The topics a connection subscribes to.
    pub(crate) fn topics_of(&self, id: ConnId) -> impl Iterator<Item = Arc<str>> + '_ {
        let conn = self
            .conns
            .get(id.key as usize)
            .filter(|c| usize::from(id.shard) == self.shard && c.generation == id.generation && !c.dead);
        conn.into_iter()
            .flat_map(|c| c.topics.iter())
            .filter_map(|&(t, _)| self.topics.name(t).cloned())
    }

    /// Subscribers of `topic` on this shard.
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        self.topics
            .id(topic)
            .map_or(0, |t| self.topics.subscribers(t).len())
    }

    /// Publishes to every subscriber of `topic`: on this shard now, on the others through their
    /// inboxes, and on other nodes through the bridge if there is one. Returns the deliveries
    /// made on this shard.
    pub(crate) fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8]) -> usize {
        self.stats.published += 1;
        let frame = encode_frame(kind, payload);
        let n = self.deliver(topic, &frame);
        let shared = Arc::clone(&self.handle.shared);
        if shared.remotes.len() > 1 {
            let name: Arc<str> = Arc::from(topic);
            for (i, r) in shared.remotes.iter().enumerate() {
                if i != self.shard {
                    r.post(Command::Publish {
                        topic: Arc::clone(&name),
                        frame: Arc::clone(&frame),
                    });
                }
            }
        }
        if let Some(b) = shared.bridge.as_ref() {
            b.publish(topic, kind, payload);
        }
        n
    }

    /// Queues an encoded frame for every subscriber of `topic` on this shard; the queues are
    /// written at the end of the loop turn, so that a burst of publishes costs one write per
    /// subscriber. Returns the number of deliveries.
    pub(crate) fn deliver(&mut self, topic: &str, frame: &Arc<[u8]>) -> usize {
        let Some(tid) = self.topics.id(topic) else {
            return 0;
        };
        let cap = self.config.max_queued_bytes;
        let mut delivered = 0;
        let mut over = Vec::new();
        #[cfg(feature = "deflate")]
        let (mut deflated, plain_len) = (Deflated::default(), payload_len(frame));
        for i in 0..self.topics.subscribers(tid).len() {
            let key = self.topics.subscribers(tid)[i] as usize;
            if self.current == Some(key) && !self.tx.is_empty() {
                // Keep the order of what this connection was already sent.
                self.flush_tx(key);
            }
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.dead
                || conn.close_after_flush
                || conn.lingering
                || conn.proto.as_ref().is_none_or(|p| p.close_sent())
            {
                continue;
            }
            if conn.queue.len() > cap {
                over.push(key);
                continue;
            }
            #[cfg(feature = "deflate")]
            let compressed;
            #[cfg(feature = "deflate")]
            let frame = match conn.proto.as_mut() {
                Some(p) if p.compresses(plain_len) => {
                    match compressed_frame(p, frame, &mut deflated, &mut self.deflate) {
                        Some(f) => {
                            compressed = f;
                            &compressed
                        }
                        None => frame,
                    }
                }
                _ => frame,
            };
            conn.queue.push_shared(frame);
            delivered += 1;
            if conn.blocked {
                continue;
            }
            if conn.queue.len() >= BROADCAST_FLUSH.min(cap / 2) {
                // A burst is being published: write now rather than let a reader that keeps up
                // run into the cap before the end of the turn.
                match conn.queue.flush(&mut conn.socket) {
                    Ok(true) => {}
                    Ok(false) => conn.blocked = true,
                    Err(_) => {
                        self.kill(key);
                        continue;
                    }
                }
            }
            if !conn.dirty && !conn.queue.is_empty() && !conn.blocked {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
        for key in over {
            let _ = self.over_cap(key);
        }
        self.stats.deliveries += delivered as u64;
        self.stats.messages_out += delivered as u64;
        self.stats.bytes_out += delivered as u64 * payload_len(frame) as u64;
        delivered
    }

    /// Writes the queues that broadcasts filled during this loop turn.
    fn flush_dirty(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.dirty = false;
            if conn.dead || conn.blocked || conn.queue.is_empty() {
                continue;
            }
            match conn.queue.flush(&mut conn.socket) {
                Ok(true) => self.after_io(key),
                Ok(false) => conn.blocked = true,
                Err(_) => self.kill(key),
            }
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

    pub(crate) fn server_handle(&self) -> ServerHandle {
        self.handle.clone()
    }
}
