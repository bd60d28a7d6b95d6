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
fn control_frames_up_to_the_rate_pass_and_one_more_in_the_same_second_gets_1008() {
    let mut config = quick_config();
    config.control_frame_rate = 10;
    let h = start(config, |_| Echo);
    // Ten pings and a message in one write (one read of the server's, one instant): all answered.
    let mut ok = raw_open(h.local_addr());
    let mut burst: Vec<u8> = (0..10u8).flat_map(|i| frame(true, 0x9, &[i])).collect();
    burst.extend(frame(true, 0x1, b"still here"));
    ok.write_all(&burst).unwrap();
    for i in 0..10u8 {
        assert_eq!(read_frame(&mut ok), (true, 0xA, vec![i]));
    }
    assert_eq!(read_frame(&mut ok), (true, 0x1, b"still here".to_vec()));
    // Eleven: the eleventh fails the connection; nothing after it is read.
    let mut over = raw_open(h.local_addr());
    let mut burst: Vec<u8> = (0..11u8).flat_map(|i| frame(true, 0x9, &[i])).collect();
    burst.extend(frame(true, 0x1, b"never echoed"));
    over.write_all(&burst).unwrap();
    let (before, code) = frames_until_close(&mut over);
    assert_eq!(code, Some(1008));
    assert_eq!(before.len(), 10, "ten pongs, then the Close frame");
    assert!(before.iter().all(|(op, _)| *op == 0xA));
    assert!(closed_by_server(&mut over));
    let st = wait_stats(&h, Duration::from_secs(5), |s| s.closes.get(&1008) == Some(&1));
    assert_eq!(st.control_rate_closes, 1);
    drop(ok);
    stop(&h);
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

#[test]
fn pings_to_a_peer_that_does_not_read_are_answered_by_one_pong_the_latest() {
    let mut config = quick_config();
    config.max_queued_bytes = 64 << 20;
    config.protocol.max_message_size = 16 << 20;
    config.protocol.max_frame_size = 16 << 20;
    let h = start(config, |_| Echo);
    let mut s = small_window(h.local_addr());
    // An 8 MiB echo fills the socket and leaves most of itself queued.
    s.write_all(&frame(true, 0x2, &vec![7u8; 8 << 20])).unwrap();
    wait_stats(&h, Duration::from_secs(5), |s| s.memory.queued > 1 << 20);
    let before = h.stats().memory.queued;
    let pings: Vec<u8> = (0..100u8).flat_map(|i| frame(true, 0x9, &[i])).collect();
    s.write_all(&pings).unwrap();
    let after = wait_stats(&h, Duration::from_secs(5), |st| st.memory.queued != before)
        .memory
        .queued;
    assert!(
        after - before <= 3,
        "{before} -> {after}: one pong of 3 bytes owed"
    );
    let (_, _, echo) = read_frame(&mut s);
    assert_eq!(echo.len(), 8 << 20);
    s.write_all(&frame(true, 0x1, b"done")).unwrap();
    let mut pongs = Vec::new();
    loop {
        match read_frame(&mut s) {
            (_, 0xA, p) => pongs.push(p),
            (_, 0x1, p) => {
                assert_eq!(p, b"done");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pongs.last(), Some(&vec![99u8]), "the latest ping is answered");
    assert!(pongs.len() < 100, "{} pongs for 100 pings", pongs.len());
    stop(&h);
}

#[test]
fn an_unfinished_message_gets_1008_at_the_message_timeout_and_a_finished_one_is_echoed() {
    let mut config = quick_config();
    config.message_timeout = Duration::from_millis(1500);
    let h = start(config, |_| Echo);
    // Finished well within the timeout (the first fragment, then the last 200 ms later).
    let mut ok = raw_open(h.local_addr());
    ok.write_all(&frame(false, 0x1, b"hel")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    ok.write_all(&frame(true, 0x0, b"lo")).unwrap();
    assert_eq!(read_frame(&mut ok), (true, 0x1, b"hello".to_vec()));
    // A frame whose payload stops half way, and a fragment never followed: both failed.
    let mut half = raw_open(h.local_addr());
    half.write_all(&frame(true, 0x2, &[1; 1000])[..500]).unwrap();
    let mut dribble = raw_open(h.local_addr());
    let start = Instant::now();
    dribble.write_all(&frame(false, 0x1, b"a")).unwrap();
    for _ in 0..3 {
        // Progress within the message does not move its deadline.
        std::thread::sleep(Duration::from_millis(300));
        dribble.write_all(&frame(false, 0x0, b"b")).unwrap();
    }
    assert_eq!(read_close_code(&mut dribble), 1008);
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(read_close_code(&mut half), 1008);
    let st = wait_stats(&h, Duration::from_secs(5), |s| s.message_timeouts == 2);
    assert_eq!(st.memory.messages, 0, "the unfinished messages were freed");
    // The connection that finished its message is still served.
    ok.write_all(&frame(true, 0x1, b"again")).unwrap();
    assert_eq!(read_frame(&mut ok), (true, 0x1, b"again".to_vec()));
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
