//! One load-generating thread: its own mio event loop over its share of the client connections.
//!
//! Every connection runs the client role of the sans-I/O core: a handshake with a fresh key, masked
//! frames (keys from a fast non-cryptographic generator, see the module docs), replies validated
//! byte for byte. What each connection does once open depends on the scenario.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::sys;
use slab::Slab;

use super::{FanoutProtocol, Options, PayloadKind, Scenario};
use c10k::proto::deflate::{DeflateConfig, DeflateParams, DeflatePool};
use c10k::proto::handshake::{self, ClientRequest, Expected, HeadLimits};
use c10k::proto::{self, CloseCode, Connection, Event, Message, MessageKind};

mod slowloris;

/// What a thread shares with the others and with the coordinator.
#[derive(Debug)]
pub(super) struct Shared {
    pub opts: Options,
    pub addr: SocketAddr,
    /// fanout: where the publisher (client 0) connects, if not to `addr`.
    pub publish_addr: Option<SocketAddr>,
    pub host: String,
    pub target: String,
    /// Met by every thread and the coordinator once all connections are open.
    pub connected: Barrier,
    /// Met by every thread and the coordinator when the load may start (after the gate of a
    /// coordinated run).
    pub go: Barrier,
    /// A coordinated run: nothing closes on purpose before `released` (testecho holds finished
    /// clients), and the "clients are connected!" line is the coordinator's.
    pub coordinated: bool,
    /// Set once the coordinator's gate has returned (testecho).
    pub released: AtomicBool,
    /// The coordinator is gone: close everything and stop.
    pub abort: AtomicBool,
    /// Clients that are open or failed before opening (testecho waits for all of them).
    pub settled: AtomicUsize,
    /// Connections open right now, over all threads (testecho).
    pub open_now: AtomicUsize,
    /// The most connections open at once.
    pub peak: AtomicUsize,
    /// The clock of fan-out timestamps (publish times travel inside the messages).
    pub epoch: Instant,
    /// fanout: messages published, once the publisher has stopped (u64::MAX before).
    pub published: std::sync::atomic::AtomicU64,
}

/// What a thread measured.
#[derive(Debug)]
pub(super) struct ThreadResult {
    pub latency: Histogram<u64>,
    pub handshake_latency: Histogram<u64>,
    pub messages: u64,
    pub bytes: u64,
    pub sent: u64,
    pub connected: u64,
    pub survivors: u64,
    pub errors: u64,
    pub wrong_echoes: u64,
    /// Open loop: sends made more than 1 ms after their intended time (the generator fell
    /// behind its schedule), and the largest lag.
    pub late_sends: u64,
    pub max_lag_ns: u64,
    pub error_samples: Vec<String>,
    pub completed_clients: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
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

#[derive(Debug)]
struct Client {
    socket: TcpStream,
    phase: Phase,
    index: usize,
    expected: Option<Expected>,
    proto: Option<Connection>,
    leftover: Vec<u8>,
    out: Vec<u8>,
    started: Instant,
    /// Send times (or intended send times) of the messages awaiting their echo.
    inflight: VecDeque<Instant>,
    next_seq: u64,
    recv_seq: u64,
    rounds_left: u32,
    /// fanout: the subscription is in place (the server answered its sync).
    subscribed: bool,
    /// slowloris: the request bytes not sent yet, and when the next one goes.
    trickle: Vec<u8>,
    next_byte: Option<Instant>,
}

/// A fast generator for masking keys and handshake keys: xorshift64*. Not cryptographic; a load
/// generator needs keys that vary, not keys that an attacker cannot predict.
#[derive(Debug, Clone)]
struct FastRng(u64);

impl FastRng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A fan-out payload of `len` bytes (at least 34): `SEQ TIME ` in hex, then padding.
pub(super) fn fanout_body(len: usize, seq: u64, since_epoch: Duration) -> Vec<u8> {
    let mut b = format!("{seq:016x} {:016x} ", since_epoch.as_nanos() as u64).into_bytes();
    b.resize(len.max(b.len()), b'.');
    b
}

/// The sequence number and publish time (ns since the epoch) of a fan-out payload.
fn parse_fanout_body(b: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(b.get(..33)?).ok()?;
    let seq = u64::from_str_radix(&s[..16], 16).ok()?;
    let t = u64::from_str_radix(&s[17..33], 16).ok()?;
    Some((seq, t))
}

/// The payload of message `seq` as the options ask for it.
fn body(buf: &mut Vec<u8>, opts: &Options, seq: u64) {
    match opts.payload_kind {
        PayloadKind::Pattern => payload(buf, opts.payload, opts.binary, seq),
        PayloadKind::Json => json_payload(buf, opts.payload, seq),
    }
}

/// `len` bytes of JSON-like text for message `seq`: records whose ids, names and numbers vary
/// (xorshift of the sequence number and the record), cut at `len`.
fn json_payload(buf: &mut Vec<u8>, len: usize, seq: u64) {
    use std::fmt::Write as _;
    const NAMES: [&str; 8] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    buf.clear();
    let mut s = format!("{{\"seq\":{seq},\"items\":[");
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut i = 0u64;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = write!(
            s,
            "{{\"id\":{},\"user\":\"{}-{}\",\"score\":{}.{:02},\"active\":{},\"tags\":[\"{}\"]}},",
            seq * 64 + i,
            NAMES[(x % 8) as usize],
            x % 1000,
            (x >> 10) % 10_000,
            (x >> 30) % 100,
            x & 1 == 0,
            NAMES[((x >> 3) % 8) as usize]
        );
        i += 1;
    }
    buf.extend_from_slice(&s.as_bytes()[..len]);
}

