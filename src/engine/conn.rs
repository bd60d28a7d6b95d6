//! One socket of a shard: its slab entry, and where it is in its life ([`Phase`]).

use std::num::NonZeroU64;

use mio::net::TcpStream;

use super::deadline::Deadline;
use super::queue::WriteQueue;
use super::thin::ThinVec;
use super::topics::Memberships;
use super::wheel::TimerKey;
use crate::proto::{CloseCode, Connection};

/// Where a connection is in its life. The legal moves:
///
/// ```text
///   Handshaking ──101──► Open ──protocol over, bytes queued──► Flushing
///     │  ▲ decided           ▲
///     ▼  │                   │ 101
///   Pending ─────────────────┘  (or the rejection, 503 at the deadline: Flushing)
///        │                 │                                     │ queue empty
///        │ HTTP answer     └──protocol over, queue empty──┐      ▼
///        └──────────────► Flushing ──queue empty──────────┴──► Lingering
///   any ──error, peer gone, deadline──► Closed ◄── peer's FIN ── Lingering
/// ```
///
/// The WebSocket closing handshake itself (Close sent, Close received) is the protocol core's
/// state, inside [`Connection`]; the phases here are the socket's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the request head; no protocol state yet.
    Handshaking,
    /// The request is complete and the handler decides later ([`Decision::Pending`]): nothing
    /// more is read until the decision, the handshake deadline (503), or the client's leaving.
    ///
    /// [`Decision::Pending`]: super::decision::Decision::Pending
    Pending,
    /// Frames flow both ways.
    Open,
    /// The last bytes (an HTTP answer, a final Close frame) are being written; the write side
    /// shuts once the queue is empty.
    Flushing,
    /// Write side shut: input is read and dropped until the peer's FIN or the close deadline,
    /// so that the last bytes are not lost to a reset.
    Lingering,
    /// Gone: the socket is removed at the end of the loop turn.
    Closed,
}

impl Phase {
    /// Whether input is still read and handled (not only drained).
    pub(crate) fn reads(self) -> bool {
        matches!(self, Self::Handshaking | Self::Open)
    }
}

/// The code to report when a connection goes: the peer's close code, or the code this end failed
/// with; and the reason that came with it.
#[derive(Debug)]
pub(crate) struct Ending {
    pub(crate) code: CloseCode,
    pub(crate) reason: Option<Box<str>>,
}

/// A socket of the shard: the connection's slab entry. Its size is what every idle connection
/// costs (with the timer-wheel node), so what is empty while idle is one pointer at most.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) socket: TcpStream,
    pub(crate) phase: Phase,
    pub(crate) generation: u32,
    /// The protocol state; `None` until the handshake succeeded (and for connections that never
    /// opened).
    pub(crate) proto: Option<Connection>,
    /// Bytes of an unfinished frame header, control frame or handshake.
    pub(crate) leftover: ThinVec<u8>,
    pub(crate) queue: WriteQueue,
    pub(crate) timer: Option<(TimerKey, Deadline)>,
    pub(crate) last_read_ms: u64,
    /// When the keep-alive ping was sent, while its answer is awaited: milliseconds on the
    /// shard's clock plus one (see [`Conn::ping_sent_ms`]), so that it fits in 8 bytes.
    ping_sent: Option<NonZeroU64>,
    /// How the connection ended, once that is known (boxed: an open connection pays a pointer).
    pub(crate) ending: Option<Box<Ending>>,
    /// The topics this connection subscribes to (unallocated when none).
    pub(crate) topics: Memberships,
    /// Output scheduling, apart from the lifecycle: the last write did not take everything, so
    /// the queue waits for the writable edge.
    pub(crate) blocked: bool,
    /// Output scheduling: listed in the shard's dirty list, its queue is written at the end of
    /// the loop turn.
    pub(crate) dirty: bool,
    /// The TLS state of a connection accepted on the TLS listener (`None`: plain, one pointer).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Box<super::tls::Session>>,
}

impl Conn {
    pub(crate) fn new(socket: TcpStream, generation: u32, now_ms: u64) -> Self {
        Self {
            socket,
            phase: Phase::Handshaking,
            generation,
            proto: None,
            leftover: ThinVec::new(),
            queue: WriteQueue::default(),
            timer: None,
            last_read_ms: now_ms,
            ping_sent: None,
            ending: None,
            topics: Memberships::new(),
            blocked: false,
            dirty: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// When the keep-alive ping now awaited was sent (ms on the shard's clock).
    pub(crate) fn ping_sent_ms(&self) -> Option<u64> {
        self.ping_sent.map(|t| t.get() - 1)
    }

    /// Records the keep-alive ping sent at `at` (ms), or none awaited.
    pub(crate) fn set_ping_sent_ms(&mut self, at: Option<u64>) {
        self.ping_sent = at.and_then(|t| NonZeroU64::new(t.saturating_add(1)));
    }

    /// Records the code to report on close, and its reason.
    pub(crate) fn end_with(&mut self, code: CloseCode, reason: Option<Box<str>>) {
        self.ending = Some(Box::new(Ending { code, reason }));
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the connection completed its handshake and is not gone: the handler knows it.
    pub(crate) fn is_known(&self) -> bool {
        self.proto.is_some() && !self.is_closed()
    }

    /// Whether messages may still be queued for it: open, and this end has not sent its Close.
    pub(crate) fn takes_messages(&self) -> bool {
        self.phase == Phase::Open && self.proto.as_ref().is_some_and(|p| !p.close_sent())
    }

    /// The deadline currently armed, if any.
    pub(crate) fn deadline(&self) -> Option<Deadline> {
        self.timer.map(|(_, d)| d)
    }

    /// Write what is queued, then close: the answer or the last frame is the last output.
    pub(crate) fn flush_then_close(&mut self) {
        if matches!(self.phase, Phase::Handshaking | Phase::Pending | Phase::Open) {
            self.phase = Phase::Flushing;
        }
    }
}

#[cfg(test)]
mod tests {
    /// What every connection costs in its slab entry: kept small on purpose (an idle connection
    /// is this, a timer-wheel node and nothing on the heap). Grow it only knowingly.
    #[test]
    fn slab_entry_stays_small() {
        use std::mem::size_of;
        // The socket is 4 bytes in a release build (debug builds add a selector id).
        let bound = (180 + size_of::<mio::net::TcpStream>()).next_multiple_of(8);
        let entry = size_of::<super::Conn>();
        assert!(entry <= bound, "Conn is {entry} bytes, over {bound}");
        assert!(size_of::<crate::proto::Connection>() <= 104);
    }
}
