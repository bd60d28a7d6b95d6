//! A blocking WebSocket client over the same sans-I/O core: for tools, tests and interop.
//!
//! It opens one TCP connection (`ws://`, or `wss://` with the `tls` feature and
//! `ClientConfig::tls`), performs the opening handshake with a random
//! key, and then sends and receives whole messages. Masking keys come from the operating system's
//! CSPRNG, drawn in batches so that a key costs no system call most of the time. With
//! [`ClientConfig::deflate`] it offers permessage-deflate, checks the server's answer, and
//! compresses and inflates messages (zlib state from its own [`DeflatePool`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

mod stream;

use self::stream::Stream;
use crate::proto::handshake::{self, ClientRequest, HeadLimits};
use crate::proto::{
    self, CloseCode, Connection, DeflateConfig, DeflateParams, DeflatePool, Event, Message, MessageKind,
};

/// A `ws://host:port/path?query` (or `wss://`) URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: TLS.
    pub secure: bool,
    /// Host name or address, as written (IPv6 with brackets).
    pub host: String,
    /// Port (80 if absent, 443 for `wss://`).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::Url(format!("{url:?}: {why}"));
        let (secure, rest) = match url.strip_prefix("wss://") {
            Some(rest) => (true, rest),
            None => (
                false,
                url.strip_prefix("ws://")
                    .ok_or_else(|| bad("must start with ws:// or wss://"))?,
            ),
        };
        let default_port = if secure { 443 } else { 80 };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| bad("bad port"))?)
            }
            _ => (authority, default_port),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            secure,
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// `host:port` for the `Host` header field (the port is left out when it is the scheme's
    /// default).
    pub fn host_header(&self) -> String {
        if self.port == if self.secure { 443 } else { 80 } {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves the address to connect to.
    pub fn socket_addr(&self) -> Result<SocketAddr, ClientError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port)
            .to_socket_addrs()
            .map_err(ClientError::Io)?
            .next()
            .ok_or_else(|| ClientError::Url(format!("{}: no address", self.host)))
    }
}

/// Why the client failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// A socket error.
    Io(io::Error),
    /// An unusable URL.
    Url(String),
    /// The server's handshake response was not acceptable.
    Handshake(proto::HandshakeError),
    /// The server broke the protocol; the connection was failed with the error's close code.
    Protocol(proto::Error),
    /// The protocol forbids the command (e.g. sending after a close).
    Send(proto::InvalidSend),
    /// The connection is closed.
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Url(e) => write!(f, "bad URL {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::Protocol(e) => write!(f, "protocol error ({}): {e}", e.close_code()),
            Self::Send(e) => write!(f, "cannot send: {e}"),
            Self::Closed => f.write_str("connection closed"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Options of a client connection.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Frame and message limits for what the server sends.
    pub protocol: proto::Config,
    /// Subprotocols to offer.
    pub protocols: Vec<String>,
    /// `Origin` header field.
    pub origin: Option<String>,
    /// Extra header fields.
    pub headers: Vec<(String, String)>,
    /// Limits on the response head.
    pub head_limits: HeadLimits,
    /// Timeout of connect, reads and writes; `None` blocks forever.
    pub timeout: Option<Duration>,
    /// Offer permessage-deflate with this policy (`None`: no offer, the default). Without the
    /// `deflate` feature nothing is offered.
    pub deflate: Option<DeflateConfig>,
    /// After the closing handshake, how long [`Client::recv`] waits for the server to close
    /// the TCP connection before it returns (default 3 s; the connection's own read timeout
    /// still applies). RFC 6455 section 7.1.1: the server closes first, so that the TIME_WAIT
    /// state is the server's; the client closes after a timeout only.
    pub close_timeout: Duration,
    /// TLS settings for `wss://` URLs (see [`crate::tls::client_config`]); a `wss://` URL
    /// without them is refused.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            protocol: proto::Config::default(),
            protocols: Vec::new(),
            origin: None,
            headers: Vec::new(),
            head_limits: HeadLimits::default(),
            timeout: Some(Duration::from_secs(30)),
            deflate: None,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Something the server sent, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping (already answered).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The server's Close frame (already answered): code and reason.
    Close(CloseCode, String),
}

/// Masking keys from the operating system's CSPRNG, drawn 64 at a time.
#[derive(Debug)]
pub struct OsKeys {
    buf: [u8; 256],
    pos: usize,
}

impl OsKeys {
    /// An empty pool; the first key draws a batch.
    pub fn new() -> Self {
        Self {
            buf: [0; 256],
            pos: 256,
        }
    }

    /// The next key.
    pub fn next_key(&mut self) -> [u8; 4] {
        if self.pos + 4 > self.buf.len() {
            // The kernel's generator does not fail once seeded; should it ever, the old bytes
            // remain, still unknown to the peer.
            let _ = crate::engine::sys::fill_random(&mut self.buf);
            self.pos = 0;
        }
        let k = [
            self.buf[self.pos],
            self.buf[self.pos + 1],
            self.buf[self.pos + 2],
            self.buf[self.pos + 3],
        ];
        self.pos += 4;
        k
    }
}

impl Default for OsKeys {
    fn default() -> Self {
        Self::new()
    }
}

/// How long a client waits for the server's TCP close after the closing handshake, by default.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// A blocking WebSocket client connection.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    /// [`ClientConfig::close_timeout`]; `None` once the wait for the server's close is over.
    close_wait: Option<Duration>,
    conn: Connection,
    /// Received bytes not consumed yet.
    inbuf: Vec<u8>,
    out: Vec<u8>,
    protocol: Option<String>,
    deflate: Option<DeflateParams>,
    /// zlib state lent to the connection for one message at a time.
    pool: DeflatePool,
}

