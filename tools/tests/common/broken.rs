//! Deliberately broken echo servers, for proving that `c10k fuzz` finds bugs: raw TCP, a
//! hand-written handshake and frame loop (one thread per connection, blocking sockets), and
//! exactly one planted defect each. With `Defect::None` the server is meant to be correct (it
//! uses the engine's public API only for the accept key and the list of sendable close codes).
//!
//! Included with `#[path = "common/broken.rs"] mod broken;`.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use c10k::proto::CloseCode;
use c10k::proto::handshake::accept_key;

/// The one thing a server gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// None: a correct echo server.
    None,
    /// Text messages are not checked for UTF-8.
    Utf8Unchecked,
    /// A 64-bit payload length is read as its low 32 bits (and not checked further).
    Length32,
    /// Control frames without FIN are accepted.
    FragmentedControl,
    /// A Close frame's payload is echoed as it came, its code unchecked.
    CloseCodeUnchecked,
    /// A panic (the connection's thread dies) on a ping of exactly 125 bytes.
    PanicOnLongestPing,
}

/// A running broken server; stopped when dropped.
pub struct Broken {
    /// `ws://127.0.0.1:PORT/`.
    pub url: String,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Drop for Broken {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Starts a server with `defect` and the message limit `limit` on 127.0.0.1, any port.
pub fn start(defect: Defect, limit: usize) -> Broken {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if flag.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(s) = conn {
                std::thread::spawn(move || {
                    let _ = serve(s, defect, limit);
                });
            }
        }
    });
    Broken {
        url: format!("ws://{addr}/"),
        stop,
        addr,
    }
}

/// Reads until `buf` holds at least `n` bytes.
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    let mut chunk = [0u8; 16384];
    while buf.len() < n {
        let k = s.read(&mut chunk)?;
        if k == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..k]);
    }
    Ok(())
}

fn frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | op];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Sends a Close frame, closes the write side and reads until the client closes.
fn close(mut s: TcpStream, payload: &[u8]) -> io::Result<()> {
    s.write_all(&frame(8, payload))?;
    let _ = s.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..1000 {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

fn fail(s: TcpStream, code: u16) -> io::Result<()> {
    close(s, &code.to_be_bytes())
}

fn http(mut s: TcpStream, status: &str, extra: &str) -> io::Result<()> {
    write!(
        s,
        "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let _ = s.shutdown(Shutdown::Write);
    Ok(())
}

fn serve(mut s: TcpStream, defect: Defect, limit: usize) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 8192 {
            return http(s, "431 Request Header Fields Too Large", "");
        }
        let n = buf.len() + 1;
        fill(&mut s, &mut buf, n)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    buf.drain(..head_len);
    let mut lines = head.split("\r\n");
    let request: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let fields: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let all = |name: &str| {
        fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let has_token = |name: &str, token: &str| {
        all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if request.len() != 3 || request[2] != "HTTP/1.1" {
        return http(s, "505 HTTP Version Not Supported", "");
    }
    if request[0] != "GET" {
        return http(s, "405 Method Not Allowed", "Allow: GET\r\n");
    }
    if all("host").len() != 1 || !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return http(s, "400 Bad Request", "");
    }
    if all("sec-websocket-version") != ["13"] {
        return http(s, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
    }
    let keys = all("sec-websocket-key");
    let key_ok = keys.len() == 1
        && base64::engine::general_purpose::STANDARD
            .decode(keys[0])
            .is_ok_and(|k| k.len() == 16);
    if !key_ok {
        return http(s, "400 Bad Request", "");
    }
    let accept = accept_key(keys[0].as_bytes());
    s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")?;
    s.write_all(&accept)?;
    s.write_all(b"\r\n\r\n")?;
    frames(s, buf, defect, limit)
}

fn frames(mut s: TcpStream, mut buf: Vec<u8>, defect: Defect, limit: usize) -> io::Result<()> {
    // The message being assembled: its opcode and bytes.
    let mut message: Option<(u8, Vec<u8>)> = None;
    loop {
        fill(&mut s, &mut buf, 2)?;
        let (b0, b1) = (buf[0], buf[1]);
        let (fin, rsv, op, masked) = (b0 & 0x80 != 0, (b0 >> 4) & 7, b0 & 0xf, b1 & 0x80 != 0);
        let control = op & 8 != 0;
        if rsv != 0 || !matches!(op, 0 | 1 | 2 | 8 | 9 | 10) {
            return fail(s, 1002);
        }
        if control && !fin && defect != Defect::FragmentedControl {
            return fail(s, 1002);
        }
        let (len, mut at) = match b1 & 0x7f {
            126 => {
                fill(&mut s, &mut buf, 4)?;
                let n = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
                if n < 126 {
                    return fail(s, 1002);
                }
                (n, 4)
            }
            127 => {
                fill(&mut s, &mut buf, 10)?;
                let n = u64::from_be_bytes(buf[2..10].try_into().unwrap_or_default());
                if defect == Defect::Length32 {
                    (n & 0xffff_ffff, 10)
                } else if n >> 63 != 0 || n <= 0xffff {
                    return fail(s, 1002);
                } else {
                    (n, 10)
                }
            }
            n => (u64::from(n), 2),
        };
        if control && len > 125 {
            return fail(s, 1002);
        }
        if !masked {
            return fail(s, 1002);
        }
        let so_far = message.as_ref().map_or(0, |(_, m)| m.len() as u64);
        if len > limit as u64 || (!control && so_far + len > limit as u64) {
            return fail(s, 1009);
        }
        let len = len as usize;
        fill(&mut s, &mut buf, at + 4 + len)?;
        let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        let mut payload: Vec<u8> = buf[at..at + len].to_vec();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
        buf.drain(..at + len);
        match op {
            8 => {
                if defect == Defect::CloseCodeUnchecked {
                    return close(s, &payload);
                }
                match payload.len() {
                    0 => return close(s, &[]),
                    1 => return fail(s, 1002),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if !CloseCode::from(code).is_sendable() {
                            return fail(s, 1002);
                        }
                        if std::str::from_utf8(&payload[2..]).is_err() {
                            return fail(s, 1007);
                        }
                        return close(s, &payload[..2]);
                    }
                }
            }
            9 => {
                if defect == Defect::PanicOnLongestPing && payload.len() == 125 {
                    panic!("planted defect: a ping of 125 bytes");
                }
                s.write_all(&frame(10, &payload))?;
            }
            10 => {}
            _ => {
                match (op, &mut message) {
                    (0, None) | (1 | 2, Some(_)) => return fail(s, 1002),
                    (0, Some((_, m))) => m.extend_from_slice(&payload),
                    (_, m) => *m = Some((op, payload)),
                }
                let Some((kind, data)) = &message else { continue };
                if *kind == 1 && defect != Defect::Utf8Unchecked {
                    match std::str::from_utf8(data) {
                        Err(e) if e.error_len().is_some() || fin => return fail(s, 1007),
                        _ => {}
                    }
                }
                if fin {
                    s.write_all(&frame(*kind, data))?;
                    message = None;
                }
            }
        }
    }
}
