//! Smoke checks for the peer servers, run by `peer-smoke` and by `tests/smoke.rs`.
//!
//! They make sure each server is fit to be measured: echoes are exact (text, binary, empty,
//! 1 MiB, 16 MiB, fragmented, pipelined, many connections at once), pings get pongs, the
//! close handshake completes and the server then closes TCP; and that the fan-out server
//! delivers `pub:` messages to every subscriber and nothing else. Over wss (a [`Target`] made
//! with [`Target::wss`]) the same checks run over TLS, with the server's certificate verified,
//! and [`tls_checks`] adds what the TLS settings must be.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::Stream;

pub type Result<T = ()> = std::result::Result<T, String>;
type Client = WebSocketStream<Box<dyn Stream>>;

/// Every single step (connect, one send, one receive) must finish within this.
const STEP: Duration = Duration::from_secs(20);

fn err(ctx: &str, e: impl std::fmt::Display) -> String {
    format!("{ctx}: {e}")
}

async fn step<T, E: std::fmt::Display>(
    ctx: &str,
    fut: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    match tokio::time::timeout(STEP, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(err(ctx, e)),
        Err(_) => Err(format!("{ctx}: timed out after {STEP:?}")),
    }
}

/// The server the checks connect to: its address, and for wss what the client trusts.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    tls: Option<TlsTarget>,
}

#[derive(Clone)]
struct TlsTarget {
    ca: PathBuf,
    name: ServerName<'static>,
    connector: TlsConnector,
}

impl Target {
    /// Plain `ws://` at `addr`.
    pub fn ws(addr: SocketAddr) -> Target {
        Target { addr, tls: None }
    }

    /// `wss://` at `addr`: the server's certificate must be valid for `name` (a DNS name or an
    /// IP address) and issued by a CA in the PEM file `ca`. TLS 1.3 or 1.2, ALPN `http/1.1`.
    pub fn wss(addr: SocketAddr, name: &str, ca: &Path) -> Result<Target> {
        let name = ServerName::try_from(name.to_string()).map_err(|e| err("server name", e))?;
        let config = crate::tls::client_config(ca, crate::tls::all_versions())?;
        Ok(Target {
            addr,
            tls: Some(TlsTarget {
                ca: ca.to_path_buf(),
                name,
                connector: TlsConnector::from(config),
            }),
        })
    }

    /// The URL the WebSocket handshake asks for.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/", self.addr)
    }

    /// A TCP connection (`TCP_NODELAY`), with the TLS handshake done for wss.
    async fn dial(&self, ctx: &str) -> Result<Box<dyn Stream>> {
        match &self.tls {
            None => Ok(Box::new(tcp(self.addr, ctx).await?)),
            Some(tls) => Ok(Box::new(tls_dial(self.addr, tls, &tls.connector, ctx).await?)),
        }
    }
}

async fn tcp(addr: SocketAddr, ctx: &str) -> Result<TcpStream> {
    let s = step(ctx, TcpStream::connect(addr)).await?;
    s.set_nodelay(true).map_err(|e| err(ctx, e))?;
    Ok(s)
}

async fn tls_dial(
    addr: SocketAddr,
    tls: &TlsTarget,
    connector: &TlsConnector,
    ctx: &str,
) -> Result<TlsStream<TcpStream>> {
    let s = tcp(addr, ctx).await?;
    step(
        &format!("{ctx}: TLS handshake"),
        connector.connect(tls.name.clone(), s),
    )
    .await
}

/// Opens a client connection that accepts messages as large as the servers do.
pub async fn connect(target: &Target) -> Result<Client> {
    handshake(target, target.dial("connect").await?).await
}

/// The WebSocket handshake over an open stream.
async fn handshake(target: &Target, stream: Box<dyn Stream>) -> Result<Client> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(crate::MAX_MESSAGE_SIZE))
        .max_frame_size(Some(crate::MAX_MESSAGE_SIZE));
    let (ws, _) = step(
        "connect",
        tokio_tungstenite::client_async_with_config(target.url(), stream, Some(config)),
    )
    .await?;
    Ok(ws)
}

/// Receives the next message that is not a ping or pong.
async fn recv_data(ws: &mut Client, ctx: &str) -> Result<Message> {
    loop {
        match step(ctx, async {
            ws.next().await.ok_or("connection ended".to_string())
        })
        .await?
        {
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(m) => return Ok(m),
            Err(e) => return Err(err(ctx, e)),
        }
    }
}

async fn send(ws: &mut Client, msg: Message, ctx: &str) -> Result {
    step(ctx, ws.send(msg)).await
}

