//! How connections live and die over loopback: keep-alive, handshake and close deadlines, the
//! closing handshake started by the server, graceful shutdown, and peers that vanish mid-way.

mod common;

use std::io::{ErrorKind, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use c10k::{RejectReason, ServerConfig};
use common::*;
use tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);
/// The resolution of the shard's timers (whole milliseconds, in 10 ms ticks).
const TICK: Duration = Duration::from_millis(10);

fn keepalive_config() -> ServerConfig {
    let mut c = quick_config();
    c.ping_interval = Some(Duration::from_millis(200));
    c.pong_timeout = Duration::from_millis(300);
    c
}

// ---- keep-alive ----

#[test]
fn server_drops_client_that_never_answers_pings_with_1006() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(keepalive_config(), move |_| probe.clone());
    let mut s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    assert_eq!(events.wait_close(id, WAIT), 1006);
    // The ping was on the wire, then the server closed the socket.
    let (_, op, _) = read_frame(&mut s);
    assert_eq!(op, 0x9);
    assert!(closed_by_server(&mut s));
    let st = wait_no_sockets(&h);
    assert_eq!(st.pong_timeouts, 1);
    assert_eq!(st.closes.get(&1006), Some(&1));
    stop(&h);
    assert_eq!(events.closes(id), [1006], "on_close exactly once");
}

#[test]
fn server_keeps_client_that_answers_pings_for_several_intervals() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(keepalive_config(), move |_| probe.clone());
    let mut ws = client(h.local_addr());
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let id = events.wait_open(1);
    // Reading answers the server's pings; stay for several ping intervals and pong timeouts.
    let mut pings = 0;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        match ws.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(m) => panic!("unexpected {m:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the connection ended: {e}"),
        }
    }
    assert!(pings >= 2, "only {pings} pings in 1.5 s");
    assert!(events.closes(id).is_empty());
    let st = h.stats();
    assert_eq!(st.pong_timeouts, 0);
    assert_eq!(st.connections_open, 1);
    assert!(st.pings_sent >= 2);
    // Still usable.
    ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    ws.send(Message::text("still here")).unwrap();
    loop {
        match ws.read().unwrap() {
            Message::Ping(_) => continue,
            m => break assert_eq!(m, Message::text("still here")),
        }
    }
    close_ws(ws);
    stop(&h);
}

#[test]
fn first_pings_of_connections_opened_together_spread_over_the_second_half_interval() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let interval = Duration::from_secs(3);
    let mut config = quick_config();
    config.ping_interval = Some(interval);
    config.pong_timeout = Duration::from_secs(10);
    let h = start(config, move |_| probe.clone());
    let opened = Instant::now();
    let socks: Vec<_> = (0..16).map(|_| raw_open(h.local_addr())).collect();
    let threads: Vec<_> = socks
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                let (_, op, _) = read_frame(&mut s);
                assert_eq!(op, 0x9, "a ping first");
                opened.elapsed()
            })
        })
        .collect();
    let mut at: Vec<Duration> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    at.sort();
    // Never in the first half of the interval (a delay only makes them later)...
    assert!(at[0] + TICK >= interval / 2, "a ping {:?} after the open", at[0]);
    // ... and not together: drawn over 1.5 s, sixteen pings within 100 ms of each other would
    // take a stall of the whole window.
    assert!(
        at[15] - at[0] > Duration::from_millis(100),
        "all pings together: {at:?}"
    );
    stop(&h);
}

#[test]
fn server_pings_are_on_the_wire_and_a_pong_keeps_the_connection() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(keepalive_config(), move |_| probe.clone());
    let mut s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    for _ in 0..3 {
        let (fin, op, payload) = read_frame(&mut s);
        assert!(fin);
        assert_eq!(op, 0x9, "a ping");
        s.write_all(&frame(true, 0xa, &payload)).unwrap();
    }
    assert!(
        events.wait(WAIT, |e| e.iter().filter(|e| matches!(e, Ev::Pong(_))).count()
            == 3)
    );
    assert!(events.closes(id).is_empty());
    let st = h.stats();
    assert_eq!(st.pong_timeouts, 0);
    assert!(st.pings_sent >= 3);
    s.write_all(&close_frame(1000, "")).unwrap();
    assert_eq!(read_close_code(&mut s), 1000);
    stop(&h);
}

