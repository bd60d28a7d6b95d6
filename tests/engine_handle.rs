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

    // From another thread: a send to the stale id is refused at once, its close ignored...
    assert_eq!(h.send_text(old, "stale"), Err(SendError::UnknownConnection));
    assert!(h.close(old, CloseCode::Application(4000), "stale"));
    // ...and the same inbox, in order, brings the new id's message.
    assert_eq!(h.send_text(new, "fresh"), Ok(()));
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
            remote.send_text(id, &format!("from afar {i}")).unwrap();
        }
        remote
            .send(id, c10k::proto::MessageKind::Binary, vec![1, 2, 3])
            .unwrap();
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

/// Says the id of each connection that opened; echoes nothing.
struct Opened(mpsc::Sender<ConnId>);

impl Handler for Opened {
    type State = ();

    fn on_open(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), _req: &Request<'_>) {
        let _ = self.0.send(id);
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, _: &mut (), _msg: Message<'_>) {}
}

/// Polls a future to its end on this thread (a waker that unparks it): no runtime needed.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(WAIT);
    }
}

#[test]
fn a_producer_sending_to_a_connection_that_never_reads_gets_queue_full_and_waits_for_room() {
    const CAP: usize = 1 << 20;
    const MSG: usize = 16 << 10;
    let mut config = quick_config();
    config.max_queued_bytes = CAP;
    config.max_inbox_bytes = 256 << 10;
    let (tx, rx) = mpsc::channel();
    let h = start(config, move |_| Opened(tx.clone()));
    // A client with a small receive window that reads nothing for now.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&h.local_addr().into()).unwrap();
    let mut s: std::net::TcpStream = socket.into();
    std::io::Write::write_all(&mut s, UPGRADE).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101"));
    let id = rx.recv_timeout(WAIT).unwrap();
    // A producer thread sends; told the queue is full, it waits for room, and gives up when
    // none comes (the shard's inbox makes room at once; the connection's queue never will).
    let producer = {
        let h = h.clone();
        std::thread::spawn(move || {
            let mut sent = 0usize;
            for _ in 0..100_000 {
                match h.send(id, c10k::proto::MessageKind::Binary, vec![7; MSG]) {
                    Ok(()) => sent += 1,
                    Err(SendError::QueueFull) => {
                        if let Err(e) = h.wait_for_room(id, MSG, Duration::from_millis(300)) {
                            return (sent, e);
                        }
                    }
                    Err(e) => return (sent, e),
                }
            }
            panic!("never told the queue is full after {sent} sends");
        })
    };
    let (sent, why) = producer.join().unwrap();
    assert_eq!(why, SendError::QueueFull, "after {sent} sends");
    assert!(sent * MSG >= CAP / 2, "{sent} sends");
    let st = h.stats();
    assert!(
        st.memory.queued as usize <= CAP,
        "{} bytes queued, cap {CAP}",
        st.memory.queued
    );
    assert_eq!((st.backpressure_closes, st.backpressure_drops), (0, 0), "{st:#?}");
    assert_eq!(
        h.wait_for_room(id, MSG, Duration::from_millis(200)),
        Err(SendError::QueueFull),
        "no room while the client reads nothing"
    );
    assert_eq!(
        h.send(id, c10k::proto::MessageKind::Binary, vec![0; 1 << 30]),
        Err(SendError::TooLarge)
    );
    // The client reads: room comes, to a thread that blocks and to a future alike.
    let reader = std::thread::spawn(move || {
        let mut n = 0;
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(k) = std::io::Read::read(&mut s, &mut buf) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    });
    assert_eq!(h.wait_for_room(id, MSG, WAIT), Ok(()));
    assert_eq!(block_on(h.room(id, MSG)), Ok(()));
    h.send(id, c10k::proto::MessageKind::Binary, vec![7; MSG])
        .unwrap();
    // Gone: the answer comes at once, to the blocking wait and to the future.
    h.close(id, CloseCode::Normal, "done");
    assert!(wait_until(WAIT, || h.send_text(id, "late")
        == Err(SendError::UnknownConnection)));
    assert_eq!(h.wait_for_room(id, MSG, WAIT), Err(SendError::UnknownConnection));
    assert_eq!(block_on(h.room(id, MSG)), Err(SendError::UnknownConnection));
    assert!(reader.join().unwrap() >= (sent + 1) * MSG);
    stop(&h);
}
