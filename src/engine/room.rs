//! What other threads know of a connection without asking its shard: whether it is open and
//! whether its write queue has room, so that [`ServerHandle::send`] can answer at once (gone,
//! queue full) and a producer can wait for room, blocking or as a future.
//!
//! Each shard publishes one word per slab slot: the connection's generation and two bits
//! (open, full). The shard writes a word when a connection is accepted, opens, fills past half
//! its queue cap, drains to a quarter of it, and goes: a few stores per connection's life, none
//! per message. Other threads read it with one atomic load. The words live in chunks of
//! [`CHUNK`] slots allocated as the slab grows (4 bytes a connection).
//!
//! A producer that waits registers itself ([`Waiters`]); a shard that makes room (a queue
//! drained to a quarter, an inbox drained) wakes the waiters only when there are some: one
//! atomic load otherwise.
//!
//! [`ServerHandle::send`]: super::ServerHandle::send

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::id::ConnId;

/// Slots per chunk of the table.
const CHUNK: usize = 4096;
/// Chunks per shard: 16 Mi connections a shard at most are tracked (past it, sends from other
/// threads are posted without the early answer and the shard applies its policy).
const CHUNKS: usize = 4096;
const OPEN: u32 = 1;
const FULL: u32 = 2;
/// Wakers kept for futures waiting for room (see `Waiters::register`).
const MAX_WAKERS: usize = 4096;
/// The generation bits kept in a word (the low 30).
const GENERATION: u32 = (1 << 30) - 1;

/// What another thread knows of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// No such connection (closed, or never was).
    Gone,
    /// Still in its handshake.
    NotOpen,
    /// Open, its write queue past half its cap.
    Full,
    /// Open, with room.
    Free,
    /// Past what the table tracks: only the shard knows.
    Unknown,
}

/// One shard's words.
#[derive(Debug)]
pub(crate) struct Slots {
    chunks: Box<[OnceLock<Box<[AtomicU32]>>]>,
}

impl Default for Slots {
    fn default() -> Self {
        Self {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl Slots {
    /// Publishes the state of slot `key` (shard thread only).
    fn set(&self, key: usize, word: u32) {
        let Some(chunk) = self.chunks.get(key / CHUNK) else {
            return;
        };
        let chunk = chunk.get_or_init(|| (0..CHUNK).map(|_| AtomicU32::new(0)).collect());
        chunk[key % CHUNK].store(word, Ordering::Release);
    }

    /// A connection in slot `key`, of `generation`: accepted (`open` false), open, or open and
    /// full.
    pub(crate) fn publish(&self, key: usize, generation: u32, open: bool, full: bool) {
        let word =
            ((generation & GENERATION) << 2) | if open { OPEN } else { 0 } | if full { FULL } else { 0 };
        // A word of 0 reads as gone: a generation whose low bits are 0 and that is not open yet
        // reads as gone too, which only makes an early send wait for the open.
        self.set(key, word);
    }

    /// Slot `key` is empty.
    pub(crate) fn clear(&self, key: usize) {
        self.set(key, 0);
    }

    /// What the shard last said of `id`.
    pub(crate) fn room(&self, id: ConnId) -> Room {
        let key = id.key as usize;
        let Some(chunk) = self.chunks.get(key / CHUNK) else {
            return Room::Unknown;
        };
        let Some(chunk) = chunk.get() else {
            return Room::Gone;
        };
        let word = chunk[key % CHUNK].load(Ordering::Acquire);
        if word == 0 || word >> 2 != id.generation & GENERATION {
            Room::Gone
        } else if word & OPEN == 0 {
            Room::NotOpen
        } else if word & FULL != 0 {
            Room::Full
        } else {
            Room::Free
        }
    }
}

/// The producers waiting for room, on any shard of the node.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    count: AtomicUsize,
    wakers: Mutex<Vec<Waker>>,
    epoch: Mutex<u64>,
    cv: Condvar,
}

impl Waiters {
    /// Room was made somewhere: wakes every waiter (cheap when there is none).
    pub(crate) fn room_made(&self) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Ok(mut e) = self.epoch.lock() {
            *e += 1;
        }
        self.cv.notify_all();
        let wakers = self
            .wakers
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        for w in wakers {
            w.wake();
        }
    }

    /// Blocks until `ready` says so or `timeout` passes; `ready` is asked again after each
    /// wake-up. Returns its last answer.
    pub(crate) fn wait<T>(&self, timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
        let end = Instant::now() + timeout;
        self.count.fetch_add(1, Ordering::AcqRel);
        let out = (|| {
            let mut epoch = self.epoch.lock().ok()?;
            loop {
                if let Some(v) = ready() {
                    return Some(v);
                }
                let now = Instant::now();
                if now >= end {
                    return None;
                }
                // Woken by room made anywhere, or after a while to look again (a shard that
                // stopped wakes nobody).
                let wait = (end - now).min(Duration::from_millis(100));
                epoch = self.cv.wait_timeout(epoch, wait).ok()?.0;
            }
        })();
        self.count.fetch_sub(1, Ordering::AcqRel);
        out
    }

    fn register(&self, waker: &Waker) {
        let Ok(mut w) = self.wakers.lock() else {
            return;
        };
        if w.iter().any(|x| x.will_wake(waker)) {
            return;
        }
        if w.len() >= MAX_WAKERS {
            // Futures dropped before any room came leave their wakers here: past the bound,
            // every one is woken (a woken future that still waits registers again), so that
            // the list stays bounded whatever producers do.
            for x in w.drain(..) {
                x.wake();
            }
        }
        w.push(waker.clone());
    }
}

/// A future that resolves when a connection has room for a send from another thread, or is
/// gone: from [`ServerHandle::room`](super::ServerHandle::room).
#[must_use = "a future does nothing unless awaited"]
pub struct RoomFor {
    pub(crate) check: Box<dyn FnMut() -> Option<Result<(), super::SendError>> + Send>,
    pub(crate) waiters: Arc<Waiters>,
    pub(crate) counted: bool,
}

impl std::fmt::Debug for RoomFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomFor").finish_non_exhaustive()
    }
}

