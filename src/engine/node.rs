//! A node as other threads see it: its shards' inboxes and statistics ([`Node`], crate-private),
//! the public [`ServerHandle`] on them, and the [`Bridge`] to other nodes.
//!
//! Fan-out of a publish happens in one place, [`Node::publish`]: the frame is encoded once into
//! one shared allocation and posted to the shards that did not deliver it themselves.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use super::decision::Decision;
use super::dispose::Disposer;
use super::error::SendError;
use super::history::{Event, History, HistoryConfig};
use super::id::ConnId;
use super::inbox::{Command, DecisionOutcome, Inbox, Mailbox, Receipt, Refused};
use super::memory::{BridgeHeld, Gauge, Memory, SharedFrame};
use super::room::{Room, RoomFor, Slots, Waiters};
use super::stats::Stats;
use crate::proto::{self, CloseCode, MessageKind};

/// A link from this node's topics to other nodes' (for example a pub/sub broker).
///
/// Every method is called from shard threads and must not block: queue the work for a thread of
/// the bridge's own. `subscribe` and `unsubscribe` come per shard, so a bridge counts them per
/// topic (a topic is wanted on this node while any shard wants it).
pub trait Bridge: Send + Sync + Debug {
    /// Called once when the server starts, with the handle to deliver remote messages through
    /// ([`ServerHandle::publish_from_bridge`]).
    fn attach(&self, handle: ServerHandle) {
        let _ = handle;
    }

    /// A shard of this node got its first subscriber to `topic`.
    fn subscribe(&self, topic: &str);

    /// A shard of this node lost its last subscriber to `topic`.
    fn unsubscribe(&self, topic: &str);

    /// A message was published on this node: send it to the other nodes.
    fn publish(&self, topic: &str, kind: MessageKind, payload: &[u8]);

    /// Bytes the bridge holds for this node now (its queues): counted against the server's
    /// memory budget, divided among the shards. Called often (after every read): keep it a load
    /// of a counter. A bridge that holds nothing of its own may leave the default, 0.
    fn held_bytes(&self) -> u64 {
        0
    }

    /// Whether the bridge orders each topic's messages and gives their offsets (from a
    /// broker's stream), so that offsets are the same on every node. When it does, and the
    /// server keeps history ([`ServerConfig::history`](crate::ServerConfig::history)), the node
    /// does not deliver a local publish itself: it hands it to [`Bridge::publish`] only, and
    /// delivers it when the bridge hands it back with [`ServerHandle::publish_at`]; a topic's
    /// history comes from [`ServerHandle::history_load`]. The default, false: the node gives
    /// offsets of its own (and messages from the bridge get them as they arrive).
    fn keeps_history(&self) -> bool {
        false
    }
}

/// One shard, as other threads see it.
#[derive(Debug)]
struct Slot {
    inbox: Inbox,
    /// The statistics the shard last published (every second), for other shards' handlers.
    published: Mutex<Stats>,
    /// The statistics of a shard that stopped.
    final_stats: Mutex<Option<Stats>>,
    /// The connections whose handshake waits for a decision from another thread (locked when
    /// one starts or stops waiting, and when another thread asks).
    pending: Mutex<HashSet<ConnId>>,
    /// Whether each connection is open and has room, as the shard last said (see `room.rs`).
    rooms: Slots,
}

/// What the shards of one server share.
#[derive(Debug)]
pub(crate) struct Node {
    slots: Vec<Slot>,
    bridge: Option<Arc<dyn Bridge>>,
    local_addr: SocketAddr,
    /// The TLS listener's address, when it has one of its own.
    tls_addr: Option<SocketAddr>,
    /// The shards' threads, by shard index, until joined.
    threads: Mutex<Vec<(usize, JoinHandle<io::Result<()>>)>>,
    /// Why shards failed (the kind of the first error, and every shard's cause), kept for every
    /// caller of [`ServerHandle::join`], not only the one that joined the threads.
    failure: Mutex<Option<(io::ErrorKind, String)>>,
    /// Bytes of broadcast frames alive in any queue or inbox of the node.
    shared: Arc<Gauge>,
    /// The memory budget of the whole node.
    budget: u64,
    /// Connections per client address, when they are limited (taken at accept and close only).
    addresses: Option<(usize, Mutex<HashMap<IpAddr, usize>>)>,
    /// Frees large blocks off the shards' threads.
    disposer: Disposer,
    /// Producers on other threads waiting for room in a connection's queue or a shard's inbox.
    waiters: Arc<Waiters>,
    /// Offsets and history per topic, when the server keeps them.
    history: Option<History>,
}

