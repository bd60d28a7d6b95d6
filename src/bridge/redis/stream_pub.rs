//! Streams mode's publisher thread: takes batches from the publish queue (each command is the
//! publish script's `EVALSHA`, with its topic's slot) and sends them through the [`Router`]:
//! one pipeline per node, then one reply per command (its offset).
//!
//! As in pub/sub mode, a batch is counted lost at once while the back-off after a failure runs,
//! so the queue never holds messages for a Redis that is away; the commands of a failed pipeline
//! that got no reply are counted lost (Redis may have run some: such a message is then delivered,
//! with its offset, though counted lost). A message that Redis took is in its topic's stream and
//! on its live channel: every node that follows the topic gets it, in offset order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::BridgeStats;
use super::backoff::Backoff;
use super::link;
use super::queue::PublishQueue;
use super::resp::Value;
use super::router::Router;

/// Publishes sent at once at most.
const BATCH: usize = 256;
/// How long the thread waits for a publish before it looks at its stop flag.
const IDLE: Duration = Duration::from_millis(100);

pub(crate) struct StreamPublisher {
    pub(crate) router: Router,
    pub(crate) queue: Arc<PublishQueue>,
    pub(crate) stats: Arc<BridgeStats>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) backoff: Backoff,
    /// Nothing is sent before this instant (the back-off after a failure).
    pub(crate) retry_at: Instant,
}

impl StreamPublisher {
    pub(crate) fn run(mut self) {
        let mut batch: Vec<(u16, Vec<u8>)> = Vec::with_capacity(BATCH);
        loop {
            let open = self.queue.take(&mut batch, BATCH, IDLE);
            if !open || self.stop.load(Ordering::Acquire) {
                self.finish(&batch, 0);
                self.router.close();
                return;
            }
            if batch.is_empty() {
                continue;
            }
            let sent = self.send(&batch);
            self.finish(&batch, sent);
            batch.clear();
        }
    }

    /// Counts a batch's fate and frees its room in the queue.
    fn finish(&self, batch: &[(u16, Vec<u8>)], sent: usize) {
        let bytes = batch.iter().map(|(_, c)| c.len()).sum();
        self.stats
            .publishes_sent
            .fetch_add(sent as u64, Ordering::Relaxed);
        self.stats
            .publishes_lost
            .fetch_add((batch.len() - sent) as u64, Ordering::Relaxed);
        self.queue.release(batch.len(), bytes, &self.stats);
    }

    /// Sends a batch; how many Redis took.
    fn send(&mut self, batch: &[(u16, Vec<u8>)]) -> usize {
        if Instant::now() < self.retry_at {
            return 0;
        }
        let items: Vec<(u16, &[u8])> = batch.iter().map(|(s, c)| (*s, c.as_slice())).collect();
        let mut sent = 0;
        let mut refused = 0;
        let mut failure = None;
        for outcome in self.router.pipeline(&items) {
            match outcome {
                Ok(Value::Int(_)) => sent += 1,
                Ok(Value::Error(e)) => {
                    log::debug!("redis bridge: publish refused: {}", String::from_utf8_lossy(&e));
                    refused += 1;
                }
                Ok(other) => failure = Some(link::unexpected(&other)),
                Err(e) => failure = Some(e),
            }
        }
        if sent > 0 {
            self.backoff.answered();
        }
        if refused > 0 {
            log::warn!("redis bridge: Redis refused {refused} publishes");
        }
        // Some went: Redis is there (a master of a cluster may be failing over); no back-off.
        if let Some(e) = failure.filter(|_| sent == 0) {
            if link::is_timeout(&e) {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            let wait = self.backoff.failed();
            self.retry_at = Instant::now() + wait;
            log::warn!(
                "redis bridge: publisher: {e}; publishes are dropped for {wait:?}, then it connects again"
            );
        }
        sent
    }
}