async fn expect_echo(ws: &mut Client, msg: Message, ctx: &str) -> Result {
    send(ws, msg.clone(), ctx).await?;
    let got = recv_data(ws, ctx).await?;
    if got != msg {
        return Err(format!(
            "{ctx}: echo differs ({} sent, got {})",
            describe(&msg),
            describe(&got)
        ));
    }
    Ok(())
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) => format!("text of {} bytes", t.len()),
        Message::Binary(b) => format!("binary of {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

/// Deterministic filler (xorshift) so large payloads are not all one byte.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Text of about `len` bytes mixing ASCII with 2-, 3- and 4-byte UTF-8 sequences.
fn text_pattern(len: usize) -> String {
    let unit = "echo 1234567890 é ß € 漢字 🦀 ";
    let mut s = String::with_capacity(len + unit.len());
    while s.len() < len {
        s.push_str(unit);
    }
    s
}

/// Sends a close with 1000, expects the close reply with 1000, then the end of the stream.
async fn close_handshake(mut ws: Client, ctx: &str) -> Result {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    send(&mut ws, Message::Close(Some(frame)), ctx).await?;
    match recv_data(&mut ws, ctx).await? {
        Message::Close(Some(f)) if f.code == CloseCode::Normal => {}
        other => return Err(format!("{ctx}: expected a close reply with 1000, got {other:?}")),
    }
    // The server must then close the TCP connection. Over TLS, neither peer library sends
    // close_notify first (it drops the stream), which rustls reports as an unexpected EOF:
    // after the close handshake that is still the end of the connection.
    match step(ctx, async { Ok::<_, String>(ws.next().await) }).await? {
        None => Ok(()),
        Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)) => Ok(()),
        Some(Err(tokio_tungstenite::tungstenite::Error::Io(e)))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(())
        }
        Some(other) => Err(format!(
            "{ctx}: expected the connection to end after close, got {other:?}"
        )),
    }
}

/// The full echo check list.
pub async fn echo_checks(target: &Target) -> Result {
    let mut ws = connect(target).await?;
    expect_echo(&mut ws, Message::text("hello"), "text echo").await?;
    expect_echo(&mut ws, Message::text(""), "empty text echo").await?;
    expect_echo(
        &mut ws,
        Message::binary((0..=255u8).collect::<Vec<_>>()),
        "binary echo",
    )
    .await?;
    expect_echo(&mut ws, Message::binary(Vec::new()), "empty binary echo").await?;
    expect_echo(&mut ws, Message::binary(pattern(1 << 20, 1)), "1 MiB binary echo").await?;
    expect_echo(&mut ws, Message::text(text_pattern(1 << 20)), "1 MiB text echo").await?;
    expect_echo(
        &mut ws,
        Message::binary(pattern(16 << 20, 2)),
        "16 MiB binary echo",
    )
    .await?;

    // Ping with a payload: the pong carries it back.
    step(
        "ping",
        ws.send(Message::Ping(Bytes::from_static(b"are you there"))),
    )
    .await?;
    match step("pong", async {
        ws.next().await.ok_or("connection ended".to_string())
    })
    .await?
    {
        Ok(Message::Pong(p)) if &p[..] == b"are you there" => {}
        Ok(Message::Pong(p)) => return Err(format!("pong: wrong payload {p:?}")),
        Ok(other) => return Err(format!("pong: expected a pong, got {}", describe(&other))),
        Err(e) => return Err(err("pong", e)),
    }

    // A text message in three fragments comes back as the whole message.
    let parts: [&[u8]; 3] = [b"frag", "mented é".as_bytes(), b" message"];
    let frames = [
        Frame::message(parts[0].to_vec(), OpCode::Data(Data::Text), false),
        Frame::message(parts[1].to_vec(), OpCode::Data(Data::Continue), false),
        Frame::message(parts[2].to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for f in frames {
        send(&mut ws, Message::Frame(f), "fragmented send").await?;
    }
    match recv_data(&mut ws, "fragmented echo").await? {
        Message::Text(t) if t.as_str() == "fragmented é message" => {}
        other => return Err(format!("fragmented echo: got {}", describe(&other))),
    }

    // Pipelined: 200 messages sent before reading any; all come back in order.
    for i in 0..200u32 {
        step("pipelined send", ws.feed(Message::text(format!("msg {i}")))).await?;
    }
    step("pipelined flush", ws.flush()).await?;
    for i in 0..200u32 {
        match recv_data(&mut ws, "pipelined echo").await? {
            Message::Text(t) if t.as_str() == format!("msg {i}") => {}
            other => return Err(format!("pipelined echo {i}: got {}", describe(&other))),
        }
    }

    close_handshake(ws, "close handshake").await?;

    // Many connections at once, interleaved on the server's single core.
    let mut tasks = Vec::new();
    for c in 0..32u64 {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&target).await?;
            for i in 0..20u64 {
                let m = Message::binary(pattern(64 + (i as usize) * 97, c * 100 + i + 1));
                expect_echo(&mut ws, m, "concurrent echo").await?;
            }
            close_handshake(ws, "concurrent close").await
        }));
    }
    for t in tasks {
        t.await.map_err(|e| err("concurrent task", e))??;
    }

    fragmented_echo_is_one_frame(target).await
}

