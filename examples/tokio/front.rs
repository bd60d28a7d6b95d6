//! The shard's side: the handler. It never waits: what needs the network (the authentication
//! call) or a clock of its own (the ticker) is handed to the runtime with `try_send` on a bounded
//! channel, and a full channel is answered at once (503 for a handshake, 1013 for an open).

use std::time::Instant;

use c10k::proto::{CloseCode, Message, Request};
use c10k::{ConnId, Ctx, Decision, Handler};
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use crate::percent;

/// The connection's state: the name the authentication service gave for its token.
#[derive(Default)]
pub struct User(pub String);

/// A handshake for the runtime to decide: who asks, with what token, since when.
pub struct Ask {
    pub id: ConnId,
    pub token: Vec<u8>,
    /// When the request came: the call's deadline counts from here.
    pub received: Instant,
}

/// What the ticker needs to know of the connections: which are open, and whose they are.
pub enum Event {
    Opened(ConnId, String),
    Closed(ConnId),
}

/// One per shard; the senders are clones of the same two channels.
pub struct Front {
    pub asks: Sender<Ask>,
    pub events: Sender<Event>,
}

impl Handler for Front {
    type State = User;

    fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, req: &Request<'_>) -> Decision<User> {
        let Some(token) = token(req) else {
            return unauthorized("a bearer token is required\n", "Bearer realm=\"c10k\"");
        };
        let ask = Ask {
            id,
            token,
            received: Instant::now(),
        };
        // `try_send` needs no runtime on this thread and never waits: it queues the ask and
        // wakes the task that takes them, or says at once that the queue is full.
        match self.asks.try_send(ask) {
            Ok(()) => Decision::Pending,
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => unavailable(),
        }
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, user: &mut User, _req: &Request<'_>) {
        if self.events.try_send(Event::Opened(id, user.0.clone())).is_err() {
            // The ticker is that far behind (or gone): a connection it does not know would get
            // no ticks, so it is told to come back rather than kept half served.
            let _ = ctx.close(id, CloseCode::TryAgainLater, "busy");
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, user: &mut User, msg: Message<'_>) {
        // Answered here, on the shard: it needs nothing the runtime has, and a round trip
        // through another thread would only add latency.
        let reply = format!("{}: {}", user.0, String::from_utf8_lossy(msg.as_bytes()));
        let _ = ctx.send_text(id, &reply);
    }

    fn on_close(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, _user: User, _code: CloseCode, _reason: &str) {
        // Lost when the channel is full: the ticker then forgets the id at its next send, which
        // answers `UnknownConnection`.
        let _ = self.events.try_send(Event::Closed(id));
    }
}

/// The bearer token of a request: the `Authorization` header, else the `token` query parameter
/// (percent-decoded, as a browser's `encodeURIComponent` wrote it: a browser cannot set headers
/// on a WebSocket). Its length is bounded by the engine's limit on a request head.
fn token(req: &Request<'_>) -> Option<Vec<u8>> {
    let header = req
        .header("authorization")
        .and_then(|v| v.strip_prefix(b"Bearer "))
        .map(<[u8]>::to_vec);
    let token = header.or_else(|| req.query().and_then(|q| percent::query_param(q, "token")))?;
    Some(token.trim_ascii().to_vec()).filter(|t| !t.is_empty())
}

pub fn unauthorized(body: &str, challenge: &str) -> Decision<User> {
    Decision::reject(401, body).with_header("WWW-Authenticate", challenge)
}

pub fn unavailable() -> Decision<User> {
    Decision::reject(503, "authentication service unavailable\n").with_header("Retry-After", "1")
}
