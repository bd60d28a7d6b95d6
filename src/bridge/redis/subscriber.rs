//! The subscriber thread: one `SUBSCRIBE` connection that mirrors the node's topics in Redis and
//! delivers what other nodes publish.
//!
//! Waiting for messages and a dead connection are told apart: a wait that brings nothing is
//! normal (every [`POLL`] the thread looks at subscription changes and waits again, keeping any
//! part of a reply already read). The connection is dead only when a request (`SUBSCRIBE`,
//! `UNSUBSCRIBE`, `PING`) is waiting for its reply and Redis has sent nothing at all for the I/O
//! timeout, when Redis closes it or sends what is not RESP, or answers an error. When nothing has
//! come for the keepalive interval, the thread sends a `PING`, so a Redis that hangs is noticed
//! within keepalive + I/O timeout even on a quiet connection.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::link::{self, Link, Target};
use super::resp::{self, Value};
use super::{BridgeStats, RedisLimits, envelope};
use crate::engine::ServerHandle;

/// How long the subscriber waits for a message before it looks at its subscription changes.
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// Channels named in one `SUBSCRIBE` or `UNSUBSCRIBE` at most.
const CHANNELS_PER_COMMAND: usize = 64;
/// Replies the subscriber waits for at most, beyond one per subscribed topic; past it (Redis far
/// behind while the node's topics come and go), the connection is dropped and made again, which
/// subscribes to the wanted set at once.
const MAX_PENDING: usize = 1 << 16;

/// The topics the node's shards want, shared by the shards (which change it) and the
/// subscriber (which mirrors it in Redis). It has one entry per topic that has subscribers on
/// the node; the lock is never held while anything talks to Redis.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    inner: Mutex<WantedInner>,
    changed: AtomicBool,
}

#[derive(Debug, Default)]
struct WantedInner {
    /// How many shards want each topic.
    shards: HashMap<String, usize>,
    /// Topics that gained their first shard or lost their last since the subscriber looked.
    changed: HashSet<String>,
}

impl Wanted {
    fn lock(&self) -> MutexGuard<'_, WantedInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A shard got its first subscriber to `topic`.
    pub(crate) fn add(&self, topic: &str) {
        let mut w = self.lock();
        let n = w.shards.entry(topic.to_owned()).or_default();
        *n += 1;
        if *n == 1 {
            w.changed.insert(topic.to_owned());
            self.changed.store(true, Ordering::Release);
        }
    }

    /// A shard lost its last subscriber to `topic`.
    pub(crate) fn remove(&self, topic: &str) {
        let mut w = self.lock();
        let Some(n) = w.shards.get_mut(topic) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            w.shards.remove(topic);
            w.changed.insert(topic.to_owned());
            self.changed.store(true, Ordering::Release);
        }
    }

    /// Every wanted topic (for a new connection); pending changes are then moot.
    pub(crate) fn all(&self) -> Vec<String> {
        let mut w = self.lock();
        w.changed.clear();
        self.changed.store(false, Ordering::Release);
        w.shards.keys().cloned().collect()
    }

    /// Topics whose wish changed since the last look, with whether they are wanted now.
    pub(crate) fn changes(&self) -> Vec<(String, bool)> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        let mut w = self.lock();
        let changed = std::mem::take(&mut w.changed);
        changed
            .into_iter()
            .map(|t| {
                let wanted = w.shards.contains_key(&t);
                (t, wanted)
            })
            .collect()
    }
}

pub(crate) struct Subscriber {
    pub(crate) target: Target,
    pub(crate) limits: RedisLimits,
    pub(crate) node: [u8; 16],
    pub(crate) prefix: String,
    pub(crate) wanted: Arc<Wanted>,
    pub(crate) stats: Arc<BridgeStats>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) handle: ServerHandle,
    pub(crate) backoff: Backoff,
}

/// One connection's state.
struct Session {
    link: Link,
    /// Channels subscribed on this connection (topics, without the prefix).
    subscribed: HashSet<String>,
    /// When each request still waiting for its reply was sent, oldest first.
    pending: VecDeque<Instant>,
    /// When Redis last sent anything.
    heard: Instant,
    answered: bool,
}

