//! Accepting sockets and the opening handshake: parse the request head, let the handler decide,
//! answer 101 (negotiating permessage-deflate) or an HTTP status, open the connection.

use std::any::Any;
use std::io;
use std::net::SocketAddr;

use mio::Token;

use super::conn::{Conn, Mark, Phase};
use super::deadline;
use super::decision::{Decision, HttpResponse};
use super::guard::Callback;
use super::handler::{Ctx, Handler};
use super::id::ConnId;
use super::inbox::DecisionOutcome;
use super::shard::{Shard, Timer};
use super::socket::Socket;
use super::state::App;
use super::stats::RejectReason;
use super::sys;
use super::transport::Transport;
use crate::proto::handshake::{self, Accept, Request};
use crate::proto::{self, Connection, DeflateParams};

/// How a handshake attempt ended.
pub(super) enum Handshake {
    /// The request head is not complete yet: keep the bytes.
    Incomplete,
    /// Answered (rejection, error, plain HTTP): the socket closes after the answer.
    Done,
    /// Accepted; frames start after this many bytes.
    Open(usize),
    /// The handler decides later: keep the request (this many bytes) and what follows, read
    /// nothing more.
    Pending(usize),
}

/// Bytes that may follow a request left pending (frames a client sent before the answer, which
/// RFC 6455 section 4.1 says it must wait for): kept for the decision, and past this the
/// request is answered 400.
pub(super) const MAX_EARLY_DATA: usize = 16 << 10;

