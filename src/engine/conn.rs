//! One socket of a shard: its slab entry, and where it is in its life ([`Phase`]). The phase
//! changes only through the methods here (`pend`, `open`, `flush_then_close`, `linger`, `kill`):
//! the rest of the engine asks, it never assigns.

use std::num::NonZeroU64;

use super::socket::Socket;

use super::deadline::Deadline;
use super::memory::{Kind, Memory};
use super::queue::WriteQueue;
use super::thin::ThinVec;
use super::topics::Memberships;
use super::transport::Transport;
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
    pub(crate) socket: Socket,
    /// How bytes travel on the socket: as they are, or in TLS records.
    pub(crate) transport: Transport,
    phase: Phase,
    pub(crate) generation: u32,
    /// The protocol state; `None` until the handshake succeeded (and for connections that never
    /// opened).
    pub(crate) proto: Option<Connection>,
    /// Bytes of an unfinished frame header, control frame or handshake (charged as
    /// `Kind::Input`: change it through [`Conn::keep_input`] and [`Conn::drop_input`]).
    leftover: ThinVec<u8>,
    pub(crate) queue: WriteQueue,
    pub(crate) timer: Option<(TimerKey, Deadline)>,
    /// The deadline of the message being received, armed while one is unfinished.
    pub(crate) message_timer: Option<TimerKey>,
    /// When the last byte arrived (milliseconds on the shard's clock, the low 48 bits), and the
    /// control frames received in that second (the high 16): see [`Conn::touch`] and
    /// [`Conn::count_control`]. One word for both: every idle connection pays for it.
    last_read: u64,
    /// When the keep-alive ping was sent, while its answer is awaited: milliseconds on the
    /// shard's clock plus one (see [`Conn::ping_sent_ms`]), so that it fits in 8 bytes.
    ping_sent: Option<NonZeroU64>,
    /// How the connection ended, once that is known (boxed: an open connection pays a pointer).
    pub(crate) ending: Option<Box<Ending>>,
    /// The topics this connection subscribes to (unallocated when none).
    pub(crate) topics: Memberships,
    /// Scheduling marks, apart from the lifecycle (see [`Mark`]).
    marks: u8,
}

/// A scheduling mark of a connection, one bit of [`Conn`]'s marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The last write did not take everything: the queue waits for the writable edge.
    Blocked = 1,
    /// Listed in the shard's dirty list: its queue is written at the end of the loop turn.
    Dirty = 2,
    /// Listed among the shard's large holders of memory (see `memory::BIG_HOLDER`).
    Big = 4,
    /// Its kept input is whole input left to handle (a compressed message inflated as much as
    /// a turn allows), not an unfinished frame: it is handled before the socket is read again.
    Resume = 8,
    /// Its queue went past half its cap: other threads are told it has no room (`room.rs`),
    /// until it drains to a quarter.
    Full = 16,
    /// From a trusted sender of the PROXY protocol: its first bytes are a PROXY header, still
    /// to be read (see `proxy.rs`).
    Proxied = 32,
}

/// The bits of [`Conn`]'s `last_read` that hold the time; the others count control frames.
const TIME_BITS: u64 = (1 << 48) - 1;

impl Conn {
    pub(crate) fn new(socket: Socket, transport: Transport, generation: u32, now_ms: u64) -> Self {
        Self {
            socket,
            transport,
            phase: Phase::Handshaking,
            generation,
            proto: None,
            leftover: ThinVec::new(),
            queue: WriteQueue::default(),
            timer: None,
            message_timer: None,
            last_read: now_ms & TIME_BITS,
            ping_sent: None,
            ending: None,
            topics: Memberships::new(),
            marks: 0,
        }
    }

    // ---- the lifecycle: the only places the phase changes ----

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The handler decides later: read nothing until it does.
    pub(crate) fn pend(&mut self) {
        debug_assert_eq!(self.phase, Phase::Handshaking);
        self.phase = Phase::Pending;
    }

    /// The decision came: its request is read again, as if it had just arrived.
    pub(crate) fn resume_handshake(&mut self) {
        debug_assert_eq!(self.phase, Phase::Pending);
        self.phase = Phase::Handshaking;
    }

    /// The 101 was written: frames flow, under `proto`.
    pub(crate) fn open(&mut self, proto: Connection) {
        debug_assert!(matches!(self.phase, Phase::Handshaking));
        self.proto = Some(proto);
        self.phase = Phase::Open;
    }

    /// Write what is queued, then close: the answer or the last frame is the last output.
    pub(crate) fn flush_then_close(&mut self) {
        if matches!(self.phase, Phase::Handshaking | Phase::Pending | Phase::Open) {
            self.phase = Phase::Flushing;
        }
    }

    /// The write side is shut: read and drop input until the peer's FIN.
    pub(crate) fn linger(&mut self) {
        debug_assert!(!self.is_closed());
        self.phase = Phase::Lingering;
    }