impl Subscriber {
    pub(crate) fn run(mut self) {
        let mut first = true;
        while !self.stop.load(Ordering::Acquire) {
            if !std::mem::replace(&mut first, false) {
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            let l = &self.limits;
            let max_bulk = l.max_message_size.saturating_add(envelope::HEADER);
            let result = Link::open(&self.target, l.connect_timeout, l.io_timeout, max_bulk)
                .and_then(|link| self.session(link));
            self.stats.connected.store(false, Ordering::Relaxed);
            let Err(e) = result else {
                return;
            };
            if link::is_timeout(&e) {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            let wait = self.backoff.failed();
            log::warn!("redis bridge: subscriber: {e}; connecting again in {wait:?}");
            self.pause(wait);
        }
    }

    /// Sleeps `d`, or less if the bridge stops.
    fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stop.load(Ordering::Acquire) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Runs one connection until it fails (the error) or the bridge stops (`Ok`).
    fn session(&mut self, link: Link) -> io::Result<()> {
        let now = Instant::now();
        let mut s = Session {
            link,
            subscribed: HashSet::new(),
            pending: VecDeque::new(),
            heard: now,
            answered: false,
        };
        let all = self.wanted.all();
        if !all.is_empty() {
            log::info!("redis bridge: subscribing to {} topics", all.len());
        }
        self.request(&mut s, b"SUBSCRIBE", all)?;
        // Even with no topic, Redis must answer something on a new connection.
        self.ping(&mut s)?;
        while !self.stop.load(Ordering::Acquire) {
            let (add, drop): (Vec<_>, Vec<_>) = self.wanted.changes().into_iter().partition(|c| c.1);
            let add: Vec<String> = add
                .into_iter()
                .map(|c| c.0)
                .filter(|t| !s.subscribed.contains(t))
                .collect();
            let drop: Vec<String> = drop
                .into_iter()
                .map(|c| c.0)
                .filter(|t| s.subscribed.contains(t))
                .collect();
            self.request(&mut s, b"SUBSCRIBE", add)?;
            self.request(&mut s, b"UNSUBSCRIBE", drop)?;
            if s.pending.len() > MAX_PENDING + s.subscribed.len() {
                return Err(io::Error::other(format!(
                    "more than {MAX_PENDING} replies due from Redis"
                )));
            }

            if let Some(v) = s.link.poll(POLL)? {
                s.heard = Instant::now();
                if self.take(v)? {
                    s.pending.pop_front();
                    if !std::mem::replace(&mut s.answered, true) {
                        self.stats.connected.store(true, Ordering::Relaxed);
                        self.backoff.answered();
                    }
                }
            }
            let now = Instant::now();
            let io = self.limits.io_timeout;
            if let Some(&sent) = s.pending.front() {
                if now.duration_since(sent.max(s.heard)) >= io {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("Redis sent nothing for {io:?} while a reply was due"),
                    ));
                }
            } else if now.duration_since(s.heard) >= self.limits.keepalive {
                self.ping(&mut s)?;
            }
        }
        Ok(())
    }

    /// Sends `SUBSCRIBE` or `UNSUBSCRIBE` for `topics` (one reply each is then due).
    fn request(&self, s: &mut Session, verb: &[u8], topics: Vec<String>) -> io::Result<()> {
        for chunk in topics.chunks(CHANNELS_PER_COMMAND) {
            let channels: Vec<Vec<u8>> = chunk
                .iter()
                .map(|t| [self.prefix.as_bytes(), t.as_bytes()].concat())
                .collect();
            let mut args: Vec<&[u8]> = vec![verb];
            args.extend(channels.iter().map(Vec::as_slice));
            let mut cmd = Vec::new();
            resp::command(&mut cmd, &args);
            s.link.send(&[&cmd], Instant::now() + self.limits.io_timeout)?;
            let now = Instant::now();
            for t in chunk {
                s.pending.push_back(now);
                if verb == b"SUBSCRIBE" {
                    s.subscribed.insert(t.clone());
                } else {
                    s.subscribed.remove(t);
                }
            }
        }
        Ok(())
    }

    fn ping(&self, s: &mut Session) -> io::Result<()> {
        let mut cmd = Vec::new();
        resp::command(&mut cmd, &[b"PING"]);
        s.link.send(&[&cmd], Instant::now() + self.limits.io_timeout)?;
        s.pending.push_back(Instant::now());
        Ok(())
    }

    /// Handles what Redis sent: true if it is the reply to a request, false if a message.
    fn take(&self, v: Value) -> io::Result<bool> {
        match &v {
            Value::Array(items) => match items.first().and_then(Value::bytes) {
                Some(b"message") if items.len() == 3 => {
                    self.deliver(&items[1], &items[2]);
                    Ok(false)
                }
                Some(b"subscribe" | b"unsubscribe" | b"pong") => Ok(true),
                _ => Err(link::unexpected(&v)),
            },
            Value::Simple(s) if s.eq_ignore_ascii_case(b"PONG") => Ok(true),
            _ => Err(link::unexpected(&v)),
        }
    }

    /// A message on a channel: to the local subscribers, unless it is dropped (and counted).
    fn deliver(&self, channel: &Value, payload: &Value) {
        let count = |c: &std::sync::atomic::AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        let bytes = match payload {
            Value::Bulk(b) => b,
            Value::TooLarge(_) => return count(&self.stats.dropped_too_large_in),
            _ => return count(&self.stats.dropped_malformed_in),
        };
        let topic = channel
            .bytes()
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.strip_prefix(self.prefix.as_str()));
        let (Some(topic), Some((node, kind, payload))) = (topic, envelope::open(bytes)) else {
            return count(&self.stats.dropped_malformed_in);
        };
        if node == self.node {
            return count(&self.stats.own_echoes);
        }
        if payload.len() > self.limits.max_message_size {
            return count(&self.stats.dropped_too_large_in);
        }
        count(&self.stats.received);
        self.handle.publish_from_bridge(topic, kind, payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_reports_only_first_and_last_shard_changes() {
        let w = Wanted::default();
        assert!(w.changes().is_empty());
        w.add("a");
        w.add("a");
        w.add("b");
        let mut c = w.changes();
        c.sort();
        assert_eq!(c, vec![("a".to_owned(), true), ("b".to_owned(), true)]);
        w.remove("a");
        assert!(w.changes().is_empty(), "one shard still wants a");
        w.remove("a");
        w.add("b");
        assert_eq!(w.changes(), vec![("a".to_owned(), false)]);
        w.remove("zzz");
        assert!(w.changes().is_empty(), "an unknown topic changes nothing");
        // Gone and back before the subscriber looked: wanted.
        w.remove("b");
        w.remove("b");
        w.add("b");
        assert_eq!(w.changes(), vec![("b".to_owned(), true)]);
        w.add("c");
        let mut all = w.all();
        all.sort();
        assert_eq!(all, vec!["b".to_owned(), "c".to_owned()]);
        assert!(
            w.changes().is_empty(),
            "a new connection subscribes to all at once"
        );
    }
}