#[test]
fn server_sends_no_ping_when_ping_interval_is_none() {
    let h = start(quick_config(), |_| Probe::default());
    let mut s = raw_open(h.local_addr());
    s.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
    let err = try_read_frame(&mut s).expect_err("no frame expected");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    let st = h.stats();
    assert_eq!(st.pings_sent, 0);
    assert_eq!(st.connections_open, 1);
    assert_eq!(
        st.timers, 0,
        "an open connection without keep-alive arms no timer"
    );
    s.write_all(&close_frame(1000, "")).unwrap();
    assert_eq!(read_close_code(&mut s), 1000);
    stop(&h);
}

// ---- handshake deadline ----

#[test]
fn server_answers_slowloris_with_408_and_closes_after_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let mut config = quick_config();
    config.handshake_timeout = timeout;
    let h = start(config, |_| Probe::default());
    let started = Instant::now();
    let mut s = raw(h.local_addr());
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        started.elapsed() + TICK >= timeout,
        "answered before the deadline"
    );
    // The body, then EOF: the server closed its side.
    let rest = read_to_end(&mut s);
    assert_eq!(rest, b"handshake timeout\n");
    drop(s);
    let st = wait_no_sockets(&h);
    assert_eq!(st.rejected.get(&RejectReason::Timeout), Some(&1));
    assert_eq!(st.handshaking, 0);
    assert_eq!(st.handshakes, 0);
    stop(&h);
}

#[test]
fn server_handshake_deadline_is_not_extended_by_trickled_bytes() {
    let mut config = quick_config();
    config.handshake_timeout = Duration::from_millis(300);
    let h = start(config, |_| Probe::default());
    let mut s = raw(h.local_addr());
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut answer = Vec::new();
    // One byte every 50 ms would take several seconds to finish the request.
    for b in UPGRADE.iter().take(UPGRADE.len() - 1) {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            break;
        }
        answer.extend(read_to_end(&mut s));
        if !answer.is_empty() {
            break;
        }
    }
    assert!(
        !answer.is_empty(),
        "no answer while the request was still trickling in"
    );
    s.set_read_timeout(Some(WAIT)).unwrap();
    answer.extend(read_to_end(&mut s));
    assert!(
        answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(s);
    let st = wait_no_sockets(&h);
    assert_eq!(st.rejected.get(&RejectReason::Timeout), Some(&1));
    stop(&h);
}

// ---- closing handshake started by the server ----

#[test]
fn server_close_gets_the_client_echo_and_reports_4001() {
    let events = Events::default();
    let probe = Probe::new(&events);
    // A long close timeout: the end must come from the client's answer, not from the deadline.
    let mut config = quick_config();
    config.close_timeout = Duration::from_secs(30);
    let h = start(config, move |_| probe.clone());
    let mut ws = client(h.local_addr());
    let id = events.wait_open(1);
    ws.send(Message::text("close:4001:bye")).unwrap();
    let m = ws.read().unwrap();
    assert_eq!(ws_close_code(&m), Some(4001), "{m:?}");
    match m {
        Message::Close(Some(f)) => assert_eq!(f.reason.as_str(), "bye"),
        _ => unreachable!(),
    }
    // The next read sends the echo; the server then closes the TCP connection.
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the end of the connection, got {other:?}"),
    }
    drop(ws);
    assert_eq!(events.wait_close(id, WAIT), 4001);
    let st = wait_no_sockets(&h);
    assert_eq!(st.close_timeouts, 0);
    assert_eq!(st.closes.get(&4000), Some(&1), "counted under its range");
    stop(&h);
    assert_eq!(events.closes(id), [4001], "on_close exactly once");
}

