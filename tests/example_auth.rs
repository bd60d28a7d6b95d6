//! The auth example as its users see it: a WebSocket client with a good, a bad or no bearer
//! token, with the authentication service up, stopped, too slow for the handshake timeout, or
//! saying too much; a storm of handshakes the service is slow to answer; tokens that would
//! change the request to the service if they were not encoded. Raw sockets, services of the
//! test's own, and the Python `websockets` client (from `.venv`, installed by `.ci/setup`; a
//! missing one fails the test unless `C10K_SKIP_MISSING_TOOLS=1`).

mod common;
#[path = "common/example.rs"]
mod example;
#[path = "../tools/tests/common/needs.rs"]
mod needs;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use example::Example;

fn run(args: &[&str]) -> Example {
    example::start("auth", args)
}

/// Sends an upgrade for `path` with `authorization` (if any); the answer is not read.
fn send_upgrade(addr: SocketAddr, authorization: Option<&str>, path: &str) -> TcpStream {
    let mut s = raw(addr);
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s
}

/// Sends an upgrade with `authorization` (if any) and returns the response head.
fn handshake(addr: SocketAddr, authorization: Option<&str>, path: &str) -> (TcpStream, String) {
    let mut s = send_upgrade(addr, authorization, path);
    let head = read_head(&mut s);
    (s, head)
}

/// The status of the response on `s`, or `None` if no whole response head came (closed without
/// one, or nothing within the read timeout).
fn status(s: &mut TcpStream) -> Option<u16> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The example's counters (`GET /stats`), by name.
fn counts(addr: SocketAddr) -> HashMap<String, u64> {
    let mut s = raw(addr);
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = String::from_utf8(read_to_end(&mut s)).unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    body.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}

/// The file descriptors process `pid` holds, and what they are.
fn fds(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| format!("{:?}", std::fs::read_link(e.path()).ok()))
        .collect();
    v.sort();
    v
}

/// How many descriptors process `pid` holds once that number stops changing (two looks 100
/// ms apart agree; at most 3 s).
fn fds_at_rest(pid: u32) -> usize {
    let mut last = fds(pid).len();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        let now = fds(pid).len();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// The next call on a service of the test's own, within 10 s.
fn accept_within(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return s;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("no call to the authentication service: {e}"),
        }
    }
}

/// Whether `s` still waits for its answer: nothing arrived, and it is not closed.
fn still_waiting(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let waiting = matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    waiting
}

