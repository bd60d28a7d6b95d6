//! The client loop: each connection's lifecycle ([`Phase`]), the mio loop that drives them all
//! (readiness in, bytes out), the handshake, and the way a connection ends, well or not.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use c10k::proto::deflate::{DeflateConfig, DeflateParams};
use c10k::proto::handshake::{self, ClientRequest, Expected, HeadLimits};
use c10k::proto::{self, CloseCode, Connection, Event, MessageKind};
use mio::Events;
use mio::net::TcpStream;

use super::Driver;
use crate::loadgen::{FanoutProtocol, Scenario};

/// At the end of a run: a server that closes no connection for this long has stopped closing.
const CLOSE_STALL: Duration = Duration::from_secs(5);
/// At the end of a run: the longest wait for the server to close every connection.
const CLOSE_WAIT_MAX: Duration = Duration::from_secs(60);
/// Where a connection is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Connecting,
    Handshaking,
    Open,
    /// Close frame sent, waiting for the server to answer and close.
    Closing,
    /// slowloris: connected, sending the request one byte at a time.
    Trickling,
    /// slowloris: answered 408, waiting for the server to close.
    Answered,
}

/// One simulated client: its socket, where it is in its lifecycle, its protocol state, and the
/// messages it has in flight.
#[derive(Debug)]
pub(super) struct LoadClient {
    pub(super) socket: TcpStream,
    pub(super) phase: Phase,
    pub(super) index: usize,
    pub(super) expected: Option<Expected>,
    pub(super) proto: Option<Connection>,
    pub(super) leftover: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) started: Instant,
    /// Send times (or intended send times) of the messages awaiting their echo.
    pub(super) inflight: VecDeque<Instant>,
    pub(super) next_seq: u64,
    pub(super) recv_seq: u64,
    pub(super) rounds_left: u32,
    /// fanout: the subscription is in place (the server answered its sync).
    pub(super) subscribed: bool,
    /// slowloris: the request bytes not sent yet, and when the next one goes.
    pub(super) trickle: Vec<u8>,
    pub(super) next_byte: Option<Instant>,
    /// wss: the connection's TLS (None for `ws://`).
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Box<rustls::ClientConnection>>,
}