#[test]
fn server_drops_client_that_never_answers_its_close_after_close_timeout() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(quick_config(), move |_| probe.clone());
    let mut s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    s.write_all(&frame(true, 0x1, b"close:4001:bye")).unwrap();
    assert_eq!(read_close_code(&mut s), 4001);
    // No answer: the server gives up after its close timeout.
    assert!(closed_by_server(&mut s));
    assert_eq!(
        events.wait_close(id, WAIT),
        1006,
        "no Close frame came back: abnormal closure"
    );
    let st = wait_no_sockets(&h);
    assert_eq!(st.close_timeouts, 1);
    stop(&h);
    assert_eq!(events.closes(id).len(), 1);
}

#[test]
fn server_does_not_echo_data_after_its_close() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(quick_config(), move |_| probe.clone());
    let mut s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    // The data right behind the command arrives in the same read as the command.
    let mut bytes = frame(true, 0x1, b"close:4001:bye");
    bytes.extend(frame(true, 0x1, b"after"));
    s.write_all(&bytes).unwrap();
    let (_, op, payload) = read_frame(&mut s);
    assert_eq!(op, 0x8, "the Close frame comes first and alone");
    assert_eq!(&payload[..2], &4001u16.to_be_bytes());
    // Data sent after the server's Close frame arrived is not echoed either.
    s.write_all(&frame(true, 0x1, b"later")).unwrap();
    s.write_all(&close_frame(4001, "")).unwrap();
    let rest = read_to_end(&mut s);
    assert!(rest.is_empty(), "bytes after the Close frame: {rest:?}");
    assert_eq!(events.wait_close(id, WAIT), 4001);
    stop(&h);
}

// ---- graceful shutdown ----

/// Reads until the server's Close frame; returns its code, then answers it.
fn await_going_away(mut ws: tungstenite::WebSocket<std::net::TcpStream>) -> Option<u16> {
    loop {
        match ws.read() {
            Ok(m @ Message::Close(_)) => {
                let code = ws_close_code(&m);
                // Sends the echo and waits for the server to close.
                while ws.read().is_ok() {}
                return code;
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn server_shutdown_sends_1001_to_every_client_and_leaves_no_sockets_or_timers() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let mut config = quick_config();
    config.ping_interval = Some(Duration::from_secs(30));
    config.drain_timeout = Duration::from_secs(30);
    let h = start(config, move |_| probe.clone());
    let (tx, rx) = mpsc::channel();
    for _ in 0..4 {
        let ws = client(h.local_addr());
        let tx = tx.clone();
        std::thread::spawn(move || tx.send(await_going_away(ws)).unwrap());
    }
    events.wait_open(4);
    h.shutdown();
    h.join().expect("a shard failed");
    for _ in 0..4 {
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), Some(1001));
    }
    let st = h.stats();
    assert_eq!(st.sockets, 0);
    assert_eq!(st.timers, 0, "no timer left behind: {st:#?}");
    assert_eq!(st.connections_open, 0);
    assert_eq!(st.closes.get(&1001), Some(&4));
    let closes = events.all().iter().filter(|e| matches!(e, Ev::Close(..))).count();
    assert_eq!(closes, 4);
}

#[test]
fn server_shutdown_joins_after_drain_timeout_even_if_a_client_never_answers() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let drain = Duration::from_millis(500);
    let mut config = quick_config();
    config.ping_interval = Some(Duration::from_secs(30));
    config.close_timeout = Duration::from_secs(30);
    config.drain_timeout = drain;
    let h = start(config, move |_| probe.clone());
    let (tx, rx) = mpsc::channel();
    for _ in 0..3 {
        let ws = client(h.local_addr());
        let tx = tx.clone();
        std::thread::spawn(move || tx.send(await_going_away(ws)).unwrap());
    }
    let mut silent = raw_open(h.local_addr());
    // And one still in its handshake.
    let mut half = raw(h.local_addr());
    half.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    events.wait_open(4);
    let started = Instant::now();
    h.shutdown();
    let (done_tx, done_rx) = mpsc::channel();
    let joiner = h.clone();
    std::thread::spawn(move || {
        joiner.join().expect("a shard failed");
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(drain + WAIT)
        .expect("the shards did not stop after the drain timeout");
    assert!(
        started.elapsed() + TICK >= drain,
        "the silent client was not waited for"
    );
    for _ in 0..3 {
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), Some(1001));
    }
    assert_eq!(read_close_code(&mut silent), 1001);
    assert!(closed_by_server(&mut silent));
    assert!(closed_by_server(&mut half));
    let st = h.stats();
    assert_eq!(st.sockets, 0);
    assert_eq!(st.timers, 0);
    assert_eq!(st.closes.get(&1001), Some(&3));
    assert_eq!(st.closes.get(&1006), Some(&1));
}

