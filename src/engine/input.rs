//! Input: read a readable socket into the shard's read buffer, hand the bytes to the protocol
//! core (or to the handshake), and the resulting events to the handler.

use std::io::{self, Read};

use super::conn::Phase;
use super::deadline;
use super::handler::{Ctx, Handler};
use super::handshake::Handshake;
use super::shard::Shard;
use super::state::App;
use crate::proto::Event;

/// Bytes read from one connection before the others get their turn.
pub(super) const READ_BUDGET: usize = 512 << 10;

/// How a read turn of one connection ended.
pub(super) enum ReadEnd {
    /// Drained until the kernel had nothing more (or the connection is gone).
    Done,
    /// The read budget ran out with input left: read it again after the others.
    Again,
}

impl Shard {
    /// Reads connection `key` until the socket is drained or its budget is spent, handling
    /// what arrives. `scratch` is the shard's read buffer.
    pub(super) fn on_readable<H: Handler>(
        &mut self,
        app: &mut App<H>,
        scratch: &mut [u8],
        key: usize,
        read_closed: bool,
    ) -> ReadEnd {
        #[cfg(feature = "tls")]
        if self.conns.get(key).is_some_and(|c| c.tls.is_some()) {
            return self.read_tls(app, scratch, key, read_closed);
        }
        let mut budget = READ_BUDGET;
        loop {
            if !self.reads(key, scratch, read_closed) {
                return ReadEnd::Done;
            }
            let conn = &mut self.conns[key];
            let kept = conn.leftover.len();
            scratch[..kept].copy_from_slice(&conn.leftover);
            let space = scratch.len() - kept;
            match conn.socket.read(&mut scratch[kept..]) {
                Ok(0) => {
                    // The peer closed its side. After a completed close handshake this is the
                    // expected end; otherwise the connection ends abnormally (1006).
                    self.kill(key);
                    return ReadEnd::Done;
                }
                Ok(n) => {
                    conn.last_read_ms = self.now_ms;
                    conn.leftover.clear();
                    self.process(app, scratch, key, kept + n);
                    budget = budget.saturating_sub(n);
                    if n < space && !read_closed {
                        // The socket is drained; the next byte brings a new edge.
                        return ReadEnd::Done;
                    }
                    if budget == 0 {
                        return ReadEnd::Again;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::Done,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.kill(key);
                    return ReadEnd::Done;
                }
            }
        }
    }

    /// Whether connection `key` reads its socket now. What its phase does instead: nothing once
    /// closed; lingering, drain and drop what comes; pending, read nothing (what the client sends
    /// meanwhile waits in the kernel) but drop a client that left.
    pub(super) fn reads(&mut self, key: usize, scratch: &mut [u8], read_closed: bool) -> bool {
        let Some(conn) = self.conns.get(key) else {
            return false;
        };
        match conn.phase {
            Phase::Closed => false,
            Phase::Lingering => {
                self.linger_read(key, scratch);
                false
            }
            Phase::Pending => {
                if read_closed {
                    self.kill(key);
                }
                false
            }
            Phase::Handshaking | Phase::Open | Phase::Flushing => true,
        }
    }

    /// Handles `scratch[..filled]`, the input of connection `key`.
    pub(super) fn process<H: Handler>(
        &mut self,
        app: &mut App<H>,
        scratch: &mut [u8],
        key: usize,
        filled: usize,
    ) {
        self.current = Some(key);
        let mut pos = 0;
        while pos < filled {
            let Some(conn) = self.conns.get_mut(key) else {
                break;
            };
            if !conn.phase.reads() {
                pos = filled;
                break;
            }
            let Some(proto) = conn.proto.as_mut() else {
                match self.handshake(app, key, &scratch[pos..filled]) {
                    // Pending: the request and what follows are kept for the decision.
                    Handshake::Incomplete | Handshake::Pending => break,
                    Handshake::Done => pos = filled,
                    Handshake::Open(head_len) => pos += head_len,
                }
                continue;
            };
            match proto.read_with(&mut scratch[pos..filled], &mut self.tx, &mut self.deflate) {
                Ok(read) => {
                    pos += read.consumed;
                    match read.event {
                        Some(event) => self.dispatch(app, key, event),
                        None if read.consumed == 0 => break,
                        None => {}
                    }
                }
                Err(e) => {
                    self.stats.protocol_errors += 1;
                    conn.end_with(e.close_code(), Some(e.reason().into()));
                    log::debug!("shard {}: connection {key}: {e}", self.index);
                    pos = filled;
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.is_closed() && pos < filled {
                conn.leftover.extend_from_slice(&scratch[pos..filled]);
            } else {
                // An idle connection keeps no buffer.
                conn.leftover.clear();
            }
        }
        self.flush_tx(key);
        self.current = None;
        self.after_io(key);
    }

    fn dispatch<H: Handler>(&mut self, app: &mut App<H>, key: usize, event: Event<'_>) {
        let Some(id) = self.id_of(key) else { return };
        let (handler, state) = (&mut app.handler, app.states.get(key));
        match event {
            Event::Message(msg) => {
                self.stats.messages_in += 1;
                self.stats.bytes_in += msg.as_bytes().len() as u64;
                handler.on_message(&mut Ctx { shard: self }, id, state, msg);
            }
            Event::Ping(payload) => handler.on_ping(&mut Ctx { shard: self }, id, state, payload),
            Event::Pong(payload) => {
                self.pong_received(key);
                handler.on_pong(&mut Ctx { shard: self }, id, state, payload);
            }
            Event::Close(frame) => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.end_with(
                        frame.code,
                        (!frame.reason.is_empty()).then(|| frame.reason.into()),
                    );
                }
            }
        }
    }

    /// A pong ends the wait for it.
    fn pong_received(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(sent) = conn.ping_sent_ms() {
            conn.set_ping_sent_ms(None);
            self.stats.pong_rtt.record(self.now_ms.saturating_sub(sent));
        }
        let live = deadline::Liveness {
            last_read_ms: conn.last_read_ms,
            ping_sent_ms: None,
        };
        if let Some(d) = deadline::ponged(conn.deadline(), live, &self.timeouts) {
            self.set_deadline(key, d);
        }
    }
}
