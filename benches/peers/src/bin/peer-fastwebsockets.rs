//! Echo server on fastwebsockets, one core (tokio current-thread runtime).
//!
//! The upgrade goes through hyper's HTTP/1 server with fastwebsockets' `upgrade` feature, as
//! the library's own echo example does (including running each connection `unconstrained`).
//! A `FragmentCollector` reassembles fragmented messages, so every text and binary message
//! goes back whole, as it came. Pongs and the close reply are sent by the library's defaults
//! (`auto_pong`, `auto_close`). Messages up to 64 MiB.
//!
//! With `--tls-cert`/`--tls-key` hyper serves the connection over a tokio-rustls stream, as the
//! library's TLS server example does, and, as that example does, writes frames from one buffer
//! (`set_writev(false)`) instead of a vectored write of header and payload.

use std::process::ExitCode;

use c10k_peers::{Handler, Stream};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

async fn echo(fut: upgrade::UpgradeFut, tls: bool) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_max_message_size(c10k_peers::MAX_MESSAGE_SIZE);
    if tls {
        ws.set_writev(false);
    }
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            // The close reply has already been sent (auto_close); the connection is done.
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade_request(
    mut req: Request<Incoming>,
    tls: bool,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    if !upgrade::is_upgrade_request(&req) {
        let mut resp = Response::new(Empty::new());
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(resp);
    }
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        // Errors (a peer vanishing without a close frame, a protocol error) just end the task.
        let _ = tokio::task::unconstrained(echo(fut, tls)).await;
    });
    Ok(response)
}

async fn handle<S: Stream>(stream: S, tls: bool) {
    let io = TokioIo::new(stream);
    let _ = http1::Builder::new()
        .serve_connection(io, service_fn(move |req| upgrade_request(req, tls)))
        .with_upgrades()
        .await;
}

struct Echo;

impl Handler for Echo {
    fn handle<S: Stream>(&self, stream: S, tls: bool) -> impl Future<Output = ()> + Send + 'static {
        handle(stream, tls)
    }
}

fn main() -> ExitCode {
    c10k_peers::serve("peer-fastwebsockets", "127.0.0.1:9003", Echo)
}