#[test]
fn a_drain_waits_for_a_close_answer_past_the_close_timeout_until_the_drain_timeout() {
    // A drain of many connections on a busy machine: answers come late. The close timeout must
    // not cut them off while the operator's drain budget lasts.
    let events = Events::default();
    let probe = Probe::new(&events);
    let close_timeout = Duration::from_millis(200);
    let mut config = quick_config();
    config.ping_interval = Some(Duration::from_secs(30));
    config.close_timeout = close_timeout;
    config.drain_timeout = Duration::from_secs(20);
    let h = start(config, move |_| probe.clone());
    let mut late = raw_open(h.local_addr());
    events.wait_open(1);
    h.shutdown();
    assert_eq!(read_close_code(&mut late), 1001);
    std::thread::sleep(close_timeout * 3);
    // Still open past the close timeout: the answer is taken and the server closes after it.
    late.write_all(&close_frame(1001, "")).unwrap();
    assert!(closed_by_server(&mut late));
    h.join().expect("a shard failed");
    let st = h.stats();
    assert_eq!(st.closes.get(&1001), Some(&1), "{st:#?}");
    assert_eq!(
        st.closes.get(&1006),
        None,
        "dropped at the close timeout: {st:#?}"
    );
    assert_eq!(st.close_timeouts, 0);
}

// ---- peers that vanish ----

#[test]
fn server_reports_1006_once_when_client_resets_mid_frame() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(quick_config(), move |_| probe.clone());
    let mut s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    let f = frame(true, 0x2, &[5u8; 1000]);
    s.write_all(&f[..100]).unwrap();
    reset(s);
    assert_eq!(events.wait_close(id, WAIT), 1006);
    wait_no_sockets(&h);
    stop(&h);
    assert_eq!(events.closes(id), [1006]);
    assert!(events.messages(id).is_empty());
}

#[test]
fn server_reports_1006_once_when_client_half_closes_mid_frame() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(quick_config(), move |_| probe.clone());
    let mut s = raw_open(h.local_addr());
    let id = events.wait_open(1);
    let f = frame(true, 0x1, b"a message cut in the middle");
    s.write_all(&f[..10]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_server(&mut s));
    assert_eq!(events.wait_close(id, WAIT), 1006);
    wait_no_sockets(&h);
    stop(&h);
    assert_eq!(events.closes(id), [1006]);
}

#[test]
fn server_forgets_clients_that_leave_mid_handshake() {
    let events = Events::default();
    let probe = Probe::new(&events);
    let h = start(quick_config(), move |_| probe.clone());
    let addr = h.local_addr();
    let mut half_closed = raw(addr);
    half_closed.write_all(&UPGRADE[..20]).unwrap();
    half_closed.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_server(&mut half_closed));
    let mut s = raw(addr);
    s.write_all(&UPGRADE[..20]).unwrap();
    reset(s);
    let st = wait_stats(&h, WAIT, |s| s.accepted == 2 && s.sockets == 0);
    assert_eq!(st.handshaking, 0);
    assert_eq!(st.handshakes, 0);
    assert_eq!(st.timers, 0);
    stop(&h);
    assert!(events.all().is_empty(), "{:?}", events.all());
}

#[test]
fn server_answers_a_request_sent_with_a_half_close() {
    let h = start(quick_config(), |_| Echo);
    let mut s = raw(h.local_addr());
    s.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let answer = read_to_end(&mut s);
    assert!(
        answer.starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    wait_no_sockets(&h);
    stop(&h);
}
