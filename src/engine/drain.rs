//! The end of connections and of the shard: removing closed sockets (the handler hears
//! `on_close`), the lame-duck period and the drain of a graceful shutdown.

use super::conn::Mark;
use super::deadline;
use super::guard::Callback;
use super::handler::{Ctx, Handler};
use super::shard::{Shard, Timer};
use super::state::App;
use super::stats::close_code_bucket;
use crate::proto::CloseCode;

impl Shard {
    /// Removes the connections that closed during this turn, telling the handler about each one
    /// it knew.
    pub(super) fn reap<H: Handler>(&mut self, app: &mut App<H>) {
        while let Some(key) = self.dead.pop() {
            let Some(mut conn) = self.conns.try_remove(key) else {
                continue;
            };
            self.node.rooms(self.index).clear(key);
            conn.socket.deregister(&self.registry);
            for t in [conn.timer.take().map(|(t, _)| t), conn.message_timer.take()]
                .into_iter()
                .flatten()
            {
                self.wheel.cancel(t);
            }
            conn.release(&mut self.mem);
            // A message being assembled may be megabytes: freed off this thread.
            if let Some(proto) = conn.proto.as_mut() {
                let n = proto.held();
                if n >= super::dispose::DISPOSE_FROM {
                    let mut out = Vec::new();
                    let dropped = proto.abort(CloseCode::Abnormal, "", &mut out);
                    self.node.dispose(dropped, n);
                }
            }
            if conn.is(Mark::Big) {
                self.big.retain(|&k| k != key);
            }
            if let Some(ip) = self.addresses.remove(&key) {
                self.node.release(ip);
            }
            self.client_addrs.remove(&key);
            self.leave_all(key, &mut conn.topics);
            if conn.proto.is_none() {
                self.stats.handshaking -= 1;
                // It may have been waiting for a decision when it went.
                let id = self.id(key, &conn);
                self.node.set_pending(id, false);
                continue;
            }
            self.stats.connections_open -= 1;
            // The peer's code, or the code this end failed the connection with; a closing
            // handshake this end started and the peer never answered is an abnormal closure.
            let (code, reason) = conn
                .ending
                .take()
                .map_or((CloseCode::Abnormal, None), |e| (e.code, e.reason));
            *self
                .stats
                .closes
                .entry(close_code_bucket(code.as_u16()))
                .or_default() += 1;
            let id = self.id(key, &conn);
            drop(conn.socket);
            let reason = reason.unwrap_or_default();
            let state = app.states.take(key);
            let handler = &mut app.handler;
            // A panic here has nothing left to fail: the connection is gone, its state dropped.
            self.guarded(Callback::Close, None, Some(id), |shard| {
                handler.on_close(&mut Ctx { shard }, id, state, code, &reason);
            });
        }
    }

    /// Tells the handler about the connections whose queue emptied.
    pub(super) fn notify_drained<H: Handler>(&mut self, app: &mut App<H>) {
        while let Some(key) = self.drained.pop() {
            if let Some(id) = self.id_of(key) {
                let (handler, state) = (&mut app.handler, app.states.get(key));
                self.guarded(Callback::Drain, Some(key), Some(id), |shard| {
                    handler.on_drain(&mut Ctx { shard }, id, state);
                });
            }
        }
    }

    /// A shutdown was asked for: a lame-duck period first if one is configured, then the drain.
    pub(super) fn shutdown(&mut self) {
        if self.lame_duck || self.draining {
            return;
        }
        if self.config.drain_grace.is_zero() {
            return self.begin_drain();
        }
        self.lame_duck = true;
        let at = self.now_ms + self.config.drain_grace.as_millis() as u64;
        self.wheel.arm(at, Timer::Grace);
    }

    /// Stops accepting and sends 1001 Going Away to every open connection, which may answer
    /// until the drain timeout (even past the close timeout). Connections still in their
    /// handshake may finish it (within their handshake deadline and the drain's): they are
    /// answered, and sent 1001 at once if they open, so that a client that connected just
    /// before the shutdown is not refused, only told to go (see `crate::handover`).
    pub(super) fn begin_drain(&mut self) {
        if self.draining {
            return;
        }
        self.lame_duck = false;
        self.draining = true;
        for mut l in [self.listener.take(), self.tls_listener.take()]
            .into_iter()
            .flatten()
        {
            let _ = self.registry.deregister(&mut l);
        }
        if let Some(t) = self.accept_timer.take() {
            self.wheel.cancel(t);
        }
        let at = self.now_ms + self.config.drain_timeout.as_millis() as u64;
        self.drain_until_ms = at;
        self.drain_timer = Some(self.wheel.arm(at, Timer::Drain));
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.go_away(key);
        }
    }

    /// Sends 1001 Going Away to `key` if it is open and has not sent its Close yet, with the
    /// drain's deadline for the answer.
    pub(super) fn go_away(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.is_closed() || conn.proto.as_ref().is_none_or(|p| p.close_sent()) {
            return;
        }
        self.close_key(key, CloseCode::GoingAway, "server shutting down");
        let at = self.drain_until_ms;
        self.set_deadline(key, deadline::drain_close_by(self.now_ms, at, &self.timeouts));
        self.after_io(key);
    }

    /// The drain timeout passed: close every connection left.
    pub(super) fn drain_timed_out(&mut self) {
        self.drain_timer = None;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.kill(key);
        }
    }

    /// Whether the shard is done: draining and every connection gone. Cancels the shard's own
    /// timers then, so that its final statistics show only what is left.
    pub(super) fn finished(&mut self) -> bool {
        if !(self.draining && self.conns.is_empty()) {
            return false;
        }
        for t in [self.drain_timer.take(), self.publish_timer.take()]
            .into_iter()
            .flatten()
        {
            self.wheel.cancel(t);
        }
        true
    }
}
