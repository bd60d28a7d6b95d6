//! The attackers' event loop: one mio poll over many connections ([`Peer`]s), which connects
//! them (a bounded number at a time), makes their opening as their [`Spec`] says, reads the
//! server's answer to each (an HTTP status, frames, a Close frame, a reset), answers pings, and
//! writes what the attack queues. What each attack does with its connections is in its own file;
//! this loop only moves bytes and records answers, in a [`Tally`].
//!
//! A connection that is not being read ([`Peer::reading`] false) keeps the server's bytes in its
//! kernel buffer; [`Fleet::drain`] reads every connection at the end of an attack, so that a Close
//! frame queued behind what the attacker refused to read is still seen.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use c10k::proto::deflate::DeflateConfig;
use c10k::proto::handshake::{self, ClientRequest, HeadLimits};
use c10k::proto::{HandshakeError, Role};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::frames::{self, Keys};
use super::peer::{Answer, Opening, Peer, Spec, Stage, Tally};
use super::skim::{Seen, Skim};
use super::target::Target;

/// Most connections waiting for their TCP connect at once.
const MAX_CONNECTING: usize = 256;
/// The largest HTTP answer head read; a longer one fails the connection.
const MAX_HEAD: usize = 64 << 10;
/// The read buffer of the loop.
const SCRATCH: usize = 64 << 10;
/// Pings are left unanswered while this many bytes wait to go out on the connection: a server
/// that pings faster than the socket drains cannot grow the attacker's queue without bound.
pub(crate) const MAX_PONG_BACKLOG: usize = 64 << 10;
/// At the end of an attack: the drain stops once nothing has come for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(1000);

/// Something that happened to a connection, for the attack to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum News {
    /// The TCP connection is up, and the opening went out (or, for [`Opening::Manual`], is the
    /// attack's to write).
    Connected(usize),
    /// The upgrade was accepted.
    Open(usize),
    /// A data message (its bytes when small; see [`super::skim::KEEP`]), for connections that
    /// keep messages.
    Message(usize, Option<Vec<u8>>),
    /// The connection is gone, and counted in the tally under this role and answer.
    Gone(usize, &'static str, Answer),
}

/// Many attacker connections in one event loop.
pub(crate) struct Fleet {
    target: Target,
    poll: Poll,
    events: Events,
    peers: Slab<Peer>,
    waiting: VecDeque<Spec>,
    connecting: usize,
    pub(super) scratch: Vec<u8>,
    pub(crate) keys: Keys,
    news: Vec<News>,
    seen: Vec<Seen>,
    /// The answers of the connections that are gone.
    pub(crate) tally: Tally,
    last_input: Instant,
    #[cfg(feature = "tls")]
    pub(super) tls_rx: Vec<u8>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("peers", &self.peers.len())
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// An empty fleet against `target`.
    pub(crate) fn new(target: &Target, seed: u64) -> io::Result<Self> {
        Ok(Self {
            target: target.clone(),
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            peers: Slab::new(),
            waiting: VecDeque::new(),
            connecting: 0,
            scratch: vec![0; SCRATCH],
            keys: Keys::new(seed ^ u64::from(std::process::id())),
            news: Vec::new(),
            seen: Vec::new(),
            tally: Tally::default(),
            last_input: Instant::now(),
            #[cfg(feature = "tls")]
            tls_rx: Vec::new(),
        })
    }

    /// Queues a connection; it connects when fewer than [`MAX_CONNECTING`] are connecting.
    pub(crate) fn add(&mut self, spec: Spec) {
        self.waiting.push_back(spec);
        self.connect_more();
    }

    /// The server under attack.
    #[cfg(feature = "tls")]
    pub(crate) fn target_ref(&self) -> &Target {
        &self.target
    }

    /// Connections not yet gone (queued ones included).
    pub(crate) fn len(&self) -> usize {
        self.peers.len() + self.waiting.len()
    }

    /// The keys of the connections in `stage`.
    pub(crate) fn keys_in(&self, stage: Stage) -> Vec<usize> {
        self.peers
            .iter()
            .filter(|(_, p)| p.stage == stage)
            .map(|(k, _)| k)
            .collect()
    }

    /// Connection `key`, if it is not gone.
    pub(crate) fn peer(&mut self, key: usize) -> Option<&mut Peer> {
        self.peers.get_mut(key)
    }

    /// Every connection not yet gone.
    pub(crate) fn peers(&self) -> impl Iterator<Item = (usize, &Peer)> {
        self.peers.iter()
    }

    fn connect_more(&mut self) {
        while self.connecting < MAX_CONNECTING {
            let Some(spec) = self.waiting.pop_front() else {
                return;
            };
            self.connect(spec);
        }
    }