impl Future for RoomFor {
    type Output = Result<(), super::SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(v) = (this.check)() {
            return Poll::Ready(v);
        }
        if !this.counted {
            this.counted = true;
            this.waiters.count.fetch_add(1, Ordering::AcqRel);
        }
        this.waiters.register(cx.waker());
        // Room made between the first look and the registration would wake nobody: look again.
        match (this.check)() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

impl Drop for RoomFor {
    fn drop(&mut self) {
        if self.counted {
            self.waiters.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: u32, generation: u32) -> ConnId {
        ConnId {
            shard: 0,
            key,
            generation,
        }
    }

    #[test]
    fn a_slot_says_what_its_connection_is_and_a_stale_id_is_gone() {
        let s = Slots::default();
        assert_eq!(s.room(id(5, 1)), Room::Gone, "never used");
        s.publish(5, 1, false, false);
        assert_eq!(s.room(id(5, 1)), Room::NotOpen);
        s.publish(5, 1, true, false);
        assert_eq!(s.room(id(5, 1)), Room::Free);
        s.publish(5, 1, true, true);
        assert_eq!(s.room(id(5, 1)), Room::Full);
        assert_eq!(s.room(id(5, 2)), Room::Gone, "another generation");
        s.clear(5);
        assert_eq!(s.room(id(5, 1)), Room::Gone);
        s.publish(CHUNK + 7, 3, true, false);
        assert_eq!(s.room(id(CHUNK as u32 + 7, 3)), Room::Free, "a second chunk");
        assert_eq!(s.room(id((CHUNK * CHUNKS) as u32, 1)), Room::Unknown);
    }

    #[test]
    fn a_waiter_wakes_when_room_is_made() {
        let w = Arc::new(Waiters::default());
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (w2, f2) = (Arc::clone(&w), Arc::clone(&flag));
        let t = std::thread::spawn(move || {
            w2.wait(Duration::from_secs(10), || {
                f2.load(Ordering::Acquire).then_some(7)
            })
        });
        while w.count.load(Ordering::Acquire) == 0 {
            std::thread::yield_now();
        }
        flag.store(true, Ordering::Release);
        w.room_made();
        assert_eq!(t.join().unwrap(), Some(7));
        assert_eq!(
            w.wait(Duration::ZERO, || None::<()>),
            None,
            "a timeout gives the last answer"
        );
    }
}
