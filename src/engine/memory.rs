//! The memory a shard holds for its peers, counted as it is allocated, and what the shard does
//! when it nears its share of the server's budget.
//!
//! Every byte a peer can make the server hold is charged to one [`Kind`] of its shard's
//! [`Memory`] at the place where it is allocated or freed (the write path, the read path, the
//! handshake, the inbox): counters of the shard's own, so the hot path takes no lock. Frames
//! encoded once for many subscribers are charged once, to the node (see [`SharedFrame`]), while
//! they live; commands other threads queue for a shard are charged by them to its inbox
//! [`Gauge`].
//!
//! Near its share of [`ServerConfig::memory_budget`](super::ServerConfig::memory_budget) a shard
//! acts in steps, as an overload manager does ([`Memory::pressure`]):
//!
//! ```text
//!   held < 85%: normal ── 85% ──► stop accepting ── 100%, or still over 75% after a second ──►
//!                       ◄── below 75%: accept again          close the largest holders (1013)
//!                                                             until under 75%
//! ```
//!
//! Only connections that hold at least [`BIG_HOLDER`] bytes are ever closed for memory: a
//! connection that holds little is never the one sacrificed, however many there are (then not
//! accepting more is what protects the budget).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What held bytes are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Write queues: bytes the kernel did not take yet (copies of messages, pongs, Close frames,
    /// TLS records). Frames shared by several queues are charged to the node once instead.
    Queued = 0,
    /// Messages being assembled, inflated bytes included, and the zlib state they hold.
    Messages = 1,
    /// Unfinished input kept between reads: a partial frame header or control frame, a request
    /// head not complete yet or waiting for a decision, an unfinished TLS record.
    Input = 2,
    /// TLS sessions (keys and handshake state), an estimate per connection.
    Tls = 3,
    /// Subscriptions and the topics they name, an estimate per subscription and per topic.
    Topics = 4,
}

/// Reads what the bridge to other nodes holds.
pub(crate) type BridgeHeld = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The number of [`Kind`]s. Beside them, a shard holds its part of the shared frames and the
/// commands other threads queued for it, each counted by a [`Gauge`] that other threads move.
pub(crate) const KINDS: usize = 5;

/// A connection that holds at least this much may be closed when its shard is over budget;
/// one that holds less never is.
pub(crate) const BIG_HOLDER: usize = 64 << 10;

/// What one subscription costs: its place in the topic's subscribers, in the connection's
/// topics, and in the map of places (with the slack of their growth).
pub(crate) const SUBSCRIPTION_BYTES: usize = 64;

/// What a topic costs beside its name: its entry in the shard's table and the map of names.
pub(crate) const TOPIC_BYTES: usize = 128;

/// Percent of its share past which a shard stops accepting.
const PAUSE_AT: u64 = 85;
/// Percent of its share under which a shard that stopped accepting accepts again, and that
/// closing the largest holders brings it back under.
const RESUME_AT: u64 = 75;
/// How long a shard stays not accepting before it closes the largest holders to accept again:
/// peers that hold memory without going over the budget may not keep the server from
/// accepting for long.
pub(crate) const PAUSE_LIMIT_MS: u64 = 1000;

/// What the shard should do about its memory now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pressure {
    /// Within bounds; accept if accepting was stopped.
    Normal,
    /// Between the two accept thresholds: keep doing what is done.
    Hold,
    /// Stop accepting new connections.
    Pause,
    /// Over the share: close the largest holders until this many bytes are freed.
    Shed(u64),
}

/// The bytes one shard holds for its peers, by kind, against its share of the budget.
pub(crate) struct Memory {
    held: [u64; KINDS],
    /// This shard's share of the server's budget.
    share: u64,
    /// Frames shared between queues and shards, charged to the node (divided among its shards).
    shared: Arc<Gauge>,
    /// Commands other threads queued for this shard.
    inbox: Arc<Gauge>,
    /// What the bridge to other nodes holds (its queues), which counts too (divided among the
    /// shards).
    bridge: Option<BridgeHeld>,
    /// Large blocks freed, waiting for the node's disposer thread (divided among the shards).
    disposing: Option<Arc<Gauge>>,
    shards: u64,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("held", &self.held)
            .field("share", &self.share)
            .field("shared", &self.shared())
            .field("inbox", &self.inbox())
            .field("bridge", &self.bridge())
            .field("disposing", &self.disposing())
            .finish()
    }
}

