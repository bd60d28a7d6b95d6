//! The smallest embedding: an echo server, with a page to try it.
//!
//! `cargo run --release --example echo [-- ADDR]` (127.0.0.1:9001 by default), then open
//! http://127.0.0.1:9001/ or connect a WebSocket client to ws://127.0.0.1:9001/.

use c10k::proto::Message;
use c10k::proto::handshake::Request;
use c10k::{ConnId, Ctx, Handler, HttpResponse, Server, ServerConfig};

/// The page: a form that sends what is typed, and a log of what comes back.
const PAGE: &str = include_str!("echo.html");

struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        let _ = ctx.send(id, msg.kind(), msg.as_bytes());
    }

    /// Plain HTTP requests (not upgrades): the page on `GET /`.
    fn on_http(&mut self, _ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        match req.path() {
            "/" => HttpResponse::html(200, PAGE),
            _ => HttpResponse::not_found(),
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut config = ServerConfig::default();
    if let Some(addr) = std::env::args().nth(1) {
        config.addr = addr.parse().map_err(std::io::Error::other)?;
    }
    let server = Server::bind(config, |_shard| Echo)?;
    println!(
        "echo server on ws://{0}/ (page: http://{0}/)",
        server.local_addr()
    );
    server.run()
}