#[test]
fn good_tokens_open_with_the_users_name_and_bad_or_missing_ones_get_401() {
    let ex = run(&[]);
    let (mut s, head) = handshake(ex.addr, Some("Bearer alice-token"), "/");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&frame(true, 0x1, b"hi")).unwrap();
    assert_eq!(read_frame(&mut s).2, b"alice: hi");
    // A browser's way: the token as a query parameter.
    let (mut s, head) = handshake(ex.addr, None, "/?token=bob-token");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&frame(true, 0x1, b"yo")).unwrap();
    assert_eq!(read_frame(&mut s).2, b"bob: yo");
    // Percent-encoded, as a browser's `encodeURIComponent` writes it.
    let (mut s, head) = handshake(ex.addr, None, "/?token=alice%2Dtoken");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&frame(true, 0x1, b"hey")).unwrap();
    assert_eq!(read_frame(&mut s).2, b"alice: hey");

    let (_, head) = handshake(ex.addr, Some("Bearer wrong"), "/");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.contains("WWW-Authenticate: Bearer realm=\"c10k\", error=\"invalid_token\""),
        "{head}"
    );
    let (_, head) = handshake(ex.addr, None, "/");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(head.contains("WWW-Authenticate: Bearer realm=\"c10k\""), "{head}");
    // The page that shows it in a browser.
    let (_, head) = {
        let mut s = raw(ex.addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let head = read_head(&mut s);
        (s, head)
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn a_stopped_or_too_slow_authentication_service_gets_the_client_503() {
    // Stopped: nothing listens where the service should be.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let ex = run(&["--auth-addr", &port.to_string()]);
    let (_, head) = handshake(ex.addr, Some("Bearer alice-token"), "/");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("Retry-After: 1"), "{head}");
    drop(ex);

    // Too slow: a service that accepts and never answers, and a 500 ms handshake timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = silent.local_addr().unwrap().to_string();
    let ex = run(&["--auth-addr", &at, "--handshake-timeout-ms", "500"]);
    let (_, head) = handshake(ex.addr, Some("Bearer alice-token"), "/");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    // Meanwhile the server answers others at once (no token: refused without asking).
    let (_, head) = handshake(ex.addr, None, "/");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    drop(silent);
}

#[test]
fn the_python_websockets_client_sees_101_or_the_status_and_challenge() {
    let root = needs::root();
    let python = needs::python();
    if !needs::needed(&python, "the Python websockets client (.venv)") {
        return;
    }
    let ex = run(&[]);
    let url = format!("ws://{}/", ex.addr);
    let ask = |token: &str| {
        let out = Command::new(&python)
            .arg(root.join("tests/interop/auth_client.py"))
            .args([&url, token])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(ask("alice-token"), "open alice: hi");
    assert_eq!(
        ask("wrong"),
        "status 401 Bearer realm=\"c10k\", error=\"invalid_token\""
    );
    assert_eq!(ask("-"), "status 401 Bearer realm=\"c10k\"");
}

#[test]
fn tokens_reach_the_service_percent_encoded_and_cannot_change_its_request() {
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = service.local_addr().unwrap().to_string();
    let ex = run(&["--auth-addr", &at]);
    let cases = [
        // `&`, `=`, spaces and bytes past ASCII in the header.
        (
            Some("Bearer a&token=alice-token b=c \u{e9}"),
            "/",
            "a%26token%3Dalice-token%20b%3Dc%20%C3%A9",
        ),
        // CR/LF, from a query parameter (decoded first, as a browser encoded it).
        (
            None,
            "/?token=x%0D%0AHost:%20evil%0D%0A%0D%0AGET%20/check%3Ftoken%3Dalice-token",
            "x%0D%0AHost%3A%20evil%0D%0A%0D%0AGET%20%2Fcheck%3Ftoken%3Dalice-token",
        ),
        // `%` and `+` stand for themselves once decoded.
        (None, "/?token=100%25+sure", "100%25%2Bsure"),
    ];
    for (authorization, path, encoded) in cases {
        let mut client = send_upgrade(ex.addr, authorization, path);
        let mut call = accept_within(&service);
        assert_eq!(
            read_head(&mut call),
            format!("GET /check?token={encoded} HTTP/1.1\r\nHost: auth\r\nConnection: close\r\n\r\n"),
            "{authorization:?} {path}"
        );
        call.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        drop(call);
        let head = read_head(&mut client);
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    }
}

#[test]
fn a_service_answer_past_the_size_limit_gets_the_client_503() {
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = service.local_addr().unwrap().to_string();
    let ex = run(&["--auth-addr", &at]);
    let mut client = send_upgrade(ex.addr, Some("Bearer alice-token"), "/");
    let mut call = accept_within(&service);
    read_head(&mut call);
    // A 200 with a name of a mebibyte: far past what the example reads.
    let service_side = std::thread::spawn(move || {
        call.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = call.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
        let _ = call.write_all(&vec![b'a'; 1 << 20]);
    });
    let head = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("Retry-After: 1"), "{head}");
    service_side.join().unwrap();
}

#[test]
fn a_full_queue_gets_the_client_503_at_once_while_the_queued_handshakes_still_wait() {
    // A service that never answers, one worker, a queue of one, and a long handshake timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = silent.local_addr().unwrap().to_string();
    let ex = run(&[
        "--auth-addr",
        &at,
        "--workers",
        "1",
        "--queue",
        "1",
        "--handshake-timeout-ms",
        "10000",
    ]);
    // The worker is calling the service about the first handshake...
    let first = send_upgrade(ex.addr, Some("Bearer one"), "/");
    let _call = accept_within(&silent);
    // ... the second waits in the queue...
    let second = send_upgrade(ex.addr, Some("Bearer two"), "/");
    assert!(wait_until(Duration::from_secs(10), || counts(ex.addr)["queued"] == 2));
    // ... and the third finds it full: answered before either of them.
    let (_, head) = handshake(ex.addr, Some("Bearer three"), "/");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("Retry-After: 1"), "{head}");
    assert!(still_waiting(&first) && still_waiting(&second));
    assert_eq!(counts(ex.addr)["queue_full"], 1);
    // Both clients leave, the second first (the example closes its socket once it no longer
    // waits): the call for the first is given up, the second's job is dropped without one.
    let held = fds(ex.child.id()).len();
    drop(second);
    assert!(wait_until(Duration::from_secs(5), || fds(ex.child.id()).len() < held));
    drop(first);
    assert!(wait_until(Duration::from_secs(5), || {
        let c = counts(ex.addr);
        c["abandoned"] == 1 && c["gone"] == 1
    }));
    assert_eq!(counts(ex.addr)["calls"], 1);
    assert!(
        matches!(silent.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "a call for a client that had left"
    );
}

#[test]
fn a_storm_of_slow_tokens_is_answered_then_a_good_token_opens_and_no_descriptor_is_left() {
    const STORM: usize = 1000;
    // The example's own service, which answers a `slow-MS-` token after MS ms: here far past
    // the handshake timeout (2 s).
    let ex = run(&[]);
    let pid = ex.child.id();
    // Once through (threads, the first call), then what the example holds at rest.
    let (s, head) = handshake(ex.addr, Some("Bearer alice-token"), "/");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    drop(s);
    let before = fds_at_rest(pid);

    let mut storm: Vec<TcpStream> = (0..STORM)
        .map(|i| send_upgrade(ex.addr, Some(&format!("Bearer slow-30000-{i}")), "/"))
        .collect();
    // Every storm connection gets an answer (each read waits at most 10 s).
    let mut answers: HashMap<Option<u16>, usize> = HashMap::new();
    for s in &mut storm {
        *answers.entry(status(s)).or_default() += 1;
    }
    let storm_over = Instant::now();
    assert!(
        answers.keys().all(|s| matches!(s, Some(101 | 401 | 503))),
        "answers to the storm: {answers:?}"
    );
    // The storm is over: a good token is served at once again.
    let (s, head) = handshake(ex.addr, Some("Bearer alice-token"), "/");
    let after_storm = storm_over.elapsed();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        after_storm < Duration::from_secs(1),
        "101 came {after_storm:?} after the storm"
    );
    drop(s);
    drop(storm);

    // Every client has gone: the example holds what it held before.
    let settled = wait_until(Duration::from_secs(5), || fds(pid).len() <= before);
    assert!(
        settled,
        "{before} descriptors before the storm, now {:?}",
        fds(pid)
    );
    // The queue was full at times, and every handshake with a token was queued and then
    // dropped (its client answered meanwhile), answered without a call, or called about.
    let c = counts(ex.addr);
    assert!(c["queue_full"] > 0, "{c:?}");
    assert_eq!(c["queued"] + c["queue_full"], STORM as u64 + 2, "{c:?}");
    assert_eq!(c["gone"] + c["late"] + c["calls"], c["queued"], "{c:?}");
}
