//! Echo server on tokio-tungstenite, one core (tokio current-thread runtime).
//!
//! Every text and binary message goes back as it came. Pings are answered and the close
//! handshake is completed by the library's defaults. Messages and frames up to 64 MiB.
//!
//! The loop is the library's own echo pattern (`split` + `forward`): replies are queued and
//! flushed whenever no more input is ready, so pipelined messages share a write.
//!
//! With `--tls-cert`/`--tls-key` the same handler runs over a tokio-rustls stream: the library
//! takes any async stream, and a TLS one is what its documentation points to for wss.

use std::process::ExitCode;

use c10k_peers::{Handler, Stream};
use futures_util::{StreamExt, TryStreamExt, future};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

async fn handle<S: Stream>(stream: S) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(c10k_peers::MAX_MESSAGE_SIZE))
        .max_frame_size(Some(c10k_peers::MAX_MESSAGE_SIZE));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (write, read) = ws.split();
    // Errors (a peer vanishing without a close frame, a protocol error) just end the task.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}

struct Echo;

impl Handler for Echo {
    fn handle<S: Stream>(&self, stream: S, _tls: bool) -> impl Future<Output = ()> + Send + 'static {
        handle(stream)
    }
}

fn main() -> ExitCode {
    c10k_peers::serve("peer-tungstenite", "127.0.0.1:9002", Echo)
}
