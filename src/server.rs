//! The server: configuration, shards as threads, and the thread-safe [`ServerHandle`].

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::{self, Command, sys};
use crate::handler::Handler;
use crate::proto::{self, CloseCode, DeflateConfig, HeadLimits, MessageKind};
use crate::topics::Bridge;

/// What to do when a connection's write queue would exceed [`ServerConfig::max_queued_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Close the connection with 1008 (policy violation). The default.
    Close,
    /// Drop the message that does not fit; the send returns [`SendError::Dropped`](crate::SendError::Dropped).
    Drop,
}

/// Everything that can be tuned, with production defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (all shards then share it).
    pub addr: SocketAddr,
    /// Number of shards (event-loop threads); 0 means one per available core.
    pub shards: usize,
    /// Listen backlog of each shard's socket.
    pub backlog: i32,
    /// Pin shard `i` to CPU `i` (modulo the CPU count).
    pub pin_cores: bool,
    /// Frame and message limits, automatic pongs.
    pub protocol: proto::Config,
    /// Limits on the handshake request head.
    pub head_limits: HeadLimits,
    /// Time allowed from accept to a complete handshake request (slow clients are answered 408
    /// and closed). Each connection gets up to an eighth more, at random, so that a burst of
    /// connections does not time out in one burst.
    pub handshake_timeout: Duration,
    /// Silence after which the server pings a connection; `None` turns pings off.
    pub ping_interval: Option<Duration>,
    /// Time allowed for an answer to the server's ping before the connection is dropped (1006).
    pub pong_timeout: Duration,
    /// Time allowed for the peer's answer to a Close frame before the socket is closed.
    pub close_timeout: Duration,
    /// On graceful shutdown, time allowed for connections to close after 1001 Going Away.
    pub drain_timeout: Duration,
    /// On graceful shutdown, a "lame duck" period before the drain: the server still accepts
    /// connections, but answers health checks (`Ctx::is_draining`) and WebSocket upgrades with
    /// 503, so that load balancers take it out of rotation before it stops accepting. Zero (the
    /// default) drains at once.
    pub drain_grace: Duration,
    /// Cap on the bytes queued for one connection.
    pub max_queued_bytes: usize,
    /// Policy past the cap.
    pub backpressure: Backpressure,
    /// Size of each shard's read buffer.
    pub read_buffer: usize,
    /// Pause before accepting again after the process ran out of file descriptors.
    pub accept_backoff: Duration,
    /// A link to other nodes' topics (for example through a pub/sub broker).
    pub bridge: Option<Arc<dyn Bridge>>,
    /// Accept permessage-deflate (RFC 7692) offers under this policy; `None` (the default)
    /// declines them. Needs the `deflate` feature (without it, offers are always declined).
    pub deflate: Option<DeflateConfig>,
}

/// Default handshake timeout: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default ping interval: 30 s of silence.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Default pong timeout: 30 s.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(30);
/// Default close timeout: 5 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default drain timeout: 5 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on queued bytes per connection: 1 MiB.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 1 << 20;
/// Default read buffer per shard: 64 KiB.
pub const DEFAULT_READ_BUFFER: usize = 64 << 10;
/// Default listen backlog.
pub const DEFAULT_BACKLOG: i32 = 4096;
/// Default pause after EMFILE/ENFILE: 100 ms.
pub const DEFAULT_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            shards: 0,
            backlog: DEFAULT_BACKLOG,
            pin_cores: false,
            protocol: proto::Config::default(),
            head_limits: HeadLimits::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            drain_grace: Duration::ZERO,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            backpressure: Backpressure::Close,
            read_buffer: DEFAULT_READ_BUFFER,
            accept_backoff: DEFAULT_ACCEPT_BACKOFF,
            bridge: None,
            deflate: None,
        }
    }
}

