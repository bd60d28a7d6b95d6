//! Topics across nodes: the [`Bridge`] a node uses to reach the others through a broker.
//!
//! Within a node, topics live in each shard (`Ctx::subscribe`, `Ctx::publish`,
//! `ServerHandle::publish`): a published message is encoded into a frame once, the same bytes are
//! queued for every subscriber, and other shards get it through their inboxes. A bridge extends
//! that to other nodes: the shards tell it when a topic gets its first subscriber or loses its
//! last one on that shard, and hand it every local publish; it delivers what other nodes publish
//! with [`ServerHandle::publish_from_bridge`](crate::ServerHandle::publish_from_bridge).

use std::fmt::Debug;

use crate::proto::MessageKind;
use crate::server::ServerHandle;

/// A link from this node's topics to other nodes' (for example a pub/sub broker).
///
/// Every method is called from shard threads and must not block: queue the work for a thread of
/// the bridge's own. `subscribe` and `unsubscribe` come per shard, so a bridge counts them per
/// topic (a topic is wanted on this node while any shard wants it).
pub trait Bridge: Send + Sync + Debug {
    /// Called once when the server starts, with the handle to deliver remote messages through.
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

#[cfg(feature = "redis")]
pub mod redis;
