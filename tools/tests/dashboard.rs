//! `c10k serve --dashboard` in headless Chromium while `c10k bench` loads the server: the page
//! holds a socket per worker, its numbers move, and they match `/metrics` within the sampling
//! period (`tests/interop/dashboard.js` does the checks in the browser).
//!
//! Chromium and the Node playwright-core package are installed by `.ci/setup`; a missing one
//! fails the test unless `C10K_SKIP_MISSING_TOOLS=1`.
//!
//! The live socket is the page's only: same origin or no Origin is accepted, anything else is
//! refused with 403 (checked without a browser, by sending the requests a page would send).

#[path = "common/procs.rs"]
mod procs;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use c10k::client::{Client, ClientConfig, Received};
use procs::{Proc, Serve, bench_in_background, serial};

/// Serves with the dashboard, loads it with an echo run, and runs the browser's checks.
fn dashboard_under_load(serve_args: &[&str], workers: usize) {
    let _one = serial();
    if !procs::needs::browser() {
        return;
    }
    let args = [
        &["-q", "--dashboard", "--metrics", "--ping-interval", "200ms"][..],
        serve_args,
    ]
    .concat();
    let server = Serve::start(&args);
    // Long enough for the page's checks; killed when they are done.
    let _load: Proc = bench_in_background(&[
        "echo",
        "--url",
        &server.url,
        "-c",
        "40",
        "--duration",
        "120s",
        "--warmup",
        "0s",
    ]);
    let page = server.url.replacen("ws://", "http://", 1);
    let mut cmd = Command::new("node");
    cmd.arg(procs::needs::root().join("tests/interop/dashboard.js"))
        .arg(&page)
        .args(["--workers", &workers.to_string()]);
    // A picture of the page for people to look at, where asked for.
    if let Ok(dir) = std::env::var("C10K_SCREENSHOTS") {
        cmd.args(["--screenshot", &format!("{dir}/dashboard-{workers}.png")]);
    }
    let mut node = Proc::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(s) = node.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the browser checks did not end in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    for pipe in [
        node.0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        node.0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut out);
    }
    println!("{out}");
    assert!(status.success(), "{out}");
    assert!(out.contains("all passed"), "{out}");
}

#[test]
fn dashboard_shows_live_figures_that_match_metrics_under_load() {
    dashboard_under_load(&["--shards", "2"], 1);
}

#[test]
fn dashboard_shows_every_worker_under_a_supervisor() {
    dashboard_under_load(&["--processes", "2", "--shards", "1"], 2);
}

/// `c10k serve --dashboard` with one shard, without a browser.
fn dashboard_server() -> Serve {
    Serve::start(&["-q", "--dashboard", "--shards", "1"])
}

/// Opens the live socket as a browser on `origin` would, and returns the first sample.
fn first_sample(server: &Serve, origin: Option<String>) -> String {
    let config = ClientConfig {
        origin,
        timeout: Some(Duration::from_secs(5)),
        ..ClientConfig::default()
    };
    let url = format!("{}dashboard/live", server.url);
    let mut c = Client::connect_with(&url, &config).unwrap_or_else(|e| panic!("{url}: {e}"));
    match c.recv_message() {
        Ok(Received::Text(sample)) => sample,
        other => panic!("expected a sample, got {other:?}"),
    }
}

/// Sends an upgrade of the live socket with these extra header lines (raw bytes, as sent);
/// returns the status and the body of the answer.
fn upgrade(addr: SocketAddr, extra: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "GET /dashboard/live HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n"
    )
    .into_bytes();
    req.extend_from_slice(extra);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    // The head, then (no 101) the body up to its length: an accepted socket stays open.
    let mut resp = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a response head: {resp:?}");
        resp.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&resp[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if status == 101 {
        return (status, String::new());
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    while resp.len() < head_end + length {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the end of the body: {resp:?}");
        resp.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&resp[head_end..head_end + length]).into_owned();
    (status, body)
}

#[test]
fn dashboard_socket_accepts_a_page_of_its_own_origin() {
    let server = dashboard_server();
    let sample = first_sample(&server, Some(format!("http://{}", server.addr)));
    assert!(sample.starts_with("{\"worker\":null,"), "{sample}");
    // The name the browser used is the one it sends in Host and Origin alike: case aside.
    let port = server.addr.port();
    let (status, _) = upgrade(
        server.addr,
        format!("Origin: HTTP://127.0.0.1:{port}\r\n").as_bytes(),
    );
    assert_eq!(status, 101);
}

#[test]
fn dashboard_socket_accepts_a_client_that_sends_no_origin() {
    let server = dashboard_server();
    let sample = first_sample(&server, None);
    assert!(sample.starts_with("{\"worker\":null,"), "{sample}");
}

#[test]
fn dashboard_socket_refuses_another_origin_with_403() {
    let server = dashboard_server();
    let port = server.addr.port();
    for origin in [
        "http://evil.example".to_owned(),
        format!("http://evil.example:{port}"),
        // The same host on another port is another origin.
        format!("http://127.0.0.1:{}", port.wrapping_add(1).max(1)),
        format!("http://localhost:{port}"),
        "null".to_owned(),
    ] {
        let (status, body) = upgrade(server.addr, format!("Origin: {origin}\r\n").as_bytes());
        assert_eq!(status, 403, "{origin}: {body}");
        assert!(
            body.starts_with("cross-origin WebSocket refused"),
            "{origin}: {body}"
        );
        let config = ClientConfig {
            origin: Some(origin.clone()),
            timeout: Some(Duration::from_secs(5)),
            ..ClientConfig::default()
        };
        let url = format!("{}dashboard/live", server.url);
        assert!(Client::connect_with(&url, &config).is_err(), "{origin}");
    }
    // The refusal is the dashboard's: the page and the mode's own sockets are unaffected.
    let (status, _) = upgrade(server.addr, b"Origin: http://evil.example\r\n");
    assert_eq!(status, 403);
    let mut c = Client::connect(&server.url).unwrap();
    c.send_text("still echoing").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("still echoing".into()));
}

#[test]
fn dashboard_socket_refuses_a_malformed_origin_with_403() {
    let server = dashboard_server();
    let addr = server.addr;
    let same = format!("Origin: http://{addr}\r\n");
    for extra in [
        b"Origin: not an origin\r\n".to_vec(),
        format!("Origin: {addr}\r\n").into_bytes(),
        format!("Origin: http://{addr}/dashboard\r\n").into_bytes(),
        format!("Origin: http://user@{addr}\r\n").into_bytes(),
        b"Origin: http://127.0.0.1:99999\r\n".to_vec(),
        // Not UTF-8: not read as an absent Origin.
        [&b"Origin: http://127.0.0.1\xff\r\n"[..]].concat(),
        // Two origins: no page has two.
        [same.as_bytes(), same.as_bytes()].concat(),
    ] {
        let shown = String::from_utf8_lossy(&extra).into_owned();
        let (status, body) = upgrade(addr, &extra);
        assert_eq!(status, 403, "{shown:?}: {body}");
        assert!(body.starts_with("malformed Origin header"), "{shown:?}: {body}");
    }
}
