//! The rate scenario (open loop): a fixed total rate of sends, spread over the threads and, in
//! turn, over each thread's open connections. Latency counts from each message's intended send
//! time, which corrects for coordinated omission; sends that leave late are counted.

use std::time::{Duration, Instant};

use super::Driver;
use super::client::Phase;
use crate::loadgen::Scenario;

/// The most messages in flight on one connection before a send is refused as an error.
const MAX_RATE_INFLIGHT: usize = 100_000;

impl Driver {
    /// Starts the load: this thread's share of `rate` messages per second, from `t0`.
    pub(super) fn start_rate(&mut self, rate: f64, threads: usize, t0: Instant) {
        self.sending = true;
        let per_thread = rate / threads.max(1) as f64;
        if per_thread > 0.0 && !self.conns.is_empty() {
            self.interval = Duration::from_secs_f64(1.0 / per_thread);
            self.next_send = Some(t0);
        }
    }

    /// Open-loop sends: everything whose intended time has come, round-robin over connections.
    pub(super) fn rate_sends(&mut self, end: Instant) {
        let Some(mut next) = self.next_send else { return };
        let now = Instant::now();
        if self.shared.opts.scenario == Scenario::Fanout {
            return self.publish_due(next, now, end);
        }
        if next > now {
            return;
        }
        // The open connections, listed once (not at every turn: with 10,000 connections that
        // scan would be most of the generator's work).
        if self.rate_keys.is_empty() {
            self.rate_keys = self
                .conns
                .iter()
                .filter(|(_, c)| c.phase == Phase::Open)
                .map(|(k, _)| k)
                .collect();
            if self.rate_keys.is_empty() {
                self.next_send = None;
                return;
            }
        }
        while next <= now && next < end {
            let key = self.rate_keys[self.rr % self.rate_keys.len()];
            self.rr += 1;
            let Some(c) = self.conns.get(key).filter(|c| c.phase == Phase::Open) else {
                // Closed meanwhile (an error was counted): list the open ones again next time.
                self.rate_keys.clear();
                next += self.interval;
                continue;
            };
            if c.inflight.len() < MAX_RATE_INFLIGHT {
                self.note_lag(now, next);
                // Latency counts from the intended time: a late send is the server's (or the
                // generator's) delay too, which is what correcting for coordinated omission means.
                self.send_next(key, next);
            } else {
                self.error("rate too high: 100000 messages in flight on one connection".to_owned());
            }
            next += self.interval;
        }
        self.next_send = (next < end).then_some(next);
    }

    /// Counts a send made more than 1 ms after its intended time.
    pub(super) fn note_lag(&mut self, now: Instant, intended: Instant) {
        let lag = now.saturating_duration_since(intended).as_nanos() as u64;
        self.result.max_lag_ns = self.result.max_lag_ns.max(lag);
        if lag > 1_000_000 {
            self.result.late_sends += 1;
        }
    }
}
