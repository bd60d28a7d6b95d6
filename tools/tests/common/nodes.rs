//! Several nodes as the deployment runs them: redis-server, `c10k serve` nodes joined through
//! it, and HAProxy in front. Included with `#[path = "common/nodes.rs"] mod nodes;` beside
//! `common/procs.rs`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::procs::Proc;

/// Waits until something listens on `port` of 127.0.0.1, for `what` (the panic's message).
pub fn wait_listening(port: u16, what: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "{what} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A redis-server on `port` that keeps nothing on disk: a restart loses every key.
pub fn redis(bin: &str, port: u16) -> Proc {
    let proc = Proc::spawn(
        Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null()),
    );
    wait_listening(port, "redis-server");
    proc
}

/// A `c10k serve` node on `port` with `args` (mode, Redis, ...), once it says it listens.
pub fn node(port: u16, args: &[&str]) -> Proc {
    let mut proc = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_c10k"))
            .args(["-q", "serve", "--shards", "1", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(proc.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("ws://"), "{line}");
    proc
}

/// HAProxy on `front`, balancing round robin over `nodes`, sticky on the URL parameter
/// `client`, its configuration written in `dir`.
pub fn haproxy(bin: &str, front: u16, nodes: &[u16], dir: &Path) -> Proc {
    let servers: String = nodes
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server n{i} 127.0.0.1:{p} check inter 200ms fall 1 rise 2\n"))
        .collect();
    let cfg = format!(
        "global\n    maxconn 4096\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout tunnel 60s\n\
         frontend ws\n    bind 127.0.0.1:{front}\n    default_backend nodes\n\
         backend nodes\n    balance roundrobin\n    option redispatch\n    retries 3\n\
         \x20   stick-table type string len 64 size 10k expire 10m\n    stick on url_param(client)\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let proc = Proc::spawn(
        Command::new(bin)
            .args(["-f", path.to_str().unwrap(), "-db"])
            .stdout(Stdio::null()),
    );
    wait_listening(front, "haproxy");
    proc
}
