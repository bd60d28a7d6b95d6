//! The publisher thread: takes batches from the publish queue and sends them to Redis as one
//! pipeline, then reads one reply per `PUBLISH`.
//!
//! A batch is sent only on a connection; while there is none (connecting failed, and the
//! back-off has not run out), batches are counted lost at once, so the queue never holds
//! messages for a Redis that is away. A connection is dropped when a write cannot finish within
//! the I/O timeout, when a reply does not come within it, or on any error; the batch's messages
//! whose replies did not come are counted lost (Redis may still have run some of them: delivery
//! is at most once, the count is an upper bound). A batch that fails at once on a connection that
//! worked before (Redis restarted since) is sent again on a fresh connection, once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::link::{self, Link, Target};
use super::queue::PublishQueue;
use super::resp::Value;
use super::{BridgeStats, RedisLimits};

/// Publishes sent to Redis in one pipeline at most.
const BATCH: usize = 256;
/// How long the thread waits for a publish before it looks at its stop flag.
const IDLE: Duration = Duration::from_millis(100);
/// The longest reply the publisher expects (an integer, or an error line).
const MAX_REPLY: usize = 1 << 10;

/// What a pipeline got back.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Integer replies: the message went out.
    sent: usize,
    /// Error replies: Redis refused it.
    refused: usize,
}

pub(crate) struct Publisher {
    pub(crate) target: Target,
    pub(crate) limits: RedisLimits,
    pub(crate) queue: Arc<PublishQueue>,
    pub(crate) stats: Arc<BridgeStats>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) backoff: Backoff,
    pub(crate) link: Option<Link>,
    /// No connection is tried before this instant (the back-off after a failure).
    pub(crate) retry_at: Instant,
    /// Whether a connection was ever tried (later ones are reconnections).
    pub(crate) tried: bool,
}

impl Publisher {
    pub(crate) fn run(mut self) {
        let mut batch: Vec<(u16, Vec<u8>)> = Vec::with_capacity(BATCH);
        loop {
            let open = self.queue.take(&mut batch, BATCH, IDLE);
            if !open || self.stop.load(Ordering::Acquire) {
                self.finish(&batch, Tally::default());
                return;
            }
            if batch.is_empty() {
                continue;
            }
            let tally = self.send(&batch);
            self.finish(&batch, tally);
            batch.clear();
        }
    }

    /// Counts a batch's fate and frees its room in the queue.
    fn finish(&self, batch: &[(u16, Vec<u8>)], tally: Tally) {
        let bytes = batch.iter().map(|(_, c)| c.len()).sum();
        let lost = batch.len() - tally.sent;
        self.stats
            .publishes_sent
            .fetch_add(tally.sent as u64, Ordering::Relaxed);
        self.stats
            .publishes_lost
            .fetch_add(lost as u64, Ordering::Relaxed);
        if tally.refused > 0 {
            log::warn!("redis bridge: Redis refused {} publishes", tally.refused);
        }
        self.queue.release(batch.len(), bytes, &self.stats);
    }

    /// Sends a batch on the connection (made if needed and allowed); what came back.
    fn send(&mut self, batch: &[(u16, Vec<u8>)]) -> Tally {
        let fresh = self.link.is_none();
        if fresh && !self.connect() {
            return Tally::default();
        }
        let Some(link) = self.link.as_mut() else {
            return Tally::default();
        };
        let (e, tally) = match exchange(link, batch, self.limits.io_timeout) {
            Ok(t) => {
                self.backoff.answered();
                return t;
            }
            Err(failed) => failed,
        };
        self.link = None;
        let answered = tally.sent + tally.refused;
        if answered > 0 {
            self.backoff.answered();
        }
        if !fresh && answered == 0 && !link::is_timeout(&e) {
            // Probably a stale connection (Redis restarted since the last batch): once more.
            log::info!("redis bridge: publisher connection lost ({e}); sending again on a new one");
            if !self.connect() {
                return tally;
            }
            if let Some(link) = self.link.as_mut() {
                match exchange(link, batch, self.limits.io_timeout) {
                    Ok(t) => {
                        self.backoff.answered();
                        return t;
                    }
                    Err((e, t)) => {
                        self.link = None;
                        self.failed(&e);
                        return t;
                    }
                }
            }
        }
        self.failed(&e);
        tally
    }

    /// Opens a connection unless the back-off forbids it yet. False if there is none.
    fn connect(&mut self) -> bool {
        if Instant::now() < self.retry_at {
            return false;
        }
        if std::mem::replace(&mut self.tried, true) {
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let l = &self.limits;
        match Link::open(&self.target, l.connect_timeout, l.io_timeout, MAX_REPLY) {
            Ok(link) => {
                self.link = Some(link);
                true
            }
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    /// The connection failed: counted, and no new one before the back-off runs out.
    fn failed(&mut self, e: &io::Error) {
        if link::is_timeout(e) {
            self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        let wait = self.backoff.failed();
        self.retry_at = Instant::now() + wait;
        log::warn!(
            "redis bridge: publisher: {e}; publishes are dropped for {wait:?}, then it connects again"
        );
    }
}

/// Writes a pipeline within `io`, then reads all its replies within `io` (a batch takes at most
/// twice the I/O timeout, however slowly Redis trickles). On failure, the error and what had come
/// back.
fn exchange(link: &mut Link, batch: &[(u16, Vec<u8>)], io: Duration) -> Result<Tally, (io::Error, Tally)> {
    let parts: Vec<&[u8]> = batch.iter().map(|(_, c)| c.as_slice()).collect();
    let mut tally = Tally::default();
    link.send(&parts, Instant::now() + io).map_err(|e| (e, tally))?;
    let deadline = Instant::now() + io;
    for _ in batch {
        match link.reply(deadline) {
            Ok(Value::Int(_)) => tally.sent += 1,
            Ok(Value::Error(e)) => {
                log::debug!("redis bridge: PUBLISH refused: {}", String::from_utf8_lossy(&e));
                tally.refused += 1;
            }
            Ok(other) => return Err((link::unexpected(&other), tally)),
            Err(e) => return Err((e, tally)),
        }
    }
    Ok(tally)
}
