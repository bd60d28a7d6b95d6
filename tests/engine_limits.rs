//! The per-connection limits, each at its edge: what one peer may make the server hold or do,
//! and the answer it gets one step past it (docs/security.md lists them).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use c10k::proto::{Message, MessageKind, Request};
use c10k::{ConnId, Ctx, Decision, Handler, SendError};
use common::*;

/// A connection with a small receive buffer (set before connecting, so that the window stays
/// small), upgraded.
fn small_window(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(UPGRADE).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads frames until a Close frame; returns the frames before it and its code (`None` when
/// the connection ended without one).
fn frames_until_close(s: &mut TcpStream) -> (Vec<(u8, Vec<u8>)>, Option<u16>) {
    let mut got = Vec::new();
    loop {
        match try_read_frame(s) {
            Ok((_, 0x8, p)) => return (got, Some(u16::from_be_bytes([p[0], p[1]]))),
            Ok((_, op, p)) => got.push((op, p)),
            Err(_) => return (got, None),
        }
    }
}

#[test]
fn a_ping_flood_that_never_reads_is_closed_holding_under_a_mebibyte() {
    let mut config = quick_config();
    config.close_timeout = Duration::from_secs(5);
    let h = start(config, |_| Echo);
    let mut s = small_window(h.local_addr());
    s.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let ping = frame(true, 0x9, &[0x55; 125]);
    let mut peak = 0;
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    // Pings as fast as the socket takes them, nothing read, until the server says it had enough
    // (at most 10,000, at most 10 s).
    while sent < 10_000 && Instant::now() < deadline {
        if s.write_all(&ping).is_err() {
            break;
        }
        sent += 1;
        if sent % 50 == 0 {
            let st = h.stats();
            peak = peak.max(st.memory.total());
            if st.control_rate_closes == 1 {
                break;
            }
        }
    }
    let st = wait_stats(&h, Duration::from_secs(5), |s| s.control_rate_closes == 1);
    peak = peak.max(st.memory.total());
    assert!(peak < 1 << 20, "the server held {peak} bytes for one ping flood");
    assert!(sent > 256, "the flood stopped at {sent} pings");
    // What the server said is at the end of what it sent: pongs, then 1008.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (pongs, code) = frames_until_close(&mut s);
    assert_eq!(code, Some(1008), "after {} pongs", pongs.len());
    assert!(pongs.len() <= 256, "{} pongs", pongs.len());
    drop(s);
    let st = wait_no_sockets(&h);
    assert_eq!(st.memory.total(), 0, "{:?}", st.memory);
    stop(&h);
}

/// `sub NAME` subscribes, `unsub NAME` unsubscribes; the answer is `ok true|false` or `error ...`.
struct Subs;

impl Handler for Subs {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), msg: Message<'_>) {
        let text = String::from_utf8_lossy(msg.as_bytes()).into_owned();
        let answer = match text.split_once(' ') {
            Some(("sub", t)) => ctx.subscribe(id, t),
            Some(("unsub", t)) => ctx.unsubscribe(id, t),
            _ => Err(SendError::NotOpen),
        };
        let reply = match answer {
            Ok(b) => format!("ok {b}"),
            Err(SendError::TooManyTopics) => "error topics".to_owned(),
            Err(e) => format!("error {e}"),
        };
        let _ = ctx.send_text(id, &reply);
    }
}

#[test]
fn a_connection_subscribes_to_the_topic_limit_and_not_one_more() {
    let mut config = quick_config();
    config.max_topics = 3;
    let h = start(config, |_| Subs);
    let mut ws = client(h.local_addr());
    let mut ask = |line: &str| {
        ws.send(tungstenite::Message::text(line)).unwrap();
        ws.read().unwrap().into_text().unwrap().to_string()
    };
    for t in ["a", "b", "c"] {
        assert_eq!(ask(&format!("sub {t}")), "ok true");
    }
    assert_eq!(ask("sub d"), "error topics");
    assert_eq!(ask("sub b"), "ok false", "one it has is no new topic");
    assert_eq!(ask("unsub a"), "ok true");
    assert_eq!(ask("sub d"), "ok true");
    assert_eq!(h.stats().topic_limit_refusals, 1);
    assert!(h.stats().memory.topics > 0);
    close_ws(ws);
    let st = wait_no_sockets(&h);
    assert_eq!(st.memory.total(), 0, "subscriptions released: {:?}", st.memory);
    stop(&h);
}

/// Leaves every handshake pending; the test decides.
struct Undecided(std::sync::mpsc::Sender<ConnId>);

impl Handler for Undecided {
    type State = ();

    fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, _req: &Request<'_>) -> Decision<()> {
        let _ = self.0.send(id);
        Decision::Pending
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), msg: Message<'_>) {
        let _ = ctx.send(
            id,
            MessageKind::Binary,
            &(msg.as_bytes().len() as u32).to_be_bytes(),
        );
    }
}

#[test]
fn data_after_a_pending_request_is_kept_to_16_kib_and_one_byte_more_is_answered_400() {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = start(quick_config(), move |_| Undecided(tx.clone()));
    // Exactly 16 KiB after the request: one frame of 16,376 bytes (8 of header).
    let early = frame(true, 0x2, &[3; 16_376]);
    assert_eq!(early.len(), 16 << 10);
    let mut kept = raw(h.local_addr());
    let mut bytes = UPGRADE.to_vec();
    bytes.extend_from_slice(&early);
    kept.write_all(&bytes).unwrap();
    let id = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || h.is_pending(id)));
    assert_eq!(
        h.decide(id, Decision::<()>::accept())
            .wait(Duration::from_secs(5)),
        Some(c10k::DecisionOutcome::Applied)
    );
    assert!(!h.is_pending(id));
    assert!(read_head(&mut kept).starts_with("HTTP/1.1 101"));
    assert_eq!(
        read_frame(&mut kept),
        (true, 0x2, 16_376u32.to_be_bytes().to_vec())
    );
    // One byte more: refused before any decision.
    let mut over = raw(h.local_addr());
    bytes.push(0x82);
    over.write_all(&bytes).unwrap();
    let id = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let head = read_head(&mut over);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(!h.is_pending(id));
    let st = wait_stats(&h, Duration::from_secs(5), |s| {
        s.rejected.get(&c10k::RejectReason::EarlyData) == Some(&1)
    });
    assert_eq!(st.memory.input, 0, "{:?}", st.memory);
    drop(kept);
    stop(&h);
}

#[test]
fn a_pending_handshake_whose_client_left_is_no_longer_pending() {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = start(quick_config(), move |_| Undecided(tx.clone()));
    let mut s = raw(h.local_addr());
    s.write_all(UPGRADE).unwrap();
    let id = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    // The handler saw the request: it is pending from then on.
    assert!(wait_until(Duration::from_secs(5), || h.is_pending(id)));
    drop(s);
    assert!(wait_until(Duration::from_secs(5), || !h.is_pending(id)));
    assert_eq!(
        h.decide(id, Decision::<()>::accept())
            .wait(Duration::from_secs(5)),
        Some(c10k::DecisionOutcome::Gone)
    );
    stop(&h);
}
