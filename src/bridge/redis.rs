//! A [`Bridge`] through Redis pub/sub: several c10k nodes share their topics.
//!
//! Each node runs two threads: a publisher, which sends every local publish to Redis (pipelined,
//! up to 256 per round trip), and a subscriber, which holds one `SUBSCRIBE` connection,
//! subscribes to a topic's channel while any shard of the node has a subscriber for it, and
//! delivers what other nodes publish to the local subscribers
//! ([`ServerHandle::publish_from_bridge`]).
//!
//! A message travels as `node id (16 bytes) | kind (1 byte: 1 text, 2 binary) | payload` on the
//! channel `prefix + topic`. A node drops what it published itself when Redis echoes it back: its
//! own subscribers already got it directly, so no node delivers a message twice.
//!
//! # What is bounded, and the answer past each bound
//!
//! Redis, and a node's own publishers, are peers: nothing between them and the shards grows
//! without bound, and everything dropped is counted in [`BridgeStats`]. The knobs are the fields
//! of [`RedisLimits`], given when the bridge is made ([`RedisBridge::with_limits`]).
//!
//! | what | bound (default) | past it |
//! |---|---|---|
//! | publish queue (local publishes on their way to Redis, queued or being sent) | [`max_queued_messages`](RedisLimits::max_queued_messages) (8192) and [`max_queued_bytes`](RedisLimits::max_queued_bytes) (32 MiB) | the publish is dropped: [`dropped_queue_full`](BridgeStats::dropped_queue_full) |
//! | a local publish | [`max_message_size`](RedisLimits::max_message_size) (the server's, 16 MiB by default) | dropped before it is copied: [`dropped_too_large_out`](BridgeStats::dropped_too_large_out) |
//! | a message from Redis | `max_message_size` + 17 (its envelope) | skipped as it arrives, never buffered: [`dropped_too_large_in`](BridgeStats::dropped_too_large_in) |
//! | a reply line, an array from Redis | 4 KiB, 64 elements, nested 4 deep | the connection is dropped and made again |
//! | connecting | [`connect_timeout`](RedisLimits::connect_timeout) (1 s) | the attempt fails; next one after the back-off |
//! | a write to Redis, a reply from it | [`io_timeout`](RedisLimits::io_timeout) (2 s) | the connection is dropped ([`timeouts`](BridgeStats::timeouts)); a batch's unanswered publishes are [`publishes_lost`](BridgeStats::publishes_lost) |
//! | a quiet subscription | a `PING` after [`keepalive`](RedisLimits::keepalive) (2 s) of silence | unanswered within `io_timeout`: dropped as above |
//! | reconnecting | back-off from [`backoff_min`](RedisLimits::backoff_min) (100 ms) doubling to [`backoff_max`](RedisLimits::backoff_max) (5 s), each wait drawn between half and all of it | — |
//!
//! [`Bridge::publish`] runs on shard threads and never waits for Redis: it checks the size,
//! reserves room in the queue (a short lock, never held during I/O), and copies the message
//! only if it fits. Delivery from Redis goes straight from the subscriber thread to the shards'
//! inboxes, with no queue between; the subscriber's own buffer holds at most one message.
//!
//! # Failures
//!
//! Delivery across nodes is **at most once**. While Redis is unreachable, hung or too slow,
//! local publishes are dropped ([`BridgeStats::publishes_lost`], or `dropped_queue_full` while a
//! batch waits for its replies) and what other nodes publish meanwhile is not seen. A hung Redis
//! (accepts, never answers; or a stopped process) never blocks a shard: the publisher gives up
//! on a batch after the I/O timeout, the subscriber notices within keepalive + I/O timeout, and
//! both connect again with back-off; the subscriber then subscribes again to every wanted topic.
//! A slow reply is not a dead connection: the subscriber waits for messages in short slices
//! (20 ms, to pick up subscription changes) and drops the connection only when Redis has sent
//! nothing for the I/O timeout while a reply is due. The back-off is reset only once Redis has
//! answered on a connection, so a Redis that accepts and closes cannot make the bridge reconnect
//! in a loop. Within a node, delivery does not depend on Redis.
//!
//! URLs: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (`AUTH` is sent when there is a password;
//! the database number is ignored, as pub/sub channels are the same in all). TLS and Unix
//! sockets are not supported.

