//! Streams mode's subscriber thread: it subscribes to the live channel of every wanted topic,
//! loads each topic's history once its subscription is confirmed, and hands on live messages in
//! offset order.
//!
//! Per topic it knows the epoch and the last offset it handed on. After a subscription is
//! confirmed it reads the topic (the read script, on a command connection of its own): the
//! newest entries if it knew nothing ([`HistorySink::history_load`]), or what came after its
//! last offset if it did (each one through [`HistorySink::publish_at`]; a changed epoch is a new
//! load). Then a live message is handed on when its offset is the next one; one it already has is
//! skipped; one past a gap, or in another epoch, makes it read the topic again instead (the read
//! comes after the message, so it holds it). While a read is due for a topic, its live messages
//! are skipped for the same reason. Every keepalive interval it also reads up to
//! [`CHECKS_PER_ROUND`] topics from their last offset: this catches an epoch changed under a
//! live subscription (`FLUSHALL`, a Redis restarted without persistence that the connection did
//! not notice) and messages the live channel lost.
//!
//! Cost per turn (every 20 ms): while some topic waits for a subscription, a confirmation or a
//! read, the thread looks over every topic; once all are settled it looks at none, but once
//! per keepalive interval (to pick the topics to check).
//!
//! Subscription connections: one to the Redis, or one per master of a cluster, each holding the
//! channels of the master's slots (`SSUBSCRIBE`, one command per slot). A connection that fails,
//! or is sent an error, is dropped: its topics are subscribed again (on the master the refreshed
//! map names) after the back-off, and read again from their last offset once confirmed, so a
//! reconnection, a failover or a slot's move loses nothing that Redis kept. A `sunsubscribe` that
//! the bridge did not ask for (Redis moved the slot away) does the same for its topic.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod reads;

use super::backoff::Backoff;
use super::keys::{Epochs, TopicKeys};
use super::link::{self, Link, Target};
use super::resp::{self, Value};
use super::router::Router;
use super::script::{self, Range};
use super::subscriber::{POLL, Wanted};
use super::{BridgeStats, HistorySink, RedisLimits};
use crate::engine::Position;

/// Topics read for the periodic check, per keepalive interval, at most.
pub(crate) const CHECKS_PER_ROUND: usize = 64;
/// Reads sent in one round (one pipeline per node) at most.
const READS_PER_ROUND: usize = 64;
/// Bytes of history the replies of one round may hold in all: a round sends at most this over
/// the bytes one read may bring (`RedisLimits::max_history_bytes`), at least one read.
pub(crate) const ROUND_BYTES: usize = 64 << 20;
/// Channels named in one `SUBSCRIBE` at most.
const CHANNELS_PER_COMMAND: usize = 64;
/// Replies a subscription connection waits for at most, beyond one per topic it holds.
const MAX_PENDING: usize = 1 << 16;

pub(crate) struct StreamSubscriber {
    pub(crate) seeds: Vec<Target>,
    pub(crate) cluster: bool,
    pub(crate) limits: RedisLimits,
    pub(crate) prefix: String,
    pub(crate) wanted: Arc<Wanted>,
    pub(crate) stats: Arc<BridgeStats>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) sink: Arc<dyn HistorySink>,
    pub(crate) backoff: Backoff,
    pub(crate) epochs: Arc<Epochs>,
    /// This node's id in hex, as its publishes carry it.
    pub(crate) node: Vec<u8>,
}

/// One wanted topic.
#[derive(Debug)]
struct Topic {
    keys: TopicKeys,
    /// The node whose subscription connection holds the channel, once asked.
    on: Option<String>,
    /// Whether Redis confirmed the subscription.
    confirmed: bool,
    /// The epoch and the last offset handed on.
    known: Option<(u64, u64)>,
    /// A read due.
    read: Option<Range>,
    checked: Instant,
}

/// One subscription connection.
#[derive(Debug)]
struct SubConn {
    link: Link,
    /// When each request still waiting for its reply was sent, oldest first.
    pending: VecDeque<Instant>,
    heard: Instant,
    answered: bool,
    /// Channels being unsubscribed (their confirmations are replies, not news).
    leaving: HashSet<Vec<u8>>,
}

