//! Topics and publish: subscriptions of this shard's connections, and the delivery of a frame
//! encoded once to every subscriber (compressed once per compression window for those that
//! negotiated permessage-deflate without context takeover).

use std::sync::Arc;

use super::error::SendError;
use super::id::ConnId;
use super::shard::Shard;
use super::topics::{self, Change, Memberships};
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
    frames: [Option<Option<Arc<[u8]>>>; 8],
}

/// The frame to queue for a subscriber `p` that compresses this message: the shard's one
/// compressed frame for its window without context takeover (built on first need), one of its
/// own with context takeover; `None` to send the plain frame (compressing did not pay).
#[cfg(feature = "deflate")]
fn compressed_frame(
    p: &mut Connection,
    frame: &Arc<[u8]>,
    cache: &mut Deflated,
    pool: &mut DeflatePool,
) -> Option<Arc<[u8]>> {
    let n = *p.deflate()?;
    let (opcode, payload) = proto::frame::split_frame(frame)?;
    if n.compress_context_takeover {
        let kind = match opcode {
            proto::OpCode::Text => MessageKind::Text,
            _ => MessageKind::Binary,
        };
        let mut out = Vec::new();
        p.send_with(kind, payload, &mut out, pool).ok()?;
        return Some(Arc::from(out));
    }
    let bits = n.compress_window_bits.clamp(8, 15);
    cache.frames[usize::from(bits - 8)]
        .get_or_insert_with(|| {
            let mut out = Vec::new();
            proto::deflate::compress_frame(opcode, payload, bits, n.level, pool, &mut out);
            (out.len() < frame.len()).then(|| Arc::from(out))
        })
        .clone()
}

impl Shard {
    pub(crate) fn subscribe(&mut self, id: ConnId, topic: &str) -> Result<bool, SendError> {
        let conn = self.entry(id).ok_or(SendError::UnknownConnection)?;
        if conn.proto.is_none() {
            return Err(SendError::NotOpen);
        }
        let key = id.key as usize;
        let conn = &mut self.conns[key];
        match self.topics.subscribe(key as u32, &mut conn.topics, topic) {
            None => Ok(false),
            Some(change) => {
                if change == Change::First
                    && let Some(b) = self.node.bridge()
                {
                    b.subscribe(topic);
                }
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
        let mut mine = std::mem::take(&mut self.conns[key].topics);
        let change = self.topics.unsubscribe(key as u32, &mut mine, tid);
        self.conns[key].topics = mine;
        if let Some((_, Some((k, pos)))) = change {
            topics::moved(&mut self.conns[k as usize].topics, tid, pos);
        }
        if matches!(change, Some((Change::Last, _)))
            && let Some(b) = self.node.bridge()
        {
            b.unsubscribe(topic);
        }
        Ok(change.is_some())
    }

    /// Removes a departing connection from all its topics.
    pub(super) fn leave_all(&mut self, key: usize, mine: &mut Memberships) {
        while let Some(&(tid, _)) = mine.last() {
            let name = self.topics.name(tid).cloned();
            let change = self.topics.unsubscribe(key as u32, mine, tid);
            if change.is_none() {
                mine.pop();
            }
            if let Some((_, Some((k, pos)))) = change
                && let Some(c) = self.conns.get_mut(k as usize)
            {
                topics::moved(&mut c.topics, tid, pos);
            }
            if matches!(change, Some((Change::Last, _)))
                && let (Some(b), Some(name)) = (self.node.bridge(), name)
            {
                b.unsubscribe(&name);
            }
        }
        mine.clear();
    }

    /// The topics a connection subscribes to.
    pub(crate) fn topics_of(&self, id: ConnId) -> impl Iterator<Item = Arc<str>> + '_ {
        self.entry(id)
            .into_iter()
            .flat_map(|c| c.topics.iter())
            .filter_map(|&(t, _)| self.topics.name(t).cloned())
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
        let frame = self.node.publish(topic, kind, payload, Some(self.index), false);
        self.deliver(topic, &frame)
    }

    /// Queues an encoded frame for every subscriber of `topic` on this shard; the queues are
    /// written at the end of the loop turn, so that a burst of publishes costs one write per
    /// subscriber. Returns the number of deliveries.
    pub(super) fn deliver(&mut self, topic: &str, frame: &Arc<[u8]>) -> usize {
        let Some(tid) = self.topics.id(topic) else {
            return 0;
        };
        let payload_len = proto::frame::split_frame(frame).map_or(0, |(_, p)| p.len());
        let cap = self.config.max_queued_bytes;
        let mut delivered = 0;
        let mut over = Vec::new();
        #[cfg(feature = "deflate")]
        let mut deflated = Deflated::default();
        for i in 0..self.topics.subscribers(tid).len() {
            let key = self.topics.subscribers(tid)[i] as usize;
            if self.current == Some(key) && !self.tx.is_empty() {
                // Keep the order of what this connection was already sent.
                self.flush_tx(key);
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
                    match compressed_frame(p, frame, &mut deflated, &mut self.deflate) {
                        Some(f) => {
                            compressed = f;
                            &compressed
                        }
                        None => frame,
                    }
                }
                _ => frame,
            };
            #[cfg(feature = "tls")]
            if conn.tls.is_some() {
                // Records are per connection: the shared frame is encrypted for this one.
                let frame = Arc::clone(frame);
                self.write(key, &frame, &[]);
                delivered += 1;
                continue;
            }
            conn.queue.push_shared(frame);
            delivered += 1;
            if conn.blocked {
                continue;
            }
            if conn.queue.len() >= BROADCAST_FLUSH.min(cap / 2) {
                // A burst is being published: write now rather than let a reader that keeps up
                // run into the cap before the end of the turn.
                match conn.queue.flush(&mut conn.socket) {
                    Ok(true) => {}
                    Ok(false) => conn.blocked = true,
                    Err(_) => {
                        self.kill(key);
                        continue;
                    }
                }
            }
            if !conn.dirty && !conn.queue.is_empty() && !conn.blocked {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
        for key in over {
            let _ = self.over_cap(key);
        }
        self.stats.deliveries += delivered as u64;
        self.stats.messages_out += delivered as u64;
        self.stats.bytes_out += delivered as u64 * payload_len as u64;
        delivered
    }

    /// Writes the queues that broadcasts filled during this loop turn.
    pub(super) fn flush_dirty(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.dirty = false;
            if conn.is_closed() || conn.blocked || conn.queue.is_empty() {
                continue;
            }
            match conn.queue.flush(&mut conn.socket) {
                Ok(true) => self.after_io(key),
                Ok(false) => conn.blocked = true,
                Err(_) => self.kill(key),
            }
        }
    }
}