/// The limits a node enforces across its shards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeLimits {
    pub(crate) memory_budget: u64,
    pub(crate) per_address: Option<usize>,
    pub(crate) history: Option<HistoryConfig>,
}

impl Node {
    pub(crate) fn new(
        inboxes: Vec<Inbox>,
        bridge: Option<Arc<dyn Bridge>>,
        local_addr: SocketAddr,
        tls_addr: Option<SocketAddr>,
        limits: NodeLimits,
    ) -> Self {
        let slots = inboxes
            .into_iter()
            .map(|inbox| Slot {
                inbox,
                published: Mutex::new(Stats::default()),
                final_stats: Mutex::new(None),
                pending: Mutex::new(HashSet::new()),
                rooms: Slots::default(),
            })
            .collect();
        let shared = Arc::new(Gauge::default());
        let bridged = bridge.as_ref().is_some_and(|b| b.keeps_history());
        let history = limits
            .history
            .map(|c| History::new(c, bridged, Arc::clone(&shared)));
        Self {
            slots,
            bridge,
            local_addr,
            tls_addr,
            threads: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            shared,
            budget: limits.memory_budget,
            addresses: limits.per_address.map(|n| (n, Mutex::new(HashMap::new()))),
            disposer: Disposer::start(),
            waiters: Arc::new(Waiters::default()),
            history,
        }
    }

    /// The frame of a message, encoded once for every queue that will hold it.
    pub(crate) fn encode(&self, kind: MessageKind, payload: &[u8]) -> Arc<SharedFrame> {
        SharedFrame::new(proto::frame::message_frame(kind, payload).collect(), &self.shared)
    }

    /// The node's offsets and history per topic, when it keeps them.
    pub(crate) fn history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    /// Posts an event of a topic with offsets to every shard (called under the history's lock,
    /// so every shard gets a topic's events in order).
    pub(crate) fn post_stream(&self, topic: &Arc<str>, event: Event) {
        for i in 0..self.slots.len() {
            // A shard whose inbox is full misses it: it fills the gap from the history when
            // the topic's next message comes (see `history.rs`).
            let _ = self.post(
                i,
                Command::Stream {
                    topic: Arc::clone(topic),
                    event: event.clone(),
                },
            );
        }
    }

