//! A [`Bridge`] through Redis: several c10k nodes share their topics, in one of two modes.
//!
//! - **Pub/sub** ([`RedisBridge::new`], [`Mode::PubSub`]): fire and forget, at most once. Each
//!   node delivers its own publishes at once and sends them to Redis; other nodes get them if
//!   they are connected at that moment. Redis keeps nothing.
//! - **Streams** ([`RedisBridge::streams`], [`Mode::Streams`]): Redis numbers each topic's
//!   messages and keeps the newest ([`history_len`](RedisLimits::history_len)) in a stream, so
//!   every node sees the same offsets in the same order, and a node that starts wanting a topic,
//!   or comes back after a disconnection, loads what it missed. The bridge
//!   [keeps history](Bridge::keeps_history): with [`ServerConfig::history`] on, a node delivers
//!   even its own publishes only when they come back from Redis, with their offsets. On one
//!   Redis (`redis://`) or a Redis Cluster (`redis-cluster://`).
//!
//! Each node runs two threads: a publisher, which sends every local publish to Redis (pipelined,
//! up to 256 per round trip), and a subscriber, which subscribes to a topic's channel while any
//! shard of the node has a subscriber for it and hands what comes to the node.
//!
//! # Pub/sub mode
//!
//! A message travels as `node id (16 bytes) | kind (1 byte: 1 text, 2 binary) | payload` on the
//! channel `prefix + topic`, delivered with [`ServerHandle::publish_from_bridge`]. A node drops
//! what it published itself when Redis echoes it back: its own subscribers already got it
//! directly, so no node delivers a message twice.
//!
//! # Streams mode
//!
//! A topic's keys and channel share a hash tag, so they live in one cluster slot:
//!
//! | what | name | holds |
//! |---|---|---|
//! | stream | `PREFIX{TAG}:s` | the newest messages, the entry id `OFFSET-0`, fields `k` (kind), `p` (payload), `n` (node) |
//! | meta hash | `PREFIX{TAG}:m` | `epoch` (random u64, made when the hash has none), `last` (the last offset) |
//! | live channel | `PREFIX{TAG}` | `EPOCH OFFSET KIND NODE\n` + payload, for each message |
//!
//! `TAG` is the topic with `%` written `%25` and `}` written `%7D` (the empty topic: `%`), so that
//! Redis's hash tag (the bytes between the first `{` and the next `}`) is the whole topic, never
//! empty, and no two topics share a name; the prefix may hold no brace.
//!
//! Publishing is one Lua script (`EVALSHA`; `SCRIPT LOAD` on each new connection and after a
//! `NOSCRIPT`): it makes the epoch if there is none (a random candidate from the caller, and an
//! empty stream), increments `last`, `XADD`s the message with the id `last-0` trimmed with
//! `MAXLEN ~ history_len`, and `PUBLISH`es it (`SPUBLISH` on a cluster) on the live channel; all
//! at once, so a message is in the stream exactly when it is on the channel. Another script reads
//! a topic: its epoch, `last`, and entries (the newest, or from an offset), bounded in count and
//! in bytes by the script itself and again by the reader.
//!
//! The subscriber subscribes to a topic's live channel, and once Redis confirms, reads the topic:
//! the newest entries, handed to [`ServerHandle::history_load`], or (if it knew the topic before,
//! e.g. after a reconnection) what came after its last offset, each handed to
//! [`ServerHandle::publish_at`]. Then each live message is handed on when its offset is the next;
//! one it has is skipped ([`duplicates`](BridgeStats::duplicates)), one past a gap
//! ([`gaps`](BridgeStats::gaps)) or in another epoch makes it read the topic again first. Every
//! keepalive interval it also reads up to 64 topics from their last offset, which catches an
//! epoch changed under a live subscription (a `FLUSHALL`) and messages the channel lost. A topic
//! no longer wanted is unsubscribed and [`ServerHandle::history_drop`]ped. A server without
//! history on delivered its own publishes itself: the bridge skips those
//! ([`own_echoes`](BridgeStats::own_echoes)). [`RedisBridge::start_with`] hands all this to any
//! [`HistorySink`] instead of a server.
//!
//! A new epoch means Redis lost the topic (restarted without persistence, flushed, or the keys
//! expired or were deleted): the node's followers are told their history was lost
//! ([`epoch_changes`](BridgeStats::epoch_changes)). A history that went backwards under the same
//! epoch (a failover that lost writes some node had seen: `last` below what the node knew) gets a
//! new epoch too, made by the read script, so an offset never names two messages.
//!
//! # Redis Cluster
//!
//! `redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]` (streams mode only): the nodes to
//! ask for the slot map first (`CLUSTER SLOTS`; any one that answers will do). Commands go to the
//! master of the topic's slot, each over one connection per master; `-MOVED` refreshes the map
//! and follows, `-ASK` sends `ASKING` and follows, and a connection that fails marks the map
//! stale, so the next command asks any known node again (at most every 100 ms): once the cluster
//! has promoted a replica, the map names it. Live channels are sharded (`SSUBSCRIBE`, one command
//! per slot; `SPUBLISH` in the script), one subscription connection per master holding its
//! slots' channels. A subscription connection that fails, an error on it, or a `sunsubscribe`
//! the bridge did not ask for (the slot moved) subscribes its topics again where the refreshed
//! map says, after the back-off, and reads each from its last offset once confirmed.
//!
//! # What is bounded, and the answer past each bound
//!
//! Redis, and a node's own publishers, are peers: nothing between them and the shards grows
//! without bound, and everything dropped is counted in [`BridgeStats`]. The knobs are the fields
//! of [`RedisLimits`], given when the bridge is made ([`RedisBridge::with_limits`],
//! [`RedisBridge::with_mode`]).
//!
//! | what | bound (default) | past it |
//! |---|---|---|
//! | publish queue (local publishes on their way to Redis, queued or being sent) | [`max_queued_messages`](RedisLimits::max_queued_messages) (8192) and [`max_queued_bytes`](RedisLimits::max_queued_bytes) (32 MiB) | the publish is dropped: [`dropped_queue_full`](BridgeStats::dropped_queue_full) |
//! | a local publish | [`max_message_size`](RedisLimits::max_message_size) (the server's, 16 MiB by default) | dropped before it is copied: [`dropped_too_large_out`](BridgeStats::dropped_too_large_out) |
//! | a message from Redis | `max_message_size` + 17 (pub/sub envelope) or + 77 (streams header) | skipped as it arrives, never buffered: [`dropped_too_large_in`](BridgeStats::dropped_too_large_in) (streams: the follower sees a gap) |
//! | a reply line, an array from Redis | 4 KiB, 64 elements, nested 4 deep | the connection is dropped and made again |
//! | streams: messages kept per topic in Redis, and read at once | [`history_len`](RedisLimits::history_len) (1000; `MAXLEN ~`, so Redis may keep a few more) | older ones are trimmed in Redis; a read brings the newest `history_len` |
//! | streams: one read of a topic's history | `4 * history_len + 2` elements; [`max_history_bytes`](RedisLimits::max_history_bytes) (16 MiB, at least `max_message_size`) of payload, cut by the script; the reply at most that + 128 B per entry + 1 MiB | older entries left out of a load (the follower sees the gap); a larger reply drops the connection |
//! | streams: reads in flight at once | 64 MiB over the bytes of one read (4 by default), at least 1; held until handed on, counted in [`reading_bytes`](BridgeStats::reading_bytes) and in [`Bridge::held_bytes`] | the others wait for the next round |
//! | streams: topics checked per keepalive | 64 | the others on later rounds |
//! | cluster: the slot map | 16384 ranges | refused as malformed; the last good map stays |
//! | connecting | [`connect_timeout`](RedisLimits::connect_timeout) (1 s) | the attempt fails; next one after the back-off |
//! | a write to Redis, a reply from it | [`io_timeout`](RedisLimits::io_timeout) (2 s) | the connection is dropped ([`timeouts`](BridgeStats::timeouts)); a batch's unanswered publishes are [`publishes_lost`](BridgeStats::publishes_lost) |
//! | a quiet subscription | a `PING` after [`keepalive`](RedisLimits::keepalive) (2 s) of silence | unanswered within `io_timeout`: dropped as above |
//! | reconnecting | back-off from [`backoff_min`](RedisLimits::backoff_min) (100 ms) doubling to [`backoff_max`](RedisLimits::backoff_max) (5 s), each wait drawn between half and all of it | — |
//!
//! [`Bridge::publish`] runs on shard threads and never waits for Redis: it checks the size,
//! reserves room in the queue (a short lock, never held during I/O), and copies the message
//! only if it fits. Delivery from Redis goes straight from the subscriber thread to the shards'
//! inboxes, with no queue between; the subscriber holds at most one live message, or one round
//! of reads, at a time.
//!
//! # Failures
//!
//! In pub/sub mode, delivery across nodes is **at most once**. While Redis is unreachable, hung
//! or too slow, local publishes are dropped ([`BridgeStats::publishes_lost`], or
//! `dropped_queue_full` while a batch waits for its replies) and what other nodes publish
//! meanwhile is not seen.
//!
//! In streams mode, a publish that Redis took (it has an offset) reaches every node that follows
//! the topic **exactly once and in offset order**, while Redis keeps it (within `history_len`):
//! a node that was disconnected reads what it missed when it subscribes again. Past that, the
//! follower sees a gap or a new epoch, never a silent loss. Publishes are still at most once on
//! their way in: one that Redis did not answer in time is counted lost (Redis may have run it:
//! it is then delivered, with its offset, though counted lost). On a cluster, a failover may lose
//! writes Redis acknowledged (replication is asynchronous): a node that had seen them gets a new
//! epoch; one that had not sees them never happened.
//!
//! In both modes a hung Redis (accepts, never answers; or a stopped process) never blocks a
//! shard: the publisher gives up on a batch after the I/O timeout, the subscriber notices within
//! keepalive + I/O timeout, and both connect again with back-off; the subscriber then subscribes
//! again to every wanted topic. A slow reply is not a dead connection: the subscriber waits for
//! messages in short slices (20 ms, to pick up subscription changes) and drops the connection
//! only when Redis has sent nothing for the I/O timeout while a reply is due. The back-off is
//! reset only once Redis has answered on a connection, so a Redis that accepts and closes cannot
//! make the bridge reconnect in a loop. Within a node, delivery in pub/sub mode does not depend
//! on Redis; in streams mode with history on it does (a publish is delivered when Redis hands it
//! back).
//!
//! URLs: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (`AUTH` is sent when there is a password;
//! the database number is ignored, as pub/sub channels are the same in all) and, in streams mode,
//! `redis-cluster://...` as above. TLS and Unix sockets are not supported.
//!
//! [`ServerConfig::history`]: crate::ServerConfig::history