/// Identifies a connection across the server. Carries a generation: an id kept after its
/// connection closed never reaches a newer connection that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) shard: u16,
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// The shard that owns the connection.
    pub fn shard(&self) -> usize {
        usize::from(self.shard)
    }

    /// The id as one number (shard, slot and generation packed), e.g. for logs or maps.
    pub fn as_u64(&self) -> u64 {
        (u64::from(self.shard) << 48) | (u64::from(self.key & 0xffff) << 32) | u64::from(self.generation)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.shard, self.key, self.generation)
    }
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// Head too large or too many header fields (431).
    TooLarge,
    /// Not HTTP (400).
    Malformed,
    /// Upgrade with a method other than GET (405).
    Method,
    /// Upgrade over HTTP/1.0 (505).
    HttpVersion,
    /// No Host (400).
    Host,
    /// Connection without upgrade (400).
    Connection,
    /// Sec-WebSocket-Version not 13 (426).
    Version,
    /// Bad Sec-WebSocket-Key (400).
    Key,
    /// Refused by the application's [`Handler::on_handshake`].
    Application,
    /// Refused with 503 during the lame-duck period of a shutdown.
    Draining,
    /// No complete request within the handshake timeout.
    Timeout,
}

impl RejectReason {
    pub(crate) fn of(e: &proto::HandshakeError) -> Self {
        use proto::HandshakeError as E;
        match e {
            E::HeadersTooLarge { .. } | E::TooManyHeaders { .. } => Self::TooLarge,
            E::MethodNotGet => Self::Method,
            E::HttpVersion => Self::HttpVersion,
            E::MissingHost => Self::Host,
            E::MissingConnectionUpgrade => Self::Connection,
            E::UnsupportedVersion => Self::Version,
            E::InvalidKey => Self::Key,
            _ => Self::Malformed,
        }
    }
}

/// Counters of one shard, or summed over all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Open WebSocket connections.
    pub connections_open: u64,
    /// Accepted sockets still in their handshake.
    pub handshaking: u64,
    /// Entries in the connection slab when the snapshot was taken (open, in handshake, or closing).
    pub sockets: u64,
    /// Armed connection and application timers when the snapshot was taken (the shard's own
    /// bookkeeping timers are not counted).
    pub timers: u64,
    /// Sockets accepted.
    pub accepted: u64,
    /// Handshakes completed (101 sent).
    pub handshakes: u64,
    /// Handshakes refused, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Plain HTTP requests answered.
    pub http_requests: u64,
    /// Messages received.
    pub messages_in: u64,
    /// Message payload bytes received.
    pub bytes_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Message payload bytes sent.
    pub bytes_out: u64,
    /// Connections ended, by the code reported to [`Handler::on_close`].
    pub closes: BTreeMap<u16, u64>,
    /// Protocol errors that failed a connection.
    pub protocol_errors: u64,
    /// Connections closed by the back-pressure policy.
    pub backpressure_closes: u64,
    /// Messages dropped by the back-pressure policy.
    pub backpressure_drops: u64,
    /// Accept errors (of any kind).
    pub accept_errors: u64,
    /// Accept pauses after running out of file descriptors.
    pub accept_pauses: u64,
    /// Pings sent by the server's keep-alive.
    pub pings_sent: u64,
    /// Connections dropped for not answering a ping in time.
    pub pong_timeouts: u64,
    /// Connections dropped when the peer never answered a Close frame.
    pub close_timeouts: u64,
    /// Messages published on this shard (by its handler).
    pub published: u64,
    /// Broadcast frames queued for subscribers (one per subscriber per message).
    pub deliveries: u64,
    /// Topics with subscribers on this shard when the snapshot was taken.
    pub topics: u64,
    /// Messages compressed with permessage-deflate; a broadcast compressed once for many
    /// subscribers counts once.
    pub deflated: u64,
}

