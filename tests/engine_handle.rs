//! Reaching connections from elsewhere: the thread-safe `ServerHandle`, ids that outlive their
//! connection, statistics over several shards, and the application's timers.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use c10k::proto::{CloseCode, Message, Request};
use c10k::{ConnId, Ctx, Handler, SendError};
use common::*;

const WAIT: Duration = Duration::from_secs(10);

/// The slot of an id, from its display form `shard.slot.generation`.
fn slot(id: ConnId) -> String {
    id.to_string().split('.').nth(1).unwrap().to_owned()
}

/// What a handler found out about a closed connection's id, from a callback of a newer one.
#[derive(Debug, PartialEq, Eq)]
struct StaleCheck {
    is_open: bool,
    buffered: Option<usize>,
    send: Result<(), SendError>,
    close: Result<(), SendError>,
}

/// A [`Probe`] that, on the text `check`, tries every id it saw close and reports the results.
#[derive(Clone)]
struct StaleProbe {
    probe: Probe,
    closed: Vec<ConnId>,
    checks: mpsc::Sender<StaleCheck>,
}

impl Handler for StaleProbe {
    type State = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, req: &Request<'_>) {
        self.probe.on_open(ctx, id, _state, req);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        if msg.as_bytes() == b"check" {
            for &old in &self.closed {
                let check = StaleCheck {
                    is_open: ctx.is_open(old),
                    buffered: ctx.buffered_amount(old),
                    send: ctx.send_text(old, "stale"),
                    close: ctx.close(old, CloseCode::Application(4000), "stale"),
                };
                self.checks.send(check).unwrap();
            }
            assert!(ctx.is_open(id));
            return;
        }
        self.probe.on_message(ctx, id, _state, msg);
    }

    fn on_close(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ConnId,
        _state: Self::State,
        code: CloseCode,
        reason: &str,
    ) {
        self.closed.push(id);
        assert!(!ctx.is_open(id), "an id is not open in its own on_close");
        self.probe.on_close(ctx, id, _state, code, reason);
    }
}

#[test]
fn server_ignores_a_stale_id_whose_slot_a_new_connection_reused() {
    let events = Events::default();
    let (checks_tx, checks) = mpsc::channel();
    let handler = StaleProbe {
        probe: Probe::new(&events),
        closed: Vec::new(),
        checks: checks_tx,
    };
    let h = start(quick_config(), move |_| handler.clone());
    let old_ws = client(h.local_addr());
    let old = events.wait_open(1);
    close_ws(old_ws);
    events.wait_close(old, WAIT);
    wait_no_sockets(&h);

    let mut ws = client(h.local_addr());
    let new = events.wait_open(2);
    assert_ne!(old, new);
    assert_eq!(
        slot(old),
        slot(new),
        "one shard, one connection: the slot is reused"
    );

    // From another thread: the stale id's commands are ignored...
    assert!(h.send_text(old, "stale"));
    assert!(h.close(old, CloseCode::Application(4000), "stale"));
    // ...and the same inbox, in order, brings the new id's message.
    assert!(h.send_text(new, "fresh"));
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("fresh"));

    // From a callback of the new connection.
    ws.send(tungstenite::Message::text("check")).unwrap();
    let check = checks.recv_timeout(WAIT).unwrap();
    assert_eq!(
        check,
        StaleCheck {
            is_open: false,
            buffered: None,
            send: Err(SendError::UnknownConnection),
            close: Err(SendError::UnknownConnection),
        }
    );
    ws.send(tungstenite::Message::text("echo")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("echo"));
    assert!(events.closes(new).is_empty());
    assert_eq!(h.stats().connections_open, 1);
    close_ws(ws);
    stop(&h);
    assert_eq!(events.closes(old), [1005]);
}

#[test]
fn handle_send_from_another_thread_reaches_the_client() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(quick_config(), move |_| probe.clone());
    let mut ws = client(h.local_addr());
    let id = events.wait_open(1);
    let remote = h.clone();
    std::thread::spawn(move || {
        for i in 0..100 {
            assert!(remote.send_text(id, &format!("from afar {i}")));
        }
        assert!(remote.send(id, c10k::proto::MessageKind::Binary, vec![1, 2, 3]));
    })
    .join()
    .unwrap();
    for i in 0..100 {
        assert_eq!(
            ws.read().unwrap(),
            tungstenite::Message::text(format!("from afar {i}"))
        );
    }
    assert_eq!(ws.read().unwrap(), tungstenite::Message::binary(vec![1u8, 2, 3]));
    assert_eq!(h.stats().messages_out, 101);
    close_ws(ws);
    stop(&h);
}

#[test]
fn handle_close_from_another_thread_closes_with_its_code() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(quick_config(), move |_| probe.clone());
    let mut ws = client(h.local_addr());
    let id = events.wait_open(1);
    let remote = h.clone();
    std::thread::spawn(move || assert!(remote.close(id, CloseCode::Application(4002), "later")))
        .join()
        .unwrap();
    let m = ws.read().unwrap();
    assert_eq!(ws_close_code(&m), Some(4002), "{m:?}");
    assert!(matches!(ws.read(), Err(tungstenite::Error::ConnectionClosed)));
    drop(ws);
    assert_eq!(events.wait_close(id, WAIT), 4002);
    let st = wait_no_sockets(&h);
    // Codes a peer may choose freely are counted by range, under 4000 for 4000-4999.
    assert_eq!(st.closes.get(&4000), Some(&1));
    assert_eq!(st.closes.get(&4002), None);
    stop(&h);
}

#[test]
fn handle_stats_are_summed_over_two_shards() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let mut config = quick_config();
    config.shards = 2;
    let h = start(config, move |_| probe.clone());
    assert_eq!(h.shards(), 2);
    // The kernel spreads connections over the shards by their addresses: open until both have one.
    let mut clients = Vec::new();
    while clients.len() < 64 {
        clients.push(client(h.local_addr()));
        events.wait_open(clients.len());
        let shards: std::collections::BTreeSet<usize> = events.opened().iter().map(|id| id.shard()).collect();
        if shards.len() == 2 && clients.len() >= 4 {
            break;
        }
    }
    let n = clients.len() as u64;
    for ws in &mut clients {
        ws.send(tungstenite::Message::text("hi")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hi"));
    }
    let per_shard = h.shard_stats();
    assert_eq!(per_shard.len(), 2);
    assert!(per_shard.iter().all(|s| s.connections_open > 0), "{per_shard:#?}");
    let total = h.stats();
    assert_eq!(total.connections_open, n);
    assert_eq!(total.accepted, n);
    assert_eq!(total.messages_in, n);
    assert_eq!(total.messages_out, n);
    assert_eq!(total.sockets, n);
    assert_eq!(
        per_shard.iter().map(|s| s.connections_open).sum::<u64>(),
        total.connections_open
    );
    clients.into_iter().for_each(close_ws);
    let st = wait_no_sockets(&h);
    assert_eq!(st.closes.get(&1005), Some(&n));
    stop(&h);
}
