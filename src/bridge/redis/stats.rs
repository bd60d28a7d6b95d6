//! The bridge's counters: live atomics, and a snapshot of them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters of a bridge, updated as it works (read them with [`snapshot`](Self::snapshot) or
/// field by field).
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Local publishes that Redis took (answered).
    pub publishes_sent: AtomicU64,
    /// Local publishes dropped because Redis was unreachable, did not answer within the I/O
    /// timeout, or refused them.
    pub publishes_lost: AtomicU64,
    /// Local publishes dropped because the publish queue was full (messages or bytes).
    pub dropped_queue_full: AtomicU64,
    /// Local publishes dropped because their payload exceeded `max_message_size`.
    pub dropped_too_large_out: AtomicU64,
    /// Messages from other nodes delivered locally.
    pub received: AtomicU64,
    /// Messages from Redis dropped because they exceeded `max_message_size` (never buffered).
    pub dropped_too_large_in: AtomicU64,
    /// Messages from Redis dropped because they were not a c10k envelope on a prefixed channel.
    pub dropped_malformed_in: AtomicU64,
    /// Messages of this node that Redis echoed back (dropped: delivered locally already).
    pub own_echoes: AtomicU64,
    /// Connections tried again after a failure (either thread).
    pub reconnects: AtomicU64,
    /// Connections given up because Redis did not connect, take writes or answer in time.
    pub timeouts: AtomicU64,
    /// Local publishes queued or being sent now.
    pub queue_depth: AtomicU64,
    /// Bytes of the publish queue now.
    pub queue_bytes: AtomicU64,
    /// The most messages the publish queue ever held.
    pub queue_peak: AtomicU64,
    /// The most bytes the publish queue ever held.
    pub queue_peak_bytes: AtomicU64,
    /// Streams mode: live messages skipped because the node had them already.
    pub duplicates: AtomicU64,
    /// Streams mode: live messages that came after a gap (the topic was read to fill it).
    pub gaps: AtomicU64,
    /// Streams mode: histories loaded (a topic newly wanted, or found in a new epoch).
    pub history_loads: AtomicU64,
    /// Streams mode: topics found in a new epoch in Redis (their history there was lost).
    pub epoch_changes: AtomicU64,
    /// Streams mode: bytes of history read from Redis and not yet handed to the node (a round
    /// of reads; counted with the publish queue against the memory budget).
    pub reading_bytes: AtomicU64,
    /// Whether the subscription connection is up and Redis has answered on it (streams mode:
    /// every subscription connection, and every wanted topic is subscribed).
    pub connected: AtomicBool,
}

/// The counters of a bridge at one moment (see [`BridgeStats`] for each field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeCounts {
    /// Local publishes that Redis took.
    pub publishes_sent: u64,
    /// Local publishes lost: Redis unreachable, too slow, or refusing.
    pub publishes_lost: u64,
    /// Local publishes dropped: the publish queue was full.
    pub dropped_queue_full: u64,
    /// Local publishes dropped: larger than `max_message_size`.
    pub dropped_too_large_out: u64,
    /// Messages from other nodes delivered locally.
    pub received: u64,
    /// Messages from Redis dropped: larger than `max_message_size`.
    pub dropped_too_large_in: u64,
    /// Messages from Redis dropped: not a c10k envelope.
    pub dropped_malformed_in: u64,
    /// This node's messages echoed back by Redis (dropped).
    pub own_echoes: u64,
    /// Connections tried again after a failure.
    pub reconnects: u64,
    /// Connections given up for want of an answer in time.
    pub timeouts: u64,
    /// Publishes queued or being sent.
    pub queue_depth: u64,
    /// Bytes queued or being sent.
    pub queue_bytes: u64,
    /// The most publishes the queue ever held.
    pub queue_peak: u64,
    /// The most bytes the queue ever held.
    pub queue_peak_bytes: u64,
    /// Live messages skipped: had already.
    pub duplicates: u64,
    /// Live messages after a gap.
    pub gaps: u64,
    /// Histories loaded.
    pub history_loads: u64,
    /// Topics found in a new epoch.
    pub epoch_changes: u64,
    /// Bytes of history read and not yet handed on.
    pub reading_bytes: u64,
    /// Whether the subscription is up and answered.
    pub connected: bool,
}

impl BridgeStats {
    /// Every counter, read now.
    pub fn snapshot(&self) -> BridgeCounts {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeCounts {
            publishes_sent: r(&self.publishes_sent),
            publishes_lost: r(&self.publishes_lost),
            dropped_queue_full: r(&self.dropped_queue_full),
            dropped_too_large_out: r(&self.dropped_too_large_out),
            received: r(&self.received),
            dropped_too_large_in: r(&self.dropped_too_large_in),
            dropped_malformed_in: r(&self.dropped_malformed_in),
            own_echoes: r(&self.own_echoes),
            reconnects: r(&self.reconnects),
            timeouts: r(&self.timeouts),
            queue_depth: r(&self.queue_depth),
            queue_bytes: r(&self.queue_bytes),
            queue_peak: r(&self.queue_peak),
            queue_peak_bytes: r(&self.queue_peak_bytes),
            duplicates: r(&self.duplicates),
            gaps: r(&self.gaps),
            history_loads: r(&self.history_loads),
            epoch_changes: r(&self.epoch_changes),
            reading_bytes: r(&self.reading_bytes),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}

impl BridgeCounts {
    /// The counters as `name value` pairs, in the order of the fields (for logs and exports).
    pub fn pairs(&self) -> [(&'static str, u64); 20] {
        [
            ("publishes_sent", self.publishes_sent),
            ("publishes_lost", self.publishes_lost),
            ("dropped_queue_full", self.dropped_queue_full),
            ("dropped_too_large_out", self.dropped_too_large_out),
            ("received", self.received),
            ("dropped_too_large_in", self.dropped_too_large_in),
            ("dropped_malformed_in", self.dropped_malformed_in),
            ("own_echoes", self.own_echoes),
            ("reconnects", self.reconnects),
            ("timeouts", self.timeouts),
            ("queue_depth", self.queue_depth),
            ("queue_bytes", self.queue_bytes),
            ("queue_peak", self.queue_peak),
            ("queue_peak_bytes", self.queue_peak_bytes),
            ("duplicates", self.duplicates),
            ("gaps", self.gaps),
            ("history_loads", self.history_loads),
            ("epoch_changes", self.epoch_changes),
            ("reading_bytes", self.reading_bytes),
            ("connected", u64::from(self.connected)),
        ]
    }
}
