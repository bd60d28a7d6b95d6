//! The echo scenario (closed loop): every connection keeps `in_flight` messages in flight, and
//! each echo, checked byte for byte, sends the next. The echo checks and the sends serve the
//! rate, hold and testecho scenarios too.

use std::sync::Arc;
use std::time::Instant;

use c10k::proto::{Message, MessageKind};

use super::Driver;
use super::payload::body;
use crate::loadgen::Scenario;

impl Driver {
    /// Starts the load: `in_flight` messages on every connection.
    pub(super) fn start_echo(&mut self, in_flight: usize) {
        self.sending = true;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            for _ in 0..in_flight.max(1) {
                self.send_next(key, Instant::now());
            }
        }
    }

    pub(super) fn check_echo(&mut self, key: usize, m: &Message<'_>) -> bool {
        let opts = &self.shared.opts;
        let binary = opts.binary;
        let len = opts.payload;
        let Some(c) = self.conns.get(key) else {
            return false;
        };
        let seq = c.recv_seq;
        let kind_ok = (m.kind() == MessageKind::Binary) == binary;
        body(&mut self.msg, opts, seq);
        if !kind_ok || m.as_bytes() != self.msg.as_slice() {
            self.result.wrong_echoes += 1;
            let got = m.as_bytes();
            let what = format!(
                "wrong echo on client {} (message {seq}): expected {} bytes {:?}, got {} bytes {:?} ({:?})",
                c.index,
                len,
                String::from_utf8_lossy(&self.msg[..len.min(24)]),
                got.len(),
                String::from_utf8_lossy(&got[..got.len().min(24)]),
                m.kind()
            );
            self.fail(key, what);
            return false;
        }
        true
    }

    pub(super) fn on_echo(&mut self, key: usize, len: usize, now: Instant) {
        // Per message: borrow the options through the shared Arc, never clone them.
        let shared = Arc::clone(&self.shared);
        let opts = &shared.opts;
        let Some(c) = self.conns.get_mut(key) else { return };
        c.recv_seq += 1;
        let Some(sent) = c.inflight.pop_front() else {
            return self.fail(key, "an echo for a message that was not sent".to_owned());
        };
        self.unanswered -= 1;
        if let Some((from, to)) = self.window
            && now >= from
            && now < to
        {
            self.result.messages += 1;
            self.shared.progress[self.thread].set(self.result.messages);
            self.result.bytes += len as u64;
            let _ = self
                .result
                .latency
                .record((now.saturating_duration_since(sent).as_nanos() as u64).max(1));
        }
        match opts.scenario {
            Scenario::Echo if self.sending => self.send_next(key, now),
            Scenario::Hold => c.subscribed = true,
            Scenario::TestEcho => self.round_trip_done(key, now),
            _ => {}
        }
    }

    /// Sends the next message of `key`, recording `at` as its send time.
    pub(super) fn send_next(&mut self, key: usize, at: Instant) {
        let opts = &self.shared.opts;
        let binary = opts.binary;
        let Some(c) = self.conns.get_mut(key) else { return };
        let Some(proto) = c.proto.as_mut() else { return };
        body(&mut self.msg, opts, c.next_seq);
        let kind = if binary {
            MessageKind::Binary
        } else {
            MessageKind::Text
        };
        if let Err(e) = proto.send_with(kind, &self.msg, &mut c.out, &mut self.pool) {
            return self.fail(key, format!("send: {e}"));
        }
        c.next_seq += 1;
        c.inflight.push_back(at);
        self.unanswered += 1;
        self.result.sent += 1;
        self.flush(key);
    }
}