mod backoff;
mod envelope;
mod keys;
mod link;
mod publisher;
mod queue;
mod resp;
mod router;
mod script;
mod stream_pub;
mod streams;
mod subscriber;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use self::backoff::Backoff;
use self::keys::{Epochs, TopicKeys};
use self::link::Target;
use self::publisher::Publisher;
use self::queue::{PublishQueue, Refused};
use self::router::Router;
use self::stream_pub::StreamPublisher;
use self::streams::StreamSubscriber;
use self::subscriber::{Subscriber, Wanted};
use crate::engine::{Bridge, Position, ServerConfig, ServerHandle};
use crate::proto::MessageKind;

/// Default prefix of the Redis channels.
pub const DEFAULT_PREFIX: &str = "c10k:";
/// Default bound on the messages in the publish queue.
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 8192;
/// Default bound on the bytes in the publish queue (encoded commands).
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 32 << 20;
/// Default time allowed to open a TCP connection to Redis.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time allowed for a write to Redis, or for its reply.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Default silence on the subscription after which the subscriber pings Redis.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(2);
/// Default first wait before connecting again.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Default longest wait before connecting again.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Default number of messages kept per topic in Redis in streams mode (`XADD MAXLEN ~`), and
/// read at most when a node loads a topic's history.
pub const DEFAULT_HISTORY_LEN: usize = 1000;
/// Default bound on the payload bytes of one read of a topic's history in streams mode.
pub const DEFAULT_MAX_HISTORY_BYTES: usize = 64 << 20;

/// How a [`RedisBridge`] shares topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Redis pub/sub: fire and forget, at most once; each node delivers its own publishes.
    PubSub,
    /// Redis Streams: each topic's messages ordered and numbered in Redis, with a bounded
    /// history there; every node delivers every message (its own too) in that order.
    Streams,
}

/// The bridge's bounds and timeouts (the module docs say what happens past each).
///
/// Start from [`RedisLimits::for_server`] (or [`Default`]) and set what you need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisLimits {
    /// The largest payload sent or delivered; larger ones are dropped and counted. Give it the
    /// server's `protocol.max_message_size`.
    pub max_message_size: usize,
    /// The most local publishes queued for Redis or being sent.
    pub max_queued_messages: usize,
    /// The most bytes (encoded `PUBLISH` commands) queued for Redis or being sent.
    pub max_queued_bytes: usize,
    /// Time allowed to open a connection (per address of the host).
    pub connect_timeout: Duration,
    /// Time allowed for a write to finish, and for Redis to answer (for a batch of publishes:
    /// all its replies; for a subscription: any byte while a reply is due).
    pub io_timeout: Duration,
    /// Silence on the subscription after which the subscriber sends a `PING`.
    pub keepalive: Duration,
    /// The first wait before connecting again after a failure.
    pub backoff_min: Duration,
    /// The longest wait before connecting again.
    pub backoff_max: Duration,
    /// Streams mode: messages kept per topic in Redis (`XADD ... MAXLEN ~`, so a few more may
    /// stay), and read at most when a node loads a topic's history or catches up.
    pub history_len: usize,
    /// Streams mode: payload bytes one read of a topic's history brings at most (never less
    /// than one message of `max_message_size`); older entries past it are not loaded.
    pub max_history_bytes: usize,
}

impl Default for RedisLimits {
    fn default() -> Self {
        Self {
            max_message_size: crate::proto::Config::default().max_message_size,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            keepalive: DEFAULT_KEEPALIVE,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            history_len: DEFAULT_HISTORY_LEN,
            max_history_bytes: DEFAULT_MAX_HISTORY_BYTES,
        }
    }
}

impl RedisLimits {
    /// The defaults, with the message size limit of the server `config`.
    pub fn for_server(config: &ServerConfig) -> Self {
        Self {
            max_message_size: config.protocol.max_message_size,
            ..Self::default()
        }
    }

