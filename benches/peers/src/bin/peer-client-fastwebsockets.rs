//! A client under test for c10k's client suite (`c10k check --serve`), on fastwebsockets.
//!
//!   peer-client-fastwebsockets ws://HOST:PORT AGENT
//!
//! Fetches the case ids from `/cases`, echoes every text and binary message of each
//! `/case/ID?agent=AGENT` back as it came until the connection ends, then connects to
//! `/done?agent=AGENT` (the run, the timeouts and the exit status: `c10k_peers::client`).
//!
//! fastwebsockets 0.10 with its `upgrade` feature: the opening handshake is
//! `handshake::client` over hyper 1's HTTP/1 client connection, with the request the library's
//! own documentation builds. Then its defaults: no permessage-deflate (the library does not
//! implement it), `auto_pong` and `auto_close` on (pings are answered, and a Close is answered
//! with the same code, while `read_frame` runs), masks applied by the library. Messages go
//! through a `FragmentCollector`, so a fragmented message is echoed whole, as one frame. One
//! change: the size limit is 16 MiB, the suite's largest message (the library's default is 64
//! MiB). The library applies it to each frame, not to a whole message (`FragmentCollector`
//! has no limit of its own), and refuses a frame that is too large by ending the connection
//! without a Close frame. As the library's examples do, the connection is dropped as soon as
//! the Close has been read and answered. ws:// only.

use std::future::Future;
use std::process::ExitCode;

use c10k_peers::client::{self, CLIENT_MAX_MESSAGE_SIZE, SuiteClient};
use fastwebsockets::{FragmentCollector, OpCode, handshake};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const PROGRAM: &str = "peer-client-fastwebsockets";

type Ws = FragmentCollector<TokioIo<Upgraded>>;

/// Runs hyper's connection task on the tokio runtime, as the library's documentation does.
struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::task::spawn(fut);
    }
}

async fn connect(url: &str) -> Result<Ws, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("ws") {
        return Err(format!("only ws:// URLs: {url:?}"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("no host in {url:?}"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::builder()
        .method("GET")
        .uri(target)
        .header(HOST, authority.as_str())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header("Sec-WebSocket-Key", handshake::generate_key())
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let (mut ws, _response) = handshake::client(&SpawnExecutor, req, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // The library's defaults but for the size limit (see the module header). The library
    // refuses a frame whose length is not below the limit (`>=`), so the limit is one byte more
    // than the largest frame it should take: a 16 MiB message in one frame.
    ws.set_max_message_size(CLIENT_MAX_MESSAGE_SIZE + 1);
    Ok(FragmentCollector::new(ws))
}

/// A Close frame's code and reason, for the log.
fn describe_close(payload: &[u8]) -> String {
    match payload {
        [] => "closed (no code)".to_string(),
        [a, b, reason @ ..] => format!(
            "closed {} {:?}",
            u16::from_be_bytes([*a, *b]),
            String::from_utf8_lossy(reason)
        ),
        _ => "closed (a one-byte payload)".to_string(),
    }
}

struct Fastwebsockets;

impl SuiteClient for Fastwebsockets {
    async fn fetch_cases(&self, url: &str) -> Result<String, String> {
        let mut ws = connect(url).await?;
        let mut list = None;
        // Bounded by the caller's timeout; the checker closes after the list.
        loop {
            match ws.read_frame().await {
                Ok(frame) if frame.opcode == OpCode::Close => break,
                Ok(frame) if frame.opcode == OpCode::Text && list.is_none() => {
                    list = Some(String::from_utf8_lossy(&frame.payload).into_owned())
                }
                Ok(_) => {}
                // What goes wrong after the list came does not matter.
                Err(_) if list.is_some() => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        list.ok_or_else(|| "the connection ended without a text message".to_string())
    }

    async fn echo(&self, url: &str) -> Result<String, String> {
        let mut ws = connect(url).await?;
        // Bounded by the caller's timeout.
        loop {
            let frame = ws.read_frame().await.map_err(|e| e.to_string())?;
            match frame.opcode {
                // The reply has been sent (auto_close); the connection is done.
                OpCode::Close => return Ok(describe_close(&frame.payload)),
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await.map_err(|e| e.to_string())?,
                _ => {}
            }
        }
    }

    async fn done(&self, url: &str) -> Result<Option<String>, String> {
        let mut ws = connect(url).await?;
        // The checker sends Close 1000, which the library answers.
        loop {
            match ws.read_frame().await {
                Ok(frame) if frame.opcode == OpCode::Close => return Ok(None),
                Ok(_) => {}
                Err(e) => return Ok(Some(e.to_string())),
            }
        }
    }
}

fn main() -> ExitCode {
    client::run(PROGRAM, Fastwebsockets)
}
