//! Shared helpers for the engine's integration tests: a server in this process, raw and
//! well-formed clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use c10k::{Handler, Server, ServerConfig, ServerHandle};

/// Starts a server on a free port with `config` (its `addr` is replaced) and one handler per shard.
pub fn start<H, F>(mut config: ServerConfig, factory: F) -> ServerHandle
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    config.addr = "127.0.0.1:0".parse().unwrap();
    if config.shards == 0 {
        config.shards = 1;
    }
    Server::bind(config, factory).unwrap().start().unwrap()
}

/// Stops a server and waits for its shards.
pub fn stop(handle: &ServerHandle) {
    handle.shutdown();
    handle.join();
}

/// A well-formed client.
pub fn client(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).unwrap();
    ws
}

/// A valid upgrade request.
pub const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A raw TCP connection with a read timeout.
pub fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A raw TCP connection that completed the handshake (the 101 response is consumed).
pub fn raw_open(addr: SocketAddr) -> TcpStream {
    let mut s = raw(addr);
    s.write_all(UPGRADE).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads an HTTP response head (up to the blank line).
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => head.push(b[0]),
            Err(e) => panic!("reading a response head: {e}"),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads until EOF (or error) and returns everything.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// A masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let h = c10k::proto::frame::encode_header(
        fin,
        0,
        c10k::proto::OpCode::from_u8(opcode).unwrap(),
        payload.len() as u64,
        Some(key),
    );
    let mut out = h.as_bytes().to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    c10k::proto::mask::apply_mask(&mut out[start..], key, 0);
    out
}

/// Reads one unmasked server frame: (fin, opcode, payload).
pub fn read_frame(s: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (h[0] & 0x80 != 0, h[0] & 0x0f, payload)
}

/// Reads a Close frame and returns its code.
pub fn read_close_code(s: &mut TcpStream) -> u16 {
    loop {
        let (_, op, payload) = read_frame(s);
        if op == 0x8 {
            return if payload.len() >= 2 {
                u16::from_be_bytes([payload[0], payload[1]])
            } else {
                1005
            };
        }
    }
}

/// Polls `f` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}
