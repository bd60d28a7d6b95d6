//! Echo server on fastwebsockets, one core (tokio current-thread runtime).
//!
//! The upgrade goes through hyper's HTTP/1 server with fastwebsockets' `upgrade` feature, as
//! the library's own echo example does (including running each connection `unconstrained`).
//! A `FragmentCollector` reassembles fragmented messages, so every text and binary message
//! goes back whole, as it came. Pongs and the close reply are sent by the library's defaults
//! (`auto_pong`, `auto_close`). Messages up to 64 MiB.

use std::process::ExitCode;

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_max_message_size(c10k_peers::MAX_MESSAGE_SIZE);
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

async fn upgrade_request(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    if !upgrade::is_upgrade_request(&req) {
        let mut resp = Response::new(Empty::new());
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(resp);
    }
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        // Errors (a peer vanishing without a close frame, a protocol error) just end the task.
        let _ = tokio::task::unconstrained(echo(fut)).await;
    });
    Ok(response)
}

async fn handle(stream: TcpStream) {
    let io = TokioIo::new(stream);
    let _ = http1::Builder::new()
        .serve_connection(io, service_fn(upgrade_request))
        .with_upgrades()
        .await;
}

fn main() -> ExitCode {
    c10k_peers::serve("peer-fastwebsockets", "127.0.0.1:9003", handle)
}
