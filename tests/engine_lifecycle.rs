//! How connections live and die over loopback, where the kernel is the point: pings and pongs on
//! the wire, a shutdown joined across threads, peers that vanish mid-way (a reset, a half-close).
//! The deadlines themselves are tested on the virtual clock (harness_lifecycle.rs).

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use c10k::ServerConfig;
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
