//! Topics across nodes: implementations of the [`Bridge`] a node uses to reach the others
//! through a broker.
//!
//! Within a node, topics live in each shard (`Ctx::subscribe`, `Ctx::publish`,
//! `ServerHandle::publish`): a published message is encoded into a frame once, the same bytes are
//! queued for every subscriber, and other shards get it through their inboxes. A bridge extends
//! that to other nodes: the shards tell it when a topic gets its first subscriber or loses its
//! last one on that shard, and hand it every local publish; it delivers what other nodes publish
//! with [`ServerHandle::publish_from_bridge`](crate::ServerHandle::publish_from_bridge).

pub use crate::engine::Bridge;

#[cfg(feature = "redis")]
pub mod redis;
