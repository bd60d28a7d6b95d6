//! What a bridge that gives offsets calls, and what the node's history holds, on
//! [`ServerHandle`]: the node's side of `history.rs` for other threads.

use super::history::Position;
use super::node::ServerHandle;
use crate::proto::MessageKind;

impl ServerHandle {
    /// For a bridge that [keeps history](crate::Bridge::keeps_history): delivers a message at its
    /// position in the topic's stream to this node's subscribers, and keeps it in the node's
    /// history. An offset at or below the last one delivered (of the same epoch) is a duplicate
    /// and ignored. Another epoch, or an offset past the next one (a gap the bridge could not
    /// fill: fill it first by delivering the missing ones in order), restarts the topic's
    /// history at this message, and subscribers that follow offsets are told they lost what
    /// came between ([`Resume::Lost`](crate::Resume::Lost)). Without history on, the message is
    /// delivered as by [`ServerHandle::publish_from_bridge`].
    pub fn publish_at(&self, topic: &str, kind: MessageKind, payload: &[u8], at: Position) {
        let node = self.node();
        let Some(h) = node.history() else {
            node.publish(topic, kind, payload, None, true);
            return;
        };
        let frame = node.encode(kind, payload);
        h.append_at(topic, kind, payload, frame, at, |name, event| {
            node.post_stream(name, event);
        });
    }

    /// For a bridge that [keeps history](crate::Bridge::keeps_history): replaces this node's history of
    /// `topic` with `entries` (offset, kind, payload; offsets ascending, all of `epoch`, the
    /// newest that fit the node's bounds are kept), and marks it loaded, so that resumes waiting
    /// for it are answered. Call it once the node starts wanting a topic
    /// ([`Bridge::subscribe`](crate::Bridge::subscribe)) and its live messages are subscribed to, and again whenever the
    /// broker's epoch is found changed: subscribers that followed another epoch are told they
    /// lost the gap. Does nothing without history on.
    pub fn history_load(&self, topic: &str, epoch: u64, entries: Vec<(u64, MessageKind, Vec<u8>)>) {
        let node = self.node();
        if let Some(h) = node.history() {
            h.load(topic, epoch, entries, |name, event| node.post_stream(name, event));
        }
    }

    /// Whether the server keeps offsets and a history per topic
    /// ([`ServerConfig::history`](crate::ServerConfig::history)). Without it, a node delivers its
    /// own publishes itself, and a bridge that keeps history must not hand them back.
    pub fn keeps_history(&self) -> bool {
        self.node().history().is_some()
    }

    /// Topics with a history on this node, and the bytes they keep (0 and 0 without history).
    pub fn history_held(&self) -> (usize, usize) {
        self.node().history().map_or((0, 0), |h| (h.topics(), h.bytes()))
    }

    /// For a bridge that [keeps history](crate::Bridge::keeps_history): the node no longer follows
    /// `topic` (no shard wants it): its history is forgotten.
    pub fn history_drop(&self, topic: &str) {
        if let Some(h) = self.node().history() {
            h.forget(topic);
        }
    }
}
