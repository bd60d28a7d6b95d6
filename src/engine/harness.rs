//! A shard run by a test instead of by its poll (feature `testing`): the same [`EventLoop`] and
//! [`Shard`] code, connections over in-memory pipes ([`super::pipe`]), and a clock that moves
//! only when the test says. Each turn is what the poll would have reported: the pipes' edges,
//! then the work of a turn as in production. [`crate::testing`] is its public face.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::{Poll, Token};

use super::config::ServerConfig;
use super::event_loop::{EventLoop, Ready};
pub use super::fired::Fired;
use super::handler::Handler;
use super::id::ConnId;
use super::inbox::Inbox;
use super::node::{Node, NodeLimits, ServerHandle};
use super::pipe::Pipe;
use super::shard::Shard;
use super::socket::Socket;
use super::stats::Stats;

/// Turns at one instant after which a shard that still has work is taken to be spinning.
const MAX_TURNS: usize = 100_000;

/// One shard with its handler, driven by a test.
pub(crate) struct Harness<H: Handler> {
    /// The poll the shard's inbox wakes; never waited on: every turn looks at the inbox.
    _poll: Poll,
    event_loop: EventLoop<H>,
    handle: ServerHandle,
    /// The server ends' pipes, by slab key, while the shard holds them.
    pipes: Vec<(usize, Pipe)>,
    now_ms: u64,
}

impl<H: Handler> Harness<H> {
    /// A shard with `config` (its address is only reported, never bound) and `handler`.
    pub(crate) fn new(config: ServerConfig, handler: H) -> io::Result<Self> {
        let config = Arc::new(config);
        let poll = Poll::new()?;
        let (inbox, mailbox) = Inbox::new(poll.registry(), Token(usize::MAX - 2), config.max_inbox_bytes)?;
        let limits = NodeLimits {
            memory_budget: config.memory_budget as u64,
            per_address: config.max_connections_per_address,
            history: config.history,
        };
        let node = Arc::new(Node::new(
            vec![inbox],
            config.bridge.clone(),
            config.addr,
            None,
            limits,
        ));
        let registry = poll.registry().try_clone()?;
        let shard = Shard::new(0, registry, None, None, config, Arc::clone(&node));
        let mut event_loop = EventLoop::new(handler, mailbox, shard);
        event_loop.fired_log = Some(Vec::new());
        event_loop.shard.tick_at(0);
        event_loop.shard.publish_stats();
        Ok(Self {
            _poll: poll,
            event_loop,
            handle: ServerHandle::new(node),
            pipes: Vec::new(),
            now_ms: 0,
        })
    }

    /// A connection from `peer`, as if just accepted; `None` if the shard refused to take it.
    pub(crate) fn connect(&mut self, peer: SocketAddr) -> Option<(ConnId, Pipe)> {
        let (pipe, end) = Pipe::new(peer);
        let shard = &mut self.event_loop.shard;
        shard.tick_at(self.now_ms);
        let key = shard.add(Socket::Memory(Box::new(end)), peer, false)?;
        let id = shard.id(key, &shard.conns[key]);
        self.pipes.push((key, pipe.clone()));
        Some((id, pipe))
    }

    /// One loop turn at the current time: the pipes' edges, the inbox, then the turn's work.
    /// Whether anything was reported to it.
    pub(crate) fn step(&mut self) -> bool {
        self.pipes.retain(|(_, p)| !p.server_gone());
        let ready: Vec<Ready> = self
            .pipes
            .iter()
            .filter_map(|(key, p)| {
                p.readiness().map(|r| Ready {
                    token: Token(*key),
                    readable: r.readable,
                    writable: r.writable,
                    read_closed: r.read_closed,
                })
            })
            .collect();
        let any = !ready.is_empty();
        self.event_loop.shard.tick_at(self.now_ms);
        self.event_loop.drain_inbox();
        self.event_loop.turn(ready.into_iter());
        any
    }

    /// Runs turns at the current time until nothing is left to do but wait for the clock or
    /// a peer. Panics if the shard never settles (a loop that keeps itself busy).
    pub(crate) fn settle(&mut self) {
        for _ in 0..MAX_TURNS {
            let any = self.step();
            if !any && self.event_loop.settled() && !self.handle.node().has_mail(0) {
                return;
            }
        }
        panic!(
            "the shard did not settle in {MAX_TURNS} turns at {} ms",
            self.now_ms
        );
    }

    /// Moves the clock forward by `by`, running every turn a shard would run on the way: each
    /// timer fires at its own time, and what it causes settles before the next.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.settle();
        let until = self.now_ms + by.as_millis() as u64;
        while self.now_ms < until {
            let wait = self
                .event_loop
                .shard
                .poll_timeout()
                .map_or(u64::MAX, |d| d.as_millis() as u64);
            // A timer due now (its tick of the wheel is reached) fires in this turn.
            self.now_ms = self.now_ms.saturating_add(wait.max(1)).min(until);
            self.settle();
        }
    }

    /// The time on the shard's clock since the harness started.
    pub(crate) fn now(&self) -> Duration {
        Duration::from_millis(self.now_ms)
    }

    /// The deadlines and timers that fired since the last call, with their time on the clock.
    pub(crate) fn take_fired(&mut self) -> Vec<(Duration, Fired)> {
        let log = self.event_loop.fired_log.get_or_insert_with(Vec::new);
        std::mem::take(log)
            .into_iter()
            .map(|(at, f)| (Duration::from_millis(at), f))
            .collect()
    }

    /// The shard's statistics now.
    pub(crate) fn stats(&self) -> Stats {
        self.event_loop.shard.snapshot()
    }

    /// Bytes queued for connection `id` and not yet taken by its peer's window (`None` once it
    /// is gone).
    pub(crate) fn buffered_amount(&self, id: ConnId) -> Option<usize> {
        self.event_loop.shard.buffered_amount(id)
    }

    /// The handler, to look at what it kept.
    pub(crate) fn handler(&mut self) -> &mut H {
        &mut self.event_loop.app.handler
    }

    /// The handle other threads would have: what they send is handled at the next turn.
    pub(crate) fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    /// Starts a graceful shutdown, as [`ServerHandle::shutdown`] does.
    pub(crate) fn shutdown(&mut self) {
        self.event_loop.shard.shutdown();
    }

    /// Whether the shard has finished after a shutdown (every connection gone).
    pub(crate) fn finished(&mut self) -> bool {
        self.event_loop.shard.finished()
    }
}
