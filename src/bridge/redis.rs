//! A [`Bridge`] through Redis pub/sub: several c10k nodes share their topics.
//!
//! Each node runs two threads: a publisher, which sends every local publish to Redis (pipelined),
//! and a subscriber, which holds one `SUBSCRIBE` connection, subscribes to a topic's channel while
//! any shard of the node has a subscriber for it, and delivers what other nodes publish to the
//! local subscribers.
//!
//! A message travels as `node id (16 bytes) | kind (1 byte: 1 text, 2 binary) | payload` on the
//! channel `prefix + topic`. A node drops what it published itself when Redis echoes it back: its
//! own subscribers already got it directly, so no node delivers a message twice.
//!
//! Delivery across nodes is **at most once**: while Redis is unreachable, local publishes are
//! dropped (counted in [`BridgeStats::publishes_lost`]) and what other nodes publish meanwhile is
//! not seen; both threads reconnect with back-off (100 ms doubling to 5 s) and the subscriber
//! subscribes again to every wanted topic. Within a node, delivery does not depend on Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::engine::{Bridge, ServerHandle};
use crate::proto::MessageKind;

/// Default prefix of the Redis channels.
pub const DEFAULT_PREFIX: &str = "c10k:";

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long the subscriber waits for a message before it looks at its subscription changes.
const POLL: Duration = Duration::from_millis(20);
/// Publishes sent to Redis in one pipeline at most.
const BATCH: usize = 256;

/// Counters of a bridge.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Local publishes sent to Redis.
    pub publishes_sent: AtomicU64,
    /// Local publishes dropped because Redis was unreachable.
    pub publishes_lost: AtomicU64,
    /// Messages from other nodes delivered locally.
    pub received: AtomicU64,
    /// Messages of this node that Redis echoed back (dropped).
    pub own_echoes: AtomicU64,
    /// Reconnections (of either connection) after a failure.
    pub reconnects: AtomicU64,
    /// Whether both connections are up.
    pub connected: AtomicBool,
}

/// A local publish on its way to Redis: topic, kind, payload.
type Outgoing = (String, MessageKind, Vec<u8>);

enum SubOp {
    Subscribe(String),
    Unsubscribe(String),
}

/// A bridge to other nodes through a Redis server.
#[derive(Debug)]
pub struct RedisBridge {
    node: [u8; 16],
    prefix: String,
    publish_tx: Mutex<Option<mpsc::Sender<Outgoing>>>,
    sub_tx: Mutex<Option<mpsc::Sender<SubOp>>>,
    url: String,
    stats: Arc<BridgeStats>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for SubOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Subscribe(t) => write!(f, "Subscribe({t})"),
            Self::Unsubscribe(t) => write!(f, "Unsubscribe({t})"),
        }
    }
}

