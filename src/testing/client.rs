//! The client end of a test connection: writes a request and frames into its pipe, decodes
//! what the server wrote with the protocol core in the client role (so that a frame the server
//! should not have sent fails here as it would in a browser).

use std::collections::VecDeque;

use crate::client::Received;
use crate::engine::pipe::Pipe;
use crate::engine::{ConnId, HttpResponse};
use crate::proto::handshake::accept_key;
use crate::proto::{CloseCode, Config, Connection, MessageKind};

/// The key every test request sends (RFC 6455's example); the answer must match it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The client end of one connection to a [`TestServer`](super::TestServer).
pub struct TestClient {
    id: ConnId,
    pipe: Pipe,
    /// The protocol state once upgraded.
    proto: Option<Connection>,
    /// Bytes taken from the pipe and not yet decoded.
    rx: Vec<u8>,
    incoming: VecDeque<Received>,
    /// Answer pings and echo a Close frame, as a browser does.
    auto_reply: bool,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("id", &self.id)
            .field("upgraded", &self.proto.is_some())
            .finish_non_exhaustive()
    }
}

impl TestClient {
    pub(super) fn new(id: ConnId, pipe: Pipe) -> Self {
        Self {
            id,
            pipe,
            proto: None,
            rx: Vec::new(),
            incoming: VecDeque::new(),
            auto_reply: true,
        }
    }