mod backoff;
mod envelope;
mod keys;
mod limits;
mod link;
mod publisher;
mod queue;
mod resp;
mod router;
mod script;
mod stats;
mod stream_pub;
mod streams;
mod subscriber;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use self::backoff::Backoff;
use self::keys::{Epochs, TopicKeys};
pub use self::limits::{
    DEFAULT_BACKOFF_MAX, DEFAULT_BACKOFF_MIN, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HISTORY_LEN,
    DEFAULT_IO_TIMEOUT, DEFAULT_KEEPALIVE, DEFAULT_MAX_HISTORY_BYTES, DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_QUEUED_MESSAGES, DEFAULT_PREFIX, RedisLimits,
};
use self::link::Target;
use self::publisher::Publisher;
use self::queue::{PublishQueue, Refused};
use self::router::Router;
pub use self::stats::{BridgeCounts, BridgeStats};
use self::stream_pub::StreamPublisher;
use self::streams::StreamSubscriber;
use self::subscriber::{Subscriber, Wanted};
use crate::engine::{Bridge, Position, ServerHandle};
use crate::proto::MessageKind;

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
        let s = &self.stats;
        s.queue_bytes.load(Ordering::Relaxed) + s.reading_bytes.load(Ordering::Relaxed)
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
    use std::time::Duration;

    use super::*;
    use crate::engine::ServerConfig;

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
