//! The testecho scenario, the classic C10k test: N clients connect on a ramp, and each sends a
//! message after a delay and reads its echo, `rounds` times, then leaves (or, in a coordinated
//! run, waits for the release before it leaves).

use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Driver;
use super::client::Phase;

impl Driver {
    pub(super) fn run_testecho(&mut self, start: Instant) {
        let opts = self.shared.opts.clone();
        let n = opts.connections.max(1);
        let hard_end = start
            + opts.ramp
            + opts.delay * (opts.rounds + 1)
            + opts.connect_timeout
            + Duration::from_secs(30);
        self.sending = true;
        self.window = Some((start, hard_end));
        loop {
            if self.shared.abort.load(Ordering::Acquire) {
                self.to_open.clear();
                self.close_all();
                break;
            }
            if !self.parked.is_empty() && self.shared.released.load(Ordering::Acquire) {
                for (key, index) in std::mem::take(&mut self.parked) {
                    if self.conns.get(key).is_some_and(|c| c.index == index) {
                        self.close(key);
                    }
                }
            }
            let now = Instant::now();
            // Open the clients whose time on the ramp has come.
            while let Some(&i) = self.to_open.front() {
                let at = start + opts.ramp.mul_f64(i as f64 / n as f64);
                if at > now {
                    break;
                }
                self.to_open.pop_front();
                self.open(i);
            }
            // Send for the clients whose delay is over.
            while let Some(Reverse((at, key))) = self.wakeups.peek().copied() {
                if at > now {
                    break;
                }
                self.wakeups.pop();
                if self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.phase == Phase::Open && c.inflight.is_empty())
                {
                    self.send_next(key, now);
                }
            }
            if self.to_open.is_empty() && self.conns.is_empty() {
                break;
            }
            if now >= hard_end {
                let left: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in left {
                    self.fail(key, "client did not finish in time".to_owned());
                }
                break;
            }
            let mut next = hard_end;
            if let Some(&i) = self.to_open.front() {
                next = next.min(start + opts.ramp.mul_f64(i as f64 / n as f64));
            }
            if let Some(Reverse((at, _))) = self.wakeups.peek() {
                next = next.min(*at);
            }
            self.turn(Some(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200)),
            ));
        }
    }

    /// A testecho round trip is over: the client waits for its next round, or has finished.
    pub(super) fn round_trip_done(&mut self, key: usize, now: Instant) {
        let delay = self.shared.opts.delay;
        let Some(c) = self.conns.get_mut(key) else { return };
        c.rounds_left = c.rounds_left.saturating_sub(1);
        if c.rounds_left == 0 {
            self.result.completed_clients += 1;
            if self.shared.coordinated && !self.shared.released.load(Ordering::Acquire) {
                let index = c.index;
                self.parked.push((key, index));
            } else {
                self.close(key);
            }
        } else {
            self.wakeups.push(Reverse((now + delay, key)));
        }
    }
}