    /// The connection's id on the server (what the handler's callbacks are given).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Writes an upgrade request for `target` (path and query) with more `headers`.
    pub fn request(&mut self, target: &str, headers: &[(&str, &str)]) {
        let mut head = format!(
            "GET {target} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.pipe.write(head.as_bytes());
    }

    /// The server's answer to the request, once its head (and body) arrived: `Ok` for a 101
    /// with the right `Sec-WebSocket-Accept` (the client is then upgraded), else the answer.
    ///
    /// # Panics
    /// On a 101 whose accept key is wrong, or an answer that is not HTTP.
    pub fn response(&mut self) -> Option<Result<(), HttpResponse>> {
        self.take_wire();
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut fields);
        let head = match resp.parse(&self.rx) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(e) => panic!("the server's answer is not HTTP: {e}"),
        };
        let status = resp.code.unwrap_or(0);
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        let mut answer = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 101 {
            let expected = accept_key(KEY.as_bytes());
            assert_eq!(
                answer.header("sec-websocket-accept").map(str::as_bytes),
                Some(&expected[..]),
                "the 101's Sec-WebSocket-Accept"
            );
            self.rx.drain(..head);
            self.proto = Some(Connection::client(
                Config::default(),
                Box::new(|| [0x37, 0xfa, 0x21, 0x3d]),
            ));
            return Some(Ok(()));
        }
        let len: usize = answer
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if self.rx.len() < head + len {
            return None;
        }
        answer.body = self.rx[head..head + len].to_vec();
        self.rx.drain(..head + len);
        Some(Err(answer))
    }

    /// Sends a text message in one frame.
    pub fn send_text(&mut self, text: &str) {
        self.send(MessageKind::Text, text.as_bytes());
    }

    /// Sends a binary message in one frame.
    pub fn send_binary(&mut self, data: &[u8]) {
        self.send(MessageKind::Binary, data);
    }

    /// Sends a message in one frame.
    pub fn send(&mut self, kind: MessageKind, data: &[u8]) {
        self.frame(|p, out| p.send(kind, data, out).map_err(|e| e.to_string()));
    }

    /// Sends one fragment: `Some(kind)` starts a message, `None` continues it, `fin` ends it.
    pub fn send_fragment(&mut self, kind: Option<MessageKind>, data: &[u8], fin: bool) {
        self.frame(|p, out| p.send_fragment(kind, data, fin, out).map_err(|e| e.to_string()));
    }

    /// Sends a ping.
    pub fn ping(&mut self, payload: &[u8]) {
        self.frame(|p, out| p.ping(payload, out).map_err(|e| e.to_string()));
    }

    /// Sends a pong.
    pub fn pong(&mut self, payload: &[u8]) {
        self.frame(|p, out| p.pong(payload, out).map_err(|e| e.to_string()));
    }

    /// Starts the closing handshake with `code` and `reason`.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.frame(|p, out| p.close(code, reason, out).map_err(|e| e.to_string()));
    }

    /// Writes any bytes (a frame built by hand, a request in pieces, garbage).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.pipe.write(bytes);
    }

    /// Takes every byte the server wrote that was not decoded yet, as it is.
    pub fn read_raw(&mut self) -> Vec<u8> {
        self.take_wire();
        std::mem::take(&mut self.rx)
    }

    /// Whether to behave as browsers do (on by default): answer pings, echo a Close frame, and
    /// close the TCP connection as soon as the server has closed its side. Off, the client
    /// does only what the test tells it.
    pub fn set_auto_reply(&mut self, on: bool) {
        self.auto_reply = on;
        self.pipe.set_fin_after_server(on);
    }

    /// How many bytes the server may write that this client has not read (the socket buffers
    /// of a real connection): past it, the server's writes block and its queue grows. A client
    /// reads only when asked ([`TestClient::recv`], [`TestClient::read_raw`]).
    pub fn set_window(&mut self, bytes: usize) {
        self.pipe.set_window(bytes);
    }

    /// Bytes the server wrote that this client has not read yet.
    pub fn unread(&self) -> usize {
        self.pipe.unread()
    }

    /// The next thing the server sent, reading what it wrote so far.
    ///
    /// # Panics
    /// If the server's bytes break the protocol (a masked frame, bad UTF-8, ...): a test of
    /// the engine's own output fails loudly.
    pub fn recv(&mut self) -> Option<Received> {
        if self.incoming.is_empty() {
            self.decode();
        }
        self.incoming.pop_front()
    }

    /// Everything the server sent so far.
    ///
    /// # Panics
    /// As [`TestClient::recv`].
    pub fn recv_all(&mut self) -> Vec<Received> {
        self.decode();
        self.incoming.drain(..).collect()
    }

    /// Shuts the client's write side (TCP FIN): the server reads the end of the stream.
    pub fn finish(&mut self) {
        self.pipe.fin();
    }

    /// Resets the connection (TCP RST): the server's next read or write fails.
    pub fn reset(&mut self) {
        self.pipe.reset();
    }

    /// Whether the server closed the connection (its FIN or its letting go) and every byte it
    /// wrote before was read.
    pub fn server_closed(&self) -> bool {
        self.pipe.server_finished() && self.pipe.unread() == 0
    }

    /// Whether the server let go of the connection entirely (it is gone from the shard).
    pub fn server_gone(&self) -> bool {
        self.pipe.server_gone()
    }

    fn take_wire(&mut self) {
        let bytes = self.pipe.take(usize::MAX);
        self.rx.extend_from_slice(&bytes);
    }

    fn frame(&mut self, f: impl FnOnce(&mut Connection, &mut Vec<u8>) -> Result<(), String>) {
        let proto = self
            .proto
            .as_mut()
            .expect("the connection is upgraded (101) first");
        let mut out = Vec::new();
        if let Err(e) = f(proto, &mut out) {
            panic!("the client cannot send this now: {e}");
        }
        self.pipe.write(&out);
    }

    fn decode(&mut self) {
        self.take_wire();
        let Some(proto) = self.proto.as_mut() else {
            return;
        };
        let mut pos = 0;
        let mut replies = Vec::new();
        while pos < self.rx.len() {
            let read = proto.read(&mut self.rx[pos..], &mut replies);
            let (consumed, event) = match read {
                Ok(r) => (r.consumed, r.event.map(Received::from)),
                Err(e) => panic!("the server's frames break the protocol: {e}"),
            };
            pos += consumed;
            match event {
                Some(ev) => self.incoming.push_back(ev),
                None if consumed == 0 => break,
                None => {}
            }
        }
        self.rx.drain(..pos);
        if self.auto_reply && !replies.is_empty() {
            self.pipe.write(&replies);
        }
    }
}