impl RedisBridge {
    /// A bridge to the Redis server at `url` (`redis://host:port`), with channels named
    /// `prefix + topic`. Fails only on a malformed URL; an unreachable server is retried.
    pub fn new(url: &str, prefix: &str) -> Result<Arc<Self>, String> {
        redis::Client::open(url).map_err(|e| format!("bad Redis URL {url:?}: {e}"))?;
        let mut node = [0u8; 16];
        crate::engine::sys::fill_random(&mut node).map_err(|e| e.to_string())?;
        Ok(Arc::new(Self {
            node,
            prefix: prefix.to_owned(),
            publish_tx: Mutex::new(None),
            sub_tx: Mutex::new(None),
            url: url.to_owned(),
            stats: Arc::new(BridgeStats::default()),
            stop: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// The bridge's counters.
    pub fn stats(&self) -> &Arc<BridgeStats> {
        &self.stats
    }

    /// Stops the bridge's threads (they notice within a poll interval).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Ok(mut tx) = self.publish_tx.lock() {
            tx.take();
        }
    }
}

impl Bridge for RedisBridge {
    fn attach(&self, handle: ServerHandle) {
        let client = match redis::Client::open(self.url.as_str()) {
            Ok(c) => c,
            Err(e) => {
                log::error!("redis bridge: {e}");
                return;
            }
        };
        let (ptx, prx) = mpsc::channel();
        let (stx, srx) = mpsc::channel();
        if let Ok(mut t) = self.publish_tx.lock() {
            *t = Some(ptx);
        }
        if let Ok(mut t) = self.sub_tx.lock() {
            *t = Some(stx);
        }
        let publisher = Publisher {
            client: client.clone(),
            node: self.node,
            prefix: self.prefix.clone(),
            stats: Arc::clone(&self.stats),
        };
        let subscriber = Subscriber {
            client,
            node: self.node,
            prefix: self.prefix.clone(),
            stats: Arc::clone(&self.stats),
            stop: Arc::clone(&self.stop),
            handle,
        };
        let spawned = std::thread::Builder::new()
            .name("c10k-redis-pub".into())
            .spawn(move || publisher.run(prx))
            .and_then(|_| {
                std::thread::Builder::new()
                    .name("c10k-redis-sub".into())
                    .spawn(move || subscriber.run(srx))
            });
        if let Err(e) = spawned {
            log::error!("redis bridge: cannot start its threads: {e}");
        }
    }

    fn subscribe(&self, topic: &str) {
        if let Ok(tx) = self.sub_tx.lock()
            && let Some(tx) = tx.as_ref()
        {
            let _ = tx.send(SubOp::Subscribe(topic.to_owned()));
        }
    }

    fn unsubscribe(&self, topic: &str) {
        if let Ok(tx) = self.sub_tx.lock()
            && let Some(tx) = tx.as_ref()
        {
            let _ = tx.send(SubOp::Unsubscribe(topic.to_owned()));
        }
    }

    fn publish(&self, topic: &str, kind: MessageKind, payload: &[u8]) {
        let sent = match self.publish_tx.lock() {
            Ok(tx) => tx
                .as_ref()
                .is_some_and(|tx| tx.send((topic.to_owned(), kind, payload.to_vec())).is_ok()),
            Err(_) => false,
        };
        if !sent {
            self.stats.publishes_lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The wire form of a message on a channel.
fn envelope(node: &[u8; 16], kind: MessageKind, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(17 + payload.len());
    v.extend_from_slice(node);
    v.push(match kind {
        MessageKind::Text => 1,
        MessageKind::Binary => 2,
    });
    v.extend_from_slice(payload);
    v
}

/// Splits an envelope: (node, kind, payload); `None` if it is not one.
fn open_envelope(bytes: &[u8]) -> Option<(&[u8], MessageKind, &[u8])> {
    let (node, rest) = bytes.split_at_checked(16)?;
    let (&k, payload) = rest.split_first()?;
    let kind = match k {
        1 => MessageKind::Text,
        2 => MessageKind::Binary,
        _ => return None,
    };
    if kind == MessageKind::Text && std::str::from_utf8(payload).is_err() {
        return None;
    }
    Some((node, kind, payload))
}

struct Publisher {
    client: redis::Client,
    node: [u8; 16],
    prefix: String,
    stats: Arc<BridgeStats>,
}

impl Publisher {
    fn run(self, rx: mpsc::Receiver<Outgoing>) {
        let mut conn: Option<redis::Connection> = None;
        let mut backoff = BACKOFF_MIN;
        let mut next_try = std::time::Instant::now();
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            if conn.is_none() && std::time::Instant::now() >= next_try {
                match self.client.get_connection_with_timeout(Duration::from_secs(1)) {
                    Ok(c) => {
                        conn = Some(c);
                        backoff = BACKOFF_MIN;
                    }
                    Err(e) => {
                        log::warn!("redis bridge: publisher cannot connect: {e}; retrying in {backoff:?}");
                        next_try = std::time::Instant::now() + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
            let Some(c) = conn.as_mut() else {
                self.stats
                    .publishes_lost
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                continue;
            };
            let mut pipe = redis::pipe();
            for (topic, kind, payload) in &batch {
                pipe.cmd("PUBLISH")
                    .arg(format!("{}{}", self.prefix, topic))
                    .arg(envelope(&self.node, *kind, payload))
                    .ignore();
            }
            let mut result = pipe.exec(c);
            if result.is_err() {
                // The connection may just be stale (Redis restarted since the last publish): try
                // once more on a fresh one before counting the batch as lost.
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                conn = self
                    .client
                    .get_connection_with_timeout(Duration::from_secs(1))
                    .ok();
                if let Some(c) = conn.as_mut() {
                    result = pipe.exec(c);
                }
            }
            match result {
                Ok(()) => {
                    self.stats
                        .publishes_sent
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    log::warn!(
                        "redis bridge: publish failed ({e}); {} messages lost",
                        batch.len()
                    );
                    self.stats
                        .publishes_lost
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    conn = None;
                    next_try = std::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

struct Subscriber {
    client: redis::Client,
    node: [u8; 16],
    prefix: String,
    stats: Arc<BridgeStats>,
    stop: Arc<AtomicBool>,
    handle: ServerHandle,
}

impl Subscriber {
    fn run(self, rx: mpsc::Receiver<SubOp>) {
        // How many shards of this node want each topic.
        let mut wanted: HashMap<String, usize> = HashMap::new();
        let mut backoff = BACKOFF_MIN;
        let mut first = true;
        while !self.stop.load(Ordering::Acquire) {
            let mut conn = match self.client.get_connection_with_timeout(Duration::from_secs(1)) {
                Ok(c) => c,
                Err(e) => {
                    self.stats.connected.store(false, Ordering::Relaxed);
                    log::warn!("redis bridge: subscriber cannot connect: {e}; retrying in {backoff:?}");
                    let _ = self.apply(&rx, &mut wanted, None);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            if !first {
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "redis bridge: reconnected; subscribing again to {} topics",
                    wanted.len()
                );
            }
            first = false;
            backoff = BACKOFF_MIN;
            if let Err(e) = self.session(&mut conn, &rx, &mut wanted) {
                self.stats.connected.store(false, Ordering::Relaxed);
                log::warn!("redis bridge: subscription connection lost: {e}");
            }
        }
    }

    /// Applies subscription changes; with a connection, mirrors them in Redis.
    fn apply(
        &self,
        rx: &mpsc::Receiver<SubOp>,
        wanted: &mut HashMap<String, usize>,
        mut pubsub: Option<&mut redis::PubSub<'_>>,
    ) -> redis::RedisResult<()> {
        while let Ok(op) = rx.try_recv() {
            match op {
                SubOp::Subscribe(t) => {
                    let n = wanted.entry(t.clone()).or_default();
                    *n += 1;
                    if *n == 1
                        && let Some(p) = pubsub.as_mut()
                    {
                        p.subscribe(format!("{}{t}", self.prefix))?;
                    }
                }
                SubOp::Unsubscribe(t) => {
                    if let Some(n) = wanted.get_mut(&t) {
                        *n -= 1;
                        if *n == 0 {
                            wanted.remove(&t);
                            if let Some(p) = pubsub.as_mut() {
                                p.unsubscribe(format!("{}{t}", self.prefix))?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn session(
        &self,
        conn: &mut redis::Connection,
        rx: &mpsc::Receiver<SubOp>,
        wanted: &mut HashMap<String, usize>,
    ) -> redis::RedisResult<()> {
        let mut pubsub = conn.as_pubsub();
        pubsub.set_read_timeout(Some(POLL))?;
        for t in wanted.keys() {
            pubsub.subscribe(format!("{}{t}", self.prefix))?;
        }
        self.stats.connected.store(true, Ordering::Relaxed);
        while !self.stop.load(Ordering::Acquire) {
            self.apply(rx, wanted, Some(&mut pubsub))?;
            let msg = match pubsub.get_message() {
                Ok(m) => m,
                Err(e) if e.is_timeout() => continue,
                Err(e) => return Err(e),
            };
            let Some(topic) = msg.get_channel_name().strip_prefix(self.prefix.as_str()) else {
                continue;
            };
            let Some((node, kind, payload)) = open_envelope(msg.get_payload_bytes()) else {
                continue;
            };
            if node == self.node {
                self.stats.own_echoes.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            self.handle.publish_from_bridge(topic, kind, payload);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_reject_garbage() {
        let node = [7u8; 16];
        let e = envelope(&node, MessageKind::Text, b"hi");
        assert_eq!(
            open_envelope(&e),
            Some((&node[..], MessageKind::Text, &b"hi"[..]))
        );
        let e = envelope(&node, MessageKind::Binary, &[0xff]);
        assert_eq!(
            open_envelope(&e),
            Some((&node[..], MessageKind::Binary, &[0xff][..]))
        );
        assert_eq!(open_envelope(&[1, 2, 3]), None);
        let mut bad = envelope(&node, MessageKind::Text, &[0xff]);
        assert_eq!(open_envelope(&bad), None);
        bad[16] = 9;
        assert_eq!(open_envelope(&bad), None);
    }
}
