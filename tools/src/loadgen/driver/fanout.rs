//! The fan-out scenario: one publisher (client 0, always on thread 0) at `--rate` messages per
//! second, N subscribers of one topic. Each message carries its sequence number and publish time,
//! so a subscriber measures publish-to-delivery latency and sees a message lost or out of order.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use c10k::proto::{Message, MessageKind};

use super::Driver;
use super::client::Phase;
use super::payload::{fanout_body, parse_fanout_body};
use crate::loadgen::FanoutProtocol;

impl Driver {
    /// Starts the load: the publisher, if this thread has it, publishes from `t0`.
    pub(super) fn start_fanout(&mut self, rate: f64, t0: Instant) {
        self.sending = true;
        if rate > 0.0 && self.publisher().is_some() {
            self.interval = Duration::from_secs_f64(1.0 / rate);
            self.next_send = Some(t0);
        }
    }

    /// Publishes every message whose intended time has come, from `next` on.
    pub(super) fn publish_due(&mut self, mut next: Instant, now: Instant, end: Instant) {
        let Some(key) = self.publisher() else {
            self.next_send = None;
            return;
        };
        while next <= now && next < end {
            self.note_lag(now, next);
            self.publish_next(key, next);
            next += self.interval;
        }
        self.next_send = (next < end).then_some(next);
    }

    /// After the window: waits until every subscriber of this thread got every published message
    /// (the server may have queued a backlog), for at most 30 s.
    pub(super) fn drain_fanout(&mut self) {
        if self.publisher().is_some() {
            self.shared.published.store(self.result.sent, Ordering::Release);
        }
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            let published = self.shared.published.load(Ordering::Acquire);
            let behind = published == u64::MAX
                || self
                    .conns
                    .iter()
                    .any(|(_, c)| c.index != 0 && c.phase == Phase::Open && c.recv_seq < published);
            if !behind {
                return;
            }
            self.turn(Some(Duration::from_millis(50)));
        }
        let published = self.shared.published.load(Ordering::Acquire);
        let late: Vec<(usize, u64)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.index != 0 && c.phase == Phase::Open && c.recv_seq < published)
            .map(|(k, c)| (k, c.recv_seq))
            .collect();
        for (key, got) in late {
            self.fail(
                key,
                format!("got {got} of {published} published messages within 30 s of the end"),
            );
        }
    }

    /// The key of the fan-out publisher, if this thread has it.
    fn publisher(&self) -> Option<usize> {
        self.conns
            .iter()
            .find(|(_, c)| c.index == 0 && c.phase == Phase::Open)
            .map(|(k, _)| k)
    }

    /// Publishes the next fan-out message: sequence number and publish time inside the payload.
    fn publish_next(&mut self, key: usize, at: Instant) {
        let opts = &self.shared.opts;
        let body = fanout_body(
            opts.payload,
            self.result.sent,
            at.duration_since(self.shared.epoch),
        );
        self.msg.clear();
        match opts.fanout_protocol {
            FanoutProtocol::Topics | FanoutProtocol::Offsets => {
                self.msg.extend_from_slice(b"pub ");
                self.msg.extend_from_slice(opts.fanout_topic.as_bytes());
                self.msg.push(b' ');
            }
            FanoutProtocol::Prefix => self.msg.extend_from_slice(b"pub:"),
        }
        self.msg.extend_from_slice(&body);
        let Some(c) = self.conns.get_mut(key) else { return };
        let Some(proto) = c.proto.as_mut() else { return };
        if let Err(e) = proto.send(MessageKind::Text, &self.msg, &mut c.out) {
            return self.fail(key, format!("publish: {e}"));
        }
        self.result.sent += 1;
        self.flush(key);
    }

    /// A message received by a fan-out subscriber.
    pub(super) fn on_fanout(&mut self, key: usize, m: &Message<'_>, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else { return };
        let text = m.as_bytes();
        if !c.subscribed {
            if text == b"sync ready" {
                c.subscribed = true;
            }
            return;
        }
        if c.index == 0 {
            return; // The publisher's own copy (where the server sends it back).
        }
        // With offsets, the offset and a space come first. The answer to the subscription may
        // come after the sync (through a bridge, its history is loaded first).
        if self.shared.opts.fanout_protocol == FanoutProtocol::Offsets {
            if text.starts_with(b"resumed ") {
                return;
            }
            if text.starts_with(b"lost ") {
                let what = format!("told {}", String::from_utf8_lossy(text));
                return self.fail(key, what);
            }
        }
        let text = match self.shared.opts.fanout_protocol {
            FanoutProtocol::Offsets => text
                .iter()
                .position(|&b| b == b' ')
                .map_or(text, |i| &text[i + 1..]),
            _ => text,
        };
        let topic = self.shared.opts.fanout_topic.as_bytes();
        let body = text
            .strip_prefix(topic)
            .and_then(|t| t.strip_prefix(b" ".as_slice()))
            .or_else(|| text.strip_prefix(b"pub:".as_slice()));
        let Some((seq, sent_ns)) = body.and_then(parse_fanout_body) else {
            let what = format!(
                "unexpected fan-out message {:?}",
                String::from_utf8_lossy(&text[..text.len().min(40)])
            );
            return self.fail(key, what);
        };
        if seq < c.recv_seq {
            let what = format!(
                "fan-out message {seq} after {}: out of order or twice",
                c.recv_seq
            );
            self.result.wrong_echoes += 1;
            return self.fail(key, what);
        }
        c.recv_seq = seq + 1;
        if let Some((from, to)) = self.window
            && now >= from
            && now < to
        {
            self.result.messages += 1;
            self.shared.progress[self.thread].set(self.result.messages);
            self.result.bytes += text.len() as u64;
            let sent = self.shared.epoch + Duration::from_nanos(sent_ns);
            let _ = self
                .result
                .latency
                .record((now.saturating_duration_since(sent).as_nanos() as u64).max(1));
        }
    }
}