    /// The connection is gone: drops its queue (releasing what it held). False if it already was.
    pub(crate) fn kill(&mut self, mem: &mut Memory) -> bool {
        if self.is_closed() {
            return false;
        }
        self.phase = Phase::Closed;
        self.queue.clear(mem);
        true
    }

    // ---- what the rest of the engine asks ----

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

    /// Whether `mark` is set.
    pub(crate) fn is(&self, mark: Mark) -> bool {
        self.marks & mark as u8 != 0
    }

    /// Sets or clears `mark`.
    pub(crate) fn mark(&mut self, mark: Mark, on: bool) {
        if on {
            self.marks |= mark as u8;
        } else {
            self.marks &= !(mark as u8);
        }
    }

    /// When the last byte arrived (ms on the shard's clock).
    pub(crate) fn last_read_ms(&self) -> u64 {
        self.last_read & TIME_BITS
    }

    /// Bytes arrived at `now_ms`. The count of control frames starts again with a new second.
    pub(crate) fn touch(&mut self, now_ms: u64) {
        let now = now_ms & TIME_BITS;
        let count = if now / 1000 == self.last_read_ms() / 1000 {
            self.last_read & !TIME_BITS
        } else {
            0
        };
        self.last_read = count | now;
    }

    /// Counts a control frame (of the bytes that arrived last); false once more than `limit`
    /// arrived within that second of the shard's clock.
    pub(crate) fn count_control(&mut self, limit: u32) -> bool {
        let count = ((self.last_read >> 48) + 1).min(0xffff);
        self.last_read = (count << 48) | self.last_read_ms();
        count <= u64::from(limit)
    }

    // ---- the bytes it holds ----

    /// The unfinished input kept from the last read.
    pub(crate) fn input(&self) -> &[u8] {
        &self.leftover
    }

    /// Keeps `bytes` (appended to what is kept) for the next read.
    pub(crate) fn keep_input(&mut self, bytes: &[u8], mem: &mut Memory) {
        mem.add(Kind::Input, bytes.len());
        self.leftover.extend_from_slice(bytes);
    }

    /// Takes the kept input out (to be read again).
    pub(crate) fn take_input(&mut self, mem: &mut Memory) -> Vec<u8> {
        mem.sub(Kind::Input, self.leftover.len());
        self.leftover.take()
    }

    /// Drops the kept input (an idle connection keeps no buffer).
    pub(crate) fn drop_input(&mut self, mem: &mut Memory) {
        mem.sub(Kind::Input, self.leftover.len());
        self.leftover.clear();
    }

    /// Everything the connection holds now: what the overload manager weighs.
    pub(crate) fn held(&self) -> usize {
        self.queue.owned()
            + self.leftover.len()
            + self.proto.as_ref().map_or(0, Connection::held)
            + self.transport.held()
            + self.topics.len() * super::memory::SUBSCRIPTION_BYTES
    }

    /// Releases everything the connection held (it is being removed).
    pub(crate) fn release(&mut self, mem: &mut Memory) {
        self.queue.clear(mem);
        self.drop_input(mem);
        if let Some(p) = self.proto.as_mut() {
            mem.sub(Kind::Messages, p.held());
        }
        self.transport.release(mem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every connection costs in its slab entry: kept small on purpose (an idle connection
    /// is this, a timer-wheel node and nothing on the heap). Grow it only knowingly.
    #[test]
    fn slab_entry_stays_small() {
        use std::mem::size_of;
        // The socket is 4 bytes in a release build (debug builds add a selector id); a TLS
        // build adds the transport's pointer, a test build the in-memory pipe's.
        let tls = if cfg!(feature = "tls") { 8 } else { 0 };
        let testing = if cfg!(feature = "testing") { 8 } else { 0 };
        let bound = (180 + tls + testing + size_of::<mio::net::TcpStream>()).next_multiple_of(8);
        let entry = size_of::<super::Conn>();
        assert!(entry <= bound, "Conn is {entry} bytes, over {bound}");
        assert!(size_of::<crate::proto::Connection>() <= 104);
    }

    #[test]
    fn control_frames_are_counted_per_second_of_the_clock() {
        let socket = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            Socket::Tcp(mio::net::TcpStream::from_std(s))
        };
        let mut c = Conn::new(socket, Transport::Plain, 1, 0);
        c.touch(5_000);
        for _ in 0..3 {
            assert!(c.count_control(3));
        }
        c.touch(5_999);
        assert_eq!(c.last_read_ms(), 5_999);
        assert!(
            !c.count_control(3),
            "the fourth within one second is over a limit of 3"
        );
        c.touch(6_000);
        assert!(c.count_control(3), "a new second starts a new count");
        // A count that saturates stays over the limit, and leaves the time alone.
        c.touch(7_000);
        for _ in 0..70_000 {
            c.count_control(3);
        }
        assert!(!c.count_control(3));
        assert_eq!(c.last_read_ms(), 7_000);
        c.mark(Mark::Dirty, true);
        c.mark(Mark::Big, true);
        c.mark(Mark::Dirty, false);
        assert!(c.is(Mark::Big) && !c.is(Mark::Dirty) && !c.is(Mark::Blocked));
    }
}
