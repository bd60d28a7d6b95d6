//! Per-connection limits and decisions that take time, on the virtual clock of
//! `c10k::testing`: the control-frame rate per second of the clock, one pong owed to a peer
//! that does not read, the message deadline, and a handshake left pending until its deadline
//! or its decision. (engine_limits.rs and engine_pending.rs keep what needs real sockets.)

mod common;

use std::time::Duration;

use c10k::proto::{CloseCode, Message, Request};
use c10k::testing::{Received, TestClient, TestServer};
use c10k::{ConnId, Ctx, Decision, DecisionOutcome, Handler, RejectReason, ServerConfig};
use common::*;

fn pings(range: std::ops::Range<u8>) -> Vec<u8> {
    range.flat_map(|i| frame(true, 0x9, &[i])).collect()
}

#[test]
fn control_frames_up_to_the_rate_pass_each_second_and_one_more_in_a_second_gets_1008() {
    let mut config = ServerConfig::default();
    config.control_frame_rate = 10;
    let mut server = TestServer::new(config, Echo);
    // Ten pings and a message in one instant: all answered; ten more in the next second too.
    let mut ok = server.connect("/").unwrap();
    for round in 0..2u8 {
        let mut burst = pings(round * 10..round * 10 + 10);
        burst.extend(frame(true, 0x1, b"still here"));
        ok.write_raw(&burst);
        server.settle();
        let got = ok.recv_all();
        assert_eq!(got.len(), 11, "{got:?}");
        assert!((0..10).all(|i| got[i] == Received::Pong(vec![round * 10 + i as u8])));
        assert_eq!(got[10], Received::Text("still here".into()));
        server.advance(Duration::from_secs(1));
    }
    // Eleven within one second: the eleventh fails the connection; nothing after it is read.
    let mut over = server.connect("/").unwrap();
    over.set_auto_reply(false);
    let mut burst = pings(0..11);
    burst.extend(frame(true, 0x1, b"never echoed"));
    over.write_raw(&burst);
    server.settle();
    let got = over.recv_all();
    assert_eq!(got.len(), 11, "ten pongs, then the Close frame: {got:?}");
    assert!(got[..10].iter().all(|m| matches!(m, Received::Pong(_))));
    assert!(
        matches!(&got[10], Received::Close(CloseCode::PolicyViolation, _)),
        "{:?}",
        got[10]
    );
    assert!(over.server_closed());
    let st = server.stats();
    assert_eq!(st.control_rate_closes, 1);
    assert_eq!(
        st.connections_open, 2,
        "the other connection is untouched (the failed one lingers)"
    );
}

#[test]
fn pings_to_a_peer_that_does_not_read_are_answered_by_one_pong_the_latest() {
    let mut config = ServerConfig::default();
    config.max_queued_bytes = 64 << 20;
    let mut server = TestServer::new(config, Echo);
    let mut c = server.connect("/").unwrap();
    c.set_window(4096);
    // An 8 MiB echo fills the window and leaves most of itself queued.
    c.send_binary(&vec![7u8; 8 << 20]);
    server.settle();
    let before = server.stats().memory.queued;
    assert!(before > 1 << 20, "{before}");
    c.write_raw(&pings(0..100));
    server.settle();
    let after = server.stats().memory.queued;
    assert!(
        after - before <= 3,
        "{before} -> {after}: one pong of 3 bytes owed"
    );
    c.set_window(usize::MAX);
    c.send_text("done");
    let mut got = Vec::new();
    while !got.contains(&Received::Text("done".into())) {
        server.settle();
        let batch = c.recv_all();
        assert!(
            !batch.is_empty() || c.unread() > 0,
            "stalled after {} frames",
            got.len()
        );
        got.extend(batch);
    }
    assert_eq!(got[0], Received::Binary(vec![7u8; 8 << 20]));
    let pongs: Vec<_> = got.iter().filter(|m| matches!(m, Received::Pong(_))).collect();
    assert_eq!(
        pongs.last(),
        Some(&&Received::Pong(vec![99])),
        "the latest ping is answered"
    );
    assert!(pongs.len() < 100, "{} pongs for 100 pings", pongs.len());
}

