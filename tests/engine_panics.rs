//! A handler that panics: the panic costs the connection it was about (1011, or 500 in the
//! handshake), never the shard or its other connections; a shard that dies anyway makes the
//! server return an error.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use c10k::proto::{CloseCode, Message, Request};
use c10k::{ConnId, Ctx, Decision, Handler, HttpResponse, Server};
use common::*;

/// Echoes, and panics where a test asks it to: on a message "panic" (after sending "before"), a
/// ping "panic", a message "timer" arms a timer that panics, in the handshake of `/handshake`, in `on_open` of
/// `/open`, in `on_close` of `/close`, and on a plain HTTP request.
struct Fragile;

impl Handler for Fragile {
    type State = String;

    fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, req: &Request<'_>) -> Decision<String> {
        assert_ne!(req.path(), "/handshake", "refusing to decide");
        Decision::accept_with(req.path().to_owned())
    }

    fn on_open(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, path: &mut String, _req: &Request<'_>) {
        assert_ne!(path.as_str(), "/open", "refusing to open");
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _path: &mut String, msg: Message<'_>) {
        match msg.as_bytes() {
            b"panic" => {
                ctx.send_text(id, "before").unwrap();
                panic!("asked to panic");
            }
            b"timer" => {
                ctx.set_timer(Duration::from_millis(10), 7);
            }
            _ => {}
        }
        let _ = ctx.send(id, msg.kind(), msg.as_bytes());
    }

    fn on_ping(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, _path: &mut String, payload: &[u8]) {
        assert_ne!(payload, b"panic", "refusing a ping");
    }

    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, token: u64) {
        panic!("timer {token} went off");
    }

    fn on_close(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, path: String, _code: CloseCode, _reason: &str) {
        // A payload that is not a string: the log says so.
        if path == "/close" {
            std::panic::panic_any(42u32);
        }
    }

    fn on_http(&mut self, _ctx: &mut Ctx<'_>, _req: &Request<'_>) -> HttpResponse {
        panic!("no plain HTTP here");
    }
}

/// A raw connection upgraded on `path`; the 101 is consumed.
fn open_at(h: &c10k::ServerHandle, path: &str) -> TcpStream {
    let mut s = raw(h.local_addr());
    let req = String::from_utf8(UPGRADE.to_vec())
        .unwrap()
        .replacen("GET / ", &format!("GET {path} "), 1);
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Sends a text message and expects it back.
fn echo(s: &mut TcpStream, text: &str) {
    s.write_all(&frame(true, 0x1, text.as_bytes())).unwrap();
    assert_eq!(read_frame(s), (true, 0x1, text.as_bytes().to_vec()));
}

#[test]
fn a_panic_in_on_message_fails_its_connection_with_1011_and_no_other() {
    let mut config = quick_config();
    config.shards = 2;
    let h = start(config, |_| Fragile);
    let mut conns: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut s = open_at(&h, "/");
            echo(&mut s, &format!("hello {i}"));
            s
        })
        .collect();
    let mut victim = conns.swap_remove(0);
    victim.write_all(&frame(true, 0x1, b"panic")).unwrap();
    // What the callback sent before it panicked goes out, then the Close frame.
    assert_eq!(read_frame(&mut victim), (true, 0x1, b"before".to_vec()));
    assert_eq!(read_close_code(&mut victim), 1011);
    assert!(closed_by_server(&mut victim));
    for (i, s) in conns.iter_mut().enumerate() {
        echo(s, &format!("still here {i}"));
    }
    let st = wait_stats(&h, Duration::from_secs(10), |s| s.closes.get(&1011) == Some(&1));
    assert_eq!(st.handler_panics, 1, "{st:#?}");
    assert_eq!(st.connections_open, 999);
    drop(conns);
    stop(&h);
}

#[test]
fn panics_in_the_handshake_open_ping_timer_and_close_leave_the_server_serving() {
    let h = start(quick_config(), |_| Fragile);
    // on_handshake and on_http: answered 500, then closed.
    for req in [
        String::from_utf8(UPGRADE.to_vec())
            .unwrap()
            .replacen("GET / ", "GET /handshake ", 1),
        "GET /page HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
    ] {
        let mut s = raw(h.local_addr());
        s.write_all(req.as_bytes()).unwrap();
        let head = read_head(&mut s);
        assert!(head.starts_with("HTTP/1.1 500"), "{head}");
        // The body, then the end of the connection (a read that times out is an error).
        let mut body = Vec::new();
        s.read_to_end(&mut body).expect("the connection was not closed");
        assert_eq!(body, b"internal error\n");
    }
    // on_open: the 101 went out; the connection is failed at once.
    let mut s = open_at(&h, "/open");
    assert_eq!(read_close_code(&mut s), 1011);
    // on_ping: the pong (the shard's) goes out first, then the 1011.
    let mut s = open_at(&h, "/");
    s.write_all(&frame(true, 0x9, b"panic")).unwrap();
    assert_eq!(read_frame(&mut s), (true, 0xa, b"panic".to_vec()));
    assert_eq!(read_close_code(&mut s), 1011);
    // on_timer: counted; the connection that armed it goes on.
    let mut s = open_at(&h, "/");
    echo(&mut s, "timer");
    wait_stats(&h, Duration::from_secs(10), |s| s.handler_panics == 5);
    echo(&mut s, "after the timer");
    // on_close: counted, nothing else to do.
    let mut gone = open_at(&h, "/close");
    gone.write_all(&close_frame(1000, "")).unwrap();
    assert_eq!(read_close_code(&mut gone), 1000);
    // The connections failed with 1011 are reported closed once they are gone (the peer's FIN,
    // or the close timeout).
    wait_stats(&h, Duration::from_secs(10), |s| {
        s.handler_panics == 6 && s.closes.get(&1011) == Some(&2)
    });
    echo(&mut s, "after the close");
    let mut fresh = open_at(&h, "/");
    echo(&mut fresh, "fresh");
    stop(&h);
}

#[test]
fn a_shard_that_dies_makes_run_return_its_error() {
    let mut config = quick_config();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.shards = 2;
    let server = Server::bind(config, |shard| {
        assert_ne!(shard, 1, "no handler for this shard");
        Echo
    })
    .unwrap();
    let handle = server.handle();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(server.run()).unwrap());
    let e = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server kept running without shard 1")
        .expect_err("a shard died");
    let msg = e.to_string();
    assert!(msg.starts_with("shard 1: panicked: "), "{msg}");
    assert!(msg.contains("no handler for this shard"), "{msg}");
    // Every caller of join hears it, and statistics do not wait for the dead shard.
    assert_eq!(handle.join().unwrap_err().to_string(), msg);
    assert_eq!(handle.shard_stats().len(), 2);
}
