//! The auth example as its users see it: a WebSocket client with a good, a bad or no bearer
//! token, with the authentication service up, stopped, or too slow for the handshake timeout.
//! Raw sockets and the Python `websockets` client (from `.venv`, installed by `.ci/setup`; a
//! missing one fails the test unless `C10K_SKIP_MISSING_TOOLS=1`).

mod common;
#[path = "../tools/tests/common/needs.rs"]
mod needs;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;

/// The example's binary (built next to the tests: `cargo build --examples`).
fn example() -> PathBuf {
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("examples/auth")
}

/// A running auth example; killed when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) -> Example {
    let bin = example();
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --examples`",
        bin.display()
    );
    let mut child = Command::new(bin)
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "auth: listening on ws://ADDR/ (...)"
    let addr = line
        .split("ws://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Example { child, addr }
}

/// Sends an upgrade with `authorization` (if any) and returns the response head.
fn handshake(addr: SocketAddr, authorization: Option<&str>, path: &str) -> (std::net::TcpStream, String) {
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
