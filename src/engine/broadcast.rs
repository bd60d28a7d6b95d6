//! Topics and publish: subscriptions of this shard's connections, and the delivery of a frame
//! encoded once to every subscriber (compressed once per compression window for those that
//! negotiated permessage-deflate without context takeover).

use std::sync::Arc;

use super::conn::Mark;
use super::error::SendError;
use super::id::ConnId;
use super::memory::{Kind, SUBSCRIPTION_BYTES, SharedFrame, TOPIC_BYTES};
use super::output::Flushed;
use super::shard::Shard;
use super::topics::{Change, Memberships, PLAIN, WAITING};
use crate::proto::{self, MessageKind};
#[cfg(feature = "deflate")]
use crate::proto::{Connection, DeflatePool};

/// A subscriber's queue is written during a burst of publishes once it holds this much.
const BROADCAST_FLUSH: usize = 32 << 10;

/// The compressed versions of one broadcast frame, built on first need: one per compression
/// window (8 to 15), `Some(None)` when the message is not compressed for that window.
#[cfg(feature = "deflate")]
#[derive(Default)]
struct Deflated {
    frames: [Option<Option<Arc<SharedFrame>>>; 8],
}

/// The frame to queue for a subscriber `p` that compresses this message: the shard's one
/// compressed frame for its window without context takeover (built on first need), one of its
/// own with context takeover; `None` to send the plain frame (compressing did not pay).
#[cfg(feature = "deflate")]
fn compressed_frame(
    p: &mut Connection,
    frame: &Arc<SharedFrame>,
    cache: &mut Deflated,
    pool: &mut DeflatePool,
    mem: &mut super::memory::Memory,
    gauge: &Arc<super::memory::Gauge>,
) -> Option<Arc<SharedFrame>> {
    let n = *p.deflate()?;
    let (opcode, payload) = proto::frame::split_frame(frame)?;
    if n.compress_context_takeover {
        let kind = match opcode {
            proto::OpCode::Text => MessageKind::Text,
            _ => MessageKind::Binary,
        };
        let mut out = Vec::new();
        let held = p.held();
        let sent = p.send_with(kind, payload, &mut out, pool);
        mem.change(Kind::Messages, held, p.held());
        sent.ok()?;
        return Some(SharedFrame::new(out.into_boxed_slice(), gauge));
    }
    let bits = n.compress_window_bits.clamp(8, 15);
    cache.frames[usize::from(bits - 8)]
        .get_or_insert_with(|| {
            let mut out = Vec::new();
            proto::deflate::compress_frame(opcode, payload, bits, n.level, pool, &mut out);
            (out.len() < frame.len()).then(|| SharedFrame::new(out.into_boxed_slice(), gauge))
        })
        .clone()
}

impl Shard {
    pub(crate) fn subscribe(&mut self, id: ConnId, topic: &str) -> Result<bool, SendError> {
        let conn = self.entry(id).ok_or(SendError::UnknownConnection)?;
        if conn.proto.is_none() {
            return Err(SendError::NotOpen);
        }
        if conn.topics.len() >= self.config.max_topics
            && self.topics.id(topic).is_none_or(|t| !self.topics.has(t, id.key))
        {
            self.stats.topic_limit_refusals += 1;
            return Err(SendError::TooManyTopics);
        }
        let key = id.key as usize;
        let conn = &mut self.conns[key];
        match self.topics.subscribe(key as u32, &mut conn.topics, topic) {
            None => Ok(false),
            Some(change) => {
                self.mem.add(Kind::Topics, SUBSCRIPTION_BYTES);
                if change == Change::First {
                    self.mem.add(Kind::Topics, TOPIC_BYTES + topic.len());
                    if let Some(b) = self.node.bridge() {
                        b.subscribe(topic);
                    }
                }
                self.watch_holder(key);
                Ok(true)
            }
        }
    }

    pub(crate) fn unsubscribe(&mut self, id: ConnId, topic: &str) -> Result<bool, SendError> {
        self.entry(id).ok_or(SendError::UnknownConnection)?;
        let key = id.key as usize;
        let Some(tid) = self.topics.id(topic) else {
            return Ok(false);
        };
        let change = self
            .topics
            .unsubscribe(key as u32, &mut self.conns[key].topics, tid);
        self.forget(change, topic);
        Ok(change.is_some())
    }

    /// Removes a departing connection from all its topics.
    pub(super) fn leave_all(&mut self, key: usize, mine: &mut Memberships) {
        while let Some(&tid) = mine.last() {
            let name = self.topics.name(tid).cloned().unwrap_or_default();
            let change = self.topics.unsubscribe(key as u32, mine, tid);
            self.forget(change, &name);
        }
    }

