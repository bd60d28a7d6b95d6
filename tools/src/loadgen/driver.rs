//! One load-generating thread: its own mio event loop over its share of the client connections.
//!
//! Every connection runs the client role of the sans-I/O core: a handshake with a fresh key, masked
//! frames (keys from a fast non-cryptographic generator, see the module docs), replies validated
//! byte for byte. What each connection does once open depends on the scenario.
//!
//! The loop and each connection's lifecycle are in `client`; the payloads in `payload`; opening
//! connections (the connect scenario) in `connect`; and each other scenario in its own file:
//! `echo`, `rate`, `hold`, `testecho`, `fanout`, `slowloris`. A `wss://` connection's TLS is in
//! `tls`.

mod client;
mod drain;
pub(super) use drain::DRAIN_WAIT_MAX;
pub(super) use hold::FINAL_ECHO_WAIT;
mod connect;
mod echo;
mod fanout;
mod hold;
mod payload;
mod rate;
#[cfg(feature = "tls")]
mod sessions;
mod slowloris;
mod testecho;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
pub(crate) use tls::server_name;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use c10k::proto::deflate::DeflatePool;
use hdrhistogram::Histogram;
use mio::{Events, Poll};
use slab::Slab;

use super::{Options, Scenario, sys};
use client::{LoadClient, Phase};

/// The state of one run that every thread shares with the others and with the coordinator.
#[derive(Debug)]
pub(super) struct RunState {
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
    /// The server's drain (hold, `server_drain`): met once every thread has its final echoes,
    /// and again once the server has been told to drain.
    pub echoed: Barrier,
    pub drain: Barrier,
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
    pub published: AtomicU64,
    /// Each thread's count of messages received in the window, for the timeline.
    pub progress: Vec<super::timeline::Progress>,
    /// wss: the name the server's certificate must have (None: `ws://`).
    #[cfg(feature = "tls")]
    pub tls_name: Option<rustls::pki_types::ServerName<'static>>,
    /// fanout: the same for `publish_addr`.
    #[cfg(feature = "tls")]
    pub publish_tls_name: Option<rustls::pki_types::ServerName<'static>>,
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
    /// wss: connections that resumed a TLS session.
    pub tls_resumed: u64,
    /// wss: what the first connection's TLS agreed on (empty before).
    pub tls_params: String,
    /// The server's drain: connections closed with 1001, and the time from the drain's start
    /// to the last close.
    pub going_away: u64,
    pub drain: Duration,
    /// Keep-alive pings received, by Unix second.
    pub pings: BTreeMap<u64, u64>,
}

/// One thread of the load generator: its connections, its poll, and what it measured.
pub(super) struct Driver {
    shared: Arc<RunState>,
    thread: usize,
    poll: Poll,
    conns: Slab<LoadClient>,
    scratch: Vec<u8>,
    msg: Vec<u8>,
    rng: FastRng,
    result: ThreadResult,
    /// Global indices of the clients this thread still has to open, in order.
    to_open: VecDeque<usize>,
    /// Connections waiting for their TCP connect or their handshake (kept as they change, so
    /// that a turn of the ramp costs the same with 20 or 20,000 connections open).
    pending: usize,
    /// Messages sent and not echoed yet, over all connections.
    unanswered: usize,
    /// The server is draining: its 1001 closes are expected.
    draining: bool,
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
    /// wss: this thread's TLS settings (its own session cache when it resumes).
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// wss: the ciphertext read buffer (allocated at the first TLS read).
    #[cfg(feature = "tls")]
    tls_rx: Vec<u8>,
}

impl Driver {
    pub(super) fn new(shared: Arc<RunState>, thread: usize, clients: Vec<usize>) -> io::Result<Self> {
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
            tls_resumed: 0,
            tls_params: String::new(),
            going_away: 0,
            drain: Duration::ZERO,
            pings: BTreeMap::new(),
        };
        #[cfg(feature = "tls")]
        let tls = shared
            .opts
            .tls
            .as_ref()
            .map(|base| tls::thread_config(base, shared.opts.tls_resume));
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
            pending: 0,
            unanswered: 0,
            draining: false,
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
            #[cfg(feature = "tls")]
            tls,
            #[cfg(feature = "tls")]
            tls_rx: Vec::new(),
        })
    }

    /// Counts an error, and keeps the first few.
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

    /// The scenarios measured over one window: echo, rate, connect, hold, fanout.
    fn run_measured(&mut self, start: Instant) {
        let opts = self.shared.opts.clone();
        // 1. Open every connection, as fast as allowed.
        self.open_all(start + opts.connect_timeout);
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
            Scenario::Echo => self.start_echo(opts.in_flight),
            Scenario::Fanout => self.start_fanout(opts.rate, t0),
            Scenario::Rate => self.start_rate(opts.rate, opts.threads, t0),
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
            drain = self.send_final_echoes();
        }
        let drain_end = Instant::now() + drain;
        while self.unanswered > 0 && Instant::now() < drain_end {
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
        if opts.scenario == Scenario::Hold && opts.server_drain {
            // The coordinator tells the server to drain once every thread is here.
            self.shared.echoed.wait();
            self.shared.drain.wait();
            if !self.shared.abort.load(Ordering::Acquire) {
                return self.await_drain();
            }
        }
        self.close_all();
    }
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
