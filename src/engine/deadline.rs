//! A connection's deadlines as pure functions of its state and the time: which deadline it
//! waits for, and what happens when that deadline passes. No clock is read here; the shard
//! passes `now` (milliseconds since it started), so the rules are tested with a virtual clock.
//!
//! ```text
//!   accept ──► Handshake ──101──► FirstPing ── ½ to 1 interval after the open: ping ──┐
//!               │   │ pending        ▲                                                 ▼
//!               │   └► Decision ─101─┘                 Keepalive ── silent a whole ──► Pong
//!               │ passed: 408 (Decision passed: 503)       ▲        interval: ping     │
//!               ▼                                          └──── pong, or any input ───┤
//!             (close)                   passed with no byte since the ping: drop (1006) ┘
//!   close sent / last bytes ──► Closing ── passed: drop
//! ```

use std::time::Duration;

use super::config::ServerConfig;

/// Which deadline a connection's timer stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// The request head must be complete by then.
    Handshake,
    /// The handler's decision on a complete request (left pending) must come by then: the same
    /// instant as the handshake's deadline, which still bounds the whole handshake.
    Decision,
    /// The first keep-alive ping of a new connection, drawn early in its first interval: sent
    /// then, whatever arrived since the open.
    FirstPing,
    /// Ping the peer if it stays silent until then.
    Keepalive,
    /// The answer to a ping (or any byte) must arrive by then.
    Pong,
    /// The closing handshake (or the flush of the last bytes) must be over by then.
    Closing,
}

/// The timeouts of a connection, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) handshake: u64,
    /// `None`: no keep-alive pings.
    pub(crate) ping_interval: Option<u64>,
    pub(crate) pong: u64,
    pub(crate) close: u64,
}

impl Timeouts {
    pub(crate) fn of(config: &ServerConfig) -> Self {
        let ms = |d: Duration| d.as_millis() as u64;
        Self {
            handshake: ms(config.handshake_timeout),
            ping_interval: config.ping_interval.map(ms),
            pong: ms(config.pong_timeout),
            close: ms(config.close_timeout),
        }
    }
}

/// What the keep-alive rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Liveness {
    /// When the last byte arrived.
    pub(crate) last_read_ms: u64,
    /// When the unanswered keep-alive ping was sent, if one is.
    pub(crate) ping_sent_ms: Option<u64>,
}

/// What to do once a deadline has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No complete request head in time: answer 408 and close.
    HandshakeTimeout,
    /// The request was complete, but no decision on it came in time: answer 503 and close.
    DecisionTimeout,
    /// No byte at all since the ping: the peer is gone; drop the connection (1006).
    PongTimeout,
    /// The closing handshake or the final flush took too long: drop the connection.
    CloseTimeout,
    /// Silent for a whole interval: send a ping now, then wait for the answer until `pong_by`.
    Ping { pong_by: u64 },
    /// Input arrived meanwhile: wait for `deadline` again, until `at`.
    Wait { at: u64, deadline: Deadline },
    /// Nothing to wait for (pings are off).
    Idle,
}

/// What passing `deadline` at `now` means for a connection in state `live`.
pub(crate) fn expire(deadline: Deadline, live: Liveness, now: u64, t: &Timeouts) -> Expiry {
    match deadline {
        Deadline::Handshake => Expiry::HandshakeTimeout,
        Deadline::Decision => Expiry::DecisionTimeout,
        Deadline::Closing => Expiry::CloseTimeout,
        Deadline::FirstPing => match t.ping_interval {
            None => Expiry::Idle,
            Some(_) => Expiry::Ping {
                pong_by: now + t.pong,
            },
        },
        Deadline::Pong if live.ping_sent_ms.is_some_and(|sent| live.last_read_ms <= sent) => {
            Expiry::PongTimeout
        }
        Deadline::Pong | Deadline::Keepalive => match t.ping_interval {
            None => Expiry::Idle,
            Some(interval) if now >= live.last_read_ms + interval => Expiry::Ping {
                pong_by: now + t.pong,
            },
            Some(interval) => Expiry::Wait {
                at: live.last_read_ms + interval,
                deadline: Deadline::Keepalive,
            },
        },
    }
}

