//! Echo whose handshakes under one path wait for a decision made later on another thread, as
//! behind an authentication service: what `benches/pending.py` measures (the shard's other
//! connections while 1,000 handshakes wait), and what `c10k serve --defer-path` runs.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use c10k::proto::{Message, Request};
use c10k::{ConnId, Ctx, Decision, Handler, HttpResponse, ServerHandle};

use super::Echo;

/// Echo; upgrades whose path starts with `prefix` are accepted `delay` later, from a thread of
/// their own (one per shard), through [`ServerHandle::decide`].
#[derive(Debug)]
pub struct DeferredEcho {
    prefix: String,
    delay: Duration,
    decider: mpsc::Sender<(ConnId, Instant, ServerHandle)>,
}

impl DeferredEcho {
    /// Starts the deciding thread; it ends with the handler.
    pub fn new(prefix: &str, delay: Duration) -> Self {
        let (decider, queue) = mpsc::channel::<(ConnId, Instant, ServerHandle)>();
        std::thread::spawn(move || {
            // Every wait is the same length, so the queue is in the order of the deadlines.
            for (id, due, server) in queue {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                server.decide(id, Decision::<()>::accept());
            }
        });
        Self {
            prefix: prefix.to_owned(),
            delay,
            decider,
        }
    }
}

impl Handler for DeferredEcho {
    type State = ();

    fn on_handshake(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &Request<'_>) -> Decision {
        if !req.path().starts_with(&self.prefix) {
            return Decision::accept();
        }
        let due = Instant::now() + self.delay;
        match self.decider.send((id, due, ctx.server())) {
            Ok(()) => Decision::Pending,
            Err(_) => Decision::reject(503, "no decider\n"),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut (), msg: Message<'_>) {
        Echo.on_message(ctx, id, state, msg);
    }

    fn on_http(&mut self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        Echo.on_http(ctx, req)
    }
}
