//! A node as other threads see it: its shards' inboxes and statistics ([`Node`], crate-private),
//! the public [`ServerHandle`] on them, and the [`Bridge`] to other nodes.
//!
//! Fan-out of a publish happens in one place, [`Node::publish`]: the frame is encoded once into
//! one shared allocation and posted to the shards that did not deliver it themselves.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use super::decision::Decision;
use super::id::ConnId;
use super::inbox::{Command, DecisionOutcome, Inbox, Mailbox, Receipt};
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
}

/// One shard, as other threads see it.
#[derive(Debug)]
struct Slot {
    inbox: Inbox,
    /// The statistics the shard last published (every second), for other shards' handlers.
    published: Mutex<Stats>,
    /// The statistics of a shard that stopped.
    final_stats: Mutex<Option<Stats>>,
}

/// What the shards of one server share.
#[derive(Debug)]
pub(crate) struct Node {
    slots: Vec<Slot>,
    bridge: Option<Arc<dyn Bridge>>,
    local_addr: SocketAddr,
    /// The TLS listener's address, when it has one of its own.
    tls_addr: Option<SocketAddr>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Node {
    pub(crate) fn new(
        inboxes: Vec<Inbox>,
        bridge: Option<Arc<dyn Bridge>>,
        local_addr: SocketAddr,
        tls_addr: Option<SocketAddr>,
    ) -> Self {
        let slots = inboxes
            .into_iter()
            .map(|inbox| Slot {
                inbox,
                published: Mutex::new(Stats::default()),
                final_stats: Mutex::new(None),
            })
            .collect();
        Self {
            slots,
            bridge,
            local_addr,
            tls_addr,
            threads: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn shards(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn bridge(&self) -> Option<&dyn Bridge> {
        self.bridge.as_deref()
    }

    /// Queues a command for `shard` and wakes it. False if there is no such shard or it stopped.
    pub(crate) fn post(&self, shard: usize, cmd: Command) -> bool {
        self.slots.get(shard).is_some_and(|s| s.inbox.post(cmd))
    }

    /// On the thread of `shard`, after a wake-up: the commands queued for it.
    pub(crate) fn drain<'a>(&self, shard: usize, mailbox: &'a Mailbox) -> impl Iterator<Item = Command> + 'a {
        self.slots[shard].inbox.drain(mailbox)
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
    ) -> Arc<[u8]> {
        let frame: Arc<[u8]> = proto::frame::message_frame(kind, payload).collect();
        let others = (0..self.slots.len()).filter(|&i| Some(i) != local);
        if others.clone().next().is_some() {
            let name: Arc<str> = Arc::from(topic);
            for i in others {
                self.post(
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
        frame
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

    fn final_stats(&self, shard: usize) -> Option<Stats> {
        self.slots.get(shard)?.final_stats.lock().ok()?.clone()
    }

    pub(crate) fn adopt_threads(&self, threads: Vec<JoinHandle<()>>) {
        if let Ok(mut t) = self.threads.lock() {
            t.extend(threads);
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

    /// Sends a message to a connection from any thread. Returns false if the shard is gone; a
    /// message for a connection that closed meanwhile is dropped by the shard.
    pub fn send(&self, id: ConnId, kind: MessageKind, data: Vec<u8>) -> bool {
        self.node.post(id.shard(), Command::Send { id, kind, data })
    }

    /// Sends a text message from any thread.
    pub fn send_text(&self, id: ConnId, text: &str) -> bool {
        self.send(id, MessageKind::Text, text.as_bytes().to_vec())
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
        if !self.node.post(id.shard(), cmd) {
            let _ = tx.try_send(DecisionOutcome::Gone);
        }
        receipt
    }

    /// Closes a connection from any thread.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> bool {
        self.node.post(
            id.shard(),
            Command::Close {
                id,
                code,
                reason: reason.to_owned(),
            },
        )
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
            if node.post(shard, Command::Stats(tx)) {
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
            self.node.post(shard, Command::Shutdown);
        }
    }

    /// Waits until every shard has stopped.
    pub fn join(&self) {
        let threads = match self.node.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        for t in threads {
            let _ = t.join();
        }
    }
}
