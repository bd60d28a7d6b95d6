//! A task that keeps the set of open connections (told by the shards through a bounded channel)
//! and sends each one "tick N (USER)" every `--tick-ms` (default [`DEFAULT_TICK`]), through the
//! `ServerHandle`.
//!
//! A send that finds the connection's queue full (`SendError::QueueFull`: its client reads
//! slower than it is sent to) is not retried here, which would hold up everyone else's ticks:
//! a task of that connection's own awaits room (`ServerHandle::room`, at most [`ROOM_WAIT`]) and
//! sends it then, and the connection's ticks are skipped while it waits. A connection gone
//! (`UnknownConnection`, `Closing`) is forgotten, even if its `Closed` event was lost.

use std::collections::HashMap;
use std::time::Duration;

use c10k::{ConnId, SendError, ServerHandle};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::front::Event;

/// Time between two ticks to a connection.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);
/// The longest wait for room for one tick; past it, that tick is dropped.
pub const ROOM_WAIT: Duration = Duration::from_secs(10);

/// An open connection, as the ticker knows it.
struct Open {
    user: String,
    /// The task waiting for room for a tick, while there is one.
    waiting: Option<JoinHandle<()>>,
}

/// Runs until every shard is gone (the channel closes).
pub async fn run(mut events: Receiver<Event>, server: ServerHandle, tick: Duration) {
    let mut open: HashMap<ConnId, Open> = HashMap::new();
    let mut next = Instant::now() + tick;
    let mut n = 0u64;
    loop {
        // One task both takes events and ticks: the wait for the next event ends at the tick.
        match tokio::time::timeout_at(next, events.recv()).await {
            Ok(Some(Event::Opened(id, user))) => {
                open.insert(id, Open { user, waiting: None });
            }
            Ok(Some(Event::Closed(id))) => {
                if let Some(Open { waiting: Some(w), .. }) = open.remove(&id) {
                    w.abort();
                }
            }
            Ok(None) => return,
            Err(_) => {
                n += 1;
                // Not `next += tick`: after a stall, one tick and then the usual pace, not a
                // burst of the ticks missed.
                next = Instant::now() + tick;
                open.retain(|&id, conn| send_tick(&server, id, conn, n));
            }
        }
    }
}

/// Sends tick `n` to `id`; false when the connection is gone.
fn send_tick(server: &ServerHandle, id: ConnId, conn: &mut Open, n: u64) -> bool {
    if conn.waiting.as_ref().is_some_and(|w| !w.is_finished()) {
        return true;
    }
    let text = format!("tick {n} ({})", conn.user);
    match server.send_text(id, &text) {
        Ok(()) => true,
        Err(SendError::QueueFull) => {
            let server = server.clone();
            conn.waiting = Some(tokio::spawn(async move {
                // `room` needs no runtime of its own: the shard that makes room wakes it.
                let room = server.room(id, text.len());
                if let Ok(Ok(())) = tokio::time::timeout(ROOM_WAIT, room).await {
                    let _ = server.send_text(id, &text);
                }
            }));
            true
        }
        // Gone, or closing: no more ticks.
        Err(SendError::UnknownConnection | SendError::Closing) => false,
        // Refused for this message only (too large for the inbox, dropped by the policy).
        Err(_) => true,
    }
}
