//! The identity of a connection across the server.

use std::fmt;

/// Identifies a connection across the server. Carries a generation: an id kept after its
/// connection closed never reaches a newer connection that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) shard: u16,
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// The shard that owns the connection.
    pub fn shard(&self) -> usize {
        usize::from(self.shard)
    }

    /// The id as one number (shard, slot and generation packed), e.g. for logs or maps.
    pub fn as_u64(&self) -> u64 {
        (u64::from(self.shard) << 48) | (u64::from(self.key & 0xffff) << 32) | u64::from(self.generation)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.shard, self.key, self.generation)
    }
}
