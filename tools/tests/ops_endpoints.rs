//! Operability endpoints of `c10k serve`: /healthz, /metrics, and the lame-duck period of a
//! graceful shutdown.

#[path = "common/procs.rs"]
mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use c10k::client::{Client, Received};
use c10k::proto::CloseCode;
use procs::Serve;

/// `c10k serve` with one shard on a free port, killed when dropped.
fn serve(extra: &[&str]) -> Serve {
    Serve::start(&[&["-q", "--shards", "1"][..], extra].concat())
}

/// A plain GET: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

/// The value of one metric sample line (first match of `prefix`).
fn metric(body: &str, prefix: &str) -> Option<u64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn healthz_and_metrics_answer_when_turned_on() {
    let s = serve(&["--healthz", "--metrics"]);
    assert_eq!(get(s.addr, "/healthz"), (200, "ok\n".to_owned()));
    let mut c = Client::connect(&s.url).unwrap();
    for i in 0..5 {
        c.send_text(&format!("m{i}")).unwrap();
        assert_eq!(c.recv_message().unwrap(), Received::Text(format!("m{i}")));
    }
    let (status, body) = get(s.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE c10k_connections_open gauge"), "{body}");
    assert_eq!(
        metric(&body, "c10k_connections_open{shard=\"0\"}"),
        Some(1),
        "{body}"
    );
    assert_eq!(
        metric(&body, "c10k_messages_in_total{shard=\"0\"}"),
        Some(5),
        "{body}"
    );
    assert_eq!(
        metric(&body, "c10k_messages_out_total{shard=\"0\"}"),
        Some(5),
        "{body}"
    );
    assert_eq!(metric(&body, "c10k_draining"), Some(0), "{body}");
    // Both endpoint requests so far are counted as plain HTTP requests.
    assert!(
        metric(&body, "c10k_http_requests_total{shard=\"0\"}").unwrap() >= 2,
        "{body}"
    );
}

#[test]
fn endpoints_are_off_by_default() {
    let s = serve(&[]);
    assert_eq!(get(s.addr, "/healthz").0, 404);
    assert_eq!(get(s.addr, "/metrics").0, 404);
}

#[test]
fn shutdown_goes_lame_duck_first_then_drains_with_1001() {
    let mut s = serve(&["--healthz", "--drain-grace", "1s", "--drain-timeout", "2s"]);
    let mut c = Client::connect(&s.url).unwrap();
    s.terminate();
    std::thread::sleep(Duration::from_millis(200));
    // Lame duck: still accepting, health check 503, new upgrades refused with 503, and the open
    // connection still served.
    assert_eq!(get(s.addr, "/healthz"), (503, "draining\n".to_owned()));
    match Client::connect(&s.url) {
        Err(c10k::client::ClientError::Handshake(e)) => assert!(e.to_string().contains("503"), "{e}"),
        other => panic!("an upgrade during the lame-duck period: {other:?}"),
    }
    c.send_text("still here").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("still here".into()));
    // Then the drain: 1001 Going Away, and the process exits.
    let started = Instant::now();
    match c.recv_message().unwrap() {
        Received::Close(code, _) => assert_eq!(code, CloseCode::GoingAway),
        other => panic!("expected 1001, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let status = s.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
}
