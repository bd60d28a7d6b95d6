//! Behind HAProxy with the PROXY protocol (`send-proxy-v2`, and version 1 with `send-proxy`):
//! the handler sees each client's own address, not the balancer's; a PROXY header sent
//! straight to the server by a sender it does not trust is refused.
//!
//! HAProxy is a Debian package that `.ci/setup` installs; a missing one fails the test unless
//! `C10K_SKIP_MISSING_TOOLS=1` (see tools/tests/common/needs.rs).

mod common;
#[path = "../tools/tests/common/needs.rs"]
mod needs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c10k::proto::{Message, Request};
use c10k::{ConnId, Ctx, Decision, Handler};
use common::*;

/// Answers every message with the client's address as `Ctx` says it, and the request's.
struct Who;

impl Handler for Who {
    type State = String;

    fn on_handshake(&mut self, _ctx: &mut Ctx<'_>, _id: ConnId, req: &Request<'_>) -> Decision<String> {
        Decision::accept_with(req.client_addr().map(|a| a.to_string()).unwrap_or_default())
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, from_request: &mut String, _msg: Message<'_>) {
        let who = ctx.client_addr(id).map(|a| a.to_string()).unwrap_or_default();
        let _ = ctx.send_text(id, &format!("{who} {from_request}"));
    }
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A connection from `source` (an address of the loopback network) to `to`, upgraded; then
/// "who" answered.
fn who_from(source: &str, to: SocketAddr) -> String {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&source.parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(UPGRADE).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&frame(true, 0x1, b"who")).unwrap();
    let (_, _, payload) = read_frame(&mut s);
    String::from_utf8(payload).unwrap()
}

#[test]
fn behind_haproxy_the_handler_sees_each_clients_own_address() {
    let Some(haproxy) = needs::tool("haproxy") else {
        return;
    };
    let mut config = quick_config();
    config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let h = start(config, |_| Who);
    let (v2, v1) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("c10k-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = format!(
        "global\n    maxconn 100\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
         listen v2\n    bind 127.0.0.1:{v2}\n    server s {server} send-proxy-v2 source 127.0.0.1\n\
         listen v1\n    bind 127.0.0.1:{v1}\n    server s {server} send-proxy source 127.0.0.1\n",
        server = h.local_addr()
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let _lb = Haproxy(
        Command::new(haproxy)
            .args(["-f", path.to_str().unwrap(), "-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", v1)).is_err() || TcpStream::connect(("127.0.0.1", v2)).is_err() {
        assert!(Instant::now() < end, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (source, port) in [("127.0.0.2", v2), ("127.0.0.3", v2), ("127.0.0.4", v1)] {
        let answer = who_from(&format!("{source}:0"), SocketAddr::from(([127, 0, 0, 1], port)));
        let (ctx, req) = answer.split_once(' ').unwrap();
        let ctx: SocketAddr = ctx.parse().unwrap();
        assert_eq!(ctx.ip().to_string(), source, "through port {port}: {answer}");
        assert_eq!(req, ctx.to_string(), "the request said the same");
    }
    // Straight to the server from a sender it does not trust: a PROXY header is refused.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.5:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&h.local_addr().into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PROXY TCP4 192.0.2.66 127.0.0.1 1 2\r\n").unwrap();
    s.write_all(UPGRADE).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(h.stats().rejected.get(&c10k::RejectReason::Proxy), Some(&1));
    let _ = std::fs::remove_dir_all(&dir);
    stop(&h);
}
