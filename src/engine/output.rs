//! Output: the one write path. Messages, pings, pongs and Close frames to a connection are
//! gathered (the cork, for the connection being read) or written at once through its
//! transport; what the kernel does not take is queued, under the per-connection cap and the
//! back-pressure policy; one flush routine writes a queue and says how it went. And the end of
//! a socket: flush, shut the write side, linger, close.

use super::config::Backpressure;
use super::conn::{Mark, Phase};
use super::deadline;
use super::decision::HttpResponse;
use super::error::SendError;
use super::id::ConnId;
use super::memory::{BIG_HOLDER, Kind};
use super::shard::Shard;
use super::transport::write_wire;
use crate::proto::handshake;
use crate::proto::{CloseCode, MessageKind};

/// Messages up to this size sent to the connection being read are gathered into one write.
const CORK_MAX: usize = 16 << 10;
/// Gathered output is written once it would grow past this size (or past the queue cap), so that
/// a handler sending many small messages from one callback is bounded like any other sender.
const CORK_FLUSH: usize = 64 << 10;
/// Buffers larger than this are not kept between compressed sends.
const ZBUF_KEEP: usize = 256 << 10;

/// How a flush of a connection's queue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flushed {
    /// Everything was written.
    Empty,
    /// The socket took what it could; the rest waits for the writable edge.
    Blocked,
    /// The socket failed: the connection is gone.
    Dead,
}

impl Shard {
    /// The slab key of the live connection behind `id`.
    fn lookup(&self, id: ConnId) -> Result<usize, SendError> {
        self.entry(id)
            .map(|_| id.key as usize)
            .ok_or(SendError::UnknownConnection)
    }

    pub(crate) fn send(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        let key = self.lookup(id)?;
        let corked = self.cork.holds(key);
        let conn = &self.conns[key];
        match conn.phase() {
            Phase::Handshaking | Phase::Pending => return Err(SendError::NotOpen),
            Phase::Flushing | Phase::Lingering | Phase::Closed => return Err(SendError::Closing),
            Phase::Open => {}
        }
        let proto = conn.proto.as_ref().ok_or(SendError::NotOpen)?;
        if proto.close_sent() {
            // Checked before the cap: a connection already closing is not closed again.
            return Err(SendError::Closing);
        }
        let cap = self.config.max_queued_bytes;
        let gathered = self.cork.gathered(key);
        if corked
            && gathered > 0
            && (payload.len() > CORK_MAX || gathered + payload.len() > CORK_FLUSH.min(cap))
        {
            // Keep what is gathered small: hand it to the kernel (or to the queue, where the
            // cap applies) before gathering more.
            self.flush_cork(key);
            if self.conns[key].is_closed() {
                return Err(SendError::UnknownConnection);
            }
        }
        if self.conns[key].queue.len() + self.cork.gathered(key) > cap {
            return self.over_cap(key);
        }
        let conn = &mut self.conns[key];
        let proto = conn.proto.as_mut().ok_or(SendError::NotOpen)?;
        if corked && payload.len() <= CORK_MAX {
            let held = proto.held();
            let sent = proto.send_with(kind, payload, self.cork.buf(), &mut self.deflate);
            self.mem.change(Kind::Messages, held, proto.held());
            sent?;
        } else if proto.compresses(payload.len()) {
            let mut frame = std::mem::take(&mut self.zbuf);
            let held = proto.held();
            let sent = proto.send_with(kind, payload, &mut frame, &mut self.deflate);
            self.mem.change(Kind::Messages, held, proto.held());
            if sent.is_ok() {
                self.transmit(key, &frame, &[]);
            }
            frame.clear();
            if frame.capacity() <= ZBUF_KEEP {
                self.zbuf = frame;
            }
            sent?;
        } else {
            let (header, _) = proto.frame_header(kind, payload.len())?;
            self.transmit(key, header.as_bytes(), payload);
        }
        self.stats.messages_out += 1;
        self.stats.bytes_out += payload.len() as u64;
        Ok(())
    }