    /// The payload bytes one read of a history brings at most.
    pub(crate) fn history_bytes(&self) -> usize {
        self.max_history_bytes.max(self.max_message_size)
    }

    fn check(&self) -> Result<(), String> {
        if self.history_len == 0 {
            return Err("Redis bridge: history_len must be at least 1".to_owned());
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
            ("keepalive", self.keepalive),
            ("backoff_min", self.backoff_min),
        ] {
            if d.is_zero() {
                return Err(format!("Redis bridge: {name} must be longer than zero"));
            }
        }
        Ok(())
    }
}

/// Counters of a bridge, updated as it works (read them with [`snapshot`](Self::snapshot) or
/// field by field).
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Local publishes that Redis took (answered).
    pub publishes_sent: AtomicU64,
    /// Local publishes dropped because Redis was unreachable, did not answer within the I/O
    /// timeout, or refused them.
    pub publishes_lost: AtomicU64,
    /// Local publishes dropped because the publish queue was full (messages or bytes).
    pub dropped_queue_full: AtomicU64,
    /// Local publishes dropped because their payload exceeded `max_message_size`.
    pub dropped_too_large_out: AtomicU64,
    /// Messages from other nodes delivered locally.
    pub received: AtomicU64,
    /// Messages from Redis dropped because they exceeded `max_message_size` (never buffered).
    pub dropped_too_large_in: AtomicU64,
    /// Messages from Redis dropped because they were not a c10k envelope on a prefixed channel.
    pub dropped_malformed_in: AtomicU64,
    /// Messages of this node that Redis echoed back (dropped: delivered locally already).
    pub own_echoes: AtomicU64,
    /// Connections tried again after a failure (either thread).
    pub reconnects: AtomicU64,
    /// Connections given up because Redis did not connect, take writes or answer in time.
    pub timeouts: AtomicU64,
    /// Local publishes queued or being sent now.
    pub queue_depth: AtomicU64,
    /// Bytes of the publish queue now.
    pub queue_bytes: AtomicU64,
    /// The most messages the publish queue ever held.
    pub queue_peak: AtomicU64,
    /// The most bytes the publish queue ever held.
    pub queue_peak_bytes: AtomicU64,
    /// Streams mode: live messages skipped because the node had them already.
    pub duplicates: AtomicU64,
    /// Streams mode: live messages that came after a gap (the topic was read to fill it).
    pub gaps: AtomicU64,
    /// Streams mode: histories loaded (a topic newly wanted, or found in a new epoch).
    pub history_loads: AtomicU64,
    /// Streams mode: topics found in a new epoch in Redis (their history there was lost).
    pub epoch_changes: AtomicU64,
    /// Whether the subscription connection is up and Redis has answered on it (streams mode:
    /// every subscription connection, and every wanted topic is subscribed).
    pub connected: AtomicBool,
}

/// The counters of a bridge at one moment (see [`BridgeStats`] for each field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeCounts {
    /// Local publishes that Redis took.
    pub publishes_sent: u64,
    /// Local publishes lost: Redis unreachable, too slow, or refusing.
    pub publishes_lost: u64,
    /// Local publishes dropped: the publish queue was full.
    pub dropped_queue_full: u64,
    /// Local publishes dropped: larger than `max_message_size`.
    pub dropped_too_large_out: u64,
    /// Messages from other nodes delivered locally.
    pub received: u64,
    /// Messages from Redis dropped: larger than `max_message_size`.
    pub dropped_too_large_in: u64,
    /// Messages from Redis dropped: not a c10k envelope.
    pub dropped_malformed_in: u64,
    /// This node's messages echoed back by Redis (dropped).
    pub own_echoes: u64,
    /// Connections tried again after a failure.
    pub reconnects: u64,
    /// Connections given up for want of an answer in time.
    pub timeouts: u64,
    /// Publishes queued or being sent.
    pub queue_depth: u64,
    /// Bytes queued or being sent.
    pub queue_bytes: u64,
    /// The most publishes the queue ever held.
    pub queue_peak: u64,
    /// The most bytes the queue ever held.
    pub queue_peak_bytes: u64,
    /// Live messages skipped: had already.
    pub duplicates: u64,
    /// Live messages after a gap.
    pub gaps: u64,
    /// Histories loaded.
    pub history_loads: u64,
    /// Topics found in a new epoch.
    pub epoch_changes: u64,
    /// Whether the subscription is up and answered.
    pub connected: bool,
}