impl Memory {
    pub(crate) fn new(share: u64, shared: Arc<Gauge>, inbox: Arc<Gauge>, shards: usize) -> Self {
        Self {
            held: [0; KINDS],
            share,
            shared,
            inbox,
            bridge: None,
            disposing: None,
            shards: shards.max(1) as u64,
        }
    }

    /// Counts the blocks waiting for the node's disposer thread too.
    pub(crate) fn with_disposing(mut self, gauge: Arc<Gauge>) -> Self {
        self.disposing = Some(gauge);
        self
    }

    /// This shard's part of the blocks waiting to be freed off the shards' threads.
    pub(crate) fn disposing(&self) -> u64 {
        self.disposing.as_ref().map_or(0, |g| g.bytes() / self.shards)
    }

    /// Counts what `bridge` says the bridge to other nodes holds too.
    pub(crate) fn with_bridge(mut self, bridge: Option<BridgeHeld>) -> Self {
        self.bridge = bridge;
        self
    }

    /// Charges `n` more bytes of `kind`.
    #[inline]
    pub(crate) fn add(&mut self, kind: Kind, n: usize) {
        self.held[kind as usize] += n as u64;
    }

    /// Releases `n` bytes of `kind`.
    #[inline]
    pub(crate) fn sub(&mut self, kind: Kind, n: usize) {
        let h = &mut self.held[kind as usize];
        debug_assert!(*h >= n as u64, "{kind:?}: releasing {n} of {h} bytes");
        *h = h.saturating_sub(n as u64);
    }

    /// Charges the change of something of `kind` that held `before` bytes and holds `after`.
    #[inline]
    pub(crate) fn change(&mut self, kind: Kind, before: usize, after: usize) {
        if after >= before {
            self.add(kind, after - before);
        } else {
            self.sub(kind, before - after);
        }
    }

    /// Bytes held of `kind`.
    pub(crate) fn held(&self, kind: Kind) -> u64 {
        self.held[kind as usize]
    }

    /// This shard's part of the frames shared by several queues (the node's total divided
    /// evenly: a frame is published to every shard).
    pub(crate) fn shared(&self) -> u64 {
        self.shared.bytes() / self.shards
    }

    /// Commands other threads queued for this shard.
    pub(crate) fn inbox(&self) -> u64 {
        self.inbox.bytes()
    }

    /// This shard's part of what the bridge to other nodes holds.
    pub(crate) fn bridge(&self) -> u64 {
        self.bridge.as_ref().map_or(0, |held| held() / self.shards)
    }

    /// Everything this shard holds, its part of the shared frames and of the bridge's queues
    /// and its inbox included: what its steps are decided on. Blocks on their way back to the
    /// system ([`Memory::disposing`]) are not: the shard let go of them, and closing more
    /// connections would not free them sooner (they are bounded, `dispose::DISPOSE_MAX`).
    pub(crate) fn total(&self) -> u64 {
        self.held.iter().sum::<u64>() + self.shared() + self.inbox() + self.bridge()
    }

    /// This shard's share of the budget.
    pub(crate) fn share(&self) -> u64 {
        self.share
    }

    /// What to do, given for how long accepting has been stopped (`None`: it is not).
    pub(crate) fn pressure(&self, paused_for_ms: Option<u64>) -> Pressure {
        let total = self.total();
        let pct = |p: u64| self.share / 100 * p;
        // Over the share, or stopped too long: close the largest holders until under the mark
        // where accepting resumes.
        let held_too_long = paused_for_ms.is_some_and(|ms| ms >= PAUSE_LIMIT_MS);
        if total > self.share || (held_too_long && total >= pct(RESUME_AT)) {
            Pressure::Shed(total - pct(RESUME_AT) + 1)
        } else if total > pct(PAUSE_AT) {
            Pressure::Pause
        } else if paused_for_ms.is_some() && total >= pct(RESUME_AT) {
            Pressure::Hold
        } else {
            Pressure::Normal
        }
    }
}

/// Bytes that several threads charge and release: the frames shared by several write queues
/// (a broadcast encoded once) alive anywhere in the node, or the commands queued in one shard's
/// inbox.
#[derive(Debug, Default)]
pub(crate) struct Gauge(AtomicU64);

impl Gauge {
    pub(crate) fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        self.0.fetch_sub(n as u64, Ordering::Relaxed);
    }
}

/// A frame encoded once and queued for many connections, possibly on several shards. Its bytes
/// count against the node's shared [`Gauge`] for as long as any queue or inbox holds it.
#[derive(Debug)]
pub(crate) struct SharedFrame {
    bytes: Box<[u8]>,
    gauge: Arc<Gauge>,
}

