//! Input: the one read loop. A readable socket is read through its transport into the shard's
//! read buffer (plaintext, after the bytes the connection kept from last time); the bytes go to
//! the handshake or to the protocol core, and the resulting events to the handler. What a peer
//! makes the shard hold on the way is charged as it is kept: unfinished input, the message being
//! assembled (and its zlib state), and the per-connection limits apply here: the control-frame
//! rate and the message deadline.

use super::conn::{Mark, Phase};
use super::deadline;
use super::decision::HttpResponse;
use super::guard::Callback;
use super::handler::{Ctx, Handler};
use super::handshake::{Handshake, MAX_EARLY_DATA};
use super::memory::Kind;
use super::proxy::ProxyStep;
use super::shard::{Shard, Timer};
use super::state::App;
use super::stats::{RejectReason, TlsFailure};
use super::transport::Input;
use crate::proto::{CloseCode, Event};

/// Bytes read from one connection before the others get their turn.
pub(super) const READ_BUDGET: usize = 512 << 10;

/// How a read turn of one connection ended.
pub(super) enum ReadEnd {
    /// Drained until the kernel had nothing more (or the connection is gone).
    Done,
    /// A budget ran out with input left: read it again after the others.
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
        let mut budget = READ_BUDGET;
        loop {
            match self.reads(key, scratch, read_closed) {
                Some(ReadEnd::Done) => return ReadEnd::Done,
                Some(ReadEnd::Again) => return ReadEnd::Again,
                None => {}
            }
            let conn = &mut self.conns[key];
            if conn.is(Mark::Resume) {
                // Input left from the last turn comes first.
                conn.mark(Mark::Resume, false);
                let kept = conn.take_input(&mut self.mem);
                scratch[..kept.len()].copy_from_slice(&kept);
                if self.process(app, scratch, key, kept.len()) {
                    return ReadEnd::Again;
                }
                continue;
            }
            let handshaking = conn.transport.handshaking();
            if handshaking {
                if self.tls_steps == 0 {
                    return ReadEnd::Again;
                }
                self.tls_steps -= 1;
            } else if conn.phase() == Phase::Handshaking {
                if self.handshake_steps == 0 {
                    return ReadEnd::Again;
                }
                self.handshake_steps -= 1;
            }
            let kept = conn.input().len();
            scratch[..kept].copy_from_slice(conn.input());
            let input = conn.transport.read(
                &mut conn.socket,
                &mut scratch[kept..],
                &mut self.io,
                &mut self.mem,
            );
            if handshaking && !conn.transport.handshaking() {
                self.stats.tls_handshakes += 1;
                self.stats.tls_resumed += u64::from(conn.transport.resumed());
            }
            // Records the read made (TLS handshake messages, an alert) go out first.
            self.write_wire_out(key);
            let (raw, drained) = match input {
                Input::Blocked => return ReadEnd::Done,
                Input::Failed => {
                    self.kill(key);
                    return ReadEnd::Done;
                }
                Input::Closed { clean } => {
                    // The peer closed its side. After a completed close handshake this is the
                    // expected end; otherwise the connection ends abnormally (1006). On TLS
                    // without close_notify, a truncation attack looks the same.
                    if !clean {
                        self.count_tls(TlsFailure::NoCloseNotify);
                    }
                    self.kill(key);
                    return ReadEnd::Done;
                }
                Input::Refused(why, what) => {
                    self.refused(key, why, &what);
                    return ReadEnd::Done;
                }
                Input::Data {
                    raw,
                    plain,
                    drained,
                    peer_closed,
                } => {
                    let conn = &mut self.conns[key];
                    conn.touch(self.now_ms);
                    if plain > 0 {
                        conn.drop_input(&mut self.mem);
                        if self.process(app, scratch, key, kept + plain) {
                            return ReadEnd::Again;
                        }
                    }
                    if peer_closed {
                        // The peer's close_notify: no more input. Answer it and go, as after a
                        // FIN.
                        self.close_notify(key);
                        self.kill(key);
                        return ReadEnd::Done;
                    }
                    (raw, drained)
                }
            };
            budget = budget.saturating_sub(raw);
            if drained && !read_closed {
                // The socket is drained; the next byte brings a new edge.
                return ReadEnd::Done;
            }
            if budget == 0 {
                return ReadEnd::Again;
            }
        }
    }

    /// Whether connection `key` reads its socket now (`None`), or how its turn ends. What its
    /// phase does instead: nothing once closed; lingering, drain and drop what comes; pending,
    /// read nothing (what the client sends meanwhile waits in the kernel) but drop a client that
    /// left.
    fn reads(&mut self, key: usize, scratch: &mut [u8], read_closed: bool) -> Option<ReadEnd> {
        let Some(conn) = self.conns.get(key) else {
            return Some(ReadEnd::Done);
        };
        match conn.phase() {
            Phase::Closed => Some(ReadEnd::Done),
            Phase::Lingering => Some(self.linger_read(key, scratch)),
            Phase::Pending => {
                if read_closed {
                    self.kill(key);
                }
                Some(ReadEnd::Done)
            }
            Phase::Handshaking | Phase::Open | Phase::Flushing => None,
        }
    }

    /// Handles `scratch[..filled]`, the input of connection `key`. Returns true when it stopped
    /// early to let the other connections have their turn (the shard's allowance for inflating
    /// compressed messages in this turn is spent): the rest is kept, to be handled first at the
    /// connection's next turn.
    pub(super) fn process<H: Handler>(
        &mut self,
        app: &mut App<H>,
        scratch: &mut [u8],
        key: usize,
        filled: usize,
    ) -> bool {
        self.cork.begin(key);
        let mut pos = 0;
        let mut yielded = false;
        while pos < filled {
            let Some(conn) = self.conns.get_mut(key) else {
                break;
            };
            if !conn.phase().reads() {
                pos = filled;
                break;
            }
            let Some(proto) = conn.proto.as_mut() else {
                if conn.is(Mark::Proxied) {
                    match self.read_proxy_header(key, &scratch[pos..filled]) {
                        ProxyStep::Incomplete => break,
                        ProxyStep::Read(n) => pos += n,
                        ProxyStep::Refused => pos = filled,
                    }
                    continue;
                }
                if pos == 0 && self.refuse_untrusted_proxy_header(key, &scratch[..filled]) {
                    pos = filled;
                    continue;
                }
                match self.handshake(app, key, &scratch[pos..filled]) {
                    Handshake::Incomplete => break,
                    // Pending: the request and what follows are kept for the decision, within
                    // bounds.
                    Handshake::Pending(head_len) if filled - pos - head_len > MAX_EARLY_DATA => {
                        *self.stats.rejected.entry(RejectReason::EarlyData).or_default() += 1;
                        let id = self.id(key, &self.conns[key]);
                        self.node.set_pending(id, false);
                        let body = "data sent before the handshake was answered\n";
                        self.respond(key, &HttpResponse::text(400, body));
                        pos = filled;
                    }
                    Handshake::Pending(_) => break,
                    Handshake::Done => pos = filled,
                    Handshake::Open(head_len) => pos += head_len,
                }
                continue;
            };
            let (held, buffered) = (proto.held(), proto.buffered());
            let read = proto.read_limited(
                &mut scratch[pos..filled],
                self.cork.buf(),
                &mut self.deflate,
                self.inflate_left,
            );
            self.mem.change(Kind::Messages, held, proto.held());
            let inflated = proto.buffered().saturating_sub(buffered);
            self.inflate_left = self.inflate_left.saturating_sub(inflated);
            match read {
                Ok(read) => {
                    pos += read.consumed;
                    match read.event {
                        Some(event) => self.dispatch(app, key, event),
                        // The turn's allowance for inflating is spent: the rest waits for the
                        // connection's next turn, after the others'.
                        None if self.inflate_left == 0 && pos < filled => {
                            yielded = true;
                            break;
                        }
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
        let mut resumes = false;
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.is_closed()
            && pos < filled
        {
            conn.keep_input(&scratch[pos..filled], &mut self.mem);
            conn.mark(Mark::Resume, yielded);
            resumes = yielded;
        }
        self.watch_message(key);
        self.watch_holder(key);
        self.flush_cork(key);
        self.cork.end();
        self.after_io(key);
        resumes
    }

    fn dispatch<H: Handler>(&mut self, app: &mut App<H>, key: usize, event: Event<'_>) {
        let Some(id) = self.id_of(key) else { return };
        let (handler, state) = (&mut app.handler, app.states.get(key));
        let conn = Some(key);
        match event {
            Event::Message(msg) => {
                self.stats.messages_in += 1;
                self.stats.bytes_in += msg.as_bytes().len() as u64;
                self.guarded(Callback::Message, conn, Some(id), |shard| {
                    handler.on_message(&mut Ctx { shard }, id, state, msg);
                });
            }
            Event::Ping(payload) => {
                if !self.control_within_rate(key) {
                    return;
                }
                if self.config.protocol.auto_pong {
                    self.pong(key, payload);
                }
                self.guarded(Callback::Ping, conn, Some(id), |shard| {
                    handler.on_ping(&mut Ctx { shard }, id, state, payload);
                });
            }
            Event::Pong(payload) => {
                if !self.control_within_rate(key) {
                    return;
                }
                self.pong_received(key);
                self.guarded(Callback::Pong, conn, Some(id), |shard| {
                    handler.on_pong(&mut Ctx { shard }, id, state, payload);
                });
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

    /// Counts a control frame of `key`; past the rate limit, fails the connection with 1008 and
    /// returns false.
    fn control_within_rate(&mut self, key: usize) -> bool {
        let limit = self.config.control_frame_rate;
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if conn.count_control(limit) {
            return true;
        }
        self.stats.control_rate_closes += 1;
        self.fail(
            key,
            CloseCode::PolicyViolation,
            "control frames over the rate limit",
        );
        false
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
            last_read_ms: conn.last_read_ms(),
            ping_sent_ms: None,
        };
        if let Some(d) = deadline::ponged(conn.deadline(), live, &self.timeouts) {
            self.set_deadline(key, d);
        }
    }

    /// Arms the message deadline of `key` when a message is left unfinished, and disarms it
    /// when none is.
    fn watch_message(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let unfinished = !conn.is_closed() && conn.proto.as_ref().is_some_and(|p| p.in_message());
        match (unfinished, conn.message_timer) {
            (true, None) => {
                let at = self.now_ms + self.config.message_timeout.as_millis() as u64;
                let timer = Timer::Message {
                    key: key as u32,
                    generation: conn.generation,
                };
                conn.message_timer = Some(self.wheel.arm(at, timer));
            }
            (false, Some(t)) => {
                conn.message_timer = None;
                self.wheel.cancel(t);
            }
            _ => {}
        }
    }

    /// The message deadline of `key` passed (unless the connection it was armed for is gone).
    pub(super) fn message_overdue(&mut self, key: usize, generation: u32) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.generation != generation
            || conn.message_timer.take().is_none()
            || conn.is_closed()
            || !conn.proto.as_ref().is_some_and(|p| p.in_message())
        {
            return;
        }
        self.stats.message_timeouts += 1;
        self.fail(key, CloseCode::PolicyViolation, "message not completed in time");
    }

    /// Reads and discards input from a socket whose write side is shut, until the peer closes,
    /// at most a read budget at a time.
    fn linger_read(&mut self, key: usize, scratch: &mut [u8]) -> ReadEnd {
        let Some(conn) = self.conns.get_mut(key) else {
            return ReadEnd::Done;
        };
        let mut budget = READ_BUDGET;
        loop {
            match std::io::Read::read(&mut conn.socket, scratch) {
                Ok(0) => {
                    self.kill(key);
                    return ReadEnd::Done;
                }
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return ReadEnd::Done,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.kill(key);
                    return ReadEnd::Done;
                }
            }
            if budget == 0 {
                return ReadEnd::Again;
            }
        }
    }

    /// The transport refused the input of `key` (TLS): count why, send what it said (an alert,
    /// already queued), close.
    fn refused(&mut self, key: usize, why: TlsFailure, what: &str) {
        if why == TlsFailure::PeerAlert
            && self.conns.get(key).is_some_and(|c| c.transport.handshaking())
            && self.last_tls_log_ms.is_none_or(|t| self.now_ms >= t + 1000)
        {
            // A client refusing the handshake usually refuses the certificate: worth a look.
            self.last_tls_log_ms = Some(self.now_ms);
            log::warn!(
                "shard {}: a client refused the TLS handshake ({what}); check the certificate",
                self.index
            );
        }
        self.tls_failed(key, why, what);
    }

    /// The TLS connection `key` failed for `why`: count it, send what is queued (an alert),
    /// close.
    pub(super) fn tls_failed(&mut self, key: usize, why: TlsFailure, what: &str) {
        self.count_tls(why);
        log::debug!("shard {}: connection {key}: TLS: {what}", self.index);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.transport.fail(&mut self.mem);
        }
        self.flush_then_close(key);
        self.after_io(key);
    }

    pub(super) fn count_tls(&mut self, why: TlsFailure) {
        *self.stats.tls_failures.entry(why).or_default() += 1;
    }
}
