//! Back-pressure over loopback: a client that does not read while the server sends to it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use c10k::proto::{Message, MessageKind};
use c10k::{Backpressure, ConnId, Ctx, Handler, SendError, ServerConfig};
use common::*;

const WAIT: Duration = Duration::from_secs(10);
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
    let mut c = quick_config();
    c.max_queued_bytes = CAP;
    c.backpressure = policy;
    c.close_timeout = Duration::from_millis(300);
    c
}

/// Reads `n` binary frames of `size` bytes each.
fn read_messages(s: &mut std::net::TcpStream, n: usize, size: usize) {
    for i in 0..n {
        let (fin, op, payload) = read_frame(s);
        assert!(
            fin && op == 0x2 && payload.len() == size,
            "message {i}: {op} {}",
            payload.len()
        );
    }
}

#[test]
fn server_closes_a_client_that_does_not_read_with_1008_past_the_cap() {
    let events = Events::default();
    let tally = Arc::new(Tally::default());
    let flood = Flood::new(&events, &tally);
    let h = start(capped(Backpressure::Close), move |_| flood.clone());
    let s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    // The handler keeps sending as long as the connection is open: the close must still happen.
    assert_eq!(events.wait_close(id, WAIT), 1008);
    let st = wait_no_sockets(&h);
    assert_eq!(st.backpressure_closes, 1, "{st:#?}");
    assert_eq!(st.backpressure_drops, 0);
    assert_eq!(st.closes.get(&1008), Some(&1));
    let max = tally.get(&tally.max_buffered);
    assert!(max > CAP, "the queue never reached its cap ({max})");
    assert!(max <= CAP + BIG + SLACK, "{max} bytes queued, cap {CAP}");
    assert!(tally.get(&tally.closing) >= 1);
    drop(s);
    stop(&h);
    assert_eq!(events.closes(id), [1008]);
}

#[test]
fn server_drops_messages_past_the_cap_and_keeps_the_connection_with_drop_policy() {
    let events = Events::default();
    let tally = Arc::new(Tally::default());
    let mut flood = Flood::new(&events, &tally);
    flood.stop_after_drops = 3;
    let h = start(capped(Backpressure::Drop), move |_| flood.clone());
    let mut s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    let st = wait_stats(&h, WAIT, |s| s.backpressure_drops >= 3);
    assert_eq!(st.backpressure_closes, 0);
    assert_eq!(st.connections_open, 1);
    let max = tally.get(&tally.max_buffered);
    assert!(max <= CAP + BIG + 14, "{max} bytes queued, cap {CAP}");
    // The timer stopped; what was accepted arrives whole, and the connection still works.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(tally.get(&tally.dropped), h.stats().backpressure_drops as usize);
    read_messages(&mut s, tally.get(&tally.ok), BIG);
    s.write_all_frame(b"still here");
    assert_eq!(read_frame(&mut s), (true, 0x1, b"still here".to_vec()));
    assert!(events.wait(WAIT, |e| e.contains(&Ev::Drain(id))));
    assert!(events.closes(id).is_empty());
    assert_eq!(tally.get(&tally.closing), 0);
    s.write_all_close(1000);
    assert_eq!(read_close_code(&mut s), 1000);
    stop(&h);
}

#[test]
fn server_caps_the_queue_for_sends_made_while_handling_input() {
    let events = Events::default();
    let tally = Arc::new(Tally::default());
    let mut flood = Flood::new(&events, &tally);
    flood.flood = false;
    let h = start(capped(Backpressure::Drop), move |_| flood.clone());
    let mut s = raw_open(h.local_addr());
    events.wait_open(1);
    // Small messages to the connection being read are gathered before being written.
    let (n, size) = (4000, 4 << 10);
    s.write_all_frame(format!("burst:{n}:{size}").as_bytes());
    let st = wait_stats(&h, WAIT, |s| s.messages_in == 1);
    let max = tally.get(&tally.max_buffered);
    assert!(max <= CAP + size + 14, "{max} bytes buffered, cap {CAP}");
    assert_eq!(tally.get(&tally.ok) + tally.get(&tally.dropped), n);
    assert!(tally.get(&tally.dropped) > 0);
    assert_eq!(st.backpressure_drops as usize, tally.get(&tally.dropped));
    read_messages(&mut s, tally.get(&tally.ok), size);
    s.write_all_close(1000);
    assert_eq!(read_close_code(&mut s), 1000);
    stop(&h);
}

#[test]
fn server_calls_on_drain_when_a_late_reader_empties_the_queue() {
    let events = Events::default();
    let tally = Arc::new(Tally::default());
    let mut flood = Flood::new(&events, &tally);
    flood.flood = false;
    let mut config = quick_config();
    config.max_queued_bytes = 64 << 20;
    let h = start(config, move |_| flood.clone());
    let mut s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    let (n, size) = (512, BIG);
    s.write_all_frame(format!("burst:{n}:{size}").as_bytes());
    wait_stats(&h, WAIT, |s| s.messages_out == n as u64);
    assert!(
        tally.get(&tally.max_buffered) > 0,
        "the kernel took everything: the queue never grew"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !events.all().contains(&Ev::Drain(id)),
        "drained before the client read"
    );
    read_messages(&mut s, n, size);
    assert!(events.wait(WAIT, |e| e.contains(&Ev::Drain(id))));
    assert_eq!(tally.get(&tally.ok), n);
    assert_eq!(
        tally.get(&tally.drained_nonempty),
        0,
        "on_drain with bytes still queued"
    );
    s.write_all_close(1000);
    assert_eq!(read_close_code(&mut s), 1000);
    stop(&h);
    let drains = events.all().iter().filter(|e| matches!(e, Ev::Drain(_))).count();
    assert_eq!(drains, 1, "one episode, one on_drain");
}

/// Writing masked frames on a raw stream.
trait WriteFrames {
    fn write_all_frame(&mut self, text: &[u8]);
    fn write_all_close(&mut self, code: u16);
}

impl WriteFrames for std::net::TcpStream {
    fn write_all_frame(&mut self, text: &[u8]) {
        use std::io::Write;
        self.write_all(&frame(true, 0x1, text)).unwrap();
    }

    fn write_all_close(&mut self, code: u16) {
        use std::io::Write;
        self.write_all(&close_frame(code, "")).unwrap();
    }
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
    let h = start(quick_config(), |_| PublishThenSend);
    let mut ws = client(h.local_addr());
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    for i in 0..3 {
        let text = format!("message {i}");
        ws.send(tungstenite::Message::text(text.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text(text));
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("after"));
    }
    close_ws(ws);
    stop(&h);
}