    /// Frees `block` (holding `n` bytes) off the shard's thread if it is large (see `dispose.rs`).
    pub(crate) fn dispose<T: Send + 'static>(&self, block: T, n: usize) {
        self.disposer.dispose(block, n);
    }

    /// The memory account of shard `shard`: its share of the budget, its inbox, its part of the
    /// shared frames.
    pub(crate) fn memory(&self, shard: usize) -> Memory {
        let shards = self.slots.len().max(1);
        Memory::new(
            self.budget / shards as u64,
            Arc::clone(&self.shared),
            self.slots[shard].inbox.gauge(),
            shards,
        )
        .with_bridge(self.bridge.clone().map(|b| {
            let held: BridgeHeld = Arc::new(move || b.held_bytes());
            held
        }))
        .with_disposing(self.disposer.gauge())
    }

    /// Records whether the handshake of `id` waits for a decision.
    pub(crate) fn set_pending(&self, id: ConnId, waiting: bool) {
        if let Some(mut set) = self.slots.get(id.shard()).and_then(|s| s.pending.lock().ok()) {
            if waiting {
                set.insert(id);
            } else {
                set.remove(&id);
            }
        }
    }

    fn is_pending(&self, id: ConnId) -> bool {
        self.slots
            .get(id.shard())
            .and_then(|s| s.pending.lock().ok())
            .is_some_and(|set| set.contains(&id))
    }

    /// The gauge of the frames shared by several queues (for a frame made on a shard).
    #[cfg(feature = "deflate")]
    pub(crate) fn shared_gauge(&self) -> Arc<Gauge> {
        Arc::clone(&self.shared)
    }

    /// Commands refused by `shard`'s inbox so far because it was full.
    pub(crate) fn inbox_refused(&self, shard: usize) -> u64 {
        self.slots.get(shard).map_or(0, |s| s.inbox.refused())
    }

    /// Takes a connection from `ip` into account; false (nothing taken) when the address holds
    /// its most connections already. Always true when connections per address are not limited.
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        let Some((max, counts)) = &self.addresses else {
            return true;
        };
        let Ok(mut counts) = counts.lock() else {
            return true;
        };
        let n = counts.entry(ip).or_default();
        if *n >= *max {
            if *n == 0 {
                counts.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection that [`Node::admit`] took is gone.
    pub(crate) fn release(&self, ip: IpAddr) {
        if let Some((_, counts)) = &self.addresses
            && let Ok(mut counts) = counts.lock()
            && let Some(n) = counts.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }

    /// Whether connections per address are limited (the shard then remembers each one's).
    pub(crate) fn limits_addresses(&self) -> bool {
        self.addresses.is_some()
    }

    pub(crate) fn shards(&self) -> usize {
        self.slots.len()
    }

    /// The words `shard` publishes about its connections for other threads (see `room.rs`).
    pub(crate) fn rooms(&self, shard: usize) -> &Slots {
        &self.slots[shard].rooms
    }

    /// A shard made room (a queue drained, its inbox taken): producers waiting look again.
    pub(crate) fn room_made(&self) {
        self.waiters.room_made();
    }

    /// Whether a send of `bytes` to `id` from another thread could go now: `Ok(true)` with
    /// room, `Ok(false)` when the connection's queue is full (or, with `spare`, its shard's
    /// inbox past half its bound: a waiter does not wake to a full inbox), the reason when it
    /// never will.
    fn room_for(&self, id: ConnId, bytes: usize, spare: bool) -> Result<bool, SendError> {
        let slot = self.slots.get(id.shard()).ok_or(SendError::UnknownConnection)?;
        if bytes > slot.inbox.max_message() {
            return Err(SendError::TooLarge);
        }
        match slot.rooms.room(id) {
            Room::Gone => Err(SendError::UnknownConnection),
            Room::NotOpen => Err(SendError::NotOpen),
            Room::Full => Ok(false),
            Room::Free | Room::Unknown => Ok(!spare || slot.inbox.has_room_for(bytes)),
        }
    }

    pub(crate) fn bridge(&self) -> Option<&dyn Bridge> {
        self.bridge.as_deref()
    }

    /// Queues a command for `shard` and wakes it.
    pub(crate) fn post(&self, shard: usize, cmd: Command) -> Result<(), Refused> {
        self.slots.get(shard).ok_or(Refused::Gone)?.inbox.post(cmd)
    }

    /// On the thread of `shard`, after a wake-up: the commands queued for it.
    pub(crate) fn drain<'a>(&self, shard: usize, mailbox: &'a Mailbox) -> impl Iterator<Item = Command> + 'a {
        self.slots[shard].inbox.drain(mailbox)
    }

    /// Whether commands were queued for `shard` since it last took them.
    #[cfg(feature = "testing")]
    pub(crate) fn has_mail(&self, shard: usize) -> bool {
        self.slots[shard].inbox.has_mail()
    }

    /// Fans a message out to the subscribers of `topic`: encodes its frame once, posts it to
    /// every shard but `local` (the shard that delivers it itself, if the publisher is one), and
    /// hands it to the bridge unless it came from there. Returns the frame.
    pub(crate) fn publish(
        &self,
        topic: &str,
        kind: MessageKind,
        payload: &[u8],
        local: Option<usize>,
        from_bridge: bool,
    ) -> Option<Arc<SharedFrame>> {
        if let Some(h) = &self.history {
            let bridge = self.bridge.as_ref().filter(|_| !from_bridge);
            if h.bridged() {
                // The bridge gives the offset: the message comes back through `publish_at`.
                if let Some(b) = bridge {
                    b.publish(topic, kind, payload);
                }
                return None;
            }
            let frame = self.encode(kind, payload);
            h.append_local(topic, kind, payload, frame, |name, event| {
                self.post_stream(name, event);
            });
            if let Some(b) = bridge {
                b.publish(topic, kind, payload);
            }
            return None;
        }
        let frame = self.encode(kind, payload);
        let others = (0..self.slots.len()).filter(|&i| Some(i) != local);
        if others.clone().next().is_some() {
            let name: Arc<str> = Arc::from(topic);
            for i in others {
                // A shard whose inbox is full misses this message (counted by its inbox).
                let _ = self.post(
                    i,
                    Command::Publish {
                        topic: Arc::clone(&name),
                        frame: Arc::clone(&frame),
                    },
                );
            }
        }
        if let (Some(b), false) = (self.bridge.as_ref(), from_bridge) {
            b.publish(topic, kind, payload);
        }
        Some(frame)
    }

    /// Stores what `shard` publishes for the others (every second).
    pub(crate) fn publish_stats(&self, shard: usize, stats: Stats) {
        if let Some(mut p) = self.slots.get(shard).and_then(|s| s.published.lock().ok()) {
            *p = stats;
        }
    }

    /// What `shard` last published.
    pub(crate) fn published_stats(&self, shard: usize) -> Stats {
        self.slots
            .get(shard)
            .and_then(|s| s.published.lock().ok().map(|p| p.clone()))
            .unwrap_or_default()
    }

    /// Stores the statistics of a shard that stopped, before its inbox closes, so that a caller
    /// never finds the shard gone and its final statistics not there yet.
    pub(crate) fn set_final_stats(&self, shard: usize, stats: Stats) {
        if let Some(mut f) = self.slots.get(shard).and_then(|s| s.final_stats.lock().ok()) {
            *f = Some(stats);
        }
    }

    /// A shard that failed: if it left no final statistics (it panicked), empty ones stand in,
    /// so that statistics are not asked of a shard that will never answer.
    pub(crate) fn shard_gone(&self, shard: usize) {
        if let Some(mut f) = self.slots.get(shard).and_then(|s| s.final_stats.lock().ok()) {
            f.get_or_insert_with(Stats::default);
        }
    }

    fn final_stats(&self, shard: usize) -> Option<Stats> {
        self.slots.get(shard)?.final_stats.lock().ok()?.clone()
    }

    pub(crate) fn adopt_threads(&self, threads: Vec<(usize, JoinHandle<io::Result<()>>)>) {
        if let Ok(mut t) = self.threads.lock() {
            t.extend(threads);
        }
    }

    /// Records that `shard` failed with `e`.
    fn shard_failed(&self, shard: usize, e: &io::Error) {
        let Ok(mut failure) = self.failure.lock() else {
            return;
        };
        let cause = format!("shard {shard}: {e}");
        match failure.as_mut() {
            Some((_, all)) => {
                all.push_str("; ");
                all.push_str(&cause);
            }
            None => *failure = Some((e.kind(), cause)),
        }
    }

    /// The failures of the shards so far, as one error.
    fn failure(&self) -> io::Result<()> {
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some((kind, causes)) => Err(io::Error::new(kind, causes)),
            None => Ok(()),
        }
    }
}