/// Expected payload of message `seq`: a pattern with the sequence number stamped at the start.
pub(super) fn payload(buf: &mut Vec<u8>, len: usize, binary: bool, seq: u64) {
    // A buffer of the right length holds the pattern from the last call (a run uses one payload
    // kind and size): only the stamp changes.
    if buf.len() != len {
        buf.clear();
        buf.extend((0..len).map(|i| b'a' + (i % 26) as u8));
    }
    if binary {
        let s = seq.to_le_bytes();
        let n = len.min(8);
        buf[..n].copy_from_slice(&s[..n]);
    } else {
        // 16 hex digits, without formatting machinery: this runs for every message sent and
        // every echo checked.
        let n = len.min(16);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let nibble = (seq >> (60 - 4 * i)) & 0xf;
            *b = b"0123456789abcdef"[nibble as usize];
        }
    }
}

pub(super) struct Driver {
    shared: Arc<Shared>,
    thread: usize,
    poll: Poll,
    conns: Slab<Client>,
    scratch: Vec<u8>,
    msg: Vec<u8>,
    rng: FastRng,
    result: ThreadResult,
    /// Global indices of the clients this thread still has to open, in order.
    to_open: VecDeque<usize>,
    /// testecho: (when, key) of the next send of each waiting client.
    wakeups: BinaryHeap<Reverse<(Instant, usize)>>,
    window: Option<(Instant, Instant)>,
    sending: bool,
    /// rate: the next intended send time and the interval between sends of this thread.
    next_send: Option<Instant>,
    interval: Duration,
    rr: usize,
    /// rate: the open connections to send from, in turn.
    rate_keys: Vec<usize>,
    /// The poll's event buffer, reused.
    events: Events,
    /// testecho, coordinated: clients done with their rounds, held open until the release, as
    /// (key, client index) so that a slot reused meanwhile is not closed by mistake.
    parked: Vec<(usize, usize)>,
    /// permessage-deflate state lent to this thread's connections while they compress or inflate.
    pool: DeflatePool,
}

const MAX_PENDING_CONNECTS: usize = 512;
const MAX_RATE_INFLIGHT: usize = 100_000;

impl Driver {
    pub(super) fn new(shared: Arc<Shared>, thread: usize, clients: Vec<usize>) -> io::Result<Self> {
        let seed = 0x9e37_79b9_7f4a_7c15u64 ^ ((thread as u64 + 1) << 32) ^ u64::from(std::process::id());
        let result = ThreadResult {
            latency: Histogram::new_with_bounds(1, 100_000_000_000, 3).map_err(io::Error::other)?,
            handshake_latency: Histogram::new_with_bounds(1, 100_000_000_000, 3).map_err(io::Error::other)?,
            messages: 0,
            bytes: 0,
            sent: 0,
            connected: 0,
            survivors: 0,
            errors: 0,
            wrong_echoes: 0,
            late_sends: 0,
            max_lag_ns: 0,
            error_samples: Vec::new(),
            completed_clients: 0,
        };
        Ok(Self {
            shared,
            thread,
            poll: Poll::new()?,
            conns: Slab::new(),
            scratch: vec![0u8; 256 << 10],
            msg: Vec::new(),
            rng: FastRng(seed | 1),
            result,
            to_open: clients.into(),
            wakeups: BinaryHeap::new(),
            window: None,
            sending: false,
            next_send: None,
            interval: Duration::ZERO,
            rr: 0,
            rate_keys: Vec::new(),
            events: Events::with_capacity(1024),
            parked: Vec::new(),
            pool: DeflatePool::new(),
        })
    }