    /// A subscription to `topic` ended with `change`: releases what it held, and tells the
    /// bridge when the topic's last subscriber on this shard left.
    fn forget(&mut self, change: Option<Change>, topic: &str) {
        let Some(change) = change else { return };
        self.mem.sub(Kind::Topics, SUBSCRIPTION_BYTES);
        if change == Change::Last {
            self.mem.sub(Kind::Topics, TOPIC_BYTES + topic.len());
            if let Some(b) = self.node.bridge() {
                b.unsubscribe(topic);
            }
        }
    }

    /// The topics a connection subscribes to.
    pub(crate) fn topics_of(&self, id: ConnId) -> impl Iterator<Item = Arc<str>> + '_ {
        self.entry(id)
            .into_iter()
            .flat_map(|c| c.topics.iter())
            .filter_map(|&t| self.topics.name(t).cloned())
    }

    /// Subscribers of `topic` on this shard.
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        self.topics
            .id(topic)
            .map_or(0, |t| self.topics.subscribers(t).len())
    }

    /// Publishes to every subscriber of `topic`: on this shard now, on the others through their
    /// inboxes, and on other nodes through the bridge if there is one. Returns the deliveries
    /// made on this shard.
    pub(crate) fn publish(&mut self, topic: &str, kind: MessageKind, payload: &[u8]) -> usize {
        self.stats.published += 1;
        match self.node.publish(topic, kind, payload, Some(self.index), false) {
            Some(frame) => self.deliver(topic, Some(&frame), None),
            // With offsets, every shard (this one too) gets it through its inbox, in order.
            None => 0,
        }
    }

    /// Queues an encoded frame for every subscriber of `topic` on this shard: `plain` for those
    /// that take messages as they are, `tagged` (with the sequence number it was posted at) for
    /// those that follow offsets and resumed before it. The queues are written at the end of
    /// the loop turn, so that a burst of publishes costs one write per subscriber. Returns the
    /// number of deliveries.
    pub(super) fn deliver(
        &mut self,
        topic: &str,
        plain: Option<&Arc<SharedFrame>>,
        tagged: Option<(&Arc<SharedFrame>, u64)>,
    ) -> usize {
        let Some(tid) = self.topics.id(topic) else {
            return 0;
        };
        let len = |f: &Arc<SharedFrame>| proto::frame::split_frame(f).map_or(0, |(_, p)| p.len());
        let lens = [plain.map_or(0, len), tagged.map_or(0, |(f, _)| len(f))];
        let cap = self.config.max_queued_bytes;
        let mut delivered = 0;
        let mut bytes = 0;
        let mut over = Vec::new();
        #[cfg(feature = "deflate")]
        let mut deflated = [Deflated::default(), Deflated::default()];
        #[cfg(feature = "deflate")]
        let gauge = self.node.shared_gauge();
        for i in 0..self.topics.subscribers(tid).len() {
            let key = self.topics.subscribers(tid)[i] as usize;
            let seam = self.topics.seams(tid)[i];
            let (which, frame) = match (seam, plain, tagged) {
                (PLAIN, Some(f), _) => (0, f),
                (PLAIN, None, _) | (WAITING, _, _) => continue,
                (_, _, Some((f, seq))) if seq > seam => (1, f),
                _ => continue,
            };
            let payload_len = lens[which];
            if self.cork.gathered(key) > 0 {
                // Keep the order of what this connection was already sent.
                self.flush_cork(key);
            }
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if !conn.takes_messages() {
                continue;
            }
            if conn.queue.len() > cap {
                over.push(key);
                continue;
            }
            #[cfg(feature = "deflate")]
            let compressed;
            #[cfg(feature = "deflate")]
            let frame = match conn.proto.as_mut() {
                Some(p) if p.compresses(payload_len) => {
                    let cache = &mut deflated[which];
                    match compressed_frame(p, frame, cache, &mut self.deflate, &mut self.mem, &gauge) {
                        Some(f) => {
                            compressed = f;
                            &compressed
                        }
                        None => frame,
                    }
                }
                _ => frame,
            };
            // The plaintext frame is queued shared on every transport: a TLS connection makes
            // its records from it as its socket takes them.
            conn.queue.push_shared(frame);
            delivered += 1;
            bytes += payload_len as u64;
            if conn.is(Mark::Blocked) {
                continue;
            }
            if conn.queue.len() >= BROADCAST_FLUSH.min(cap / 2) {
                // A burst is being published: write now rather than let a reader that keeps up
                // run into the cap before the end of the turn.
                if self.flush_queue(key) != Flushed::Blocked {
                    continue;
                }
            }
            self.flush_later(key);
        }
        for key in over {
            let _ = self.over_cap(key);
        }
        self.stats.deliveries += delivered as u64;
        self.stats.messages_out += delivered as u64;
        self.stats.bytes_out += bytes;
        delivered
    }

    /// Writes the queues that broadcasts filled during this loop turn.
    pub(super) fn flush_dirty(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.mark(Mark::Dirty, false);
            if conn.is_closed() || conn.is(Mark::Blocked) || conn.queue.is_empty() {
                continue;
            }
            self.flush_queue(key);
        }
    }
}