/// A thread-safe handle on a running server: send to any connection, close one, publish, read
/// statistics, shut down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    node: Arc<Node>,
}

impl ServerHandle {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.node.local_addr
    }

    /// The address of the TLS listener beside the plain one, if the server has one
    /// (`ServerConfig::tls_addr`).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.node.tls_addr
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.node.shards()
    }

    /// Sends a message to a connection from any thread, or says at once why not:
    ///
    /// - [`SendError::QueueFull`]: the connection's write queue is past half its cap
    ///   ([`ServerConfig::max_queued_bytes`]: its peer does not read as fast as it is sent
    ///   to), or its shard's inbox is full ([`ServerConfig::max_inbox_bytes`]: the shard does
    ///   not keep up). Nothing was queued: wait for room ([`ServerHandle::wait_for_room`], or
    ///   `.await` [`ServerHandle::room`]) and send again, or drop the message.
    /// - [`SendError::TooLarge`]: larger than the inbox could ever hold.
    /// - [`SendError::UnknownConnection`]: the connection is gone (or the server stopped);
    ///   [`SendError::NotOpen`]: it is still in its handshake.
    ///
    /// `Ok` means the message is queued for the shard, which sends it (a connection that
    /// closes meanwhile drops it). The answer comes from what the shard last published, so a
    /// producer that sends faster than the shard looks can still go past half the cap by what
    /// it sends in the meantime; the cap and the back-pressure policy apply there as to any
    /// send.
    ///
    /// [`ServerConfig::max_queued_bytes`]: crate::ServerConfig::max_queued_bytes
    /// [`ServerConfig::max_inbox_bytes`]: crate::ServerConfig::max_inbox_bytes
    pub fn send(&self, id: ConnId, kind: MessageKind, data: Vec<u8>) -> Result<(), SendError> {
        if !self.node.room_for(id, data.len(), false)? {
            return Err(SendError::QueueFull);
        }
        self.node
            .post(id.shard(), Command::Send { id, kind, data })
            .map_err(|e| match e {
                Refused::Gone => SendError::UnknownConnection,
                Refused::Full => SendError::QueueFull,
            })
    }

    /// Sends a text message from any thread ([`ServerHandle::send`]).
    pub fn send_text(&self, id: ConnId, text: &str) -> Result<(), SendError> {
        self.send(id, MessageKind::Text, text.as_bytes().to_vec())
    }

    /// Blocks until a send of `bytes` to `id` has room (`Ok`), the connection is gone (its
    /// error), or `timeout` passes ([`SendError::QueueFull`]). For a producer thread of its
    /// own; an async producer awaits [`ServerHandle::room`] instead.
    pub fn wait_for_room(&self, id: ConnId, bytes: usize, timeout: Duration) -> Result<(), SendError> {
        let node = &self.node;
        node.waiters
            .wait(timeout, || match node.room_for(id, bytes, true) {
                Ok(true) => Some(Ok(())),
                Ok(false) => None,
                Err(e) => Some(Err(e)),
            })
            .unwrap_or(Err(SendError::QueueFull))
    }

    /// A future that resolves when a send of `bytes` to `id` has room (`Ok`), or the
    /// connection is gone (its error). It needs no runtime: the shard that makes room wakes
    /// it (any executor: tokio, async-std, a `block_on`). Cancel it by dropping it.
    pub fn room(&self, id: ConnId, bytes: usize) -> RoomFor {
        let node = Arc::clone(&self.node);
        RoomFor {
            waiters: Arc::clone(&self.node.waiters),
            check: Box::new(move || match node.room_for(id, bytes, true) {
                Ok(true) => Some(Ok(())),
                Ok(false) => None,
                Err(e) => Some(Err(e)),
            }),
            counted: false,
        }
    }

    /// Publishes a message to every subscriber of `topic` on every shard (and, through the
    /// bridge if there is one, on other nodes). The frame is encoded once for all of them.
    pub fn publish(&self, topic: &str, kind: MessageKind, data: &[u8]) {
        self.node.publish(topic, kind, data, None, false);
    }

    /// Delivers a message that another node published: to this node's subscribers only.
    pub fn publish_from_bridge(&self, topic: &str, kind: MessageKind, data: &[u8]) {
        self.node.publish(topic, kind, data, None, true);
    }

    /// Decides, from any thread, on a handshake that [`Handler::on_handshake`] left
    /// [`Decision::Pending`]: accept (with the connection's state, which must be the handler's
    /// [`Handler::State`]) or reject. The shard applies it at once; the [`Receipt`] says how it
    /// went ([`DecisionOutcome::Gone`] if the client left or the handshake timed out meanwhile:
    /// a late decision is a no-op).
    ///
    /// [`Handler::on_handshake`]: crate::Handler::on_handshake
    /// [`Handler::State`]: crate::Handler::State
    pub fn decide<S: Send + 'static>(&self, id: ConnId, decision: Decision<S>) -> Receipt {
        let (tx, receipt) = Receipt::new();
        let cmd = Command::Decide {
            id,
            decision: Box::new(decision),
            receipt: tx.clone(),
        };
        match self.node.post(id.shard(), cmd) {
            Ok(()) => {}
            Err(Refused::Gone) => {
                let _ = tx.try_send(DecisionOutcome::Gone);
            }
            Err(Refused::Full) => {
                let _ = tx.try_send(DecisionOutcome::Busy);
            }
        }
        receipt
    }

    /// Whether the handshake of `id` still waits for a decision ([`Decision::Pending`]): true
    /// from the call to [`Handler::on_handshake`](crate::Handler::on_handshake), so that a job
    /// handed to another thread from there finds it waiting; false once it was decided (at once
    /// or later), answered 503 at the handshake timeout, or the client left. A worker
    /// with a queue of decisions to make skips those that no longer wait (a call to an
    /// authentication service for a client that is gone is wasted).
    pub fn is_pending(&self, id: ConnId) -> bool {
        self.node.is_pending(id)
    }

    /// Closes a connection from any thread.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> bool {
        self.node
            .post(
                id.shard(),
                Command::Close {
                    id,
                    code,
                    reason: reason.to_owned(),
                },
            )
            .is_ok()
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
        let node = &self.node;
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for shard in 0..node.shards() {
            if let Some(s) = node.final_stats(shard) {
                out.push(s);
                continue;
            }
            let (tx, rx) = mpsc::channel();
            if node.post(shard, Command::Stats(tx)).is_ok() {
                pending.push((shard, rx));
            } else if let Some(s) = node.final_stats(shard) {
                out.push(s);
            }
        }
        for (shard, rx) in pending {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(s) => out.push(s),
                // The shard stopped before it answered: its final statistics are there.
                Err(mpsc::RecvTimeoutError::Disconnected) => out.extend(node.final_stats(shard)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        out
    }

    /// Starts a graceful shutdown: stop accepting, send 1001 Going Away to every connection,
    /// wait for their close replies up to the drain timeout, then close what is left.
    pub fn shutdown(&self) {
        for shard in 0..self.node.shards() {
            let _ = self.node.post(shard, Command::Shutdown);
        }
    }

    /// Waits until every shard has stopped. `Err` if any shard failed (its thread panicked
    /// outside the handler's callbacks, polling failed, its listener could not be registered),
    /// naming each failed shard and its cause: "shard 1: panicked: ...". A shard that fails asks
    /// the others to shut down, so that this returns. A panic in a handler's callback is no
    /// failure of the shard (see [`Handler`](super::handler::Handler)).
    ///
    /// Only the first caller waits; a caller that comes while it waits returns at once, with the
    /// failures known so far.
    pub fn join(&self) -> io::Result<()> {
        let threads = match self.node.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for (shard, t) in threads {
            let ended = t.join().unwrap_or_else(|payload| Err(panicked(&*payload)));
            if let Err(e) = ended {
                self.node.shard_failed(shard, &e);
            }
        }
        self.node.failure()
    }
}

/// The error of a shard whose thread panicked with `payload`.
pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> io::Error {
    io::Error::other(format!("panicked: {}", panic_message(payload)))
}

/// The message a panic was raised with, for the log.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string payload"
    }
}
