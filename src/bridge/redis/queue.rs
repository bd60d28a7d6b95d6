//! The publish queue: local publishes on their way to Redis, bounded in count and in bytes.
//!
//! Shards push (never waiting: a push that does not fit is refused, and the caller counts it);
//! the publisher thread takes batches and releases them once they are sent or lost, so the bounds
//! cover what is queued and what is being sent. The lock is held only to check the bounds and to
//! move items, never while a payload is copied or while anything talks to Redis.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::BridgeStats;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds its most messages or bytes.
    Full,
    /// The bridge stopped.
    Closed,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each item's cluster slot (0 when there is no cluster) and its encoded command.
    items: VecDeque<(u16, Vec<u8>)>,
    /// Messages and bytes queued or being sent.
    messages: usize,
    bytes: usize,
    closed: bool,
}

/// A bounded queue of encoded publish commands (`PUBLISH`, or the streams script's `EVALSHA`).
#[derive(Debug)]
pub(crate) struct PublishQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    max_messages: usize,
    max_bytes: usize,
}

impl PublishQueue {
    /// A queue of at most `max_messages` messages and `max_bytes` bytes.
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            max_messages,
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the `len` bytes that `make` encodes, if they fit; `make` runs outside the lock,
    /// and only when they do.
    pub(crate) fn try_push(
        &self,
        slot: u16,
        len: usize,
        stats: &BridgeStats,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Result<(), Refused> {
        {
            let mut q = self.lock();
            if q.closed {
                return Err(Refused::Closed);
            }
            if q.messages >= self.max_messages || q.bytes.saturating_add(len) > self.max_bytes {
                return Err(Refused::Full);
            }
            q.messages += 1;
            q.bytes += len;
            record(stats, &q);
        }
        let item = make();
        self.lock().items.push_back((slot, item));
        self.ready.notify_one();
        Ok(())
    }

    /// Moves up to `max` queued items into `out`, waiting up to `wait` for the first. The items
    /// still count against the bounds until [`release`](Self::release)d. False once closed.
    pub(crate) fn take(&self, out: &mut Vec<(u16, Vec<u8>)>, max: usize, wait: Duration) -> bool {
        let mut q = self.lock();
        if q.items.is_empty() && !q.closed {
            q = self
                .ready
                .wait_timeout(q, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let n = q.items.len().min(max);
        out.extend(q.items.drain(..n));
        !q.closed
    }

    /// Items taken by [`take`](Self::take) are sent or lost: their room is free again.
    pub(crate) fn release(&self, messages: usize, bytes: usize, stats: &BridgeStats) {
        let mut q = self.lock();
        q.messages = q.messages.saturating_sub(messages);
        q.bytes = q.bytes.saturating_sub(bytes);
        record(stats, &q);
    }

    /// Refuses every push from now on, wakes the taker, and drops what is queued (returned:
    /// messages, for the caller to count).
    pub(crate) fn close(&self) -> usize {
        let mut q = self.lock();
        q.closed = true;
        let dropped = q.items.len();
        q.items.clear();
        self.ready.notify_all();
        dropped
    }
}

/// The queue's depth into the counters.
fn record(stats: &BridgeStats, q: &Inner) {
    let (m, b) = (q.messages as u64, q.bytes as u64);
    stats.queue_depth.store(m, Ordering::Relaxed);
    stats.queue_bytes.store(b, Ordering::Relaxed);
    stats.queue_peak.fetch_max(m, Ordering::Relaxed);
    stats.queue_peak_bytes.fetch_max(b, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_refuses_past_its_count_and_its_bytes_without_encoding() {
        let stats = BridgeStats::default();
        let q = PublishQueue::new(3, 100);
        assert_eq!(q.try_push(0, 40, &stats, || vec![0; 40]), Ok(()));
        assert_eq!(q.try_push(0, 40, &stats, || vec![0; 40]), Ok(()));
        let mut encoded = false;
        let r = q.try_push(0, 40, &stats, || {
            encoded = true;
            vec![0; 40]
        });
        assert_eq!(r, Err(Refused::Full), "bytes: 120 > 100");
        assert!(!encoded, "a refused publish is not copied");
        assert_eq!(q.try_push(0, 20, &stats, || vec![0; 20]), Ok(()));
        assert_eq!(
            q.try_push(0, 0, &stats, Vec::new),
            Err(Refused::Full),
            "count: 4 > 3"
        );
        assert_eq!(stats.queue_depth.load(Ordering::Relaxed), 3);
        assert_eq!(stats.queue_bytes.load(Ordering::Relaxed), 100);

        // Taken but not yet released still counts.
        let mut batch = Vec::new();
        assert!(q.take(&mut batch, 2, Duration::ZERO));
        assert_eq!(batch.len(), 2);
        assert_eq!(q.try_push(0, 1, &stats, || vec![0]), Err(Refused::Full));
        q.release(2, 80, &stats);
        assert_eq!(q.try_push(0, 1, &stats, || vec![0]), Ok(()));
        assert_eq!(stats.queue_depth.load(Ordering::Relaxed), 2);
        assert_eq!(stats.queue_peak.load(Ordering::Relaxed), 3);
        assert_eq!(stats.queue_peak_bytes.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn queue_take_waits_a_bounded_time_and_close_refuses() {
        let stats = BridgeStats::default();
        let q = PublishQueue::new(10, 1000);
        let mut batch = Vec::new();
        assert!(q.take(&mut batch, 10, Duration::from_millis(5)));
        assert!(batch.is_empty());
        q.try_push(0, 1, &stats, || vec![1]).unwrap();
        assert_eq!(q.close(), 1);
        assert!(
            !q.take(&mut batch, 10, Duration::from_secs(60)),
            "closed: no wait"
        );
        assert_eq!(q.try_push(0, 1, &stats, || vec![1]), Err(Refused::Closed));
    }
}
