//! The configuration of a server and of each of its shards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::node::Bridge;
use crate::proto::{self, DeflateConfig, HeadLimits};

/// What to do when a connection's write queue would exceed [`ServerConfig::max_queued_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backpressure {
    /// Close the connection with 1008 (policy violation). The default.
    Close,
    /// Drop the message that does not fit; the send returns [`SendError::Dropped`](crate::SendError::Dropped).
    Drop,
}

/// Everything that can be tuned, with production defaults.
///
/// Start from [`ServerConfig::default`] and set the fields you need (the struct is
/// `#[non_exhaustive]`, so that new knobs are not breaking changes):
///
/// ```
/// let mut config = c10k::ServerConfig::default();
/// config.addr = "0.0.0.0:9001".parse().unwrap();
/// config.ping_interval = None;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// Silence after which the server pings a connection; `None` turns pings off. A new
    /// connection's first ping comes at a random point of the second half of its first
    /// interval, so that the pings of connections opened together spread out.
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
    /// Cap on the bytes queued for one connection: every byte, pongs, Close frames and TLS
    /// records included, and a shared broadcast frame counted whole for each queue holding it.
    pub max_queued_bytes: usize,
    /// Policy past the cap.
    pub backpressure: Backpressure,
    /// Size of each shard's read buffer.
    pub read_buffer: usize,
    /// The memory the server may hold for its peers, in bytes, shared evenly by its shards:
    /// messages being assembled (inflated bytes included), write queues, unfinished input, TLS
    /// sessions, commands queued between threads. Near its share a shard stops accepting, then
    /// closes the connections holding the most with 1013 (see `docs/security.md`). Default:
    /// half of the machine's memory or of its control group's limit, whichever is smaller
    /// ([`default_memory_budget`]).
    pub memory_budget: usize,
    /// Time allowed for a data message from its first byte to its last; an unfinished message
    /// past it fails the connection with 1008.
    pub message_timeout: Duration,
    /// Control frames (pings and pongs) a connection may send per second of the shard's clock;
    /// past it, the connection is closed with 1008. At most 65,535.
    pub control_frame_rate: u32,
    /// Connections one shard may hold in their handshake (request not complete, or left
    /// pending for a decision); beyond it, a new connection is answered 503 at once (closed
    /// at once on a TLS listener, where no HTTP can be said before the TLS handshake).
    pub max_handshakes: usize,
    /// Connections one client address may hold on the server (every shard together); beyond
    /// it, a new connection from that address is answered 503 at once. `None`: no limit.
    pub max_connections_per_address: Option<usize>,
    /// Topics one connection may subscribe to; past it, [`Ctx::subscribe`] fails with
    /// [`SendError::TooManyTopics`](crate::SendError::TooManyTopics).
    ///
    /// [`Ctx::subscribe`]: crate::Ctx::subscribe
    pub max_topics: usize,
    /// Bytes of commands other threads may queue for one shard (messages to send, publishes,
    /// decisions); past it, a send from another thread is refused and a publish is dropped for
    /// that shard (counted in [`Stats::inbox_drops`](crate::Stats::inbox_drops)).
    pub max_inbox_bytes: usize,
    /// Pause before accepting again after the process ran out of file descriptors.
    pub accept_backoff: Duration,
    /// Senders trusted to say, with a PROXY protocol header (version 1 or 2) before the
    /// client's bytes, whom a connection is from: a load balancer such as HAProxy with
    /// `send-proxy-v2`. A connection from one of them must start with a header, and the
    /// client's address it gives is the connection's ([`Ctx::client_addr`], the per-address
    /// limit); a header from any other sender is refused with 400. Empty (the default): the
    /// protocol is off, and a connection's address is its socket's peer. The main (plain)
    /// listener only: a TLS listener does not read the header.
    ///
    /// [`Ctx::client_addr`]: crate::Ctx::client_addr
    pub trusted_proxies: Vec<super::cidr::Cidr>,
    /// A link to other nodes' topics (for example through a pub/sub broker).
    pub bridge: Option<Arc<dyn Bridge>>,
    /// Offsets and a bounded history per topic, so that a subscriber that comes back gets what
    /// it missed ([`Ctx::subscribe_from`](crate::Ctx::subscribe_from); see
    /// [`HistoryConfig`](crate::HistoryConfig) for the bounds). `None` (the default): topics
    /// keep nothing and messages carry no offset.
    pub history: Option<super::history::HistoryConfig>,
    /// Accept permessage-deflate (RFC 7692) offers under this policy; `None` (the default)
    /// declines them. Needs the `deflate` feature (without it, offers are always declined).
    pub deflate: Option<DeflateConfig>,
    /// TLS (wss) with these settings (needs the `tls` feature). Without [`tls_addr`], the
    /// listener on [`addr`] speaks TLS; with it, [`addr`] stays plain and `tls_addr` is a
    /// second listener of every shard, for TLS.
    ///
    /// [`addr`]: ServerConfig::addr
    /// [`tls_addr`]: ServerConfig::tls_addr
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<super::tls::TlsConfig>>,
    /// The address of the TLS listener beside the plain one (see [`ServerConfig::tls`]); port
    /// 0 picks a free port.
    #[cfg(feature = "tls")]
    pub tls_addr: Option<SocketAddr>,
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
/// Default message timeout: 60 s from a message's first byte to its last.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default control frames per second per connection: 256.
pub const DEFAULT_CONTROL_FRAME_RATE: u32 = 256;
/// Default connections in their handshake per shard: 4,096.
pub const DEFAULT_MAX_HANDSHAKES: usize = 4096;
/// Default topics per connection: 1,024.
pub const DEFAULT_MAX_TOPICS: usize = 1024;
/// Default bytes queued by other threads for one shard: 64 MiB.
pub const DEFAULT_MAX_INBOX_BYTES: usize = 64 << 20;

/// The default memory budget of a server: half of the memory this process may use (the smaller
/// of the machine's memory and its control group's limit).
pub fn default_memory_budget() -> usize {
    super::memory::default_budget() as usize
}

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
            memory_budget: default_memory_budget(),
            message_timeout: DEFAULT_MESSAGE_TIMEOUT,
            control_frame_rate: DEFAULT_CONTROL_FRAME_RATE,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_connections_per_address: None,
            max_topics: DEFAULT_MAX_TOPICS,
            max_inbox_bytes: DEFAULT_MAX_INBOX_BYTES,
            accept_backoff: DEFAULT_ACCEPT_BACKOFF,
            trusted_proxies: Vec::new(),
            bridge: None,
            history: None,
            deflate: None,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_addr: None,
        }
    }
}