impl Shard {
    /// Accepts every pending connection of the plain listener, or of the TLS one if `tls`.
    pub(super) fn accept(&mut self, tls: bool) {
        if self.accept_paused || self.overloaded_since.is_some() || self.draining {
            return;
        }
        loop {
            if self.accepts_left == 0 {
                // The rest wait in the backlog for the next turn.
                self.accept_more |= if tls { 2 } else { 1 };
                return;
            }
            let listener = if tls { &self.tls_listener } else { &self.listener };
            let Some(listener) = listener.as_ref() else {
                return;
            };
            self.accepts_left -= 1;
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.add(Socket::Tcp(stream), peer, tls);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if sys::is_per_connection_accept_error(&e) => self.stats.accept_errors += 1,
                Err(e) => return self.pause_accepting(&e),
            }
        }
    }

    /// Out of descriptors (or worse): the pending connection stays in the backlog. Stop
    /// accepting for a while instead of spinning on it.
    fn pause_accepting(&mut self, e: &io::Error) {
        self.stats.accept_errors += 1;
        self.stats.accept_pauses += 1;
        if self.last_accept_log_ms.is_none_or(|t| self.now_ms >= t + 1000) {
            self.last_accept_log_ms = Some(self.now_ms);
            let kind = if sys::is_resource_exhaustion(e) {
                "resources exhausted"
            } else {
                "error"
            };
            log::warn!(
                "shard {}: accept {kind} ({e}); pausing accepts for {:?} ({} pauses so far)",
                self.index,
                self.config.accept_backoff,
                self.stats.accept_pauses
            );
        }
        self.accept_paused = true;
        let at = self.now_ms + self.config.accept_backoff.as_millis() as u64;
        self.accept_timer = Some(self.wheel.arm(at, Timer::AcceptResume));
    }

    /// The pause after running out of descriptors is over.
    pub(super) fn resume_accepting(&mut self) {
        self.accept_timer = None;
        self.accept_paused = false;
        self.accept(false);
        self.accept(true);
    }

    /// Takes an accepted socket in: a new connection in its handshake, or, past a limit, one
    /// that is answered 503 at once (closed at once on the TLS listener, where no HTTP can be
    /// said before a TLS handshake).
    pub(super) fn add(&mut self, mut socket: Socket, peer: SocketAddr, tls: bool) -> Option<usize> {
        // From a trusted sender of the PROXY protocol (plain listener only), the client's
        // address is known from its header: the per-address limit is applied then.
        let proxied = !tls && self.expects_proxy_header(peer.ip());
        let refused = if self.stats.handshaking as usize >= self.config.max_handshakes {
            Some((
                RejectReason::Busy,
                "server busy: too many handshakes in progress\n",
            ))
        } else if !proxied && !self.node.admit(peer.ip()) {
            Some((
                RejectReason::AddressLimit,
                "too many connections from your address\n",
            ))
        } else {
            None
        };
        let admitted = refused.is_none() && !proxied;
        if let Some((why, _)) = refused
            && tls
        {
            *self.stats.rejected.entry(why).or_default() += 1;
            return None;
        }
        let transport = match self.transport_for(tls) {
            Ok(t) => t,
            Err(e) => {
                log::error!("shard {}: cannot start a TLS session: {e}", self.index);
                self.forget_address(admitted, peer);
                return None;
            }
        };
        // TCP_NODELAY comes from the listener (see `sys::listener`).
        let key = self.conns.vacant_key();
        if let Err(e) = socket.register(&self.registry, Token(key)) {
            log::warn!("shard {}: cannot register a connection: {e}", self.index);
            self.forget_address(admitted, peer);
            return None;
        }
        let generation = self.next_generation();
        transport.charge(&mut self.mem);
        self.conns
            .insert(Conn::new(socket, transport, generation, self.now_ms));
        self.node.rooms(self.index).publish(key, generation, false, false);
        if admitted && self.node.limits_addresses() {
            self.addresses.insert(key, peer.ip());
        }
        if proxied && refused.is_none() {
            self.conns[key].mark(Mark::Proxied, true);
        }
        let jitter = self.jitter(self.timeouts.handshake);
        self.set_deadline(key, deadline::accepted(self.now_ms, &self.timeouts, jitter));
        self.stats.accepted += 1;
        self.stats.handshaking += 1;
        if let Some((why, body)) = refused {
            *self.stats.rejected.entry(why).or_default() += 1;
            let mut resp = HttpResponse::text(503, body);
            resp.headers.push(("Retry-After".to_owned(), "1".to_owned()));
            self.answer_and_close(key, &resp);
        }
        Some(key)
    }

    /// The transport of a socket accepted on the plain listener, or on the TLS one if `tls`.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    fn transport_for(&self, tls: bool) -> Result<Transport, String> {
        #[cfg(feature = "tls")]
        return Transport::accepted(self.config.tls.as_deref().filter(|_| tls));
        #[cfg(not(feature = "tls"))]
        Ok(Transport::Plain)
    }

    /// A socket admitted for its address did not become a connection after all.
    fn forget_address(&mut self, admitted: bool, peer: SocketAddr) {
        if admitted {
            self.node.release(peer.ip());
        }
    }

    /// Handles the start of `input`, the bytes of connection `key` in its handshake.
    pub(super) fn handshake<H: Handler>(&mut self, app: &mut App<H>, key: usize, input: &[u8]) -> Handshake {
        let mut req = match handshake::parse_request(input, &self.config.head_limits) {
            Ok(None) => return Handshake::Incomplete,
            Ok(Some(req)) => req,
            Err(e) => {
                *self.stats.rejected.entry(RejectReason::of(&e)).or_default() += 1;
                handshake::write_error_response(&e, self.cork.buf());
                self.flush_then_close(key);
                return Handshake::Done;
            }
        };
        req.set_client_addr(self.client_addr_of(key));
        if !req.is_websocket() {
            self.stats.http_requests += 1;
            let (handler, id) = (&mut app.handler, self.id(key, &self.conns[key]));
            // A panic was answered 500 already.
            if let Some(resp) = self.guarded(Callback::Http, Some(key), Some(id), |shard| {
                handler.on_http(&mut Ctx { shard }, &req)
            }) {
                self.respond(key, &resp);
            }
            return Handshake::Done;
        }
        if self.lame_duck {
            *self.stats.rejected.entry(RejectReason::Draining).or_default() += 1;
            let mut resp = HttpResponse::text(503, "server shutting down\n");
            resp.headers.push(("Retry-After".to_owned(), "1".to_owned()));
            self.respond(key, &resp);
            return Handshake::Done;
        }
        let id = self.id(key, &self.conns[key]);
        // The handler may hand the handshake to another thread before it returns: from then on
        // the handshake waits for a decision, as `ServerHandle::is_pending` says there.
        self.node.set_pending(id, true);
        let handler = &mut app.handler;
        let decision = self.guarded(Callback::Handshake, Some(key), Some(id), |shard| {
            handler.on_handshake(&mut Ctx { shard }, id, &req)
        });
        if !matches!(decision, Some(Decision::Pending)) {
            self.node.set_pending(id, false);
        }
        match decision {
            Some(decision) => self.apply(app, key, &req, decision),
            // Answered 500 already.
            None => Handshake::Done,
        }
    }

    /// Carries out the handler's decision on the request of connection `key`.
    fn apply<H: Handler>(
        &mut self,
        app: &mut App<H>,
        key: usize,
        req: &Request<'_>,
        decision: Decision<H::State>,
    ) -> Handshake {
        let (protocol, headers, state) = match decision {
            Decision::Reject(resp) => {
                *self.stats.rejected.entry(RejectReason::Application).or_default() += 1;
                self.respond(key, &resp);
                return Handshake::Done;
            }
            Decision::Pending => {
                let id = self.id(key, &self.conns[key]);
                self.node.set_pending(id, true);
                let conn = &mut self.conns[key];
                conn.pend();
                if let (Some((t, _)), Some(d)) = (conn.timer, deadline::pending(conn.deadline())) {
                    conn.timer = Some((t, d));
                }
                return Handshake::Pending(req.head_len());
            }
            Decision::Accept {
                protocol,
                headers,
                state,
            } => (protocol, headers, state),
        };
        let mut headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        // permessage-deflate, unless the application answered the extension offers itself.
        let deflate = match self.config.deflate.as_ref() {
            Some(policy)
                if !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions")) =>
            {
                proto::deflate::negotiate(req.header_values("sec-websocket-extensions"), policy)
            }
            _ => None,
        };
        let answer = deflate.map(|p| p.to_string());
        if let Some(a) = answer.as_deref() {
            headers.push(("Sec-WebSocket-Extensions", a));
        }
        let accept = Accept {
            protocol: protocol.as_deref(),
            headers: &headers,
        };
        if let Err(e) = handshake::write_accept(req, &accept, self.cork.buf()) {
            log::error!(
                "shard {}: the handler's handshake answer is invalid: {e}",
                self.index
            );
            self.respond(key, &HttpResponse::text(500, "internal error\n"));
            return Handshake::Done;
        }
        let id = self.open(key, deflate);
        app.states.set(key, state);
        let (handler, state) = (&mut app.handler, app.states.get(key));
        match self.guarded(Callback::Open, Some(key), Some(id), |shard| {
            handler.on_open(&mut Ctx { shard }, id, state, req);
        }) {
            Some(()) if self.draining => {
                // Accepted before the drain began: answered, then told to go at once (its
                // Close answer is read as any other's).
                self.go_away(key);
                Handshake::Open(req.head_len())
            }
            Some(()) => Handshake::Open(req.head_len()),
            // Failed with 1011 after its 101: the frames that followed are not read.
            None => Handshake::Done,
        }
    }

    /// A decision made elsewhere ([`ServerHandle::decide`]) arrived for connection `id`:
    /// carries it out if the connection is still waiting for it, then handles the bytes that
    /// followed its request. `scratch` is the shard's read buffer.
    ///
    /// [`ServerHandle::decide`]: super::node::ServerHandle::decide
    pub(super) fn decided<H: Handler>(
        &mut self,
        app: &mut App<H>,
        scratch: &mut [u8],
        id: ConnId,
        decision: Box<dyn Any + Send>,
    ) -> DecisionOutcome {
        let Some(conn) = self.entry(id) else {
            return DecisionOutcome::Gone;
        };
        if conn.phase() != Phase::Pending {
            return DecisionOutcome::NotPending;
        }
        let key = id.key as usize;
        let Ok(decision) = decision.downcast::<Decision<H::State>>() else {
            log::error!(
                "shard {}: a decision for connection {id} carries a state of another type than the handler's",
                self.index
            );
            self.node.set_pending(id, false);
            self.answer_and_close(key, &HttpResponse::text(500, "internal error\n"));
            return DecisionOutcome::WrongState;
        };
        if matches!(*decision, Decision::Pending) {
            // Still pending: nothing changes.
            return DecisionOutcome::Applied;
        }
        self.node.set_pending(id, false);
        // The request and what followed it wait in the connection's kept input: read them again
        // from the shard's buffer, as if they had just arrived.
        let conn = &mut self.conns[key];
        let kept = conn.take_input(&mut self.mem);
        scratch[..kept.len()].copy_from_slice(&kept);
        conn.resume_handshake();
        self.cork.begin(key);
        let end = match handshake::parse_request(&scratch[..kept.len()], &self.config.head_limits) {
            Ok(Some(req)) => self.apply(app, key, &req, *decision),
            // It parsed when it arrived: this cannot happen; answer as for any bad request.
            _ => {
                self.respond(key, &HttpResponse::text(400, "bad request\n"));
                Handshake::Done
            }
        };
        let rest = match end {
            Handshake::Open(head_len) => {
                scratch.copy_within(head_len..kept.len(), 0);
                kept.len() - head_len
            }
            _ => 0,
        };
        // Whatever was gathered (the 101 or the answer) goes out before the frames that followed.
        self.flush_cork(key);
        self.cork.end();
        self.process(app, scratch, key, rest);
        DecisionOutcome::Applied
    }

    /// The handshake of `key` succeeded, with permessage-deflate if `deflate` was agreed.
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))]
    fn open(&mut self, key: usize, deflate: Option<DeflateParams>) -> ConnId {
        // Pings are answered by the shard (`Shard::pong`), which owes at most one pong in a row
        // to a peer whose socket does not keep up.
        let config = crate::proto::Config {
            auto_pong: false,
            ..self.config.protocol
        };
        let proto = Connection::server(config);
        #[cfg(feature = "deflate")]
        let proto = match (deflate, self.config.deflate.as_ref()) {
            (Some(params), Some(policy)) => {
                proto.with_deflate(params.negotiated(proto::Role::Server, policy))
            }
            _ => proto,
        };
        self.conns[key].open(proto);
        let generation = self.conns[key].generation;
        self.node.rooms(self.index).publish(key, generation, true, false);
        self.stats.handshaking -= 1;
        self.stats.connections_open += 1;
        self.stats.handshakes += 1;
        let id = self.id(key, &self.conns[key]);
        let phase = self.timeouts.ping_interval.map_or(0, |i| self.phase(i));
        match deadline::opened(self.now_ms, &self.timeouts, phase) {
            Some(d) => self.set_deadline(key, d),
            None => self.cancel_deadline(key),
        }
        id
    }
}