impl Stats {
    /// Adds another shard's counters to these.
    pub fn merge(&mut self, o: &Stats) {
        self.connections_open += o.connections_open;
        self.handshaking += o.handshaking;
        self.sockets += o.sockets;
        self.timers += o.timers;
        self.accepted += o.accepted;
        self.handshakes += o.handshakes;
        for (k, v) in &o.rejected {
            *self.rejected.entry(*k).or_default() += v;
        }
        self.http_requests += o.http_requests;
        self.messages_in += o.messages_in;
        self.bytes_in += o.bytes_in;
        self.messages_out += o.messages_out;
        self.bytes_out += o.bytes_out;
        for (k, v) in &o.closes {
            *self.closes.entry(*k).or_default() += v;
        }
        self.protocol_errors += o.protocol_errors;
        self.backpressure_closes += o.backpressure_closes;
        self.backpressure_drops += o.backpressure_drops;
        self.accept_errors += o.accept_errors;
        self.accept_pauses += o.accept_pauses;
        self.pings_sent += o.pings_sent;
        self.pong_timeouts += o.pong_timeouts;
        self.close_timeouts += o.close_timeouts;
        self.published += o.published;
        self.deliveries += o.deliveries;
        self.topics += o.topics;
        self.deflated += o.deflated;
    }

    /// Total handshakes refused.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// A shard as seen from other threads: its inbox and the waker of its event loop.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) waker: mio::Waker,
    pub(crate) woken: AtomicBool,
    pub(crate) final_stats: Mutex<Option<Stats>>,
    /// The shard's statistics as it last published them (every second).
    pub(crate) published: Mutex<Stats>,
}