#[test]
fn an_unfinished_message_gets_1008_at_the_message_timeout_and_a_finished_one_is_echoed() {
    let mut config = ServerConfig::default();
    config.message_timeout = Duration::from_secs(60);
    config.ping_interval = None;
    let mut server = TestServer::new(config, Echo);
    // Finished within the timeout (the first fragment, then the last 59 s later).
    let mut ok = server.connect("/").unwrap();
    ok.write_raw(&frame(false, 0x1, b"hel"));
    server.advance(Duration::from_secs(59));
    ok.write_raw(&frame(true, 0x0, b"lo"));
    server.settle();
    assert_eq!(ok.recv(), Some(Received::Text("hello".into())));
    // A frame whose payload stops half way, and a fragment whose sequel dribbles: both failed.
    let mut half = server.connect("/").unwrap();
    half.write_raw(&frame(true, 0x2, &[1; 1000])[..500]);
    let mut dribble = server.connect("/").unwrap();
    let start = server.now();
    dribble.write_raw(&frame(false, 0x1, b"a"));
    for _ in 0..5 {
        // Progress within the message does not move its deadline.
        server.advance(Duration::from_secs(11));
        dribble.write_raw(&frame(false, 0x0, b"b"));
    }
    server.advance(Duration::from_secs(10));
    for c in [&mut half, &mut dribble] {
        assert!(matches!(
            c.recv(),
            Some(Received::Close(CloseCode::PolicyViolation, _))
        ));
    }
    let fired = server.fired();
    let at = fired
        .iter()
        .find(|(_, f)| *f == c10k::testing::Fired::Message(dribble.id()))
        .expect("the message deadline fired")
        .0;
    assert!(at - start >= Duration::from_secs(60) && at - start <= Duration::from_millis(60_010));
    let st = server.stats();
    assert_eq!(st.message_timeouts, 2);
    assert_eq!(st.memory.messages, 0, "the unfinished messages were freed");
    // The connection that finished its message is still served.
    ok.send_text("again");
    server.settle();
    assert_eq!(ok.recv(), Some(Received::Text("again".into())));
}

// ---- handshakes decided later ----

/// Leaves every upgrade pending; echoes with the connection's state (a user name) in front.
struct Gate;

impl Handler for Gate {
    type State = String;

    fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, _req: &Request<'_>) -> Decision<String> {
        Decision::Pending
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, user: &mut String, msg: Message<'_>) {
        let reply = format!("{user}: {}", String::from_utf8_lossy(msg.as_bytes()));
        let _ = ctx.send_text(id, &reply);
    }
}

fn pending(server: &mut TestServer<Gate>, early: &[u8]) -> TestClient {
    let mut c = server.open();
    c.request("/", &[]);
    c.write_raw(early);
    server.settle();
    assert!(server.handle().is_pending(c.id()));
    assert!(c.response().is_none(), "no answer while pending");
    c
}

#[test]
fn a_handshake_left_undecided_is_answered_503_at_its_deadline_and_a_late_decision_is_a_no_op() {
    let mut server = TestServer::new(ServerConfig::default(), Gate);
    let mut c = pending(&mut server, b"");
    server.advance(Duration::from_secs(9));
    assert!(
        c.response().is_none(),
        "still waiting within the handshake timeout"
    );
    server.advance(Duration::from_secs(10));
    let answer = c.response().expect("answered").expect_err("not upgraded");
    assert_eq!(answer.status, 503);
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(matches!(server.fired()[..], [(_, c10k::testing::Fired::Decision(id))] if id == c.id()));
    let st = server.stats();
    assert_eq!(st.rejected.get(&RejectReason::Undecided), Some(&1));
    assert_eq!((st.handshaking, st.sockets), (0, 0));
    let late = server
        .handle()
        .decide(c.id(), Decision::accept_with("late".to_owned()));
    server.settle();
    assert_eq!(late.wait(Duration::ZERO), Some(DecisionOutcome::Gone));
}

#[test]
fn frames_sent_right_after_a_pending_request_are_handled_once_it_is_accepted() {
    let mut server = TestServer::new(ServerConfig::default(), Gate);
    // The request and a first message at once, as an impatient client does.
    let mut c = pending(&mut server, &frame(true, 0x1, b"early"));
    // And more while it waits: the server reads nothing of it until the decision.
    server.advance(Duration::from_secs(2));
    c.write_raw(&frame(true, 0x1, b"later"));
    server.advance(Duration::from_secs(2));
    assert_eq!(c.unread(), 0);
    let receipt = server
        .handle()
        .decide(c.id(), Decision::accept_with("bob".to_owned()));
    server.settle();
    assert_eq!(receipt.wait(Duration::ZERO), Some(DecisionOutcome::Applied));
    assert_eq!(c.response(), Some(Ok(())));
    assert_eq!(
        c.recv_all(),
        [
            Received::Text("bob: early".into()),
            Received::Text("bob: later".into())
        ]
    );
}