/// What the thread holds.
struct State {
    topics: HashMap<String, Topic>,
    channels: HashMap<Vec<u8>, String>,
    conns: HashMap<String, SubConn>,
    router: Router,
    /// No connection is made before this instant (the back-off).
    retry_at: Instant,
    /// No read is sent before this instant (after a failed one).
    read_at: Instant,
    checked: Instant,
    /// The nodes a subscription connection was opened to (or tried): another to one of them
    /// is a reconnection, the first to each master of a cluster is not.
    tried: HashSet<String>,
    /// A subscription connection failed since the last one was opened: the next one opened
    /// (wherever the map now says) is a reconnection.
    lost: bool,
    /// Whether some topic may want work (a subscription, a read, a confirmation): while false,
    /// nothing looks at every topic.
    busy: bool,
}

impl StreamSubscriber {
    fn sub_verbs(&self) -> (&'static [u8], &'static [u8]) {
        if self.cluster {
            (b"SSUBSCRIBE", b"SUNSUBSCRIBE")
        } else {
            (b"SUBSCRIBE", b"UNSUBSCRIBE")
        }
    }

    pub(crate) fn run(mut self) {
        let now = Instant::now();
        let mut st = State {
            topics: HashMap::new(),
            channels: HashMap::new(),
            conns: HashMap::new(),
            router: Router::new(self.seeds.clone(), self.cluster, self.limits),
            retry_at: now,
            read_at: now,
            checked: now,
            tried: HashSet::new(),
            lost: false,
            busy: true,
        };
        for topic in self.wanted.all() {
            self.want(&mut st, topic);
        }
        while !self.stop.load(Ordering::Acquire) {
            self.follow_wishes(&mut st);
            self.subscribe(&mut st);
            if st.conns.is_empty() {
                std::thread::sleep(POLL);
            } else {
                self.poll(&mut st);
            }
            self.keepalive(&mut st);
            self.read(&mut st);
            if st.busy {
                st.busy = st
                    .topics
                    .values()
                    .any(|t| t.on.is_none() || !t.confirmed || t.read.is_some());
            }
            let up = if self.cluster && st.topics.is_empty() {
                // No subscription to hold: up when the cluster's map is known.
                st.router.owner(0).is_some()
            } else {
                !st.conns.is_empty()
                    && st.conns.values().all(|c| c.answered)
                    && (!st.busy || st.topics.values().all(|t| t.confirmed))
            };
            self.stats.connected.store(up, Ordering::Relaxed);
        }
        self.stats.connected.store(false, Ordering::Relaxed);
    }

    fn want(&self, st: &mut State, topic: String) {
        st.busy = true;
        let keys = TopicKeys::new(&self.prefix, &topic);
        st.channels.insert(keys.channel.clone(), topic.clone());
        st.topics.insert(
            topic,
            Topic {
                keys,
                on: None,
                confirmed: false,
                known: None,
                read: None,
                checked: Instant::now(),
            },
        );
    }

    /// Topics the node started or stopped wanting.
    fn follow_wishes(&mut self, st: &mut State) {
        for (topic, wanted) in self.wanted.changes() {
            if wanted {
                if !st.topics.contains_key(&topic) {
                    self.want(st, topic);
                }
                continue;
            }
            let Some(t) = st.topics.remove(&topic) else {
                continue;
            };
            st.channels.remove(&t.keys.channel);
            self.sink.history_drop(&topic);
            if let Some(node) = &t.on
                && let Some(conn) = st.conns.get_mut(node)
            {
                let mut cmd = Vec::new();
                resp::command(&mut cmd, &[self.sub_verbs().1, &t.keys.channel]);
                match conn.link.send(&[&cmd], Instant::now() + self.limits.io_timeout) {
                    Ok(()) => {
                        conn.pending.push_back(Instant::now());
                        conn.leaving.insert(t.keys.channel);
                    }
                    Err(e) => {
                        let node = node.clone();
                        self.conn_failed(st, &node, &e);
                    }
                }
            }
        }
    }