impl Remote {
    /// Queues a command and wakes the shard unless a wake-up is already pending.
    pub(crate) fn post(&self, cmd: Command) -> bool {
        let sent = self.tx.send(cmd).is_ok();
        if sent && !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        sent
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) remotes: Vec<Remote>,
    pub(crate) bridge: Option<Arc<dyn Bridge>>,
    pub(crate) local_addr: SocketAddr,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A thread-safe handle on a running server: send to any connection, close one, read
/// statistics, shut down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shared.remotes.len()
    }

    /// Sends a message to a connection from any thread. Returns false if the shard is gone; a
    /// message for a connection that closed meanwhile is dropped by the shard.
    pub fn send(&self, id: ConnId, kind: MessageKind, data: Vec<u8>) -> bool {
        self.post(id.shard(), Command::Send { id, kind, data })
    }

    /// Sends a text message from any thread.
    pub fn send_text(&self, id: ConnId, text: &str) -> bool {
        self.send(id, MessageKind::Text, text.as_bytes().to_vec())
    }

    /// Publishes a message to every subscriber of `topic` on every shard (and, through the
    /// bridge if there is one, on other nodes). The frame is encoded once for all of them.
    pub fn publish(&self, topic: &str, kind: MessageKind, data: &[u8]) {
        self.publish_local(topic, kind, data);
        if let Some(b) = self.shared.bridge.as_ref() {
            b.publish(topic, kind, data);
        }
    }

    /// Delivers a message that another node published: to this node's subscribers only.
    pub fn publish_from_bridge(&self, topic: &str, kind: MessageKind, data: &[u8]) {
        self.publish_local(topic, kind, data);
    }

    fn publish_local(&self, topic: &str, kind: MessageKind, data: &[u8]) {
        let frame = crate::engine::encode_frame(kind, data);
        let name: Arc<str> = Arc::from(topic);
        for r in &self.shared.remotes {
            r.post(Command::Publish {
                topic: Arc::clone(&name),
                frame: Arc::clone(&frame),
            });
        }
    }

    /// Closes a connection from any thread.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> bool {
        self.post(
            id.shard(),
            Command::Close {
                id,
                code,
                reason: reason.to_owned(),
            },
        )
    }

    fn post(&self, shard: usize, cmd: Command) -> bool {
        self.shared.remotes.get(shard).is_some_and(|r| r.post(cmd))
    }

    /// Every shard's statistics, summed. Shards answer from their own thread; a shard that does
    /// not answer within a second is left out.
    pub fn stats(&self) -> Stats {
        self.shard_stats().iter().fold(Stats::default(), |mut acc, s| {
            acc.merge(s);
            acc
        })
    }

    /// Each shard's statistics.
    pub fn shard_stats(&self) -> Vec<Stats> {
        let final_stats = |r: &Remote| r.final_stats.lock().ok().and_then(|s| s.clone());
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for r in &self.shared.remotes {
            if let Some(s) = final_stats(r) {
                out.push(s);
                continue;
            }
            let (tx, rx) = mpsc::channel();
            if r.post(Command::Stats(tx)) {
                pending.push((r, rx));
            } else if let Some(s) = final_stats(r) {
                out.push(s);
            }
        }
        for (r, rx) in pending {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(s) => out.push(s),
                // The shard stopped before it answered: its final statistics are published.
                Err(mpsc::RecvTimeoutError::Disconnected) => out.extend(final_stats(r)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        out
    }

    /// Starts a graceful shutdown: stop accepting, send 1001 Going Away to every connection,
    /// wait for their close replies up to the drain timeout, then close what is left.
    pub fn shutdown(&self) {
        for r in &self.shared.remotes {
            r.post(Command::Shutdown);
        }
    }

    /// Waits until every shard has stopped.
    pub fn join(&self) {
        let threads = match self.shared.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A bound, not yet running server.
pub struct Server<H: Handler> {
    config: Arc<ServerConfig>,
    factory: Arc<dyn Fn(usize) -> H + Send + Sync>,
    parts: Vec<(mio::Poll, mio::net::TcpListener, mpsc::Receiver<Command>)>,
    handle: ServerHandle,
}

impl<H: Handler> fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.handle.local_addr())
            .field("shards", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// Binds one listening socket per shard (SO_REUSEPORT) and prepares the shards. `factory`
    /// makes each shard's handler on the shard's own thread, given the shard index.
    pub fn bind<F>(config: ServerConfig, factory: F) -> io::Result<Self>
    where
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let shards = if config.shards == 0 {
            sys::available_cpus()
        } else {
            config.shards
        };
        if shards > usize::from(u16::MAX) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many shards"));
        }
        let mut addr = config.addr;
        let mut parts = Vec::with_capacity(shards);
        let mut remotes = Vec::with_capacity(shards);
        for _ in 0..shards {
            let listener = sys::listener(addr, config.backlog)?;
            // The first socket may have been given a free port: the others share it.
            addr = listener.local_addr()?;
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), engine::WAKER)?;
            let (tx, rx) = mpsc::channel();
            remotes.push(Remote {
                tx,
                waker,
                woken: AtomicBool::new(false),
                final_stats: Mutex::new(None),
                published: Mutex::new(Stats::default()),
            });
            parts.push((poll, listener, rx));
        }
        let handle = ServerHandle {
            shared: Arc::new(Shared {
                remotes,
                bridge: config.bridge.clone(),
                local_addr: addr,
                threads: Mutex::new(Vec::new()),
            }),
        };
        Ok(Self {
            config: Arc::new(config),
            factory: Arc::new(factory),
            parts,
            handle,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Starts every shard on its own thread and returns at once.
    pub fn start(self) -> io::Result<ServerHandle> {
        if let Some(b) = self.config.bridge.as_ref() {
            b.attach(self.handle.clone());
        }
        let mut threads = Vec::with_capacity(self.parts.len());
        for (index, (poll, listener, rx)) in self.parts.into_iter().enumerate() {
            let config = Arc::clone(&self.config);
            let factory = Arc::clone(&self.factory);
            let handle = self.handle.clone();
            let thread = std::thread::Builder::new()
                .name(format!("c10k-shard-{index}"))
                .spawn(move || {
                    if config.pin_cores
                        && let Err(e) = sys::pin_to_cpu(index % sys::available_cpus())
                    {
                        log::warn!("shard {index}: cannot pin to a CPU: {e}");
                    }
                    let handler = factory(index);
                    let stats = engine::run_shard(index, poll, listener, rx, config, handler, handle.clone());
                    if let Ok(mut s) = handle.shared.remotes[index].final_stats.lock() {
                        *s = Some(stats);
                    }
                })?;
            threads.push(thread);
        }
        if let Ok(mut t) = self.handle.shared.threads.lock() {
            t.extend(threads);
        }
        Ok(self.handle)
    }

    /// Runs the server on its shard threads until it is shut down.
    pub fn run(self) -> io::Result<()> {
        let handle = self.start()?;
        handle.join();
        Ok(())
    }
}