/// Over a raw socket (or raw TLS stream): a message sent as three fragments must come back as
/// a single frame (FIN set, text opcode, whole payload), i.e. the server reassembles before
/// echoing.
pub async fn fragmented_echo_is_one_frame(target: &Target) -> Result {
    let ctx = "raw fragmented echo";
    let addr = target.addr;
    let mut s = target.dial(ctx).await?;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    step(ctx, s.write_all(req.as_bytes())).await?;
    // Read the response head byte by byte so no frame bytes are swallowed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = step(ctx, s.read_u8()).await?;
        head.push(b);
        if head.len() > 8192 {
            return Err(format!("{ctx}: response head too long"));
        }
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 101") || !head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
        return Err(format!("{ctx}: bad upgrade response: {head:?}"));
    }
    // Masked client frames; a zero mask key keeps the payload readable here.
    let mut out = Vec::new();
    for (op, fin, part) in [
        (0x1u8, false, &b"one "[..]),
        (0x0, false, b"two "),
        (0x0, true, b"three"),
    ] {
        out.push(if fin { 0x80 } else { 0 } | op);
        out.push(0x80 | part.len() as u8);
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(part);
    }
    step(ctx, s.write_all(&out)).await?;
    let mut hdr = [0u8; 2];
    step(ctx, s.read_exact(&mut hdr)).await?;
    let want = b"one two three";
    if hdr[0] != 0x81 || hdr[1] != want.len() as u8 {
        return Err(format!(
            "{ctx}: expected one final unmasked text frame of 13 bytes, got header {hdr:02x?}"
        ));
    }
    let mut payload = vec![0u8; want.len()];
    step(ctx, s.read_exact(&mut payload)).await?;
    if payload != want {
        return Err(format!("{ctx}: payload {payload:?}"));
    }
    Ok(())
}

/// The fan-out check list.
pub async fn broadcast_checks(target: &Target) -> Result {
    let mut a = connect(target).await?;
    let mut b = connect(target).await?;
    let mut c = connect(target).await?;

    // Not a `pub:` message: delivered to nobody.
    send(&mut a, Message::text("hello"), "plain send").await?;
    send(&mut a, Message::binary(b"pub:binary".to_vec()), "binary send").await?;
    send(&mut b, Message::text("pub:one"), "publish one").await?;
    send(&mut c, Message::text("pub:two"), "publish two").await?;
    for (name, ws) in [("a", &mut a), ("b", &mut b), ("c", &mut c)] {
        // Order between publishers is not defined; the set is.
        let mut got = Vec::new();
        for _ in 0..2 {
            match recv_data(ws, "subscriber receive").await? {
                Message::Text(t) => got.push(t.to_string()),
                other => return Err(format!("subscriber {name}: got {}", describe(&other))),
            }
        }
        got.sort();
        if got != ["pub:one", "pub:two"] {
            return Err(format!(
                "subscriber {name}: got {got:?}, expected pub:one and pub:two"
            ));
        }
    }

    // A large published message reaches everyone intact.
    let big = Message::text(format!("pub:{}", text_pattern(1 << 20)));
    send(&mut a, big.clone(), "publish 1 MiB").await?;
    for ws in [&mut a, &mut b, &mut c] {
        if recv_data(ws, "receive 1 MiB").await? != big {
            return Err("1 MiB publish arrived altered".into());
        }
    }

    // A subscriber that left no longer counts; the others still get everything.
    close_handshake(b, "subscriber close").await?;
    send(&mut c, Message::text("pub:three"), "publish three").await?;
    for ws in [&mut a, &mut c] {
        match recv_data(ws, "receive after leave").await? {
            Message::Text(t) if t.as_str() == "pub:three" => {}
            other => return Err(format!("after leave: got {}", describe(&other))),
        }
    }
    close_handshake(a, "close a").await?;
    close_handshake(c, "close c").await
}

/// What a wss target's TLS settings must be: a client offering only TLS 1.3, then one offering
/// only TLS 1.2, each gets that version and ALPN `http/1.1`, and one echo and the close
/// handshake over it.
pub async fn tls_checks(target: &Target) -> Result {
    let Some(tls) = &target.tls else {
        return Err("tls checks: the target is ws://, not wss://".into());
    };
    for (version, name) in [
        (&rustls::version::TLS13, "TLS 1.3"),
        (&rustls::version::TLS12, "TLS 1.2"),
    ] {
        let ctx = format!("{name} only");
        let connector = TlsConnector::from(crate::tls::client_config(&tls.ca, &[version])?);
        let stream = tls_dial(target.addr, tls, &connector, &ctx).await?;
        let (_, conn) = stream.get_ref();
        if conn.protocol_version() != Some(version.version) {
            return Err(format!("{ctx}: negotiated {:?}", conn.protocol_version()));
        }
        if conn.alpn_protocol() != Some(b"http/1.1") {
            return Err(format!(
                "{ctx}: ALPN {:?}, expected http/1.1",
                conn.alpn_protocol().map(String::from_utf8_lossy)
            ));
        }
        let mut ws = handshake(target, Box::new(stream)).await?;
        expect_echo(&mut ws, Message::text(format!("over {name}")), &ctx).await?;
        close_handshake(ws, &ctx).await?;
    }
    Ok(())
}