/// The first deadline of a new connection: its handshake, `jitter` later than the timeout.
pub(crate) fn accepted(now: u64, t: &Timeouts, jitter: u64) -> (u64, Deadline) {
    (now + t.handshake + jitter, Deadline::Handshake)
}

/// The handler left a complete request pending: the handshake's deadline now waits for the
/// decision (same instant, another answer when it passes).
pub(crate) fn pending(current: Option<Deadline>) -> Option<Deadline> {
    match current {
        Some(Deadline::Handshake) => Some(Deadline::Decision),
        other => other,
    }
}

/// The deadline after the 101: the first ping, or none. It comes `phase` (drawn at random per
/// connection, up to half the ping interval; taken modulo the interval) before a whole interval,
/// so between half an interval and an interval after the open: the pings of connections opened
/// together (a million in a minute, a fleet reconnecting) spread over half an interval or more
/// instead of following in a burst, and stay spread, since each later ping comes an interval
/// after the last input. A first ping a little early costs a few bytes; one later than the
/// interval could cost the connection (a load balancer's idle timeout).
pub(crate) fn opened(now: u64, t: &Timeouts, phase: u64) -> Option<(u64, Deadline)> {
    t.ping_interval
        .map(|interval| (now + interval - phase % interval.max(1), Deadline::FirstPing))
}

/// A pong arrived while waiting for `current`: a connection that was waiting for its pong is
/// back to keep-alive, pinged again after a whole interval of silence (a pong timeout longer
/// than the interval must not stretch the silence between pings past a load balancer's idle
/// timeout). `None`: keep the current deadline.
pub(crate) fn ponged(current: Option<Deadline>, live: Liveness, t: &Timeouts) -> Option<(u64, Deadline)> {
    match (current, t.ping_interval) {
        (Some(Deadline::Pong), Some(interval)) => Some((live.last_read_ms + interval, Deadline::Keepalive)),
        _ => None,
    }
}

/// The deadline of the closing handshake a graceful drain starts at `now`: the peer may answer
/// until the drain ends at `drain_end` (the operator's budget for the whole drain, which a
/// million closes on a busy machine can need), and has at least the close timeout.
pub(crate) fn drain_close_by(now: u64, drain_end: u64, t: &Timeouts) -> (u64, Deadline) {
    (drain_end.max(now + t.close), Deadline::Closing)
}

/// The deadline of a closing step that starts at `now`: a Close frame sent, the last bytes
/// queued, the write side shut.
pub(crate) fn close_by(now: u64, t: &Timeouts) -> (u64, Deadline) {
    (now + t.close, Deadline::Closing)
}

