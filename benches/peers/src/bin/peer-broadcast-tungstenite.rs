//! Fan-out server on tokio-tungstenite, one core (tokio current-thread runtime).
//!
//! Every connection is a subscriber. A text message whose text starts with `pub:` is sent,
//! unchanged (prefix included), to every connected client, the sender too. Every other
//! message is ignored. Pings and the close handshake are handled by the library's defaults.
//!
//! This is deliberately naive, the way such a server is commonly first written: a global
//! registry behind a mutex, one unbounded mpsc channel per client feeding a writer task that
//! owns the client's write half, and a plain loop that pushes the message into every
//! channel. No batching, no shared encoded frame (each client's writer frames the payload
//! itself), no back-pressure (a slow reader's queue grows without limit), one flush per
//! message. It is the baseline the fan-out benchmark compares against, not a design to copy.
//!
//! With `--tls-cert`/`--tls-key` the same handler runs over a tokio-rustls stream (wss).

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use c10k_peers::{Handler, Stream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Registry = Arc<Mutex<HashMap<u64, UnboundedSender<Message>>>>;

async fn handle<S: Stream>(stream: S, id: u64, registry: Registry) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(c10k_peers::MAX_MESSAGE_SIZE))
        .max_frame_size(Some(c10k_peers::MAX_MESSAGE_SIZE));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut write, mut read) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    registry.lock().unwrap().insert(id, tx);

    // Writer: drains this client's channel into its socket, one send (and flush) per message.
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if write.send(msg).await.is_err() {
                break;
            }
        }
    });

    // Reader: every `pub:` text goes to every subscriber through the naive loop.
    while let Some(Ok(msg)) = read.next().await {
        if let Message::Text(text) = &msg
            && text.starts_with("pub:")
        {
            for sub in registry.lock().unwrap().values() {
                let _ = sub.send(msg.clone());
            }
        }
    }

    // Unsubscribe; dropping the last sender ends the writer once its queue is drained.
    registry.lock().unwrap().remove(&id);
    let _ = writer.await;
}

#[derive(Default)]
struct Broadcast {
    registry: Registry,
    next_id: AtomicU64,
}

impl Handler for Broadcast {
    fn handle<S: Stream>(&self, stream: S, _tls: bool) -> impl Future<Output = ()> + Send + 'static {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        handle(stream, id, Arc::clone(&self.registry))
    }
}

fn main() -> ExitCode {
    c10k_peers::serve(
        "peer-broadcast-tungstenite",
        "127.0.0.1:9004",
        Broadcast::default(),
    )
}