    /// Subscribes the topics that are not (after the back-off), each on its slot's master.
    fn subscribe(&mut self, st: &mut State) {
        let now = Instant::now();
        if now < st.retry_at || !(st.busy || !self.cluster && st.conns.is_empty()) {
            return;
        }
        let mut by_node: HashMap<String, (Target, Vec<String>)> = HashMap::new();
        let mut unowned = false;
        if !self.cluster && st.conns.is_empty() {
            // One Redis: a connection even with no topic, so that `connected` means something.
            by_node.insert(self.seeds[0].addr(), (self.seeds[0].clone(), Vec::new()));
        }
        for (name, t) in &st.topics {
            if t.on.is_some() {
                continue;
            }
            match st.router.owner(t.keys.slot) {
                Some(node) => by_node
                    .entry(node.addr())
                    .or_insert_with(|| (node, Vec::new()))
                    .1
                    .push(name.clone()),
                None => unowned = true,
            }
        }
        if unowned {
            st.router.mark_stale();
        }
        for (addr, (node, mut topics)) in by_node {
            if !st.conns.contains_key(&addr) {
                let again = !st.tried.insert(addr.clone());
                if std::mem::take(&mut st.lost) || again {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                let l = &self.limits;
                let max_bulk = l.max_message_size.saturating_add(script::LIVE_HEADER);
                match Link::open(&node, l.connect_timeout, l.io_timeout, max_bulk) {
                    Ok(link) => {
                        let mut conn = SubConn {
                            link,
                            pending: VecDeque::new(),
                            heard: Instant::now(),
                            answered: false,
                            leaving: HashSet::new(),
                        };
                        if let Err(e) = ping(&mut conn, l.io_timeout) {
                            self.failed(st, &e);
                            return;
                        }
                        st.conns.insert(addr.clone(), conn);
                    }
                    Err(e) => {
                        // The map may name a master that is gone (a failover under way).
                        st.router.mark_stale();
                        self.failed(st, &e);
                        return;
                    }
                }
            }
            // One command per slot on a cluster (channels of several slots are refused).
            topics.sort_by_key(|t| st.topics.get(t).map(|t| t.keys.slot));
            let mut groups: Vec<Vec<String>> = Vec::new();
            for name in topics {
                let slot = st.topics.get(&name).map(|t| t.keys.slot);
                match groups.last_mut() {
                    Some(g)
                        if g.len() < CHANNELS_PER_COMMAND
                            && (!self.cluster || st.topics.get(&g[0]).map(|t| t.keys.slot) == slot) =>
                    {
                        g.push(name);
                    }
                    _ => groups.push(vec![name]),
                }
            }
            for group in groups {
                let channels: Vec<Vec<u8>> = group
                    .iter()
                    .filter_map(|n| st.topics.get(n).map(|t| t.keys.channel.clone()))
                    .collect();
                let mut args: Vec<&[u8]> = vec![self.sub_verbs().0];
                args.extend(channels.iter().map(Vec::as_slice));
                let mut cmd = Vec::new();
                resp::command(&mut cmd, &args);
                let Some(conn) = st.conns.get_mut(&addr) else {
                    break;
                };
                if let Err(e) = conn.link.send(&[&cmd], Instant::now() + self.limits.io_timeout) {
                    self.conn_failed(st, &addr, &e);
                    break;
                }
                let now = Instant::now();
                for name in &group {
                    conn.pending.push_back(now);
                    if let Some(t) = st.topics.get_mut(name) {
                        t.on = Some(addr.clone());
                        t.confirmed = false;
                    }
                }
            }
        }
    }

    /// Reads what the subscription connections sent, a short wait on each.
    fn poll(&mut self, st: &mut State) {
        let nodes: Vec<String> = st.conns.keys().cloned().collect();
        let reading = st.busy
            && Instant::now() >= st.read_at
            && st.topics.values().any(|t| t.confirmed && t.read.is_some());
        let wait = if reading {
            Duration::ZERO
        } else {
            (POLL / u32::try_from(nodes.len()).unwrap_or(u32::MAX)).max(Duration::from_millis(1))
        };
        // Messages that keep coming (each within a millisecond of the last) must not keep the
        // thread from its other work (subscriptions, reads, keepalives): a turn takes what came
        // for at most POLL. Nor may one busy connection starve the others (their messages would
        // wait in their buffers while Redis trims them from the streams, and a read would then
        // skip them as lost): the connections take turns, each one read of its socket and every
        // value that read brought, until none brings anything or the time is up.
        let until = Instant::now() + POLL;
        let mut first = true;
        loop {
            let mut got_any = false;
            for node in &nodes {
                let Some(conn) = st.conns.get_mut(node) else {
                    continue;
                };
                let mut got = conn.link.poll(if first { wait } else { Duration::ZERO });
                loop {
                    match got {
                        Ok(Some(v)) => {
                            got_any = true;
                            if let Some(conn) = st.conns.get_mut(node) {
                                conn.heard = Instant::now();
                            }
                            if let Err(e) = self.take(st, node, v) {
                                self.conn_failed(st, node, &e);
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            self.conn_failed(st, node, &e);
                            break;
                        }
                    }
                    // What that read brought, without reading more.
                    let Some(conn) = st.conns.get_mut(node) else {
                        break;
                    };
                    got = conn.link.buffered();
                }
            }
            first = false;
            if !got_any || Instant::now() >= until {
                break;
            }
        }
    }

    /// Handles one value from the subscription connection to `node`.
    fn take(&mut self, st: &mut State, node: &str, v: Value) -> io::Result<()> {
        let Some(conn) = st.conns.get_mut(node) else {
            return Ok(());
        };
        let items = match v {
            Value::Array(items) => items,
            Value::Simple(s) if s.eq_ignore_ascii_case(b"PONG") => {
                replied(conn, &mut self.backoff);
                return Ok(());
            }
            other => return Err(link::unexpected(&other)),
        };
        let kind = items
            .first()
            .and_then(Value::bytes)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let channel = items
            .get(1)
            .and_then(Value::bytes)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        match (kind.as_slice(), items.len()) {
            (b"message" | b"smessage", 3) => {
                self.live(st, &channel, &items[2]);
                Ok(())
            }
            (b"subscribe" | b"ssubscribe", 3) => {
                replied(conn, &mut self.backoff);
                if let Some(t) = st.channels.get(&channel).and_then(|n| st.topics.get_mut(n))
                    && t.on.as_deref() == Some(node)
                {
                    t.confirmed = true;
                    st.busy = true;
                    t.read = Some(match t.known {
                        Some((_, last)) => Range::From {
                            from: last + 1,
                            to: None,
                        },
                        None => Range::Newest,
                    });
                }
                Ok(())
            }
            (b"unsubscribe" | b"sunsubscribe", 3) => {
                if conn.leaving.remove(&channel) {
                    replied(conn, &mut self.backoff);
                } else if let Some(t) = st.channels.get(&channel).and_then(|n| st.topics.get_mut(n))
                    && t.on.as_deref() == Some(node)
                {
                    // Redis dropped the subscription (its slot moved): subscribe again where
                    // the map now says.
                    log::info!("redis bridge: {node} ended a subscription; subscribing again");
                    st.busy = true;
                    t.on = None;
                    t.confirmed = false;
                    st.router.mark_stale();
                }
                Ok(())
            }
            (b"pong", 2) => {
                replied(conn, &mut self.backoff);
                Ok(())
            }
            _ => Err(link::unexpected(&Value::Array(items))),
        }
    }

    /// A message on a live channel.
    fn live(&self, st: &mut State, channel: &[u8], payload: &Value) {
        let count = |c: &std::sync::atomic::AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        let Some(name) = st.channels.get(channel) else {
            return;
        };
        let Some(t) = st.topics.get_mut(name) else {
            return;
        };
        let bytes = match payload {
            Value::Bulk(b) => b,
            Value::TooLarge(_) => return count(&self.stats.dropped_too_large_in),
            _ => return count(&self.stats.dropped_malformed_in),
        };
        let Some(script::Live {
            epoch,
            offset,
            kind,
            node,
            payload,
        }) = script::live(bytes)
        else {
            return count(&self.stats.dropped_malformed_in);
        };
        let Some((known, last)) = t.known else {
            return;
        };
        if !t.confirmed || t.read.is_some() {
            return;
        }
        if payload.len() > self.limits.max_message_size && epoch == known && offset == last + 1 {
            // Skipped: the follower sees a gap of one.
            t.known = Some((known, offset));
            return count(&self.stats.dropped_too_large_in);
        }
        if epoch != known {
            st.busy = true;
            t.read = Some(Range::Newest);
        } else if offset <= last {
            count(&self.stats.duplicates);
        } else if offset == last + 1 {
            t.known = Some((epoch, offset));
            self.hand_on(name, node, kind, payload, Position { epoch, offset });
        } else {
            count(&self.stats.gaps);
            st.busy = true;
            t.read = Some(Range::From {
                from: last + 1,
                to: None,
            });
        }
    }

    /// Pings quiet connections, drops those that owe a reply for too long, and every keepalive
    /// interval plans reads of the topics checked longest ago.
    fn keepalive(&mut self, st: &mut State) {
        let now = Instant::now();
        let (io, keepalive) = (self.limits.io_timeout, self.limits.keepalive);
        let mut dead = Vec::new();
        for (node, conn) in &mut st.conns {
            if let Some(&sent) = conn.pending.front() {
                if now.duration_since(sent.max(conn.heard)) >= io {
                    dead.push((
                        node.clone(),
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("Redis sent nothing for {io:?} while a reply was due"),
                        ),
                    ));
                } else if conn.pending.len() > MAX_PENDING + st.topics.len() {
                    dead.push((
                        node.clone(),
                        io::Error::other(format!("more than {MAX_PENDING} replies due from Redis")),
                    ));
                }
            } else if now.duration_since(conn.heard) >= keepalive
                && let Err(e) = ping(conn, io)
            {
                dead.push((node.clone(), e));
            }
        }
        for (node, e) in dead {
            self.conn_failed(st, &node, &e);
        }
        if now.duration_since(st.checked) < keepalive
            || st.busy && st.topics.values().any(|t| t.read.is_some())
        {
            return;
        }
        st.checked = now;
        let mut due: Vec<(&String, Instant)> = st
            .topics
            .iter()
            .filter(|(_, t)| t.confirmed && t.read.is_none() && t.known.is_some())
            .map(|(n, t)| (n, t.checked))
            .collect();
        // The ones checked longest ago (a partial selection: this runs over every topic).
        if due.len() > CHECKS_PER_ROUND {
            due.select_nth_unstable_by_key(CHECKS_PER_ROUND, |d| d.1);
            due.truncate(CHECKS_PER_ROUND);
        }
        let due: Vec<String> = due.into_iter().map(|d| d.0.clone()).collect();
        for name in due {
            if let Some(t) = st.topics.get_mut(&name)
                && let Some((_, last)) = t.known
            {
                t.checked = now;
                st.busy = true;
                t.read = Some(Range::From {
                    from: last + 1,
                    to: None,
                });
            }
        }
    }

    /// The subscription connection to `node` failed: its topics wait for the back-off, then are
    /// subscribed again where the (refreshed) map says.
    fn conn_failed(&mut self, st: &mut State, node: &str, e: &io::Error) {
        st.conns.remove(node);
        st.lost = true;
        for t in st.topics.values_mut() {
            if t.on.as_deref() == Some(node) {
                st.busy = true;
                t.on = None;
                t.confirmed = false;
            }
        }
        st.router.mark_stale();
        self.failed(st, e);
    }

    fn failed(&mut self, st: &mut State, e: &io::Error) {
        if link::is_timeout(e) {
            self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        let wait = self.backoff.failed();
        st.retry_at = Instant::now() + wait;
        log::warn!("redis bridge: subscriber: {e}; subscribing again in {wait:?}");
    }
}

/// Sends a `PING` (one reply is then due).
fn ping(conn: &mut SubConn, io: Duration) -> io::Result<()> {
    let mut cmd = Vec::new();
    resp::command(&mut cmd, &[b"PING"]);
    conn.link.send(&[&cmd], Instant::now() + io)?;
    conn.pending.push_back(Instant::now());
    Ok(())
}

/// A reply to a request came.
fn replied(conn: &mut SubConn, backoff: &mut Backoff) {
    conn.pending.pop_front();
    if !std::mem::replace(&mut conn.answered, true) {
        backoff.answered();
    }
}
