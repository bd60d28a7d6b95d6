//! What a run is asked to do: the scenario, its options, and what the messages contain.

use std::net::IpAddr;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

/// The most connections of one load thread waiting for their connect or handshake at once,
/// unless the options say otherwise.
pub const DEFAULT_MAX_PENDING: usize = 512;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Closed loop: K messages in flight per connection.
    Echo,
    /// Open loop at a fixed total rate.
    Rate,
    /// Handshakes per second.
    Connect,
    /// Idle connections held open.
    Hold,
    /// The classic C10k scenario.
    TestEcho,
    /// One publisher, N subscribers of one topic: deliveries/s and publish-to-delivery latency.
    Fanout,
    /// Connections that trickle an endless handshake request and must be answered 408 and closed.
    Slowloris,
}

/// What the messages of the echo, rate and hold scenarios contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// The letters a to z over and over, with the sequence number at the start.
    Pattern,
    /// JSON-like text: records whose numbers and names change from record to record, with the
    /// sequence number at the start. It compresses about as well as real JSON (3.4:1 at 1 KiB
    /// with zlib's level 6), where the pattern compresses far better than any real payload.
    Json,
}

impl PayloadKind {
    /// The kind's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pattern => "pattern",
            Self::Json => "json",
        }
    }
}

/// How the fan-out scenario subscribes and publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutProtocol {
    /// c10k's pubsub mode: `sub fanout`, then `pub fanout PAYLOAD`; subscribers get `fanout PAYLOAD`.
    Topics,
    /// A broadcast server that sends every `pub:`-prefixed message to every client as it came.
    Prefix,
    /// c10k's pubsub mode, subscriptions that follow offsets: `sub fanout @`; subscribers get
    /// `OFFSET fanout PAYLOAD` (the server must keep history).
    Offsets,
}

impl Scenario {
    /// The scenario's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Rate => "rate",
            Self::Connect => "connect",
            Self::Hold => "hold",
            Self::TestEcho => "testecho",
            Self::Fanout => "fanout",
            Self::Slowloris => "slowloris",
        }
    }
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// `ws://host:port/path`, or `wss://` (which needs `tls`).
    pub url: String,
    /// Number of connections.
    pub connections: usize,
    /// Message payload size in bytes.
    pub payload: usize,
    /// Binary messages instead of text.
    pub binary: bool,
    /// Messages in flight per connection (echo).
    pub in_flight: usize,
    /// Measured window (echo, rate), or how long to hold (hold).
    pub duration: Duration,
    /// Time before the window (echo, rate).
    pub warmup: Duration,
    /// Total messages per second (rate).
    pub rate: f64,
    /// Load-generating threads.
    pub threads: usize,
    /// Source addresses to spread connections over (more ephemeral ports).
    pub sources: Vec<IpAddr>,
    /// The server's process id, to read its CPU time and memory.
    pub server_pid: Option<u32>,
    /// testecho: time over which clients connect.
    pub ramp: Duration,
    /// testecho: wait before each message; slowloris: wait between two bytes.
    pub delay: Duration,
    /// testecho: messages per client.
    pub rounds: u32,
    /// Time allowed to open all connections.
    pub connect_timeout: Duration,
    /// The most connections of one load thread waiting for their TCP connect or their
    /// handshake at once (at least 1): how hard connects come (the connect scenario's
    /// concurrency).
    pub max_pending: usize,
    /// fanout: how the server is asked to subscribe and publish.
    pub fanout_protocol: FanoutProtocol,
    /// fanout: the topic (c10k's pubsub protocols), `fanout` by default: several generators
    /// on several topics load several masters of a Redis Cluster.
    pub fanout_topic: String,
    /// hold: at the end, every connection sends one message and waits for its echo (counted in
    /// `messages`; a missing echo is an error).
    pub final_echo: bool,
    /// hold: every connection exchanges one message as soon as it is open, before the server's
    /// memory is read (so that what a first message leaves behind is counted).
    pub first_echo: bool,
    /// hold: at the end (after the final echoes), the server is sent SIGTERM (`server_pid`) and
    /// every connection waits for the server's drain to close it with 1001 Going Away, instead
    /// of closing itself; any other end is an error. Counted in [`Report::going_away`].
    ///
    /// [`Report::going_away`]: super::Report::going_away
    pub server_drain: bool,
    /// Offer permessage-deflate (the default client policy: no context takeover either way);
    /// a server that declines it fails the connection. Messages are then sent compressed (from
    /// 64 bytes) and the echoes inflated, with one `DeflatePool` per thread.
    pub deflate: bool,
    /// fanout: the publisher connects here instead (another node), so that the latency measured
    /// is that of a publish crossing nodes.
    pub publish_url: Option<String>,
    /// What the messages contain.
    pub payload_kind: PayloadKind,
    /// The client's TLS settings for `wss://` URLs (see [`c10k::tls::client_config`]): required
    /// when the URL (or `publish_url`) is `wss://`, unused otherwise. Each thread takes a copy
    /// with its own session resumption setting ([`Options::tls_resume`]).
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// wss: resume TLS sessions (each thread keeps the tickets its connections got, and later
    /// connections of the thread use them). Off, every connection makes a full handshake.
    #[cfg(feature = "tls")]
    pub tls_resume: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scenario: Scenario::Echo,
            url: "ws://127.0.0.1:9001/".to_owned(),
            connections: 100,
            payload: 20,
            binary: false,
            in_flight: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            rate: 10_000.0,
            threads: 1,
            sources: Vec::new(),
            server_pid: None,
            ramp: Duration::from_secs(120),
            delay: Duration::from_secs(60),
            rounds: 3,
            connect_timeout: Duration::from_secs(60),
            max_pending: DEFAULT_MAX_PENDING,
            fanout_protocol: FanoutProtocol::Topics,
            fanout_topic: "fanout".to_owned(),
            final_echo: false,
            first_echo: false,
            server_drain: false,
            deflate: false,
            publish_url: None,
            payload_kind: PayloadKind::Pattern,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_resume: false,
        }
    }
}

/// Parses source addresses given as a list of (comma-separated) IP addresses.
pub fn parse_sources(list: &[String]) -> Result<Vec<IpAddr>, String> {
    list.iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().map_err(|_| format!("not an IP address: {s:?}")))
        .collect()
}