    fn error(&mut self, what: String) {
        self.result.errors += 1;
        if self.result.error_samples.len() < 5 {
            self.result.error_samples.push(what);
        }
    }

    pub(super) fn run(mut self) -> ThreadResult {
        let opts = self.shared.opts.clone();
        let start = Instant::now();
        match opts.scenario {
            Scenario::TestEcho => self.run_testecho(start),
            Scenario::Slowloris => self.run_slowloris(start),
            _ => self.run_measured(start),
        }
        self.result
    }

    fn run_measured(&mut self, start: Instant) {
        let opts = self.shared.opts.clone();
        // 1. Open every connection, as fast as allowed.
        let deadline = start + opts.connect_timeout;
        while (!self.to_open.is_empty()
            || self.any_phase(|p| matches!(p, Phase::Connecting | Phase::Handshaking))
            || self
                .conns
                .iter()
                .any(|(_, c)| c.phase == Phase::Open && !c.subscribed))
            && Instant::now() < deadline
        {
            self.open_more(MAX_PENDING_CONNECTS);
            self.turn(Some(Duration::from_millis(50)));
        }
        let stuck: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase != Phase::Open)
            .map(|(k, _)| k)
            .collect();
        for key in stuck {
            self.fail(key, "no handshake before the connect timeout".to_owned());
        }
        for _ in self.to_open.drain(..) {
            self.result.errors += 1;
        }
        self.shared.connected.wait();
        self.shared.go.wait();
        let t0 = Instant::now();
        if opts.scenario == Scenario::Connect || self.shared.abort.load(Ordering::Acquire) {
            self.close_all();
            return;
        }
        let warm_end = t0 + opts.warmup;
        let end = warm_end + opts.duration;
        self.window = Some((warm_end, end));
        // 2. Load.
        match opts.scenario {
            Scenario::Echo => {
                self.sending = true;
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    for _ in 0..opts.in_flight.max(1) {
                        self.send_next(key, Instant::now());
                    }
                }
            }
            Scenario::Fanout => {
                // One publisher (client 0, always on thread 0) at --rate messages per second.
                self.sending = true;
                if opts.rate > 0.0 && self.publisher().is_some() {
                    self.interval = Duration::from_secs_f64(1.0 / opts.rate);
                    self.next_send = Some(t0);
                }
            }
            Scenario::Rate => {
                self.sending = true;
                let per_thread = opts.rate / opts.threads.max(1) as f64;
                if per_thread > 0.0 && !self.conns.is_empty() {
                    self.interval = Duration::from_secs_f64(1.0 / per_thread);
                    self.next_send = Some(t0);
                }
            }
            _ => {}
        }
        while Instant::now() < end {
            let timeout = match self.next_send {
                // epoll sleeps in whole milliseconds (rounded up): sleep until a millisecond
                // before the next send, then poll without sleeping, so that sends leave on time
                // (a late send would count as latency of the server).
                Some(t) => match t.saturating_duration_since(Instant::now()) {
                    d if d > Duration::from_millis(2) => {
                        (d - Duration::from_millis(1)).min(Duration::from_millis(100))
                    }
                    _ => Duration::ZERO,
                },
                None => end
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            };
            self.turn(Some(timeout));
            self.rate_sends(end);
        }
        // 3. Let the last echoes (fan-out: the last deliveries) arrive, then close.
        self.sending = false;
        self.next_send = None;
        if opts.scenario == Scenario::Fanout {
            self.drain_fanout();
        }
        let mut drain = Duration::from_secs(5);
        if opts.scenario == Scenario::Hold && opts.final_echo && !self.shared.abort.load(Ordering::Acquire) {
            // Every connection still open answers one echo, counted in the report.
            let now = Instant::now();
            self.window = Some((now, now + Duration::from_secs(3600)));
            let keys: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| c.phase == Phase::Open)
                .map(|(k, _)| k)
                .collect();
            for key in keys {
                self.send_next(key, Instant::now());
            }
            drain = Duration::from_secs(30);
        }
        let drain_end = Instant::now() + drain;
        while self.conns.iter().any(|(_, c)| !c.inflight.is_empty()) && Instant::now() < drain_end {
            self.turn(Some(Duration::from_millis(50)));
        }
        let missing: Vec<(usize, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.inflight.is_empty())
            .map(|(k, c)| (k, c.inflight.len()))
            .collect();
        for (key, n) in missing {
            self.fail(key, format!("{n} messages never echoed"));
        }
        self.result.survivors = self.conns.iter().filter(|(_, c)| c.phase == Phase::Open).count() as u64;
        self.close_all();
    }

    fn run_testecho(&mut self, start: Instant) {
        let opts = self.shared.opts.clone();
        let n = opts.connections.max(1);
        let hard_end = start
            + opts.ramp
            + opts.delay * (opts.rounds + 1)
            + opts.connect_timeout
            + Duration::from_secs(30);
        self.sending = true;
        self.window = Some((start, hard_end));
        loop {
            if self.shared.abort.load(Ordering::Acquire) {
                self.to_open.clear();
                self.close_all();
                break;
            }
            if !self.parked.is_empty() && self.shared.released.load(Ordering::Acquire) {
                for (key, index) in std::mem::take(&mut self.parked) {
                    if self.conns.get(key).is_some_and(|c| c.index == index) {
                        self.close(key);
                    }
                }
            }
            let now = Instant::now();
            // Open the clients whose time on the ramp has come.
            while let Some(&i) = self.to_open.front() {
                let at = start + opts.ramp.mul_f64(i as f64 / n as f64);
                if at > now {
                    break;
                }
                self.to_open.pop_front();
                self.open(i);
            }
            // Send for the clients whose delay is over.
            while let Some(Reverse((at, key))) = self.wakeups.peek().copied() {
                if at > now {
                    break;
                }
                self.wakeups.pop();
                if self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.phase == Phase::Open && c.inflight.is_empty())
                {
                    self.send_next(key, now);
                }
            }
            if self.to_open.is_empty() && self.conns.is_empty() {
                break;
            }
            if now >= hard_end {
                let left: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in left {
                    self.fail(key, "client did not finish in time".to_owned());
                }
                break;
            }
            let mut next = hard_end;
            if let Some(&i) = self.to_open.front() {
                next = next.min(start + opts.ramp.mul_f64(i as f64 / n as f64));
            }
            if let Some(Reverse((at, _))) = self.wakeups.peek() {
                next = next.min(*at);
            }
            self.turn(Some(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200)),
            ));
        }
    }

    fn any_phase(&self, f: impl Fn(Phase) -> bool) -> bool {
        self.conns.iter().any(|(_, c)| f(c.phase))
    }

    fn open_more(&mut self, max_pending: usize) {
        let mut pending = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Connecting | Phase::Handshaking))
            .count();
        while pending < max_pending {
            let Some(i) = self.to_open.pop_front() else { break };
            if self.open(i) {
                pending += 1;
            }
        }
    }

    /// Starts connecting client `index`.
    fn open(&mut self, index: usize) -> bool {
        let sources = &self.shared.opts.sources;
        let source = (!sources.is_empty()).then(|| SocketAddr::new(sources[index % sources.len()], 0));
        let addr = match self.shared.publish_addr {
            Some(p) if index == 0 && self.shared.opts.scenario == Scenario::Fanout => p,
            _ => self.shared.addr,
        };
        let mut socket = match sys::connect(addr, source) {
            Ok(s) => s,
            Err(e) => {
                let hint = if e.raw_os_error() == Some(libc::EMFILE) {
                    " (out of file descriptors: spread the run with --processes)"
                } else if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                    " (out of ephemeral ports: add --source addresses)"
                } else {
                    ""
                };
                self.error(format!("connect: {e}{hint}"));
                self.shared.settled.fetch_add(1, Ordering::Release);
                return false;
            }
        };
        let entry = self.conns.vacant_entry();
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.error(format!("register: {e}"));
            self.shared.settled.fetch_add(1, Ordering::Release);
            return false;
        }
        entry.insert(Client {
            socket,
            phase: Phase::Connecting,
            index,
            expected: None,
            proto: None,
            leftover: Vec::new(),
            out: Vec::new(),
            started: Instant::now(),
            inflight: VecDeque::new(),
            next_seq: 0,
            recv_seq: 0,
            rounds_left: self.shared.opts.rounds,
            subscribed: false,
            trickle: Vec::new(),
            next_byte: None,
        });
        true
    }

    /// One poll and the handling of its events.
    fn turn(&mut self, timeout: Option<Duration>) {
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
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.on_readable(key);
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
            if let Err(e) = c.socket.peer_addr() {
                if e.kind() == io::ErrorKind::NotConnected {
                    return; // Still in progress.
                }
                return self.fail(key, format!("connect: {e}"));
            }
            if self.shared.opts.scenario == Scenario::Slowloris {
                return self.start_trickle(key);
            }
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

    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
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

    fn on_readable(&mut self, key: usize) {
        // The read buffer is lent out while its messages are checked against `self`.
        let mut scratch = std::mem::take(&mut self.scratch);
        self.read_from(key, &mut scratch);
        self.scratch = scratch;
    }

    fn read_from(&mut self, key: usize, scratch: &mut [u8]) {
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
                    self.process(key, scratch, kept + n, now);
                    self.flush(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(key, format!("read: {e}")),
            }
        }
    }

    fn on_eof(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        if c.phase == Phase::Closing || c.proto.as_ref().is_some_and(|p| p.close_received()) {
            self.finish(key);
        } else {
            self.fail(key, "server closed the connection".to_owned());
        }
    }

    fn process(&mut self, key: usize, scratch: &mut [u8], filled: usize, now: Instant) {
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
                Some(Event::Ping(_) | Event::Pong(_)) => {}
                Some(Event::Close(frame)) => {
                    let phase = self.conns.get(key).map(|c| c.phase);
                    if phase != Some(Phase::Closing) {
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
        if fanout_subscriber && opts.fanout_protocol == FanoutProtocol::Topics {
            if let Some(proto) = c.proto.as_mut() {
                let _ = proto.send(MessageKind::Text, b"sub fanout", &mut c.out);
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

    /// After the window: waits until every subscriber of this thread got every published message
    /// (the server may have queued a backlog), for at most 30 s.
    fn drain_fanout(&mut self) {
        if self.publisher().is_some() {
            self.shared.published.store(self.result.sent, Ordering::Release);
        }
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            let published = self.shared.published.load(Ordering::Acquire);
            let behind = published == u64::MAX
                || self
                    .conns
                    .iter()
                    .any(|(_, c)| c.index != 0 && c.phase == Phase::Open && c.recv_seq < published);
            if !behind {
                return;
            }
            self.turn(Some(Duration::from_millis(50)));
        }
        let published = self.shared.published.load(Ordering::Acquire);
        let late: Vec<(usize, u64)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.index != 0 && c.phase == Phase::Open && c.recv_seq < published)
            .map(|(k, c)| (k, c.recv_seq))
            .collect();
        for (key, got) in late {
            self.fail(
                key,
                format!("got {got} of {published} published messages within 30 s of the end"),
            );
        }
    }

    /// The key of the fan-out publisher, if this thread has it.
    fn publisher(&self) -> Option<usize> {
        self.conns
            .iter()
            .find(|(_, c)| c.index == 0 && c.phase == Phase::Open)
            .map(|(k, _)| k)
    }

    /// Publishes the next fan-out message: sequence number and publish time inside the payload.
    fn publish_next(&mut self, key: usize, at: Instant) {
        let opts = &self.shared.opts;
        let body = fanout_body(
            opts.payload,
            self.result.sent,
            at.duration_since(self.shared.epoch),
        );
        let prefix: &[u8] = match opts.fanout_protocol {
            FanoutProtocol::Topics => b"pub fanout ",
            FanoutProtocol::Prefix => b"pub:",
        };
        self.msg.clear();
        self.msg.extend_from_slice(prefix);
        self.msg.extend_from_slice(&body);
        let Some(c) = self.conns.get_mut(key) else { return };
        let Some(proto) = c.proto.as_mut() else { return };
        if let Err(e) = proto.send(MessageKind::Text, &self.msg, &mut c.out) {
            return self.fail(key, format!("publish: {e}"));
        }
        self.result.sent += 1;
        self.flush(key);
    }

    /// A message received by a fan-out subscriber.
    fn on_fanout(&mut self, key: usize, m: &Message<'_>, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else { return };
        let text = m.as_bytes();
        if !c.subscribed {
            if text == b"sync ready" {
                c.subscribed = true;
            }
            return;
        }
        if c.index == 0 {
            return; // The publisher's own copy (where the server sends it back).
        }
        let body = text
            .strip_prefix(b"fanout ".as_slice())
            .or_else(|| text.strip_prefix(b"pub:".as_slice()));
        let Some((seq, sent_ns)) = body.and_then(parse_fanout_body) else {
            let what = format!(
                "unexpected fan-out message {:?}",
                String::from_utf8_lossy(&text[..text.len().min(40)])
            );
            return self.fail(key, what);
        };
        if seq < c.recv_seq {
            let what = format!(
                "fan-out message {seq} after {}: out of order or twice",
                c.recv_seq
            );
            self.result.wrong_echoes += 1;
            return self.fail(key, what);
        }
        c.recv_seq = seq + 1;
        if let Some((from, to)) = self.window
            && now >= from
            && now < to
        {
            self.result.messages += 1;
            self.result.bytes += text.len() as u64;
            let sent = self.shared.epoch + Duration::from_nanos(sent_ns);
            let _ = self
                .result
                .latency
                .record((now.saturating_duration_since(sent).as_nanos() as u64).max(1));
        }
    }

    fn check_echo(&mut self, key: usize, m: &Message<'_>) -> bool {
        let opts = &self.shared.opts;
        let binary = opts.binary;
        let len = opts.payload;
        let Some(c) = self.conns.get(key) else {
            return false;
        };
        let seq = c.recv_seq;
        let kind_ok = (m.kind() == MessageKind::Binary) == binary;
        body(&mut self.msg, opts, seq);
        if !kind_ok || m.as_bytes() != self.msg.as_slice() {
            self.result.wrong_echoes += 1;
            let got = m.as_bytes();
            let what = format!(
                "wrong echo on client {} (message {seq}): expected {} bytes {:?}, got {} bytes {:?} ({:?})",
                c.index,
                len,
                String::from_utf8_lossy(&self.msg[..len.min(24)]),
                got.len(),
                String::from_utf8_lossy(&got[..got.len().min(24)]),
                m.kind()
            );
            self.fail(key, what);
            return false;
        }
        true
    }

    fn on_echo(&mut self, key: usize, len: usize, now: Instant) {
        // Per message: borrow the options through the shared Arc, never clone them.
        let shared = Arc::clone(&self.shared);
        let opts = &shared.opts;
        let Some(c) = self.conns.get_mut(key) else { return };
        c.recv_seq += 1;
        let Some(sent) = c.inflight.pop_front() else {
            return self.fail(key, "an echo for a message that was not sent".to_owned());
        };
        if let Some((from, to)) = self.window
            && now >= from
            && now < to
        {
            self.result.messages += 1;
            self.result.bytes += len as u64;
            let _ = self
                .result
                .latency
                .record((now.saturating_duration_since(sent).as_nanos() as u64).max(1));
        }
        match opts.scenario {
            Scenario::Echo if self.sending => self.send_next(key, now),
            Scenario::Hold => c.subscribed = true,
            Scenario::TestEcho => {
                let Some(c) = self.conns.get_mut(key) else { return };
                c.rounds_left = c.rounds_left.saturating_sub(1);
                if c.rounds_left == 0 {
                    self.result.completed_clients += 1;
                    if self.shared.coordinated && !self.shared.released.load(Ordering::Acquire) {
                        let index = c.index;
                        self.parked.push((key, index));
                    } else {
                        self.close(key);
                    }
                } else {
                    self.wakeups.push(Reverse((now + opts.delay, key)));
                }
            }
            _ => {}
        }
    }

    /// Sends the next message of `key`, recording `at` as its send time.
    fn send_next(&mut self, key: usize, at: Instant) {
        let opts = &self.shared.opts;
        let binary = opts.binary;
        let Some(c) = self.conns.get_mut(key) else { return };
        let Some(proto) = c.proto.as_mut() else { return };
        body(&mut self.msg, opts, c.next_seq);
        let kind = if binary {
            MessageKind::Binary
        } else {
            MessageKind::Text
        };
        if let Err(e) = proto.send_with(kind, &self.msg, &mut c.out, &mut self.pool) {
            return self.fail(key, format!("send: {e}"));
        }
        c.next_seq += 1;
        c.inflight.push_back(at);
        self.result.sent += 1;
        self.flush(key);
    }

    /// Counts a send made more than 1 ms after its intended time.
    fn note_lag(&mut self, now: Instant, intended: Instant) {
        let lag = now.saturating_duration_since(intended).as_nanos() as u64;
        self.result.max_lag_ns = self.result.max_lag_ns.max(lag);
        if lag > 1_000_000 {
            self.result.late_sends += 1;
        }
    }

    /// Open-loop sends: everything whose intended time has come, round-robin over connections.
    fn rate_sends(&mut self, end: Instant) {
        let Some(mut next) = self.next_send else { return };
        let now = Instant::now();
        if self.shared.opts.scenario == Scenario::Fanout {
            let Some(key) = self.publisher() else {
                self.next_send = None;
                return;
            };
            while next <= now && next < end {
                self.note_lag(now, next);
                self.publish_next(key, next);
                next += self.interval;
            }
            self.next_send = (next < end).then_some(next);
            return;
        }
        if next > now {
            return;
        }
        // The open connections, listed once (not at every turn: with 10,000 connections that
        // scan would be most of the generator's work).
        if self.rate_keys.is_empty() {
            self.rate_keys = self
                .conns
                .iter()
                .filter(|(_, c)| c.phase == Phase::Open)
                .map(|(k, _)| k)
                .collect();
            if self.rate_keys.is_empty() {
                self.next_send = None;
                return;
            }
        }
        while next <= now && next < end {
            let key = self.rate_keys[self.rr % self.rate_keys.len()];
            self.rr += 1;
            let Some(c) = self.conns.get(key).filter(|c| c.phase == Phase::Open) else {
                // Closed meanwhile (an error was counted): list the open ones again next time.
                self.rate_keys.clear();
                next += self.interval;
                continue;
            };
            if c.inflight.len() < MAX_RATE_INFLIGHT {
                self.note_lag(now, next);
                // Latency counts from the intended time: a late send is the server's (or the
                // generator's) delay too, which is what correcting for coordinated omission means.
                self.send_next(key, next);
            } else {
                self.error("rate too high: 100000 messages in flight on one connection".to_owned());
            }
            next += self.interval;
        }
        self.next_send = (next < end).then_some(next);
    }

    fn close(&mut self, key: usize) {
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

    fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if self.conns.get(key).is_some_and(|c| c.phase == Phase::Open) {
                self.close(key);
            } else {
                self.finish(key);
            }
        }
        let end = Instant::now() + Duration::from_secs(5);
        while !self.conns.is_empty() && Instant::now() < end {
            self.turn(Some(Duration::from_millis(50)));
        }
        let left: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in left {
            self.fail(key, "server did not close after the close handshake".to_owned());
        }
    }

    /// Removes a connection that ended well.
    fn finish(&mut self, key: usize) {
        if let Some(mut c) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut c.socket);
            if matches!(c.phase, Phase::Open | Phase::Trickling | Phase::Answered) {
                self.shared.open_now.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Removes a connection that failed, and counts the error.
    fn fail(&mut self, key: usize, what: String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_have_the_length_asked_differ_by_message_and_compress_about_3_to_1() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        json_payload(&mut a, 1024, 7);
        json_payload(&mut b, 1024, 8);
        assert_eq!((a.len(), b.len()), (1024, 1024));
        assert_ne!(a, b);
        assert!(std::str::from_utf8(&a).is_ok());
        json_payload(&mut b, 10, 123_456);
        assert_eq!(b, b"{\"seq\":123");
        #[cfg(feature = "deflate")]
        {
            let mut c = c10k::proto::deflate::Compressor::new(15, 6);
            let mut z = Vec::new();
            c.compress_message(&a, &mut z);
            let ratio = a.len() as f64 / z.len() as f64;
            assert!(
                (2.0..5.0).contains(&ratio),
                "1 KiB compressed to {} bytes",
                z.len()
            );
        }
    }
}