impl SharedFrame {
    pub(crate) fn new(bytes: Box<[u8]>, gauge: &Arc<Gauge>) -> Arc<Self> {
        gauge.add(bytes.len());
        Arc::new(Self {
            bytes,
            gauge: Arc::clone(gauge),
        })
    }
}

impl std::ops::Deref for SharedFrame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for SharedFrame {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes.len());
    }
}

/// The default memory budget: half of the memory this process may use, the smaller of the
/// machine's memory and its control group's limit (cgroup v2 `memory.max` or v1
/// `memory.limit_in_bytes`); 1 GiB when neither can be read.
pub(crate) fn default_budget() -> u64 {
    let machine = super::sys::physical_memory();
    let group = super::sys::cgroup_memory_limit();
    let usable = match (machine, group) {
        (Some(m), Some(g)) => m.min(g),
        (Some(m), None) => m,
        (None, Some(g)) => g,
        (None, None) => 2 << 30,
    };
    usable / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(share: u64) -> Memory {
        Memory::new(share, Arc::default(), Arc::default(), 1)
    }

    #[test]
    fn pressure_goes_through_its_steps_with_hysteresis() {
        let mut m = memory(1000);
        m.add(Kind::Queued, 850);
        assert_eq!(m.pressure(None), Pressure::Normal, "at 85% exactly: still normal");
        m.add(Kind::Messages, 1);
        assert_eq!(m.pressure(None), Pressure::Pause);
        m.sub(Kind::Queued, 100);
        assert_eq!(m.pressure(Some(10)), Pressure::Hold, "stopped, not yet under 75%");
        assert_eq!(m.pressure(None), Pressure::Normal);
        m.sub(Kind::Queued, 2);
        assert_eq!(m.pressure(Some(10)), Pressure::Normal, "under 75%: accept again");
        m.add(Kind::Input, 300);
        // 1049 held, share 1000: shed down under 75%.
        assert_eq!(m.total(), 1049);
        assert_eq!(m.pressure(Some(10)), Pressure::Shed(300));
    }

    #[test]
    fn a_shard_that_stays_stopped_for_a_second_sheds_to_accept_again() {
        let mut m = memory(1000);
        m.add(Kind::Messages, 900);
        assert_eq!(m.pressure(Some(PAUSE_LIMIT_MS - 1)), Pressure::Pause);
        assert_eq!(m.pressure(Some(PAUSE_LIMIT_MS)), Pressure::Shed(151));
        m.sub(Kind::Messages, 100);
        assert_eq!(m.pressure(Some(PAUSE_LIMIT_MS - 1)), Pressure::Hold);
        assert_eq!(m.pressure(Some(PAUSE_LIMIT_MS)), Pressure::Shed(51));
        m.sub(Kind::Messages, 51);
        assert_eq!(m.pressure(Some(5 * PAUSE_LIMIT_MS)), Pressure::Normal);
    }

    #[test]
    fn changes_add_and_release_by_kind() {
        let mut m = memory(1 << 20);
        m.change(Kind::Input, 0, 70);
        m.change(Kind::Input, 70, 20);
        m.change(Kind::Tls, 5, 9);
        assert_eq!((m.held(Kind::Input), m.held(Kind::Tls)), (20, 4));
        assert_eq!(m.total(), 24);
    }

    #[test]
    fn a_shared_frame_counts_once_while_any_reference_lives() {
        let gauge = Arc::new(Gauge::default());
        let inbox = Arc::new(Gauge::default());
        let m = Memory::new(1 << 20, Arc::clone(&gauge), Arc::clone(&inbox), 2);
        inbox.add(10);
        assert_eq!(m.total(), 10);
        inbox.sub(10);
        let frame = SharedFrame::new(vec![7u8; 1000].into_boxed_slice(), &gauge);
        let copies: Vec<_> = (0..50).map(|_| Arc::clone(&frame)).collect();
        assert_eq!(gauge.bytes(), 1000);
        assert_eq!(m.shared(), 500, "half of it on each of two shards");
        assert_eq!(&frame[..3], &[7, 7, 7]);
        drop(frame);
        assert_eq!(gauge.bytes(), 1000);
        drop(copies);
        assert_eq!(gauge.bytes(), 0);
    }

    #[test]
    fn the_default_budget_is_half_of_what_the_process_may_use() {
        let b = default_budget();
        assert!(b >= 64 << 20, "{b}");
        if let Some(m) = crate::engine::sys::physical_memory() {
            assert!(b <= m / 2);
        }
    }
}
