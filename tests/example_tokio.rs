//! The tokio example as its users see it: raw WebSocket clients with a good, a bad or no bearer
//! token, an authentication service of the test's own (a std thread answering HTTP), the
//! ticker's messages, a service too slow for the handshake timeout or not there, and a
//! graceful stop on SIGTERM.

mod common;
#[path = "common/example.rs"]
mod example;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use example::Example;

/// The handshake timeout the example runs with: the service's calls end by three quarters of it.
const HANDSHAKE_TIMEOUT_MS: u64 = 1000;
/// How long the service thinks about the token `slow`: well past the handshake timeout.
const SLOW: Duration = Duration::from_secs(5);
/// The ticker's period in these tests, short to keep them quick.
const TICK_MS: u64 = 200;

fn run(auth_url: &str) -> Example {
    let (timeout, tick) = (HANDSHAKE_TIMEOUT_MS.to_string(), TICK_MS.to_string());
    example::start(
        "tokio",
        &[
            "--shards",
            "1",
            "--auth-url",
            auth_url,
            "--handshake-timeout-ms",
            &timeout,
            "--tick-ms",
            &tick,
        ],
    )
}

/// An authentication service: `alice-token` is alice (200), `slow` is answered after [`SLOW`],
/// anything else is 401. Returns the URL to call it by.
fn service() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer(conn));
        }
    });
    format!("http://{addr}/check")
}

/// Answers one call, then closes.
fn answer(mut conn: TcpStream) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
        match conn.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let token = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.trim().strip_prefix("Bearer "))
        .unwrap_or("");
    let answer = match token {
        "alice-token" => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nalice",
        "slow" => {
            std::thread::sleep(SLOW);
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        _ => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    };
    let _ = conn.write_all(answer.as_bytes());
}

/// Sends an upgrade for `path` with `authorization` (if any) and returns the response head.
fn handshake(addr: SocketAddr, authorization: Option<&str>, path: &str) -> (TcpStream, String) {
    let mut s = raw(addr);
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    (s, head)
}

/// The text messages that arrive on `s` until `enough` says so of them, or `within` passes.
fn texts(s: &mut TcpStream, within: Duration, enough: impl Fn(&[String]) -> bool) -> Vec<String> {
    let end = Instant::now() + within;
    let mut out = Vec::new();
    while !enough(&out) {
        let Some(left) = end
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            break;
        };
        s.set_read_timeout(Some(left)).unwrap();
        match try_read_frame(s) {
            Ok((_, 0x1, payload)) => out.push(String::from_utf8(payload).unwrap()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

#[test]
fn a_good_token_opens_its_echoes_carry_the_name_ticks_arrive_and_sigterm_closes_with_1001() {
    let ex = run(&service());
    let (mut s, head) = handshake(ex.addr, Some("Bearer alice-token"), "/");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&frame(true, 0x1, b"hi")).unwrap();
    let ticks = |got: &[String]| got.iter().filter(|t| t.starts_with("tick ")).count();
    let got = texts(&mut s, Duration::from_secs(3), |got| {
        got.iter().any(|t| t == "alice: hi") && ticks(got) >= 2
    });
    assert!(got.iter().any(|t| t == "alice: hi"), "{got:?}");
    assert!(ticks(&got) >= 2, "{got:?}");
    assert!(
        got.iter().all(|t| t == "alice: hi" || t.ends_with(" (alice)")),
        "{got:?}"
    );

    // A browser's way: the token as a query parameter, percent-encoded.
    let (mut q, head) = handshake(ex.addr, None, "/?token=alice%2Dtoken");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    q.write_all(&frame(true, 0x1, b"yo")).unwrap();
    let got = texts(&mut q, Duration::from_secs(3), |got| {
        got.iter().any(|t| t == "alice: yo")
    });
    assert!(got.iter().any(|t| t == "alice: yo"), "{got:?}");

    // A graceful stop: 1001 Going Away to the open connections, then the process ends well.
    let mut ex = ex;
    let killed = Command::new("kill")
        .args(["-TERM", &ex.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_close_code(&mut s), 1001);
    s.write_all(&frame(true, 0x8, &1001u16.to_be_bytes())).unwrap();
    q.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_close_code(&mut q), 1001);
    q.write_all(&frame(true, 0x8, &1001u16.to_be_bytes())).unwrap();
    // Closed as a client does after the closing handshake: the server need not wait for it.
    drop((s, q));
    let exited = wait_until(Duration::from_secs(10), || ex.child.try_wait().unwrap().is_some());
    assert!(exited, "the example did not stop on SIGTERM");
    assert!(ex.child.wait().unwrap().success());
}

#[test]
fn a_bad_or_missing_token_gets_401() {
    let ex = run(&service());
    let (_, head) = handshake(ex.addr, Some("Bearer wrong"), "/");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.contains("WWW-Authenticate: Bearer realm=\"c10k\", error=\"invalid_token\""),
        "{head}"
    );
    let (_, head) = handshake(ex.addr, None, "/");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(head.contains("WWW-Authenticate: Bearer realm=\"c10k\""), "{head}");
    // A token that cannot travel in a header is refused without a call.
    let (_, head) = handshake(ex.addr, None, "/?token=a%0D%0Ab");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}

#[test]
fn a_service_too_slow_for_the_handshake_timeout_or_not_there_gets_503() {
    let ex = run(&service());
    let started = Instant::now();
    let (_, head) = handshake(ex.addr, Some("Bearer slow"), "/");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("Retry-After: 1"), "{head}");
    // Answered at the call's deadline, long before the service would have.
    assert!(started.elapsed() < SLOW / 2, "{:?}", started.elapsed());
    // The slow call did not hold the others up.
    let (_, head) = handshake(ex.addr, Some("Bearer alice-token"), "/");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    // Nothing listens there.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/check", gone.local_addr().unwrap());
    drop(gone);
    let ex = run(&url);
    let (_, head) = handshake(ex.addr, Some("Bearer alice-token"), "/");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
}
