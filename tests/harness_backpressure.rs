//! Back-pressure, on the virtual clock of `c10k::testing`: a client that does not read while the
//! server sends to it. The client's receive window stands for the socket buffers; the queue,
//! its cap, the drop policy and `on_drain` are the shard's own code. (Over real sockets the same
//! paths are driven by engine_limits.rs and by `c10k attack`'s slow readers.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use c10k::proto::{Message, MessageKind};
use c10k::testing::{Received, TestClient, TestServer};
use c10k::{Backpressure, ConnId, Ctx, Handler, SendError, ServerConfig};
use common::*;

const CAP: usize = 256 << 10;
const BIG: usize = 64 << 10;
/// A frame header, and a Close frame that may be written past the cap.
const SLACK: usize = 14 + 2 + 2 + 123;

/// What the sending side of a handler saw.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicUsize,
    dropped: AtomicUsize,
    closing: AtomicUsize,
    other: AtomicUsize,
    max_buffered: AtomicUsize,
    /// `on_drain` calls that found bytes still queued.
    drained_nonempty: AtomicUsize,
}

impl Tally {
    fn record(&self, ctx: &Ctx<'_>, id: ConnId, res: Result<(), SendError>) {
        match res {
            Ok(()) => &self.ok,
            Err(SendError::Dropped) => &self.dropped,
            Err(SendError::Closing) => &self.closing,
            Err(_) => &self.other,
        }
        .fetch_add(1, Ordering::SeqCst);
        if let Some(n) = ctx.buffered_amount(id) {
            self.max_buffered.fetch_max(n, Ordering::SeqCst);
        }
    }

    fn get(&self, c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }
}

/// Once opened, sends `per_tick` messages of `size` bytes to the connection every 10 ms while it
/// is open, until `stop_after_drops` sends were dropped. Text messages are handled by [`Probe`];
/// `burst:<n>:<size>` sends `n` messages of `size` bytes at once, from `on_message`.
#[derive(Clone)]
struct Flood {
    probe: Probe,
    tally: Arc<Tally>,
    flood: bool,
    per_tick: usize,
    size: usize,
    stop_after_drops: usize,
    conns: Vec<ConnId>,
}

impl Flood {
    fn new(events: &Events, tally: &Arc<Tally>) -> Self {
        Self {
            probe: Probe::new(events),
            tally: Arc::clone(tally),
            flood: true,
            per_tick: 16,
            size: BIG,
            stop_after_drops: usize::MAX,
            conns: Vec::new(),
        }
    }
}

impl Handler for Flood {
    type State = ();

