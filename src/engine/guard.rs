//! Calls into the application's [`Handler`](super::handler::Handler), guarded: a panic in a
//! callback costs the connection it was about, not the shard and every other connection on it.
//!
//! Every callback goes through [`Shard::guarded`], so that what a panic does (counted in
//! [`Stats::handler_panics`](super::stats::Stats::handler_panics), logged once, and the
//! connection failed with 1011 or answered 500) is written once. With `panic = "abort"` there is
//! nothing to catch: the process ends at the panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::decision::HttpResponse;
use super::id::ConnId;
use super::node::panic_message;
use super::shard::Shard;
use crate::proto::CloseCode;

/// The reason of the Close frame (1011) sent to a connection whose callback panicked.
const INTERNAL_ERROR: &str = "internal error";

/// Which callback a guarded call is, and what its panic does to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Callback {
    /// `on_http`: the request is answered 500 and the socket closed.
    Http,
    /// `on_handshake`: the upgrade is answered 500 and the socket closed.
    Handshake,
    /// `on_open`: the connection is failed with 1011 (after its 101).
    Open,
    /// `on_message`: the connection is failed with 1011.
    Message,
    /// `on_ping`: the connection is failed with 1011.
    Ping,
    /// `on_pong`: the connection is failed with 1011.
    Pong,
    /// `on_drain`: the connection is failed with 1011.
    Drain,
    /// `on_resume`: the connection is failed with 1011.
    Resume,
    /// `on_close`: the connection is gone already; its state was dropped.
    Close,
    /// `on_timer`: no connection is concerned.
    Timer,
}

impl Callback {
    fn name(self) -> &'static str {
        match self {
            Self::Http => "on_http",
            Self::Handshake => "on_handshake",
            Self::Open => "on_open",
            Self::Message => "on_message",
            Self::Ping => "on_ping",
            Self::Pong => "on_pong",
            Self::Drain => "on_drain",
            Self::Resume => "on_resume",
            Self::Close => "on_close",
            Self::Timer => "on_timer",
        }
    }
}

impl Shard {
    /// Runs `call`, a call into the handler about connection `key` (`id` once the handler knows
    /// it; neither for a timer), given the shard to make its [`Ctx`](super::handler::Ctx) from.
    /// `None` when it panicked: the panic is counted and logged, and the connection is dealt with
    /// as `callback` says; the caller only stops using what the callback was to return.
    ///
    /// Catching is sound here because nothing the shard relies on is left half-changed by the
    /// handler: every [`Ctx`](super::handler::Ctx) method leaves the shard consistent before it
    /// returns, and the handler's own state is the handler's business (a connection whose
    /// callback panicked is failed, so its state is only handed back to `on_close`).
    pub(super) fn guarded<R>(
        &mut self,
        callback: Callback,
        key: Option<usize>,
        id: Option<ConnId>,
        call: impl FnOnce(&mut Shard) -> R,
    ) -> Option<R> {
        let payload = match catch_unwind(AssertUnwindSafe(|| call(&mut *self))) {
            Ok(r) => return Some(r),
            Err(payload) => payload,
        };
        self.stats.handler_panics += 1;
        let conn = match (id, key) {
            (Some(id), _) => format!("connection {id}"),
            (None, Some(key)) => format!("connection in slot {key}"),
            (None, None) => "no connection".to_owned(),
        };
        log::error!(
            "shard {}: the handler panicked in {} ({conn}): {}",
            self.index,
            callback.name(),
            panic_message(&*payload)
        );
        match (callback, key) {
            (Callback::Http | Callback::Handshake, Some(key)) => {
                self.respond(key, &HttpResponse::text(500, "internal error\n"));
            }
            (
                Callback::Open
                | Callback::Message
                | Callback::Ping
                | Callback::Pong
                | Callback::Drain
                | Callback::Resume,
                Some(key),
            ) => {
                // What the callback sent before it panicked goes first (it is whole frames), then
                // the Close frame; nothing more of the connection's input is read.
                self.fail(key, CloseCode::InternalError, INTERNAL_ERROR);
            }
            _ => {}
        }
        None
    }
}
