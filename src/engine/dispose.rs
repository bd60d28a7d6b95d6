//! Freeing large blocks off the shards' threads. Giving memory back to the system costs time:
//! about 0.2 ms a megabyte on the machines c10k is measured on (unmapping, page-table work), so
//! a 16 MiB message buffer freed on a shard's thread is 3 ms its other connections wait, and a
//! shard that closes its largest holders for memory would stall for as long as it frees. Blocks
//! of at least [`DISPOSE_FROM`] bytes go to one thread of the node's that only drops what it
//! gets; at most [`DISPOSE_MAX`] bytes wait for it (shown beside the shards' memory, see
//! [`Memory::disposing`](super::memory::Memory::disposing)), past which a block is dropped where
//! it is.

use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use super::memory::Gauge;

/// Blocks this large or larger are freed by the node's disposer thread.
pub(crate) const DISPOSE_FROM: usize = 1 << 20;

/// Bytes that may wait for the disposer thread; past it, blocks are freed in place. The thread
/// frees 16 MiB in about 3 ms, so this is rarely reached; it is what resident memory may be
/// above the budget while the largest holders are being closed.
pub(crate) const DISPOSE_MAX: usize = 64 << 20;

/// Blocks waiting for the disposer thread, at most this many (beside the bytes bound).
const QUEUE: usize = 1024;

/// Something to drop elsewhere, and the bytes it holds.
type Block = (Box<dyn Send>, usize);

/// The sending side of the node's disposer thread.
#[derive(Debug)]
pub(crate) struct Disposer {
    tx: Option<SyncSender<Block>>,
    bytes: Arc<Gauge>,
}

impl Disposer {
    /// Starts the disposer thread; without one (it could not be started), blocks are freed in
    /// place.
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::sync_channel::<Block>(QUEUE);
        let bytes = Arc::new(Gauge::default());
        let gauge = Arc::clone(&bytes);
        let started = std::thread::Builder::new()
            .name("c10k-dispose".into())
            .spawn(move || {
                for (block, n) in rx {
                    drop(block);
                    gauge.sub(n);
                }
            });
        if let Err(e) = &started {
            log::warn!("cannot start the thread that frees large blocks: freeing them in place ({e})");
        }
        Self {
            tx: started.ok().map(|_| tx),
            bytes,
        }
    }

    /// The bytes waiting to be freed.
    pub(crate) fn gauge(&self) -> Arc<Gauge> {
        Arc::clone(&self.bytes)
    }

    /// Frees `block`, which holds `n` bytes: on the disposer thread if it is large and there is
    /// room, here otherwise.
    pub(crate) fn dispose<T: Send + 'static>(&self, block: T, n: usize) {
        let Some(tx) = self.tx.as_ref().filter(|_| n >= DISPOSE_FROM) else {
            return;
        };
        if self.bytes.bytes() as usize + n > DISPOSE_MAX {
            return;
        }
        self.bytes.add(n);
        match tx.try_send((Box::new(block), n)) {
            Ok(()) => {}
            Err(TrySendError::Full((block, n)) | TrySendError::Disconnected((block, n))) => {
                self.bytes.sub(n);
                drop(block);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_freed_elsewhere_and_small_ones_here() {
        let d = Disposer::start();
        let big = vec![1u8; 4 << 20];
        let freed = Arc::new(());
        d.dispose((big, Arc::clone(&freed)), 4 << 20);
        let start = std::time::Instant::now();
        while Arc::strong_count(&freed) > 1 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "never freed"
            );
            std::thread::yield_now();
        }
        while d.gauge().bytes() > 0 {
            std::thread::yield_now();
        }
        let small = Arc::new(());
        d.dispose(Arc::clone(&small), 100);
        assert_eq!(Arc::strong_count(&small), 1, "a small block is dropped in place");
        let over = Arc::new(());
        d.dispose(Arc::clone(&over), DISPOSE_MAX + 1);
        assert_eq!(Arc::strong_count(&over), 1, "past the bound: dropped in place");
        assert_eq!(d.gauge().bytes(), 0);
    }
}
