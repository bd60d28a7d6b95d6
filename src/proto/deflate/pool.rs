//! The [`DeflatePool`]: zlib state lent to connections for one message at a time, so that an
//! idle connection without context takeover holds none.

#[cfg(feature = "deflate")]
use super::MAX_WINDOW_BITS;
#[cfg(feature = "deflate")]
use super::codec::{Compressor, Decompressor};

/// Compressors and decompressors lent to connections without context takeover, and given back
/// when their message is done. Keep one per thread (the engine keeps one per shard) and pass it
/// to [`Connection::read_with`](crate::proto::Connection::read_with) and
/// [`Connection::send_with`](crate::proto::Connection::send_with).
///
/// It keeps at most a few idle objects ([`POOL_IDLE_COMPRESSORS`], [`POOL_IDLE_DECOMPRESSORS`]);
/// more are made when more connections are in the middle of a compressed message at once, and
/// dropped when they come back past that number. Without the `deflate` feature it is empty.
#[derive(Debug, Default)]
pub struct DeflatePool {
    #[cfg(feature = "deflate")]
    compressors: Vec<Compressor>,
    /// Boxed: lent to a connection, which keeps it behind a pointer, without being moved.
    #[cfg(feature = "deflate")]
    #[allow(clippy::vec_box)]
    decompressors: Vec<Box<Decompressor>>,
    /// Compressions done with this pool, for statistics.
    pub(super) compressed: u64,
}

/// Idle compressors a [`DeflatePool`] keeps (one per window size and level in use).
pub const POOL_IDLE_COMPRESSORS: usize = 4;

/// Idle decompressors a [`DeflatePool`] keeps.
pub const POOL_IDLE_DECOMPRESSORS: usize = 16;

impl DeflatePool {
    /// An empty pool: nothing is allocated until a compressed message comes or goes.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages were compressed with this pool's help (by any connection, including
    /// those with context takeover that were given it).
    pub fn compressed(&self) -> u64 {
        self.compressed
    }
}

#[cfg(feature = "deflate")]
impl DeflatePool {
    /// An idle compressor for this window and level, or a new one.
    pub(super) fn take_compressor(&mut self, window_bits: u8, level: u32) -> Compressor {
        match self
            .compressors
            .iter()
            .position(|c| c.matches(window_bits, level))
        {
            Some(i) => self.compressors.swap_remove(i),
            None => Compressor::new(window_bits, level),
        }
    }

    /// Takes a compressor back (reset), keeping at most [`POOL_IDLE_COMPRESSORS`].
    pub(super) fn give_compressor(&mut self, mut c: Compressor) {
        c.reset();
        if self.compressors.len() < POOL_IDLE_COMPRESSORS {
            self.compressors.push(c);
        }
    }

    /// Pooled decompressors have the largest window, so that any one serves any connection
    /// (and is reset without being rebuilt).
    pub(super) fn take_decompressor(&mut self) -> Box<Decompressor> {
        self.decompressors
            .pop()
            .unwrap_or_else(|| Box::new(Decompressor::new(MAX_WINDOW_BITS)))
    }

    /// Takes a decompressor back (reset), keeping at most [`POOL_IDLE_DECOMPRESSORS`].
    pub(super) fn give_decompressor(&mut self, mut d: Box<Decompressor>) {
        if self.decompressors.len() < POOL_IDLE_DECOMPRESSORS {
            d.reset();
            self.decompressors.push(d);
        }
    }

    /// Idle compressors and decompressors held.
    pub fn idle(&self) -> (usize, usize) {
        (self.compressors.len(), self.decompressors.len())
    }
}

#[cfg(all(test, feature = "deflate"))]
mod tests {
    use super::*;

    #[test]
    fn pool_keeps_a_bounded_number_of_idle_objects() {
        let mut pool = DeflatePool::new();
        let ds: Vec<_> = (0..40).map(|_| pool.take_decompressor()).collect();
        for d in ds {
            pool.give_decompressor(d);
        }
        assert_eq!(pool.idle().1, POOL_IDLE_DECOMPRESSORS);
        let cs: Vec<_> = (9..=15).map(|b| pool.take_compressor(b, 6)).collect();
        for c in cs {
            pool.give_compressor(c);
        }
        assert_eq!(pool.idle().0, POOL_IDLE_COMPRESSORS);
        // A matching idle compressor is reused.
        let c = pool.take_compressor(9, 6);
        assert!(c.matches(9, 6));
        assert_eq!(pool.idle().0, POOL_IDLE_COMPRESSORS - 1);
    }
}