    fn on_open(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ConnId,
        _state: &mut Self::State,
        req: &c10k::proto::Request<'_>,
    ) {
        self.probe.on_open(ctx, id, _state, req);
        self.conns.push(id);
        if self.flood {
            ctx.set_timer(Duration::from_millis(10), self.conns.len() as u64 - 1);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        if let Some(cmd) = msg.as_bytes().strip_prefix(b"burst:") {
            let cmd = std::str::from_utf8(cmd).unwrap();
            let (n, size) = cmd.split_once(':').unwrap();
            let payload = vec![0x5a; size.parse().unwrap()];
            for _ in 0..n.parse().unwrap() {
                let res = ctx.send(id, MessageKind::Binary, &payload);
                self.tally.record(ctx, id, res);
            }
            return;
        }
        self.probe.on_message(ctx, id, _state, msg);
    }

    fn on_close(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: ConnId,
        _state: Self::State,
        code: c10k::proto::CloseCode,
        reason: &str,
    ) {
        self.probe.on_close(ctx, id, _state, code, reason);
    }

    fn on_drain(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State) {
        if ctx.buffered_amount(id) != Some(0) {
            self.tally.drained_nonempty.fetch_add(1, Ordering::SeqCst);
        }
        self.probe.on_drain(ctx, id, _state);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        let id = self.conns[token as usize];
        if !ctx.is_open(id) {
            return;
        }
        let payload = vec![0xa5; self.size];
        for _ in 0..self.per_tick {
            let res = ctx.send(id, MessageKind::Binary, &payload);
            self.tally.record(ctx, id, res);
        }
        if self.tally.get(&self.tally.dropped) < self.stop_after_drops {
            ctx.set_timer(Duration::from_millis(10), token);
        }
    }
}

fn capped(policy: Backpressure) -> ServerConfig {
    let mut c = ServerConfig::default();
    c.max_queued_bytes = CAP;
    c.backpressure = policy;
    c.close_timeout = Duration::from_millis(300);
    c
}

/// Reads `n` binary messages of `size` bytes each, letting the server write more as the client
/// makes room; then whatever else came (returned).
fn read_messages(server: &mut TestServer<Flood>, c: &mut TestClient, n: usize, size: usize) -> Vec<Received> {
    let mut got = 0;
    let mut rest = Vec::new();
    for _ in 0..100_000 {
        server.settle();
        let batch = c.recv_all();
        if batch.is_empty() && c.unread() == 0 {
            break;
        }
        for m in batch {
            match m {
                Received::Binary(b) if got < n => {
                    assert_eq!(b.len(), size, "message {got}");
                    got += 1;
                }
                other => rest.push(other),
            }
        }
    }
    assert_eq!(got, n, "messages read");
    rest
}

#[test]
fn a_client_that_does_not_read_is_closed_with_1008_past_the_cap() {
    let events = Events::default();
    let tally = Arc::new(Tally::default());
    let mut server = TestServer::new(capped(Backpressure::Close), Flood::new(&events, &tally));
    let c = server.connect("/").unwrap();
    // The handler keeps sending as long as the connection is open: the close must still happen.
    server.advance(Duration::from_secs(2));
    assert_eq!(events.closes(c.id()), [1008]);
    let st = server.stats();
    assert_eq!(
        (st.backpressure_closes, st.backpressure_drops, st.sockets),
        (1, 0, 0),
        "{st:#?}"
    );
    assert_eq!(st.closes.get(&1008), Some(&1));
    let max = tally.get(&tally.max_buffered);
    assert!(max > CAP, "the queue never reached its cap ({max})");
    assert!(max <= CAP + BIG + SLACK, "{max} bytes queued, cap {CAP}");
    assert!(tally.get(&tally.closing) >= 1);
    assert!(c.server_gone());
}

#[test]
fn messages_past_the_cap_are_dropped_and_the_connection_kept_with_the_drop_policy() {
    let events = Events::default();
    let tally = Arc::new(Tally::default());
    let mut flood = Flood::new(&events, &tally);
    flood.stop_after_drops = 3;
    let mut server = TestServer::new(capped(Backpressure::Drop), flood);
    let mut c = server.connect("/").unwrap();
    server.advance(Duration::from_secs(1));
    let st = server.stats();
    assert!(st.backpressure_drops >= 3, "{st:#?}");
    assert_eq!((st.backpressure_closes, st.connections_open), (0, 1));
    let max = tally.get(&tally.max_buffered);
    assert!(max <= CAP + BIG + 14, "{max} bytes queued, cap {CAP}");
    // The timer stopped; what was accepted arrives whole, and the connection still works.
    assert_eq!(tally.get(&tally.dropped), st.backpressure_drops as usize);
    let rest = read_messages(&mut server, &mut c, tally.get(&tally.ok), BIG);
    assert!(rest.is_empty(), "{rest:?}");
    assert!(events.all().contains(&Ev::Drain(c.id())));
    c.send_text("still here");
    server.settle();
    assert_eq!(c.recv(), Some(Received::Text("still here".into())));
    assert!(events.closes(c.id()).is_empty());
    assert_eq!(tally.get(&tally.closing), 0);
}

#[test]
fn the_queue_is_capped_for_sends_made_while_handling_input() {
    let events = Events::default();
    let tally = Arc::new(Tally::default());
    let mut flood = Flood::new(&events, &tally);
    flood.flood = false;
    let mut server = TestServer::new(capped(Backpressure::Drop), flood);
    let mut c = server.connect("/").unwrap();
    // Small messages to the connection being read are gathered before being written.
    let (n, size) = (4000, 4 << 10);
    c.send_text(&format!("burst:{n}:{size}"));
    server.settle();
    let max = tally.get(&tally.max_buffered);
    assert!(max <= CAP + size + 14, "{max} bytes buffered, cap {CAP}");
    assert_eq!(tally.get(&tally.ok) + tally.get(&tally.dropped), n);
    assert!(tally.get(&tally.dropped) > 0);
    assert_eq!(
        server.stats().backpressure_drops as usize,
        tally.get(&tally.dropped)
    );
    read_messages(&mut server, &mut c, tally.get(&tally.ok), size);
}

#[test]
fn on_drain_comes_once_when_a_late_reader_empties_the_queue() {
    let events = Events::default();
    let tally = Arc::new(Tally::default());
    let mut flood = Flood::new(&events, &tally);
    flood.flood = false;
    let mut config = ServerConfig::default();
    config.max_queued_bytes = 64 << 20;
    // A client that reads nothing for a minute would not answer a keep-alive ping either.
    config.ping_interval = None;
    let mut server = TestServer::new(config, flood);
    let mut c = server.connect("/").unwrap();
    let (n, size) = (512, BIG);
    c.send_text(&format!("burst:{n}:{size}"));
    server.settle();
    assert_eq!(server.stats().messages_out, n as u64);
    assert!(
        tally.get(&tally.max_buffered) > 0,
        "the window took everything: the queue never grew"
    );
    server.advance(Duration::from_secs(60));
    assert!(
        !events.all().contains(&Ev::Drain(c.id())),
        "drained before the client read"
    );
    read_messages(&mut server, &mut c, n, size);
    assert_eq!(tally.get(&tally.ok), n);
    assert_eq!(
        tally.get(&tally.drained_nonempty),
        0,
        "on_drain with bytes still queued"
    );
    let drains = events.all().iter().filter(|e| matches!(e, Ev::Drain(_))).count();
    assert_eq!(drains, 1, "one episode, one on_drain");
}

/// Publishes each message to the topic its own connection is subscribed to, then sends a
/// second message to it directly: the first waits in the queue for the end of the turn, the
/// second comes behind it.
struct PublishThenSend;

impl Handler for PublishThenSend {
    type State = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut (), _req: &c10k::proto::Request<'_>) {
        ctx.subscribe(id, "self").unwrap();
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut (), msg: Message<'_>) {
        ctx.publish("self", msg.kind(), msg.as_bytes());
        let _ = ctx.send(id, MessageKind::Text, b"after");
    }
}

#[test]
fn bytes_sent_behind_a_queued_broadcast_go_out_in_the_same_turn() {
    // A queue filled by a broadcast is written at the end of the turn; a send that lands behind
    // it must not make it wait for a writable edge that never comes (the socket never blocked).
    let mut server = TestServer::new(ServerConfig::default(), PublishThenSend);
    let mut c = server.connect("/").unwrap();
    for i in 0..3 {
        let text = format!("message {i}");
        c.send_text(&text);
        server.settle();
        assert_eq!(
            c.recv_all(),
            [Received::Text(text), Received::Text("after".into())]
        );
    }
}
