//! One socket of a shard: its slab entry, and where it is in its life ([`Phase`]).

use mio::net::TcpStream;

use super::deadline::Deadline;
use super::queue::WriteQueue;
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

/// A socket of the shard: the connection's slab entry.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) socket: TcpStream,
    pub(crate) phase: Phase,
    pub(crate) generation: u32,
    /// The protocol state; `None` until the handshake succeeded (and for connections that never
    /// opened).
    pub(crate) proto: Option<Connection>,
    /// Bytes of an unfinished frame header, control frame or handshake.
    pub(crate) leftover: Vec<u8>,
    pub(crate) queue: WriteQueue,
    pub(crate) timer: Option<(TimerKey, Deadline)>,
    pub(crate) last_read_ms: u64,
    /// When the keep-alive ping was sent, while its answer is awaited.
    pub(crate) ping_sent_ms: Option<u64>,
    /// The code to report: the peer's close code, or the code this end failed with.
    pub(crate) close_code: Option<CloseCode>,
    pub(crate) close_reason: Option<Box<str>>,
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
            leftover: Vec::new(),
            queue: WriteQueue::default(),
            timer: None,
            last_read_ms: now_ms,
            ping_sent_ms: None,
            close_code: None,
            close_reason: None,
            topics: Memberships::new(),
            blocked: false,
            dirty: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
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