impl Client {
    /// Connects with default options.
    pub fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, &ClientConfig::default())
    }

    /// Connects with `config`.
    pub fn connect_with(url: &str, config: &ClientConfig) -> Result<Self, ClientError> {
        let url = WsUrl::parse(url)?;
        let addr = url.socket_addr()?;
        let stream = match config.timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t)?,
            None => TcpStream::connect(addr)?,
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(config.timeout)?;
        stream.set_write_timeout(config.timeout)?;
        Self::handshake(stream, &url, config)
    }

    /// Performs the opening handshake over an already connected stream (after the TLS
    /// handshake for a `wss://` URL).
    pub fn handshake(stream: TcpStream, url: &WsUrl, config: &ClientConfig) -> Result<Self, ClientError> {
        let mut stream = if url.secure {
            #[cfg(feature = "tls")]
            match config.tls.clone() {
                Some(tls) => Stream::tls(stream, &url.host, tls)?,
                None => return Err(ClientError::Url("wss:// needs ClientConfig::tls".into())),
            }
            #[cfg(not(feature = "tls"))]
            return Err(ClientError::Url("wss:// needs the `tls` feature".into()));
        } else {
            Stream::Plain(stream)
        };
        let mut keys = OsKeys::new();
        let mut key = [0u8; 16];
        crate::engine::sys::fill_random(&mut key).map_err(ClientError::Io)?;
        let protocols: Vec<&str> = config.protocols.iter().map(String::as_str).collect();
        let headers: Vec<(&str, &str)> = config
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let host = url.host_header();
        let req = ClientRequest {
            host: &host,
            target: &url.target,
            origin: config.origin.as_deref(),
            protocols: &protocols,
            headers: &headers,
            deflate: config.deflate,
        };
        let mut out = Vec::new();
        let expected = handshake::write_request(&req, key, &mut out)
            .map_err(|e| ClientError::Url(format!("cannot build the request: {e}")))?;
        stream.write_all(&out)?;
        let mut inbuf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_len, protocol, deflate) = loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            inbuf.extend_from_slice(&chunk[..n]);
            match handshake::parse_response(&inbuf, &expected, &protocols, &config.head_limits) {
                Ok(Some(resp)) => {
                    break (
                        resp.head_len(),
                        resp.protocol().map(str::to_owned),
                        resp.deflate(),
                    );
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Handshake(e)),
            }
        };
        inbuf.drain(..head_len);
        let conn = Connection::client(config.protocol, Box::new(move || keys.next_key()));
        #[cfg(feature = "deflate")]
        let conn = match (deflate, config.deflate.as_ref()) {
            (Some(params), Some(policy)) => conn.with_deflate(params.negotiated(proto::Role::Client, policy)),
            _ => conn,
        };
        Ok(Self {
            stream,
            close_wait: Some(config.close_timeout),
            conn,
            inbuf,
            out: Vec::new(),
            protocol,
            deflate,
            pool: DeflatePool::new(),
        })
    }

    /// The permessage-deflate parameters the server agreed to, if it did.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref()
    }

    /// The subprotocol the server selected.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The protocol state (for instance to see whether the close handshake completed).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The underlying stream (for socket options or timeouts).
    pub fn stream(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send(MessageKind::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.send(MessageKind::Binary, data)
    }

    /// Sends a message in one frame (compressed if permessage-deflate was agreed and the
    /// message reaches the threshold).
    pub fn send(&mut self, kind: MessageKind, data: &[u8]) -> Result<(), ClientError> {
        self.conn
            .send_with(kind, data, &mut self.out, &mut self.pool)
            .map_err(ClientError::Send)?;
        self.flush()
    }

    /// Sends a message split into frames of at most `fragment` bytes (of compressed data when
    /// the message is compressed).
    pub fn send_fragmented(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        fragment: usize,
    ) -> Result<(), ClientError> {
        self.conn
            .send_fragmented(kind, data, fragment, &mut self.out, &mut self.pool)
            .map_err(ClientError::Send)?;
        self.flush()
    }

    /// Sends a ping.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.conn
            .ping(payload, &mut self.out)
            .map_err(ClientError::Send)?;
        self.flush()
    }

    /// Starts the closing handshake; keep calling [`Client::recv`] for the server's answer.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), ClientError> {
        self.conn
            .close(code, reason, &mut self.out)
            .map_err(ClientError::Send)?;
        self.flush()
    }

    /// Writes raw bytes to the socket, bypassing the protocol (for tests of broken peers).
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        if !self.out.is_empty() {
            let r = self.stream.write_all(&self.out);
            self.out.clear();
            r?;
        }
        Ok(())
    }

    /// Waits for the next message, ping, pong or close. After the close, returns
    /// [`ClientError::Closed`].
    pub fn recv(&mut self) -> Result<Received, ClientError> {
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let (consumed, event) = match self
                .conn
                .read_with(&mut self.inbuf, &mut self.out, &mut self.pool)
            {
                Ok(r) => (r.consumed, r.event.map(Received::from)),
                Err(e) => {
                    // The Close frame that fails the connection is in `out`: send it.
                    let _ = self.flush();
                    return Err(ClientError::Protocol(e));
                }
            };
            self.inbuf.drain(..consumed);
            self.flush()?;
            if let Some(ev) = event {
                return Ok(ev);
            }
            if self.conn.close_received() {
                if self.conn.close_sent() {
                    self.await_server_close();
                }
                return Err(ClientError::Closed);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.inbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// After the closing handshake: reads (and drops) until the server closes the TCP
    /// connection, for [`ClientConfig::close_timeout`] at most (once).
    fn await_server_close(&mut self) {
        let Some(wait) = self.close_wait.take() else {
            return;
        };
        let tcp = self.stream.tcp();
        let before = tcp.read_timeout().ok().flatten();
        let deadline = std::time::Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let left = before.map_or(left, |b| b.min(left));
            if left.is_zero() || self.stream.tcp().set_read_timeout(Some(left)).is_err() {
                break;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = self.stream.tcp().set_read_timeout(before);
    }

    /// Waits for the next data message, skipping pings and pongs.
    pub fn recv_message(&mut self) -> Result<Received, ClientError> {
        loop {
            match self.recv()? {
                Received::Ping(_) | Received::Pong(_) => {}
                other => return Ok(other),
            }
        }
    }
}

impl From<Event<'_>> for Received {
    /// What a read event was, owned (a ping or pong's payload, a Close frame's code and reason).
    fn from(event: Event<'_>) -> Self {
        match event {
            Event::Message(Message::Text(t)) => Self::Text(t.into_owned()),
            Event::Message(Message::Binary(b)) => Self::Binary(b.into_owned()),
            Event::Ping(p) => Self::Ping(p.to_vec()),
            Event::Pong(p) => Self::Pong(p.to_vec()),
            Event::Close(f) => Self::Close(f.code, f.reason.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/chat?room=a").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 9001, "/chat?room=a")
        );
        let u = WsUrl::parse("ws://example").unwrap();
        assert_eq!(
            (u.port, u.target.as_str(), u.host_header().as_str()),
            (80, "/", "example")
        );
        let u = WsUrl::parse("ws://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 9));
        let u = WsUrl::parse("ws://h?x=1").unwrap();
        assert_eq!(u.target, "/?x=1");
        let u = WsUrl::parse("wss://h/").unwrap();
        assert!(u.secure && u.port == 443 && u.host_header() == "h");
        assert!(WsUrl::parse("http://h/").is_err());
        assert!(WsUrl::parse("ws://h:port/").is_err());
    }

    #[test]
    fn os_keys_differ() {
        let mut k = OsKeys::new();
        let keys: Vec<[u8; 4]> = (0..200).map(|_| k.next_key()).collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert!(distinct.len() > 190);
    }
}