    /// Applies the back-pressure policy to `key`, whose queue is over its cap.
    pub(super) fn over_cap(&mut self, key: usize) -> Result<(), SendError> {
        match self.config.backpressure {
            Backpressure::Drop => {
                self.stats.backpressure_drops += 1;
                Err(SendError::Dropped)
            }
            Backpressure::Close => {
                self.stats.backpressure_closes += 1;
                let conn = &mut self.conns[key];
                conn.end_with(
                    CloseCode::PolicyViolation,
                    Some("write queue over its cap".into()),
                );
                self.close_key(key, CloseCode::PolicyViolation, "back-pressure");
                Err(SendError::Closing)
            }
        }
    }

    pub(crate) fn ping(&mut self, id: ConnId, payload: &[u8]) -> Result<(), SendError> {
        let key = self.lookup(id)?;
        if self.conns[key].queue.len() + self.cork.gathered(key) > self.config.max_queued_bytes {
            return self.over_cap(key);
        }
        let mut frame = Vec::new();
        let proto = self.conns[key].proto.as_mut().ok_or(SendError::NotOpen)?;
        proto.ping(payload, &mut frame)?;
        self.write_ordered(key, &frame);
        Ok(())
    }

    /// Answers a ping of `key`: gathered with its other output while its socket keeps up;
    /// while its queue waits for the socket, owed at the queue's tail, where the answer to a
    /// later ping replaces it (at most one pong waits in a row).
    pub(super) fn pong(&mut self, key: usize, payload: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(proto) = conn.proto.as_mut() else {
            return;
        };
        if !conn.queue.is_empty() {
            let mut frame = Vec::with_capacity(2 + payload.len());
            if proto.pong(payload, &mut frame).is_ok() {
                conn.queue.owe_pong(&frame, &mut self.mem);
            }
            return;
        }
        if self.cork.holds(key) {
            let _ = proto.pong(payload, self.cork.buf());
            return;
        }
        let mut frame = Vec::with_capacity(2 + payload.len());
        if proto.pong(payload, &mut frame).is_ok() {
            self.transmit(key, &frame, &[]);
        }
    }

