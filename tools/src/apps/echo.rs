//! The echo server: every text or binary message goes back as it came.

use c10k::ConnId;
use c10k::proto::Message;
use c10k::proto::handshake::Request;
use c10k::{Ctx, Handler, HttpResponse};

/// The page served on `GET /`: it opens a WebSocket to the same server and shows the echoes.
pub const ECHO_PAGE: &str = include_str!("echo.html");

/// Sends every message back to its sender, and serves a small test page on `GET /`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        // Errors mean the connection is closing or over its queue cap (the policy applied).
        let _ = ctx.send(id, msg.kind(), msg.as_bytes());
    }

    fn on_http(&mut self, _ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        match (req.method(), req.path()) {
            ("GET", "/") => HttpResponse::html(200, ECHO_PAGE),
            ("GET", _) => HttpResponse::not_found(),
            _ => {
                let mut r = HttpResponse::text(405, "method not allowed\n");
                r.headers.push(("Allow".to_owned(), "GET".to_owned()));
                r
            }
        }
    }
}
