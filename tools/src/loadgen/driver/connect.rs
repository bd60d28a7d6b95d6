//! Opening connections, as fast as allowed but with a bounded number pending: the whole of the
//! connect scenario (handshakes per second, handshake latency), and the first phase of every
//! other measured scenario.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::client::{LoadClient, Phase};
use super::{Driver, sys};
use crate::loadgen::Scenario;

impl Driver {
    /// Opens every connection this thread has (the handshake included), as fast as allowed;
    /// those not open by `deadline` fail.
    pub(super) fn open_all(&mut self, deadline: Instant) {
        // Scanning every connection is left for the end of the ramp (fan-out subscriptions and
        // first echoes still on their way): it would make the ramp quadratic.
        while (!self.to_open.is_empty()
            || self.pending > 0
            || self
                .conns
                .iter()
                .any(|(_, c)| c.phase == Phase::Open && !c.subscribed))
            && Instant::now() < deadline
        {
            self.open_more(self.shared.opts.max_pending);
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
    }

    pub(super) fn any_phase(&self, f: impl Fn(Phase) -> bool) -> bool {
        self.conns.iter().any(|(_, c)| f(c.phase))
    }

    /// Starts connecting more clients, while fewer than `max_pending` (at least 1) wait for
    /// their connect or handshake.
    pub(super) fn open_more(&mut self, max_pending: usize) {
        let max_pending = max_pending.max(1);
        while self.pending < max_pending {
            let Some(i) = self.to_open.pop_front() else { break };
            self.open(i);
        }
    }

    /// Starts connecting client `index`.
    pub(super) fn open(&mut self, index: usize) -> bool {
        let sources = &self.shared.opts.sources;
        let source = (!sources.is_empty()).then(|| SocketAddr::new(sources[index % sources.len()], 0));
        let addr = match self.shared.publish_addr {
            Some(p) if index == 0 && self.shared.opts.scenario == Scenario::Fanout => p,
            _ => self.shared.addr,
        };
        // hold and connect send at most one message at a time on a connection (a final echo, a
        // pong), which Nagle's algorithm never delays: one system call less per connection of a
        // million-connection ramp.
        let nodelay = !matches!(self.shared.opts.scenario, Scenario::Hold | Scenario::Connect);
        let mut socket = match sys::connect(addr, source, nodelay) {
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
        entry.insert(LoadClient {
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
            #[cfg(feature = "tls")]
            tls: None,
        });
        self.pending += 1;
        true
    }
}