    fn connect(&mut self, spec: Spec) {
        let source = spec
            .from_source
            .then_some(self.target.source)
            .flatten()
            .map(|ip| SocketAddr::new(ip, 0));
        let started = Instant::now();
        let mut socket = match crate::loadgen::connect_with(self.target.addr, source, true, spec.rcvbuf) {
            Ok(s) => s,
            Err(e) => {
                let answer = Answer::ConnectFailed(e.to_string());
                return self.tally.count(spec.role, &answer, 0, started, None);
            }
        };
        let entry = self.peers.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut socket, Token(key), Interest::READABLE | Interest::WRITABLE)
        {
            let answer = Answer::ConnectFailed(format!("register: {e}"));
            return self.tally.count(spec.role, &answer, 0, started, None);
        }
        entry.insert(Peer {
            socket,
            #[cfg(feature = "tls")]
            tls: None,
            stage: Stage::Connecting,
            opening: spec.opening,
            expected: None,
            deflate: None,
            out: Vec::new(),
            head: Vec::new(),
            skim: Skim::default(),
            reading: true,
            answer_pings: true,
            keep_messages: false,
            sent: 0,
            received: 0,
            started,
            answer: None,
            sign: None,
            write_dead: false,
            close_sent: false,
            role: spec.role,
            step: 0,
        });
        self.connecting += 1;
    }

    /// One poll (at most `timeout`) and its events; returns what happened.
    pub(crate) fn turn(&mut self, timeout: Duration) -> Vec<News> {
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        match self.poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!("poll: {e}");
                std::thread::sleep(timeout.min(Duration::from_millis(10)));
            }
        }
        for ev in events.iter() {
            let key = ev.token().0;
            if ev.is_writable() {
                self.on_writable(key);
            }
            if ev.is_read_closed() || ev.is_error() {
                // Seen even by a connection that does not read: the server has closed or reset.
                if let Some(p) = self.peers.get_mut(key)
                    && p.stage != Stage::Connecting
                {
                    p.noticed();
                }
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.read(key);
            }
        }
        self.events = events;
        self.connect_more();
        std::mem::take(&mut self.news)
    }

    fn on_writable(&mut self, key: usize) {
        let Some(p) = self.peers.get_mut(key) else { return };
        if p.stage == Stage::Connecting {
            match p.socket.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.finish(key, Answer::ConnectFailed(e.to_string())),
            }
            // A spurious wake-up before the connect is done: the peer address tells.
            if let Err(e) = p.socket.peer_addr() {
                if e.kind() == io::ErrorKind::NotConnected {
                    return;
                }
                return self.finish(key, Answer::ConnectFailed(e.to_string()));
            }
            self.connecting -= 1;
            self.connected(key);
        }
        self.flush(key);
    }

    /// The TCP connection of `key` is up: its opening goes out.
    fn connected(&mut self, key: usize) {
        let Some(p) = self.peers.get_mut(key) else { return };
        p.stage = Stage::Http;
        match p.opening.clone() {
            Opening::Silent => {}
            Opening::HelloOnly => {
                #[cfg(feature = "tls")]
                if !self.hello_only(key) {
                    return;
                }
                #[cfg(not(feature = "tls"))]
                return self.finish(key, Answer::Failed("this build has no TLS".to_owned()));
            }
            opening => {
                #[cfg(feature = "tls")]
                if !self.start_tls(key) {
                    return;
                }
                let Some(p) = self.peers.get_mut(key) else { return };
                match opening {
                    Opening::Upgrade { deflate, path } => {
                        let mut k = [0u8; 16];
                        k[..8].copy_from_slice(&self.keys.next_u64().to_le_bytes());
                        k[8..].copy_from_slice(&self.keys.next_u64().to_le_bytes());
                        let req = ClientRequest {
                            host: &self.target.host,
                            target: path.as_deref().unwrap_or(&self.target.path),
                            deflate: deflate.then(DeflateConfig::default),
                            ..ClientRequest::default()
                        };
                        match handshake::write_request(&req, k, &mut p.out) {
                            Ok(expected) => p.expected = Some(expected),
                            Err(e) => return self.finish(key, Answer::Failed(format!("request: {e}"))),
                        }
                    }
                    Opening::Raw(bytes) => p.out.extend_from_slice(&bytes),
                    _ => {}
                }
            }
        }
        self.news.push(News::Connected(key));
        self.flush(key);
    }

    /// Queues `bytes` on connection `key` and writes what the socket takes.
    pub(crate) fn send(&mut self, key: usize, bytes: &[u8]) {
        let Some(p) = self.peers.get_mut(key) else { return };
        if p.write_dead {
            return;
        }
        p.out.extend_from_slice(bytes);
        self.flush(key);
    }

    /// Bytes queued on `key` that the socket has not taken yet.
    pub(crate) fn backlog(&self, key: usize) -> usize {
        self.peers.get(key).map_or(0, |p| p.out.len())
    }

    /// Writes what `key` has queued, until the socket would block.
    pub(crate) fn flush(&mut self, key: usize) {
        #[cfg(feature = "tls")]
        if self.peers.get(key).is_some_and(|p| p.tls.is_some()) {
            return self.flush_tls(key);
        }
        let Some(p) = self.peers.get_mut(key) else { return };
        if p.stage == Stage::Connecting {
            return;
        }
        while !p.out.is_empty() && !p.write_dead {
            match p.socket.write(&p.out) {
                Ok(n) => {
                    p.out.drain(..n);
                    p.sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => p.write_failed(),
            }
        }
    }

    /// Turns reading of `key` on or off; on, what is waiting is read at once.
    pub(crate) fn set_reading(&mut self, key: usize, on: bool) {
        let Some(p) = self.peers.get_mut(key) else { return };
        p.reading = on;
        if on {
            self.read(key);
        }
    }

    /// Shuts the write side of `key` (a FIN): the server reads the end of the stream.
    pub(crate) fn shutdown_write(&mut self, key: usize) {
        if let Some(p) = self.peers.get_mut(key) {
            let _ = p.socket.shutdown(std::net::Shutdown::Write);
            p.write_dead = true;
        }
    }

    /// Reads `key` until the socket would block, unless it is not being read.
    pub(crate) fn read(&mut self, key: usize) {
        #[cfg(feature = "tls")]
        if self.peers.get(key).is_some_and(|p| p.tls.is_some()) {
            return self.read_tls(key);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(p) = self.peers.get_mut(key) {
            if !p.reading || p.stage == Stage::Connecting {
                break;
            }
            match p.socket.read(&mut scratch) {
                Ok(0) => {
                    self.finish(key, Answer::Eof);
                    break;
                }
                Ok(n) => {
                    p.received += n as u64;
                    self.input(key, &scratch[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.finish(key, read_error(&e));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Plaintext from the server on `key`.
    pub(super) fn input(&mut self, key: usize, data: &[u8]) {
        self.last_input = Instant::now();
        let Some(p) = self.peers.get_mut(key) else { return };
        match p.stage {
            Stage::Connecting | Stage::Raw => {}
            Stage::Http => {
                let room = MAX_HEAD.saturating_sub(p.head.len());
                p.head.extend_from_slice(&data[..data.len().min(room)]);
                self.http_answer(key);
            }
            Stage::Open | Stage::Closing => self.frames(key, data),
        }
    }

    /// Looks for the end of the HTTP answer of `key`.
    fn http_answer(&mut self, key: usize) {
        let Some(p) = self.peers.get_mut(key) else { return };
        let limits = HeadLimits {
            max_bytes: MAX_HEAD,
            max_headers: handshake::MAX_HEADERS_CAP,
        };
        if let Some(expected) = p.expected {
            match handshake::parse_response(&p.head, &expected, &[], &limits) {
                Ok(None) => {}
                Ok(Some(resp)) => {
                    p.deflate = resp
                        .deflate()
                        .map(|d| d.negotiated(Role::Client, &DeflateConfig::default()));
                    let rest = p.head.split_off(resp.head_len());
                    p.head = Vec::new();
                    p.stage = Stage::Open;
                    self.news.push(News::Open(key));
                    if !rest.is_empty() {
                        self.frames(key, &rest);
                    }
                }
                Err(HandshakeError::UnexpectedStatus(code)) => {
                    p.answered(Answer::Status(code));
                    p.stage = Stage::Closing;
                }
                Err(e) => self.finish(key, Answer::Failed(format!("the answer to the upgrade: {e}"))),
            }
            return;
        }
        // A raw or silent connection: the status line is all that matters.
        let Some(eol) = p.head.windows(2).position(|w| w == b"\r\n") else {
            if p.head.len() >= MAX_HEAD {
                self.finish(key, Answer::Failed("an answer without a status line".to_owned()));
            }
            return;
        };
        let line = String::from_utf8_lossy(&p.head[..eol]).into_owned();
        match status_of(&line) {
            Some(code) => {
                p.answered(Answer::Status(code));
                p.stage = Stage::Closing;
            }
            None => self.finish(key, Answer::Failed(format!("not an HTTP answer: {line:?}"))),
        }
    }

    /// Frames from the server on `key`: pings answered, a Close frame answered and recorded.
    fn frames(&mut self, key: usize, data: &[u8]) {
        let Some(p) = self.peers.get_mut(key) else { return };
        let mut seen = std::mem::take(&mut self.seen);
        let fed = p.skim.feed(data, &mut seen);
        for s in seen.drain(..) {
            let Some(p) = self.peers.get_mut(key) else { break };
            match s {
                Seen::Ping(payload)
                    if p.answer_pings && !p.close_sent && !p.write_dead && p.out.len() < MAX_PONG_BACKLOG =>
                {
                    let mut out = Vec::new();
                    frames::push_frame(
                        &mut out,
                        &mut self.keys,
                        true,
                        0,
                        c10k::proto::OpCode::Pong,
                        &payload,
                    );
                    self.send(key, &out);
                }
                Seen::Ping(_) | Seen::Pong => {}
                Seen::Message { bytes, .. } => {
                    if p.keep_messages {
                        self.news.push(News::Message(key, bytes));
                    }
                }
                Seen::Close(code, reason) => {
                    p.answered(Answer::Close(code, reason));
                    p.stage = Stage::Closing;
                    if !p.close_sent && !p.write_dead {
                        p.close_sent = true;
                        let mut out = Vec::new();
                        frames::push_close(&mut out, &mut self.keys, 1000);
                        self.send(key, &out);
                    }
                }
            }
        }
        self.seen = seen;
        if let Err(e) = fed {
            self.finish(key, Answer::Failed(e));
        }
    }

    /// Sends a Close frame with `code` on `key` (once), and reads until the server closes.
    pub(crate) fn close(&mut self, key: usize, code: u16) {
        let Some(p) = self.peers.get_mut(key) else { return };
        if p.close_sent || p.write_dead {
            return;
        }
        p.close_sent = true;
        let mut out = Vec::new();
        frames::push_close(&mut out, &mut self.keys, code);
        self.send(key, &out);
        self.set_reading(key, true);
    }

    /// Ends connection `key`: counted under its answer, or `otherwise` when it had none.
    pub(crate) fn finish(&mut self, key: usize, otherwise: Answer) {
        if !self.peers.contains(key) {
            return;
        }
        let mut p = self.peers.remove(key);
        if p.stage == Stage::Connecting {
            self.connecting -= 1;
        }
        let _ = self.poll.registry().deregister(&mut p.socket);
        if otherwise.is_action() {
            p.noticed();
        }
        let answer = p.answer.take().unwrap_or(otherwise);
        self.tally.count(p.role, &answer, p.sent, p.started, p.sign);
        self.news.push(News::Gone(key, p.role, answer));
    }

    /// Ends every connection: each is read (pings no longer answered) until the server has said
    /// nothing for a second or `wait` has passed, and then counted with its answer, or as open
    /// or unanswered. Returns the tally of the attack.
    pub(crate) fn drain(mut self, wait: Duration) -> Tally {
        self.waiting.clear();
        let start = Instant::now();
        self.last_input = start;
        let keys: Vec<usize> = self.peers.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(p) = self.peers.get_mut(key) {
                p.answer_pings = false;
            }
            self.set_reading(key, true);
        }
        let end = start + wait;
        while !self.peers.is_empty() && Instant::now() < end && self.last_input.elapsed() < DRAIN_QUIET {
            self.turn(Duration::from_millis(50));
        }
        let left: Vec<(usize, Stage)> = self.peers.iter().map(|(k, p)| (k, p.stage)).collect();
        for (key, stage) in left {
            let otherwise = match stage {
                Stage::Open => Answer::Open,
                Stage::Connecting => Answer::ConnectFailed("not connected by the end".to_owned()),
                _ => Answer::NoAnswer,
            };
            self.finish(key, otherwise);
        }
        self.tally
    }
}

impl Peer {
    /// A write failed: the server closed or reset the connection. What it said is read later.
    pub(crate) fn write_failed(&mut self) {
        self.write_dead = true;
        self.out = Vec::new();
        self.noticed();
    }
}

/// The answer a read error means.
pub(super) fn read_error(e: &io::Error) -> Answer {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
            Answer::Reset
        }
        _ => Answer::Failed(format!("read: {e}")),
    }
}

/// The status code of an HTTP status line.
fn status_of(line: &str) -> Option<u16> {
    let mut words = line.split(' ');
    let version = words.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_their_code() {
        assert_eq!(status_of("HTTP/1.1 503 Service Unavailable"), Some(503));
        assert_eq!(status_of("HTTP/1.0 408 Request Timeout"), Some(408));
        assert_eq!(status_of("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of("HTTP/1.1 abc"), None);
    }
}