impl Driver {
    /// One poll and the handling of its events.
    pub(super) fn turn(&mut self, timeout: Option<Duration>) {
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        if let Err(e) = self.poll.poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            self.events = events;
            self.error(format!("poll: {e}"));
            std::thread::sleep(Duration::from_millis(10));
            return;
        }
        for ev in events.iter() {
            let key = ev.token().0;
            if ev.is_writable() {
                self.on_writable(key);
            }
            let closed = ev.is_read_closed() || ev.is_error();
            if ev.is_readable() || closed {
                self.on_readable(key, closed);
            }
        }
        self.events = events;
    }

    fn on_writable(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        if c.phase == Phase::Connecting {
            match c.socket.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.fail(key, format!("connect: {e}")),
            }
            // Writable without an error: connected. (Were it a spurious wake-up, the write of
            // the request would find the socket not connected yet and wait for the next one.)
            #[cfg(feature = "tls")]
            if !self.start_tls(key) {
                return;
            }
            if self.shared.opts.scenario == Scenario::Slowloris {
                return self.start_trickle(key);
            }
            let Some(c) = self.conns.get_mut(key) else { return };
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&self.rng.next().to_le_bytes());
            k[8..].copy_from_slice(&self.rng.next().to_le_bytes());
            let req = ClientRequest {
                host: &self.shared.host,
                target: &self.shared.target,
                deflate: self.shared.opts.deflate.then(DeflateConfig::default),
                ..ClientRequest::default()
            };
            match handshake::write_request(&req, k, &mut c.out) {
                Ok(expected) => c.expected = Some(expected),
                Err(e) => return self.fail(key, format!("request: {e}")),
            }
            c.phase = Phase::Handshaking;
        }
        self.flush(key);
    }

    pub(super) fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        #[cfg(feature = "tls")]
        if c.tls.is_some() {
            return self.flush_tls(key);
        }
        while !c.out.is_empty() {
            match c.socket.write(&c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(key, format!("write: {e}")),
            }
        }
    }

    /// Reads what `key` has; `closed`: the peer closed its side (or the socket has an error),
    /// so read until the end rather than stop at a short read.
    fn on_readable(&mut self, key: usize, closed: bool) {
        // The read buffer is lent out while its messages are checked against `self`.
        let mut scratch = std::mem::take(&mut self.scratch);
        self.read_from(key, &mut scratch, closed);
        self.scratch = scratch;
    }

    fn read_from(&mut self, key: usize, scratch: &mut [u8], closed: bool) {
        #[cfg(feature = "tls")]
        if self.conns.get(key).is_some_and(|c| c.tls.is_some()) {
            return self.read_tls(key, scratch);
        }
        if self.shared.opts.scenario == Scenario::Slowloris {
            return self.read_slowloris(key, scratch);
        }
        loop {
            let Some(c) = self.conns.get_mut(key) else { return };
            if c.phase == Phase::Connecting {
                return;
            }
            let kept = c.leftover.len();
            if kept >= scratch.len() {
                return self.fail(key, "leftover larger than the read buffer".to_owned());
            }
            scratch[..kept].copy_from_slice(&c.leftover);
            match c.socket.read(&mut scratch[kept..]) {
                Ok(0) => return self.on_eof(key),
                Ok(n) => {
                    c.leftover.clear();
                    let now = Instant::now();
                    let drained = n < scratch.len() - kept && !closed;
                    self.process(key, scratch, kept + n, now);
                    self.flush(key);
                    if drained {
                        // A short read emptied the socket: the next bytes bring a new edge.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(key, format!("read: {e}")),
            }
        }
    }

    pub(super) fn on_eof(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        if c.phase == Phase::Closing || c.proto.as_ref().is_some_and(|p| p.close_received()) {
            self.finish(key);
        } else {
            self.fail(key, "server closed the connection".to_owned());
        }
    }

    pub(super) fn process(&mut self, key: usize, scratch: &mut [u8], filled: usize, now: Instant) {
        let mut pos = 0;
        while pos < filled {
            let Some(c) = self.conns.get_mut(key) else { return };
            if c.phase == Phase::Handshaking {
                let Some(expected) = c.expected else { return };
                match handshake::parse_response(&scratch[pos..filled], &expected, &[], &HeadLimits::default())
                {
                    Ok(None) => break,
                    Ok(Some(resp)) => {
                        pos += resp.head_len();
                        let agreed = resp.deflate();
                        self.opened(key, now, agreed);
                        continue;
                    }
                    Err(e) => return self.fail(key, format!("handshake: {e}")),
                }
            }
            let Some(proto) = c.proto.as_mut() else { return };
            let read = match proto.read_with(&mut scratch[pos..filled], &mut c.out, &mut self.pool) {
                Ok(r) => r,
                Err(e) => return self.fail(key, format!("protocol error from the server: {e}")),
            };
            pos += read.consumed;
            match read.event {
                None if read.consumed == 0 => break,
                None => {}
                Some(Event::Message(m)) if self.shared.opts.scenario == Scenario::Fanout => {
                    self.on_fanout(key, &m, now);
                }
                Some(Event::Message(m)) => {
                    let len = m.as_bytes().len();
                    let ok = self.check_echo(key, &m);
                    if !ok {
                        return;
                    }
                    self.on_echo(key, len, now);
                }
                Some(Event::Ping(_)) => {
                    // The core queued the pong; counted by second, to show how pings spread.
                    let second = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    *self.result.pings.entry(second).or_insert(0) += 1;
                }
                Some(Event::Pong(_)) => {}
                Some(Event::Close(frame)) => {
                    let phase = self.conns.get(key).map(|c| c.phase);
                    if self.draining && phase == Some(Phase::Open) && frame.code == CloseCode::GoingAway {
                        // The core queued the answer; the server closes the socket after it.
                        self.result.going_away += 1;
                        if let Some(c) = self.conns.get_mut(key) {
                            c.phase = Phase::Closing;
                        }
                        self.shared.open_now.fetch_sub(1, Ordering::Relaxed);
                    } else if phase != Some(Phase::Closing) {
                        return self.fail(
                            key,
                            format!("server closed with {} {:?}", frame.code, frame.reason),
                        );
                    }
                }
            }
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.leftover.extend_from_slice(&scratch[pos..filled]);
            if c.leftover.is_empty() && c.leftover.capacity() > 0 {
                c.leftover = Vec::new();
            }
        }
    }

    fn opened(&mut self, key: usize, now: Instant, agreed: Option<DeflateParams>) {
        let mut rng = self.rng.clone();
        self.rng.next();
        let Some(c) = self.conns.get_mut(key) else { return };
        c.phase = Phase::Open;
        self.pending -= 1;
        let conn = Connection::client(
            proto::Config {
                max_frame_size: usize::MAX >> 1,
                max_message_size: usize::MAX >> 1,
                ..proto::Config::default()
            },
            Box::new(move || (rng.next() as u32).to_ne_bytes()),
        );
        c.proto = Some(match agreed {
            #[cfg(feature = "deflate")]
            Some(params) => {
                conn.with_deflate(params.negotiated(proto::Role::Client, &DeflateConfig::default()))
            }
            _ => conn,
        });
        let declined = self.shared.opts.deflate && agreed.is_none();
        let elapsed = now.duration_since(c.started).as_nanos() as u64;
        let _ = self.result.handshake_latency.record(elapsed.max(1));
        self.result.connected += 1;
        #[cfg(feature = "tls")]
        {
            if c.tls_resumed() {
                self.result.tls_resumed += 1;
            }
            if self.result.tls_params.is_empty() {
                self.result.tls_params = c.tls_params().unwrap_or_default();
            }
        }
        let open = self.shared.open_now.fetch_add(1, Ordering::Relaxed) + 1;
        let before = self.shared.peak.fetch_max(open, Ordering::Relaxed);
        self.shared.settled.fetch_add(1, Ordering::Release);
        let opts = &self.shared.opts;
        if opts.scenario == Scenario::TestEcho {
            if !self.shared.coordinated && before < opts.connections && open == opts.connections {
                println!("{} clients are connected!", opts.connections);
            }
            self.wakeups.push(Reverse((now + opts.delay, key)));
        }
        let fanout_subscriber = opts.scenario == Scenario::Fanout && c.index != 0;
        let first_echo = opts.scenario == Scenario::Hold && opts.first_echo;
        if fanout_subscriber && opts.fanout_protocol != FanoutProtocol::Prefix {
            if let Some(proto) = c.proto.as_mut() {
                let topic = &opts.fanout_topic;
                let sub = match opts.fanout_protocol {
                    FanoutProtocol::Offsets => format!("sub {topic} @"),
                    _ => format!("sub {topic}"),
                };
                let _ = proto.send(MessageKind::Text, sub.as_bytes(), &mut c.out);
                let _ = proto.send(MessageKind::Text, b"sync ready", &mut c.out);
            }
            self.flush(key);
        } else if first_echo {
            // Counted as set up (`subscribed`) when its echo is back.
            self.send_next(key, now);
        } else {
            c.subscribed = true;
        }
        if declined {
            let why = if proto::deflate::AVAILABLE {
                "the server declined permessage-deflate"
            } else {
                "--deflate needs the deflate feature, which this build lacks"
            };
            self.fail(key, why.to_owned());
        }
    }

    pub(super) fn close(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        if c.phase != Phase::Open {
            return;
        }
        if let Some(proto) = c.proto.as_mut() {
            let _ = proto.close(CloseCode::Normal, "", &mut c.out);
        }
        c.phase = Phase::Closing;
        self.shared.open_now.fetch_sub(1, Ordering::Relaxed);
        self.flush(key);
    }

    pub(super) fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if self.conns.get(key).is_some_and(|c| c.phase == Phase::Open) {
                self.close(key);
            } else {
                self.finish(key);
            }
        }
        // The server closes each connection after its Close reply; many thousands take it a
        // while on a busy machine. Wait as long as closes keep coming (5 s without one is a
        // server that stopped), up to a minute in all.
        self.await_closes(CLOSE_STALL, CLOSE_WAIT_MAX);
        let left: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in left {
            self.fail(key, "server did not close after the close handshake".to_owned());
        }
    }

    /// Runs the loop while the server closes connections: until none is left, or none closed
    /// for `stall`, or `max` has passed. Returns the time from the start to the last close.
    pub(super) fn await_closes(&mut self, stall: Duration, max: Duration) -> Duration {
        let start = Instant::now();
        let (mut left, mut progress) = (self.conns.len(), start);
        while !self.conns.is_empty() && progress.elapsed() < stall && start.elapsed() < max {
            self.turn(Some(Duration::from_millis(50)));
            if self.conns.len() < left {
                (left, progress) = (self.conns.len(), Instant::now());
            }
        }
        progress.duration_since(start)
    }

    /// Removes a connection that ended well.
    pub(super) fn finish(&mut self, key: usize) {
        if let Some(mut c) = self.conns.try_remove(key) {
            if matches!(c.phase, Phase::Connecting | Phase::Handshaking) {
                self.pending -= 1;
            }
            self.unanswered -= c.inflight.len();
            #[cfg(feature = "tls")]
            c.close_notify();
            let _ = self.poll.registry().deregister(&mut c.socket);
            if matches!(c.phase, Phase::Open | Phase::Trickling | Phase::Answered) {
                self.shared.open_now.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Removes a connection that failed, and counts the error.
    pub(super) fn fail(&mut self, key: usize, what: String) {
        if let Some(c) = self.conns.get(key) {
            if matches!(c.phase, Phase::Connecting | Phase::Handshaking) {
                self.shared.settled.fetch_add(1, Ordering::Release);
            }
            let label = format!("client {} (thread {}): {what}", c.index, self.thread);
            self.error(label);
        }
        self.finish(key);
    }
}