    pub(crate) fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let key = self.lookup(id)?;
        let conn = &mut self.conns[key];
        let proto = conn.proto.as_mut().ok_or(SendError::NotOpen)?;
        let mut frame = Vec::new();
        proto.close(code, reason, &mut frame)?;
        self.write_ordered(key, &frame);
        self.set_deadline(key, deadline::close_by(self.now_ms, &self.timeouts));
        Ok(())
    }

    /// Sends a Close frame past the queue cap (best effort) and arms the close timeout.
    pub(super) fn close_key(&mut self, key: usize, code: CloseCode, reason: &str) {
        let mut frame = Vec::new();
        if let Some(proto) = self.conns[key].proto.as_mut()
            && proto.close(code, reason, &mut frame).is_ok()
        {
            self.write_ordered(key, &frame);
        }
        self.set_deadline(key, deadline::close_by(self.now_ms, &self.timeouts));
    }

    /// Fails connection `key` for breaking a limit of this end: its Close frame with `code`
    /// (past the cap: one small frame), nothing more read or delivered, the message it was
    /// sending dropped at once, and the socket closed once the frame is out (within the close
    /// timeout).
    pub(super) fn fail(&mut self, key: usize, code: CloseCode, reason: &'static str) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.end_with(code, Some(reason.into()));
        // Its message, if any, is dropped: no deadline for it any more.
        if let Some(t) = conn.message_timer.take() {
            self.wheel.cancel(t);
        }
        let mut frame = Vec::new();
        if let Some(proto) = conn.proto.as_mut() {
            let held = proto.held();
            let dropped = proto.abort(code, reason, &mut frame);
            self.mem.change(Kind::Messages, held, proto.held());
            let n = dropped.capacity();
            self.node.dispose(dropped, n);
        }
        if !frame.is_empty() {
            self.write_ordered(key, &frame);
        }
        self.flush_then_close(key);
        if !self.cork.holds(key) {
            self.after_io(key);
        }
    }

    /// Writes bytes after whatever was gathered for `key` so far.
    pub(super) fn write_ordered(&mut self, key: usize, bytes: &[u8]) {
        if self.cork.holds(key) {
            self.cork.buf().extend_from_slice(bytes);
        } else {
            self.transmit(key, bytes, &[]);
        }
    }

    /// The write path: `a` then `b` (plaintext) to connection `key`, through its transport at
    /// once if nothing is queued, after what is queued otherwise.
    pub(super) fn transmit(&mut self, key: usize, a: &[u8], b: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_closed() {
            return;
        }
        let queued = !conn.queue.is_empty();
        let res = if !queued {
            conn.transport.write_now(
                &mut conn.socket,
                a,
                b,
                &mut conn.queue,
                &mut self.io,
                &mut self.mem,
            )
        } else {
            conn.queue.push_copy(a, &mut self.mem);
            conn.queue.push_copy(b, &mut self.mem);
            Ok(())
        };
        if res.is_err() {
            return self.kill(key);
        }
        if queued {
            self.flush_later(key);
        } else {
            // Left over from a write made now: the socket blocked.
            conn.mark(Mark::Blocked, !conn.queue.is_empty());
        }
        self.watch_holder(key);
        self.note_room(key);
    }

    /// Tells other threads whether `key`'s queue has room for their sends (`room.rs`): none
    /// past half its cap, room again once it drained to a quarter. A store on a crossing, a
    /// comparison otherwise.
    pub(super) fn note_room(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let cap = self.config.max_queued_bytes;
        let len = conn.queue.len();
        let full = conn.is(Mark::Full);
        let now_full = if full { len > cap / 4 } else { len > cap / 2 };
        if now_full == full {
            return;
        }
        conn.mark(Mark::Full, now_full);
        let open = conn.takes_messages();
        self.node
            .rooms(self.index)
            .publish(key, conn.generation, open, now_full);
        if !now_full {
            self.node.room_made();
        }
    }

    /// Bytes were added behind what waits in `key`'s queue: they go with it, at the writable
    /// edge if the socket blocked, else at the end of this turn. Only a write that found the
    /// socket full marks a connection blocked: a queue that merely waits for the end of the
    /// turn gets no writable edge, and would wait for the peer's next input.
    pub(super) fn flush_later(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.queue.is_empty()
            && !conn.is(Mark::Blocked)
            && !conn.is(Mark::Dirty)
        {
            conn.mark(Mark::Dirty, true);
            self.dirty.push(key);
        }
    }

    /// Writes the wire bytes the transport left in the shard's buffers (TLS records made while
    /// reading, close_notify).
    pub(super) fn write_wire_out(&mut self, key: usize) {
        let wire = self.io.take_wire();
        if !wire.is_empty()
            && let Some(conn) = self.conns.get_mut(key)
            && !conn.is_closed()
        {
            let queued = !conn.queue.is_empty();
            if write_wire(&mut conn.socket, &wire, &mut conn.queue, &mut self.mem).is_err() {
                self.kill(key);
            } else if queued {
                self.flush_later(key);
            } else {
                conn.mark(Mark::Blocked, !conn.queue.is_empty());
            }
        }
        self.io.give_back(wire);
    }

    /// Writes what was gathered for `key`.
    pub(super) fn flush_cork(&mut self, key: usize) {
        if self.cork.gathered(key) == 0 {
            return;
        }
        let out = self.cork.take();
        self.transmit(key, &out, &[]);
        self.cork.restore(out);
    }

    /// The one flush of a connection's queue. A connection whose socket had blocked and whose
    /// queue empties while it may still be sent to is listed for `on_drain`.
    pub(super) fn flush_queue(&mut self, key: usize) -> Flushed {
        let Some(conn) = self.conns.get_mut(key) else {
            return Flushed::Dead;
        };
        if conn.is_closed() {
            return Flushed::Dead;
        }
        let was_blocked = conn.is(Mark::Blocked);
        match conn
            .transport
            .flush(&mut conn.socket, &mut conn.queue, &mut self.io, &mut self.mem)
        {
            Ok(true) => {
                conn.mark(Mark::Blocked, false);
                if was_blocked && conn.takes_messages() {
                    self.drained.push(key);
                }
                self.note_room(key);
                self.after_io(key);
                Flushed::Empty
            }
            Ok(false) => {
                conn.mark(Mark::Blocked, true);
                self.watch_holder(key);
                self.note_room(key);
                Flushed::Blocked
            }
            Err(_) => {
                self.kill(key);
                Flushed::Dead
            }
        }
    }

    /// The socket is writable again: writes its queue.
    pub(super) fn on_writable(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|c| !c.queue.is_empty()) {
            self.flush_queue(key);
        } else if let Some(conn) = self.conns.get_mut(key) {
            conn.mark(Mark::Blocked, false);
        }
    }

    /// Lists `key` among the large holders of memory if it holds much now.
    pub(super) fn watch_holder(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.is(Mark::Big)
            && conn.held() >= BIG_HOLDER
        {
            conn.mark(Mark::Big, true);
            self.big.push(key);
        }
    }

    /// Answers a plain HTTP request (or refuses a handshake) and closes after the answer.
    pub(super) fn respond(&mut self, key: usize, resp: &HttpResponse) {
        let headers: Vec<(&str, &str)> = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if let Err(e) = handshake::write_response(resp.status, &headers, &resp.body, self.cork.buf()) {
            log::error!(
                "shard {}: the handler's HTTP response is invalid: {e}",
                self.index
            );
            let _ = handshake::write_response(500, &[], b"internal error\n", self.cork.buf());
        }
        self.flush_then_close(key);
    }

    /// Answers a connection that is not being read (a deadline passed, a decision came from
    /// another thread, a limit refused it at accept) and closes after the answer.
    pub(super) fn answer_and_close(&mut self, key: usize, resp: &HttpResponse) {
        self.cork.begin(key);
        self.respond(key, resp);
        self.flush_cork(key);
        self.cork.end();
        self.after_io(key);
    }

    /// What is queued for `key` is its last output: close once it is written, within the close
    /// timeout.
    pub(super) fn flush_then_close(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.flush_then_close();
        }
        self.set_deadline(key, deadline::close_by(self.now_ms, &self.timeouts));
    }

    /// After reading or writing: close the socket if the protocol is over and the queue is empty.
    pub(super) fn after_io(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(conn.phase(), Phase::Closed | Phase::Lingering) {
            return;
        }
        let over =
            conn.phase() == Phase::Flushing || conn.proto.as_ref().is_some_and(|p| p.should_close_tcp());
        if !over {
            if conn.proto.as_ref().is_some_and(|p| p.close_sent())
                && let Some(d) = deadline::closing(conn.deadline(), self.now_ms, &self.timeouts)
            {
                // This end started the closing handshake: bound the wait for the reply.
                self.set_deadline(key, d);
            }
            return;
        }
        conn.flush_then_close();
        if !conn.queue.is_empty() {
            return;
        }
        // close_notify before the FIN (TLS); it may have to wait in the queue.
        if self.close_notify(key) {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.is_closed() || !conn.queue.is_empty() {
                return;
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // Close the write side first and wait for the peer's FIN, so that the last bytes
        // (a close frame, an HTTP answer) are not lost to a reset.
        conn.socket.shutdown_write();
        conn.linger();
        self.set_deadline(key, deadline::close_by(self.now_ms, &self.timeouts));
    }

    /// Says close_notify to connection `key` if its transport has it (TLS, once); false for a
    /// plain connection.
    pub(super) fn close_notify(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if !conn.transport.close_notify(&mut self.io) {
            return false;
        }
        self.write_wire_out(key);
        true
    }

    /// The connection is gone (error, peer closed, deadline): removed at the end of the turn.
    pub(super) fn kill(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && conn.kill(&mut self.mem)
        {
            self.dead.push(key);
        }
    }
}
