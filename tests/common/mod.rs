//! Shared helpers for the engine's integration tests: a server in this process, raw and
//! well-formed clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use c10k::proto::Message;
use c10k::{ConnId, Ctx, Handler, HttpResponse, Server, ServerConfig, ServerHandle};

#[cfg(feature = "tls")]
pub mod pki;
mod wire;
pub use wire::{frame, try_read_frame};

/// Echoes every message to its sender; serves a page at `/` and 404 elsewhere.
pub struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut Self::State, msg: Message<'_>) {
        let _ = ctx.send(id, msg.kind(), msg.as_bytes());
    }

    fn on_http(&mut self, _ctx: &mut Ctx<'_>, req: &c10k::proto::Request<'_>) -> HttpResponse {
        match req.path() {
            "/" => HttpResponse::html(200, "<p>echo</p>\n"),
            _ => HttpResponse::not_found(),
        }
    }
}

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

/// Stops a server and waits for its shards, none of which may have failed.
pub fn stop(handle: &ServerHandle) {
    handle.shutdown();
    handle.join().expect("a shard failed");
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

/// Reads one unmasked server frame: (fin, opcode, payload).
pub fn read_frame(s: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    try_read_frame(s).unwrap()
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

// ---- recording handler ----

/// What a handler saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Open(c10k::ConnId),
    Message(c10k::ConnId, Vec<u8>),
    Pong(c10k::ConnId),
    Close(c10k::ConnId, u16, String),
    Drain(c10k::ConnId),
    Timer(u64),
}

/// Events recorded by handlers on the shard threads, read by the test thread.
#[derive(Debug, Clone, Default)]
pub struct Events {
    inner: std::sync::Arc<(std::sync::Mutex<Vec<Ev>>, std::sync::Condvar)>,
}

impl Events {
    pub fn push(&self, ev: Ev) {
        let (lock, cv) = &*self.inner;
        lock.lock().unwrap().push(ev);
        cv.notify_all();
    }

    pub fn all(&self) -> Vec<Ev> {
        self.inner.0.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the events so far; false on timeout.
    pub fn wait(&self, timeout: Duration, mut pred: impl FnMut(&[Ev]) -> bool) -> bool {
        let (lock, cv) = &*self.inner;
        let end = Instant::now() + timeout;
        let mut evs = lock.lock().unwrap();
        loop {
            if pred(&evs) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            evs = cv.wait_timeout(evs, end - now).unwrap().0;
        }
    }

    /// The ids opened so far, in order.
    pub fn opened(&self) -> Vec<c10k::ConnId> {
        self.all()
            .iter()
            .filter_map(|e| match e {
                Ev::Open(id) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Waits for the `n`-th connection (counting from 1) to open and returns its id.
    pub fn wait_open(&self, n: usize) -> c10k::ConnId {
        assert!(
            self.wait(Duration::from_secs(10), |e| e
                .iter()
                .filter(|e| matches!(e, Ev::Open(_)))
                .count()
                >= n),
            "connection {n} did not open: {:?}",
            self.all()
        );
        self.opened()[n - 1]
    }

    /// The close codes reported for `id`.
    pub fn closes(&self, id: c10k::ConnId) -> Vec<u16> {
        self.all()
            .iter()
            .filter_map(|e| match e {
                Ev::Close(i, code, _) if *i == id => Some(*code),
                _ => None,
            })
            .collect()
    }

    /// Waits for `id` to be reported closed and returns its code.
    pub fn wait_close(&self, id: c10k::ConnId, timeout: Duration) -> u16 {
        assert!(
            self.wait(timeout, |e| e
                .iter()
                .any(|e| matches!(e, Ev::Close(i, ..) if *i == id))),
            "{id} was not reported closed: {:?}",
            self.all()
        );
        self.closes(id)[0]
    }

    /// The messages received from `id`.
    pub fn messages(&self, id: c10k::ConnId) -> Vec<Vec<u8>> {
        self.all()
            .iter()
            .filter_map(|e| match e {
                Ev::Message(i, m) if *i == id => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Echoes messages and records every callback. A text message `close:<code>:<reason>` makes the
/// server start the closing handshake instead of echoing.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub events: Events,
}

impl Probe {
    pub fn new(events: &Events) -> Self {
        Self {
            events: events.clone(),
        }
    }
}

impl Handler for Probe {
    type State = ();

    fn on_open(
        &mut self,
        _ctx: &mut c10k::Ctx<'_>,
        id: c10k::ConnId,
        _state: &mut Self::State,
        _req: &c10k::proto::Request<'_>,
    ) {
        self.events.push(Ev::Open(id));
    }

    fn on_message(
        &mut self,
        ctx: &mut c10k::Ctx<'_>,
        id: c10k::ConnId,
        _state: &mut Self::State,
        msg: c10k::proto::Message<'_>,
    ) {
        let bytes = msg.as_bytes();
        self.events.push(Ev::Message(id, bytes.to_vec()));
        if let Some(cmd) = bytes.strip_prefix(b"close:") {
            let cmd = std::str::from_utf8(cmd).unwrap();
            let (code, reason) = cmd.split_once(':').unwrap();
            let code: u16 = code.parse().unwrap();
            ctx.close(id, code.into(), reason).unwrap();
            return;
        }
        let _ = ctx.send(id, msg.kind(), bytes);
    }

    fn on_pong(
        &mut self,
        _ctx: &mut c10k::Ctx<'_>,
        id: c10k::ConnId,
        _state: &mut Self::State,
        _payload: &[u8],
    ) {
        self.events.push(Ev::Pong(id));
    }

    fn on_close(
        &mut self,
        _ctx: &mut c10k::Ctx<'_>,
        id: c10k::ConnId,
        _state: Self::State,
        code: c10k::proto::CloseCode,
        reason: &str,
    ) {
        self.events.push(Ev::Close(id, code.as_u16(), reason.to_owned()));
    }

    fn on_drain(&mut self, _ctx: &mut c10k::Ctx<'_>, id: c10k::ConnId, _state: &mut Self::State) {
        self.events.push(Ev::Drain(id));
    }

    fn on_timer(&mut self, _ctx: &mut c10k::Ctx<'_>, token: u64) {
        self.events.push(Ev::Timer(token));
    }
}

// ---- configuration and statistics ----

/// One shard and short timeouts, so that tests that wait for a deadline stay fast. Keep-alive is
/// off unless a test turns it on.
pub fn quick_config() -> ServerConfig {
    let mut c = ServerConfig::default();
    c.shards = 1;
    c.handshake_timeout = Duration::from_secs(5);
    c.ping_interval = None;
    c.close_timeout = Duration::from_millis(500);
    c.drain_timeout = Duration::from_millis(500);
    c
}

/// Waits until the server's statistics satisfy `pred`; panics with the last statistics otherwise.
pub fn wait_stats(
    h: &ServerHandle,
    timeout: Duration,
    mut pred: impl FnMut(&c10k::Stats) -> bool,
) -> c10k::Stats {
    let end = Instant::now() + timeout;
    loop {
        let s = h.stats();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < end,
            "statistics never reached the expected state: {s:#?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the server holds no socket at all.
pub fn wait_no_sockets(h: &ServerHandle) -> c10k::Stats {
    wait_stats(h, Duration::from_secs(10), |s| s.sockets == 0)
}

// ---- raw clients ----

/// A raw TCP connection from a chosen source address (127.0.0.x spreads ephemeral ports).
pub fn raw_from(addr: SocketAddr, source: std::net::IpAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Closes a connection with a reset (RST) instead of a FIN.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// A masked Close frame with a code and reason.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    frame(true, 0x8, &p)
}

/// Whether the server closed the connection: EOF (or a reset) before any other byte.
pub fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// The close code of a tungstenite Close message.
pub fn ws_close_code(m: &tungstenite::Message) -> Option<u16> {
    match m {
        tungstenite::Message::Close(Some(f)) => Some(f.code.into()),
        _ => None,
    }
}

/// What the open file descriptors of this process point to.
pub fn fd_targets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    format!(
                        "{} -> {:?}",
                        e.file_name().to_string_lossy(),
                        std::fs::read_link(e.path()).ok()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs the closing handshake from the client's side, then closes the socket (the server waits
/// for this end's FIN after its own).
pub fn close_ws(mut ws: tungstenite::WebSocket<TcpStream>) {
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
}
