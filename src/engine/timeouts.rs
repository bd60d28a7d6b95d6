//! What the shard does when a connection's deadline passes: the rules are in
//! [`deadline`](super::deadline); this carries them out (answer 408, ping, drop).

use super::deadline::{self, Deadline, Expiry, Liveness};
use super::decision::HttpResponse;
use super::shard::Shard;
use super::stats::{RejectReason, TlsFailure};

impl Shard {
    /// The timer of connection `key` fired (unless the connection it was armed for is gone).
    pub(super) fn deadline_passed(&mut self, key: usize, generation: u32) {
        let now = self.now_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.generation != generation || conn.is_closed() {
            return;
        }
        let Some((_, passed)) = conn.timer.take() else {
            return;
        };
        let live = Liveness {
            last_read_ms: conn.last_read_ms(),
            ping_sent_ms: conn.ping_sent_ms(),
        };
        let tls_handshaking = conn.transport.handshaking();
        match deadline::expire(passed, live, now, &self.timeouts) {
            Expiry::HandshakeTimeout if tls_handshaking => {
                // Nothing can be said in plain HTTP inside a handshake that did not finish.
                self.count_tls(TlsFailure::HandshakeTimeout);
                log::debug!("shard {}: connection {key}: TLS handshake timed out", self.index);
                self.kill(key);
            }
            Expiry::HandshakeTimeout => {
                *self.stats.rejected.entry(RejectReason::Timeout).or_default() += 1;
                self.answer_and_close(key, &HttpResponse::text(408, "handshake timeout\n"));
            }
            Expiry::DecisionTimeout => {
                *self.stats.rejected.entry(RejectReason::Undecided).or_default() += 1;
                let mut resp = HttpResponse::text(503, "no decision on the handshake in time\n");
                resp.headers.push(("Retry-After".to_owned(), "1".to_owned()));
                conn.drop_input(&mut self.mem);
                let id = self.id(key, &self.conns[key]);
                self.node.set_pending(id, false);
                self.answer_and_close(key, &resp);
            }
            Expiry::CloseTimeout => {
                if conn.phase() != super::conn::Phase::Lingering {
                    self.stats.close_timeouts += 1;
                }
                self.kill(key);
            }
            Expiry::PongTimeout => {
                self.stats.pong_timeouts += 1;
                self.kill(key);
            }
            Expiry::Ping { pong_by } => {
                conn.set_ping_sent_ms(None);
                let mut frame = Vec::new();
                if let Some(proto) = conn.proto.as_mut()
                    && proto.ping(b"", &mut frame).is_ok()
                {
                    conn.set_ping_sent_ms(Some(now));
                    self.stats.pings_sent += 1;
                    self.transmit(key, &frame, &[]);
                    self.set_deadline(key, (pong_by, Deadline::Pong));
                }
            }
            Expiry::Wait { at, deadline } => {
                conn.set_ping_sent_ms(None);
                self.set_deadline(key, (at, deadline));
            }
            Expiry::Idle => conn.set_ping_sent_ms(None),
        }
    }
}
