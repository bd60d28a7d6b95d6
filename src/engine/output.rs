//! Output: messages, pings and Close frames to a connection, gathered or written at once, queued
//! past what the kernel takes, under the back-pressure policy; and the end of a socket (flush,
//! shut the write side, linger, close).

use std::io::{self, IoSlice, Read, Write};

use super::config::Backpressure;
use super::conn::Phase;
use super::deadline;
use super::decision::HttpResponse;
use super::error::SendError;
use super::id::ConnId;
use super::shard::Shard;
use crate::proto::handshake;
use crate::proto::{CloseCode, MessageKind};

/// Messages up to this size sent to the connection being read are gathered into one write.
const CORK_MAX: usize = 16 << 10;
/// Gathered output is written once it would grow past this size (or past the queue cap), so that
/// a handler sending many small messages from one callback is bounded like any other sender.
const CORK_FLUSH: usize = 64 << 10;
/// Buffers larger than this are not kept between compressed sends.
const ZBUF_KEEP: usize = 256 << 10;

impl Shard {
    /// The slab key of the live connection behind `id`.
    fn lookup(&self, id: ConnId) -> Result<usize, SendError> {
        self.entry(id)
            .map(|_| id.key as usize)
            .ok_or(SendError::UnknownConnection)
    }

    pub(crate) fn send(&mut self, id: ConnId, kind: MessageKind, payload: &[u8]) -> Result<(), SendError> {
        let key = self.lookup(id)?;
        let corked = self.current == Some(key);
        let conn = &self.conns[key];
        match conn.phase {
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
        if corked
            && !self.tx.is_empty()
            && (payload.len() > CORK_MAX || self.tx.len() + payload.len() > CORK_FLUSH.min(cap))
        {
            // Keep what is gathered small: hand it to the kernel (or to the queue, where the
            // cap applies) before gathering more.
            self.flush_tx(key);
            if self.conns[key].is_closed() {
                return Err(SendError::UnknownConnection);
            }
        }
        let conn = &mut self.conns[key];
        let gathered = if corked { self.tx.len() } else { 0 };
        if conn.queue.len() + gathered > cap {
            return self.over_cap(key);
        }
        let proto = conn.proto.as_mut().ok_or(SendError::NotOpen)?;
        if corked && payload.len() <= CORK_MAX {
            proto.send_with(kind, payload, &mut self.tx, &mut self.deflate)?;
        } else if proto.compresses(payload.len()) {
            let mut frame = std::mem::take(&mut self.zbuf);
            let sent = proto.send_with(kind, payload, &mut frame, &mut self.deflate);
            if sent.is_ok() {
                self.write(key, &frame, &[]);
            }
            frame.clear();
            if frame.capacity() <= ZBUF_KEEP {
                self.zbuf = frame;
            }
            sent?;
        } else {
            let (header, _) = proto.frame_header(kind, payload.len())?;
            self.write(key, header.as_bytes(), payload);
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
        let mut frame = Vec::new();
        let proto = self.conns[key].proto.as_mut().ok_or(SendError::NotOpen)?;
        proto.ping(payload, &mut frame)?;
        self.write_ordered(key, &frame);
        Ok(())
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

    /// Writes bytes after whatever was gathered for `key` so far.
    pub(super) fn write_ordered(&mut self, key: usize, bytes: &[u8]) {
        if self.current == Some(key) {
            self.tx.extend_from_slice(bytes);
        } else {
            self.write(key, bytes, &[]);
        }
    }

    /// Writes `a` then `b` to the connection (encrypted first on a TLS connection).
    pub(super) fn write(&mut self, key: usize, a: &[u8], b: &[u8]) {
        #[cfg(feature = "tls")]
        if self.conns.get(key).is_some_and(|c| c.tls.is_some()) {
            return self.write_tls(key, a, b);
        }
        self.write_raw(key, a, b);
    }

    /// Writes `a` then `b` to the socket if nothing is queued, and queues what the kernel does
    /// not take.
    pub(super) fn write_raw(&mut self, key: usize, a: &[u8], b: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_closed() {
            return;
        }
        if !conn.queue.is_empty() {
            conn.queue.push_copy(a);
            conn.queue.push_copy(b);
            return;
        }
        let written = loop {
            let res = if b.is_empty() {
                conn.socket.write(a)
            } else {
                conn.socket.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            };
            match res {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.kill(key),
            }
        };
        if written < a.len() {
            conn.queue.push_copy(&a[written..]);
            conn.queue.push_copy(b);
        } else {
            conn.queue.push_copy(&b[written - a.len()..]);
        }
        conn.blocked = !conn.queue.is_empty();
    }

    /// Writes what was gathered in `tx` for `key`.
    pub(super) fn flush_tx(&mut self, key: usize) {
        if self.tx.is_empty() {
            return;
        }
        let tx = std::mem::take(&mut self.tx);
        self.write(key, &tx, &[]);
        self.tx = tx;
        self.tx.clear();
    }

    /// The socket is writable again: writes its queue. Returns true if the queue emptied while
    /// the handler may still send: the connection is listed for `on_drain`.
    pub(super) fn on_writable(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        conn.blocked = false;
        if conn.is_closed() || conn.queue.is_empty() {
            return false;
        }
        match conn.queue.flush(&mut conn.socket) {
            Ok(true) => {
                let notify = conn.takes_messages();
                if notify {
                    self.drained.push(key);
                }
                self.after_io(key);
                notify
            }
            Ok(false) => {
                conn.blocked = true;
                false
            }
            Err(_) => {
                self.kill(key);
                false
            }
        }
    }

    /// Answers a plain HTTP request (or refuses a handshake) and closes after the answer.
    pub(super) fn respond(&mut self, key: usize, resp: &HttpResponse) {
        let headers: Vec<(&str, &str)> = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if let Err(e) = handshake::write_response(resp.status, &headers, &resp.body, &mut self.tx) {
            log::error!(
                "shard {}: the handler's HTTP response is invalid: {e}",
                self.index
            );
            let _ = handshake::write_response(500, &[], b"internal error\n", &mut self.tx);
        }
        self.flush_then_close(key);
    }

    /// Answers a connection that is not being read (a deadline passed, a decision came from
    /// another thread) and closes after the answer.
    pub(super) fn answer_and_close(&mut self, key: usize, resp: &HttpResponse) {
        self.current = Some(key);
        self.respond(key, resp);
        self.flush_tx(key);
        self.current = None;
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
        if matches!(conn.phase, Phase::Closed | Phase::Lingering) {
            return;
        }
        let over = conn.phase == Phase::Flushing || conn.proto.as_ref().is_some_and(|p| p.should_close_tcp());
        if !over {
            if conn.proto.as_ref().is_some_and(|p| p.close_sent())
                && let Some(d) = deadline::closing(conn.deadline(), self.now_ms, &self.timeouts)
            {
                // This end started the closing handshake: bound the wait for the reply.
                self.set_deadline(key, d);
            }
            return;
        }
        if !conn.queue.is_empty() {
            conn.phase = Phase::Flushing;
            return;
        }
        #[cfg(feature = "tls")]
        if self.close_notify(key) {
            // close_notify before the FIN; it may have to wait in the queue.
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.is_closed() {
                return;
            }
            if !conn.queue.is_empty() {
                conn.phase = Phase::Flushing;
                return;
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // Close the write side first and wait for the peer's FIN, so that the last bytes
        // (a close frame, an HTTP answer) are not lost to a reset.
        let _ = conn.socket.shutdown(std::net::Shutdown::Write);
        conn.phase = Phase::Lingering;
        self.set_deadline(key, deadline::close_by(self.now_ms, &self.timeouts));
    }

    /// Reads and discards input from a socket whose write side is shut, until the peer closes.
    pub(super) fn linger_read(&mut self, key: usize, scratch: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        loop {
            match conn.socket.read(scratch) {
                Ok(0) => return self.kill(key),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.kill(key),
            }
        }
    }

    /// The connection is gone (error, peer closed, deadline): removed at the end of the turn.
    pub(super) fn kill(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.is_closed()
        {
            conn.phase = Phase::Closed;
            conn.queue.clear();
            self.dead.push(key);
        }
    }
}
