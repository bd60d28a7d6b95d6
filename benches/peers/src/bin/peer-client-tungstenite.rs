//! A client under test for c10k's client suite (`c10k check --serve`), on tokio-tungstenite.
//!
//!   peer-client-tungstenite ws://HOST:PORT AGENT
//!
//! Fetches the case ids from `/cases`, echoes every text and binary message of each
//! `/case/ID?agent=AGENT` back as it came until the connection ends, then connects to
//! `/done?agent=AGENT` (the run, the timeouts and the exit status: `c10k_peers::client`).
//!
//! tokio-tungstenite 0.30 (tungstenite 0.30) in its default configuration, through
//! `connect_async_with_config` as `connect_async` calls it: no permessage-deflate (the library
//! does not implement it), pings answered and the close handshake completed by the library
//! (the reply to a Close goes out on the next read, which then ends the stream). One change:
//! the message and frame size limits are both 16 MiB, the suite's largest message (the
//! library's defaults are 64 MiB per message and 16 MiB per frame). ws:// only (no TLS feature).

use std::process::ExitCode;

use c10k_peers::client::{self, CLIENT_MAX_MESSAGE_SIZE, SuiteClient};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const PROGRAM: &str = "peer-client-tungstenite";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(url: &str) -> Result<Ws, String> {
    // The library's defaults but for the size limits (see the module header).
    let config = WebSocketConfig::default()
        .max_message_size(Some(CLIENT_MAX_MESSAGE_SIZE))
        .max_frame_size(Some(CLIENT_MAX_MESSAGE_SIZE));
    // `false`: Nagle's algorithm left on, as `connect_async` leaves it.
    let (ws, _response) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

struct Tungstenite;

impl SuiteClient for Tungstenite {
    async fn fetch_cases(&self, url: &str) -> Result<String, String> {
        let mut ws = connect(url).await?;
        let mut list = None;
        // Bounded by the caller's timeout; the checker closes after the list.
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(text)) if list.is_none() => list = Some(text.to_string()),
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
        let mut close = None;
        // Bounded by the caller's timeout. The stream ends once the close handshake is done.
        while let Some(msg) = ws.next().await {
            match msg.map_err(|e| e.to_string())? {
                msg @ (Message::Text(_) | Message::Binary(_)) => {
                    ws.send(msg).await.map_err(|e| e.to_string())?
                }
                Message::Close(frame) => {
                    close = Some(frame.map_or_else(
                        || "closed (no code)".to_string(),
                        |f| format!("closed {} {:?}", u16::from(f.code), f.reason.as_str()),
                    ))
                }
                _ => {}
            }
        }
        Ok(close.unwrap_or_else(|| "ended without a close frame".to_string()))
    }

    async fn done(&self, url: &str) -> Result<Option<String>, String> {
        let mut ws = connect(url).await?;
        // The checker sends Close 1000; the library answers it and the stream ends.
        while let Some(msg) = ws.next().await {
            if let Err(e) = msg {
                return Ok(Some(e.to_string()));
            }
        }
        Ok(None)
    }
}

fn main() -> ExitCode {
    client::run(PROGRAM, Tungstenite)
}
