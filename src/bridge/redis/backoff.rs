//! How long the bridge waits before it connects again: capped exponential back-off with jitter.
//!
//! Every attempt after a failure waits: the delay doubles from `min` up to `max`, and each wait
//! is drawn at random between half the delay and the whole of it, so that many nodes that lost
//! the same Redis do not come back at the same instant. The delay goes back to `min` only when a
//! connection has been answered by Redis: a server that accepts and closes (or never answers)
//! keeps the delay growing, so nothing reconnects in a loop.

use std::time::Duration;

/// The back-off of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    delay: Duration,
    rng: u64,
}

impl Backoff {
    /// A back-off from `min` doubling to `max`; `seed` (any bytes; random ones) draws the jitter.
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            delay: min,
            // xorshift needs a state that is not zero.
            rng: seed | 1,
        }
    }

    /// An attempt failed (or a connection died): how long to wait before the next one.
    pub(crate) fn failed(&mut self) -> Duration {
        let delay = self.delay;
        self.delay = (self.delay * 2).min(self.max);
        let half = delay / 2;
        let spread = u64::try_from((delay - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(self.random() % spread.saturating_add(1))
    }

    /// Redis answered on the connection: the next failure waits `min` again.
    pub(crate) fn answered(&mut self) {
        self.delay = self.min;
    }

    /// xorshift64.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(MIN, MAX, 0x1234_5678);
        let mut ceiling = MIN;
        for _ in 0..20 {
            let d = b.failed();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(MAX);
        }
        // Twenty failures in a row wait at least 50 s in all: no storm.
        let mut b = Backoff::new(MIN, MAX, 99);
        let total: Duration = (0..20).map(|_| b.failed()).sum();
        assert!(total >= Duration::from_secs(40), "{total:?}");
    }

    #[test]
    fn backoff_resets_only_when_redis_answered() {
        let mut b = Backoff::new(MIN, MAX, 7);
        for _ in 0..10 {
            b.failed();
        }
        assert!(b.failed() >= MAX / 2);
        b.answered();
        assert!(b.failed() <= MIN);
    }

    #[test]
    fn backoff_jitter_differs_between_nodes() {
        let draws = |seed| {
            let mut b = Backoff::new(MAX, MAX, seed);
            (0..8).map(|_| b.failed()).collect::<Vec<_>>()
        };
        assert_ne!(draws(1), draws(0xdead_beef));
    }
}