impl BridgeStats {
    /// Every counter, read now.
    pub fn snapshot(&self) -> BridgeCounts {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeCounts {
            publishes_sent: r(&self.publishes_sent),
            publishes_lost: r(&self.publishes_lost),
            dropped_queue_full: r(&self.dropped_queue_full),
            dropped_too_large_out: r(&self.dropped_too_large_out),
            received: r(&self.received),
            dropped_too_large_in: r(&self.dropped_too_large_in),
            dropped_malformed_in: r(&self.dropped_malformed_in),
            own_echoes: r(&self.own_echoes),
            reconnects: r(&self.reconnects),
            timeouts: r(&self.timeouts),
            queue_depth: r(&self.queue_depth),
            queue_bytes: r(&self.queue_bytes),
            queue_peak: r(&self.queue_peak),
            queue_peak_bytes: r(&self.queue_peak_bytes),
            duplicates: r(&self.duplicates),
            gaps: r(&self.gaps),
            history_loads: r(&self.history_loads),
            epoch_changes: r(&self.epoch_changes),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}

impl BridgeCounts {
    /// The counters as `name value` pairs, in the order of the fields (for logs and exports).
    pub fn pairs(&self) -> [(&'static str, u64); 19] {
        [
            ("publishes_sent", self.publishes_sent),
            ("publishes_lost", self.publishes_lost),
            ("dropped_queue_full", self.dropped_queue_full),
            ("dropped_too_large_out", self.dropped_too_large_out),
            ("received", self.received),
            ("dropped_too_large_in", self.dropped_too_large_in),
            ("dropped_malformed_in", self.dropped_malformed_in),
            ("own_echoes", self.own_echoes),
            ("reconnects", self.reconnects),
            ("timeouts", self.timeouts),
            ("queue_depth", self.queue_depth),
            ("queue_bytes", self.queue_bytes),
            ("queue_peak", self.queue_peak),
            ("queue_peak_bytes", self.queue_peak_bytes),
            ("duplicates", self.duplicates),
            ("gaps", self.gaps),
            ("history_loads", self.history_loads),
            ("epoch_changes", self.epoch_changes),
            ("connected", u64::from(self.connected)),
        ]
    }
}

/// Where a bridge in streams mode hands what it reads from Redis: a server
/// ([`ServerHandle`] is one), or anything that keeps histories itself (a test, an embedder's
/// own store). Called from the bridge's subscriber thread; must not block for long.
pub trait HistorySink: Send + Sync + std::fmt::Debug {
    /// Replaces the history of `topic` with `entries` (offsets ascending, all in `epoch`).
    fn history_load(&self, topic: &str, epoch: u64, entries: Vec<(u64, MessageKind, Vec<u8>)>);
    /// The next message of `topic`, at `at`.
    fn publish_at(&self, topic: &str, kind: MessageKind, payload: &[u8], at: Position);
    /// The node stopped wanting `topic`.
    fn history_drop(&self, topic: &str);
    /// Whether the sink delivered this node's own publishes itself already (a server without
    /// history on): the bridge then does not hand them back. The default, false.
    fn delivers_own(&self) -> bool {
        false
    }
}

impl HistorySink for ServerHandle {
    fn history_load(&self, topic: &str, epoch: u64, entries: Vec<(u64, MessageKind, Vec<u8>)>) {
        ServerHandle::history_load(self, topic, epoch, entries);
    }

    fn publish_at(&self, topic: &str, kind: MessageKind, payload: &[u8], at: Position) {
        ServerHandle::publish_at(self, topic, kind, payload, at);
    }

    fn history_drop(&self, topic: &str) {
        ServerHandle::history_drop(self, topic);
    }

    fn delivers_own(&self) -> bool {
        !self.keeps_history()
    }
}

/// A bridge to other nodes through a Redis server, or (streams mode) a Redis Cluster.
#[derive(Debug)]
pub struct RedisBridge {
    node: [u8; 16],
    mode: Mode,
    prefix: String,
    /// The Redis (pub/sub mode, or streams mode on one Redis).
    target: Target,
    /// Streams mode: the nodes to start from (one Redis, or nodes of the cluster).
    seeds: Vec<Target>,
    cluster: bool,
    limits: RedisLimits,
    queue: Arc<PublishQueue>,
    wanted: Arc<Wanted>,
    stats: Arc<BridgeStats>,
    stop: Arc<AtomicBool>,
    attached: AtomicBool,
    epochs: Arc<Epochs>,
    publish_sha: String,
}

impl RedisBridge {
    /// A bridge in pub/sub mode to the Redis server at `url` (`redis://host:port`), with
    /// channels named `prefix + topic`, and the default [`RedisLimits`] (a server whose
    /// `max_message_size` is not the default wants [`with_limits`](Self::with_limits)). Fails
    /// only on a malformed URL; an unreachable server is retried.
    pub fn new(url: &str, prefix: &str) -> Result<Arc<Self>, String> {
        Self::with_limits(url, prefix, RedisLimits::default())
    }

    /// A bridge as [`new`](Self::new) makes it, with these bounds and timeouts. Fails on a
    /// malformed URL or a zero timeout.
    pub fn with_limits(url: &str, prefix: &str, limits: RedisLimits) -> Result<Arc<Self>, String> {
        Self::with_mode(Mode::PubSub, url, prefix, limits)
    }

    /// A bridge in streams mode (see the module docs) to the Redis at `url`
    /// (`redis://host:port`) or the Redis Cluster at `url`
    /// (`redis-cluster://host:port[,host:port...]`), with keys under `prefix` (which holds no
    /// brace) and the default [`RedisLimits`].
    pub fn streams(url: &str, prefix: &str) -> Result<Arc<Self>, String> {
        Self::with_mode(Mode::Streams, url, prefix, RedisLimits::default())
    }

    /// A bridge in `mode`, with these bounds and timeouts. Fails on a malformed URL, a zero
    /// timeout, a cluster URL in pub/sub mode, or (streams mode) a prefix with a brace.
    pub fn with_mode(mode: Mode, url: &str, prefix: &str, limits: RedisLimits) -> Result<Arc<Self>, String> {
        limits.check()?;
        let cluster = url.starts_with("redis-cluster://");
        let seeds = if cluster {
            if mode == Mode::PubSub {
                return Err("Redis bridge: a cluster (redis-cluster://) needs streams mode".to_owned());
            }
            Target::parse_cluster(url)?
        } else {
            vec![Target::parse(url)?]
        };
        if mode == Mode::Streams {
            keys::check_prefix(prefix)?;
        }
        let mut node = [0u8; 16];
        crate::engine::sys::fill_random(&mut node).map_err(|e| e.to_string())?;
        let seed = u64::from_le_bytes(node[8..].try_into().unwrap_or_default());
        Ok(Arc::new(Self {
            node,
            mode,
            prefix: prefix.to_owned(),
            target: seeds[0].clone(),
            seeds,
            cluster,
            limits,
            queue: Arc::new(PublishQueue::new(
                limits.max_queued_messages,
                limits.max_queued_bytes,
            )),
            wanted: Arc::new(Wanted::default()),
            stats: Arc::new(BridgeStats::default()),
            stop: Arc::new(AtomicBool::new(false)),
            attached: AtomicBool::new(false),
            epochs: Arc::new(Epochs::new(seed)),
            publish_sha: script::sha(script::PUBLISH),
        }))
    }

    /// How the bridge shares topics.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the bridge talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The bridge's bounds and timeouts.
    pub fn limits(&self) -> &RedisLimits {
        &self.limits
    }

    /// The bridge's counters.
    pub fn stats(&self) -> &Arc<BridgeStats> {
        &self.stats
    }

    /// Stops the bridge's threads (they notice within a poll interval); what is queued is
    /// dropped (counted lost), and later publishes are refused (counted lost).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let dropped = self.queue.close();
        self.stats
            .publishes_lost
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }

    /// Starts a streams-mode bridge's threads, handing what they read to `sink` rather than to
    /// a server (a server calls this through [`Bridge::attach`]). Once only: a second call, or a
    /// call in pub/sub mode, starts nothing (logged).
    pub fn start_with(&self, sink: Arc<dyn HistorySink>) {
        if self.mode != Mode::Streams {
            log::error!("redis bridge: start_with is for streams mode");
            return;
        }
        if self.attached.swap(true, Ordering::AcqRel) {
            log::error!("redis bridge: started a second time; it serves the first sink only");
            return;
        }
        let publisher = StreamPublisher {
            router: Router::new(self.seeds.clone(), self.cluster, self.limits),
            queue: Arc::clone(&self.queue),
            stats: Arc::clone(&self.stats),
            stop: Arc::clone(&self.stop),
            backoff: self.backoff(0x9e37_79b9_7f4a_7c15),
            retry_at: Instant::now(),
        };
        let subscriber = StreamSubscriber {
            seeds: self.seeds.clone(),
            cluster: self.cluster,
            limits: self.limits,
            prefix: self.prefix.clone(),
            wanted: Arc::clone(&self.wanted),
            stats: Arc::clone(&self.stats),
            stop: Arc::clone(&self.stop),
            sink,
            backoff: self.backoff(0),
            epochs: Arc::clone(&self.epochs),
            node: self.node_hex(),
        };
        self.spawn(move || publisher.run(), move || subscriber.run());
    }

    fn spawn(&self, publisher: impl FnOnce() + Send + 'static, subscriber: impl FnOnce() + Send + 'static) {
        let spawned = std::thread::Builder::new()
            .name("c10k-redis-pub".into())
            .spawn(publisher)
            .and_then(|_| {
                std::thread::Builder::new()
                    .name("c10k-redis-sub".into())
                    .spawn(subscriber)
            });
        if let Err(e) = spawned {
            log::error!("redis bridge: cannot start its threads: {e}");
        }
    }

    /// The node's id in hex, as its streams-mode publishes carry it.
    fn node_hex(&self) -> Vec<u8> {
        self.node
            .iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect()
    }

    fn backoff(&self, salt: u64) -> Backoff {
        let seed = u64::from_le_bytes(self.node[..8].try_into().unwrap_or_default()) ^ salt;
        Backoff::new(self.limits.backoff_min, self.limits.backoff_max, seed)
    }

    /// Queues a streams-mode publish: the publish script for the topic's keys.
    fn publish_streams(&self, topic: &str, kind: MessageKind, payload: &[u8]) {
        let keys = TopicKeys::new(&self.prefix, topic);
        let node = self.node_hex();
        let args = script::PublishArgs {
            sha: &self.publish_sha,
            meta: &keys.meta,
            stream: &keys.stream,
            channel: &keys.channel,
            epoch: self.epochs.candidate(),
            maxlen: self.limits.history_len,
            kind,
            payload,
            verb: if self.cluster { b"SPUBLISH" } else { b"PUBLISH" },
            node: &node,
        };
        let pushed = self
            .queue
            .try_push(keys.slot, args.len(), &self.stats, || args.encode());
        self.count_refusal(pushed);
    }

    fn count_refusal(&self, pushed: Result<(), Refused>) {
        match pushed {
            Ok(()) => {}
            Err(Refused::Full) => {
                self.stats.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            }
            Err(Refused::Closed) => {
                self.stats.publishes_lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Bridge for RedisBridge {
    fn held_bytes(&self) -> u64 {
        self.stats.queue_bytes.load(Ordering::Relaxed)
    }

    fn keeps_history(&self) -> bool {
        self.mode == Mode::Streams
    }

    fn attach(&self, handle: ServerHandle) {
        if self.mode == Mode::Streams {
            self.start_with(Arc::new(handle));
            return;
        }
        if self.attached.swap(true, Ordering::AcqRel) {
            log::error!("redis bridge: attached to a second server; it serves the first only");
            return;
        }
        let publisher = Publisher {
            target: self.target.clone(),
            limits: self.limits,
            queue: Arc::clone(&self.queue),
            stats: Arc::clone(&self.stats),
            stop: Arc::clone(&self.stop),
            backoff: self.backoff(0x9e37_79b9_7f4a_7c15),
            link: None,
            retry_at: Instant::now(),
            tried: false,
        };
        let subscriber = Subscriber {
            target: self.target.clone(),
            limits: self.limits,
            node: self.node,
            prefix: self.prefix.clone(),
            wanted: Arc::clone(&self.wanted),
            stats: Arc::clone(&self.stats),
            stop: Arc::clone(&self.stop),
            handle,
            backoff: self.backoff(0),
        };
        self.spawn(move || publisher.run(), move || subscriber.run());
    }

    fn subscribe(&self, topic: &str) {
        self.wanted.add(topic);
    }

    fn unsubscribe(&self, topic: &str) {
        self.wanted.remove(topic);
    }

    fn publish(&self, topic: &str, kind: MessageKind, payload: &[u8]) {
        if payload.len() > self.limits.max_message_size {
            self.stats.dropped_too_large_out.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.mode == Mode::Streams {
            return self.publish_streams(topic, kind, payload);
        }
        let len = envelope::publish_len(&self.prefix, topic, payload.len());
        let pushed = self.queue.try_push(0, len, &self.stats, || {
            envelope::publish(&self.prefix, topic, &self.node, kind, payload)
        });
        self.count_refusal(pushed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(limits: RedisLimits) -> Arc<RedisBridge> {
        RedisBridge::with_limits("redis://127.0.0.1:1", DEFAULT_PREFIX, limits).unwrap()
    }

    #[test]
    fn publish_drops_and_counts_what_is_too_large_or_does_not_fit() {
        let mut limits = RedisLimits {
            max_message_size: 100,
            max_queued_messages: 3,
            max_queued_bytes: 1 << 20,
            ..RedisLimits::default()
        };
        // Not attached: nothing takes from the queue.
        let b = bridge(limits);
        b.publish("t", MessageKind::Binary, &[0; 101]);
        assert_eq!(b.stats().snapshot().dropped_too_large_out, 1);
        assert_eq!(
            b.stats().snapshot().queue_depth,
            0,
            "refused before it was queued"
        );
        for _ in 0..5 {
            b.publish("t", MessageKind::Binary, &[0; 100]);
        }
        let s = b.stats().snapshot();
        assert_eq!((s.queue_depth, s.dropped_queue_full), (3, 2));
        assert_eq!(
            s.queue_bytes,
            3 * envelope::publish_len(DEFAULT_PREFIX, "t", 100) as u64
        );

        limits.max_queued_messages = 1000;
        limits.max_queued_bytes = 2 * envelope::publish_len(DEFAULT_PREFIX, "t", 10);
        let b = bridge(limits);
        for _ in 0..3 {
            b.publish("t", MessageKind::Text, b"0123456789");
        }
        let s = b.stats().snapshot();
        assert_eq!(
            (s.queue_depth, s.dropped_queue_full),
            (2, 1),
            "bytes bound the queue too"
        );
        b.stop();
        b.publish("t", MessageKind::Text, b"late");
        let s = b.stats().snapshot();
        assert_eq!(
            (s.queue_depth, s.publishes_lost),
            (2, 3),
            "stopped: queued and later publishes are lost"
        );
    }

    #[test]
    fn limits_come_from_the_server_and_zero_timeouts_are_refused() {
        let mut config = ServerConfig::default();
        config.protocol.max_message_size = 1234;
        assert_eq!(RedisLimits::for_server(&config).max_message_size, 1234);
        let limits = RedisLimits {
            io_timeout: Duration::ZERO,
            ..RedisLimits::default()
        };
        assert!(RedisBridge::with_limits("redis://h", "p:", limits).is_err());
        assert!(RedisBridge::new("redis+unix:///tmp/s", "p:").is_err());
    }
}