/// The protocol noticed at `now` that this end has sent its Close frame: the deadline of the
/// wait for the reply, unless a closing deadline is running already.
pub(crate) fn closing(current: Option<Deadline>, now: u64, t: &Timeouts) -> Option<(u64, Deadline)> {
    (current != Some(Deadline::Closing)).then(|| close_by(now, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        handshake: 10_000,
        ping_interval: Some(30_000),
        pong: 5_000,
        close: 2_000,
    };

    fn live(last_read_ms: u64, ping_sent_ms: Option<u64>) -> Liveness {
        Liveness {
            last_read_ms,
            ping_sent_ms,
        }
    }

    #[test]
    fn a_handshake_that_outlives_its_deadline_is_answered_408() {
        assert_eq!(accepted(100, &T, 7), (10_107, Deadline::Handshake));
        assert_eq!(
            expire(Deadline::Handshake, live(100, None), 10_107, &T),
            Expiry::HandshakeTimeout
        );
    }

    #[test]
    fn a_pending_decision_keeps_the_handshake_deadline_and_answers_503() {
        let (at, d) = accepted(0, &T, 0);
        let d = pending(Some(d)).unwrap();
        assert_eq!(d, Deadline::Decision);
        assert_eq!(expire(d, live(0, None), at, &T), Expiry::DecisionTimeout);
        // Only a handshake deadline turns into a decision's.
        assert_eq!(pending(Some(Deadline::Closing)), Some(Deadline::Closing));
    }

    #[test]
    fn a_silent_connection_is_pinged_after_one_interval_then_dropped_without_answer() {
        let (at, d) = opened(0, &T, 0).unwrap();
        assert_eq!((at, d), (30_000, Deadline::FirstPing));
        // Silent for the whole interval: ping, wait for the pong.
        let Expiry::Ping { pong_by } = expire(d, live(0, None), at, &T) else {
            panic!("expected a ping");
        };
        assert_eq!(pong_by, 35_000);
        // Nothing came back by the pong deadline: the peer is gone.
        assert_eq!(
            expire(Deadline::Pong, live(0, Some(30_000)), pong_by, &T),
            Expiry::PongTimeout
        );
    }

    #[test]
    fn input_after_the_ping_keeps_the_connection_and_restarts_the_interval() {
        // A message (not a pong) arrived at 31 s, after the ping at 30 s.
        let e = expire(Deadline::Pong, live(31_000, Some(30_000)), 35_000, &T);
        assert_eq!(
            e,
            Expiry::Wait {
                at: 61_000,
                deadline: Deadline::Keepalive
            }
        );
    }

    #[test]
    fn a_connection_with_recent_input_is_not_pinged() {
        let e = expire(Deadline::Keepalive, live(20_000, None), 30_000, &T);
        assert_eq!(
            e,
            Expiry::Wait {
                at: 50_000,
                deadline: Deadline::Keepalive
            }
        );
    }

    #[test]
    fn a_pong_returns_to_keepalive_counted_from_the_last_input() {
        let after = ponged(Some(Deadline::Pong), live(30_400, None), &T);
        assert_eq!(after, Some((60_400, Deadline::Keepalive)));
        // A pong nobody waited for changes nothing.
        assert_eq!(ponged(Some(Deadline::Keepalive), live(30_400, None), &T), None);
    }

    #[test]
    fn without_pings_an_open_connection_has_no_deadline() {
        let t = Timeouts {
            ping_interval: None,
            ..T
        };
        assert_eq!(opened(0, &t, 7), None);
        assert_eq!(
            expire(Deadline::Keepalive, live(0, None), 99_000, &t),
            Expiry::Idle
        );
        assert_eq!(ponged(Some(Deadline::Pong), live(0, None), &t), None);
    }

    #[test]
    fn the_close_deadline_is_armed_once_and_then_drops() {
        assert_eq!(closing(None, 1_000, &T), Some((3_000, Deadline::Closing)));
        assert_eq!(
            closing(Some(Deadline::Keepalive), 1_000, &T),
            Some((3_000, Deadline::Closing))
        );
        assert_eq!(closing(Some(Deadline::Closing), 2_500, &T), None);
        assert_eq!(
            expire(Deadline::Closing, live(0, None), 3_000, &T),
            Expiry::CloseTimeout
        );
    }

    #[test]
    fn the_first_ping_falls_in_the_second_half_of_the_first_interval_never_after_it() {
        let first = |now, phase| {
            let (at, d) = opened(now, &T, phase).unwrap();
            // When it fires the connection is pinged, even if input came since the open (at
            // the shard's start too: no time before it is needed).
            assert_eq!(
                expire(d, live(now + 1, None), at, &T),
                Expiry::Ping { pong_by: at + 5_000 }
            );
            at
        };
        assert_eq!(first(100_000, 0), 130_000);
        assert_eq!(first(100_000, 15_000), 115_000);
        assert_eq!(first(100_000, 45_000), 115_000);
        // Phases drawn over half an interval put the pings of a burst all over its second half.
        let firsts: Vec<u64> = (0..=15).map(|i| first(100_000, i * 1_000)).collect();
        assert!(firsts.iter().all(|at| (115_000..=130_000).contains(at)));
        assert_eq!(firsts.iter().max(), Some(&130_000));
        assert_eq!(firsts.iter().min(), Some(&115_000));
        assert_eq!(first(10, 15_000), 15_010);
    }

    #[test]
    fn a_drain_lets_the_close_take_until_its_end_and_never_less_than_the_close_timeout() {
        // The drain ends long after the close timeout: the peer has until then.
        assert_eq!(drain_close_by(1_000, 60_000, &T), (60_000, Deadline::Closing));
        // A drain that ends sooner (or is over) still leaves the close timeout.
        assert_eq!(drain_close_by(1_000, 1_500, &T), (3_000, Deadline::Closing));
    }
}
