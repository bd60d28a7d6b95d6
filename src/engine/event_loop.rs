//! The event loop of one shard, and how the shards of a server are set up: a `mio::Poll`, its
//! own listening socket, an inbox; [`bind`] prepares them, [`Bound::run`] runs one on the
//! calling thread until it has drained after a shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use super::config::ServerConfig;
use super::guard::Callback;
use super::handler::{Ctx, Handler};
use super::inbox::{Command, DecisionOutcome, Inbox, Mailbox};
use super::input::ReadEnd;
use super::node::{Node, NodeLimits, ServerHandle};
use super::shard::{Shard, Timer};
use super::state::App;
use super::stats::Stats;
use super::sys;

/// Token of the shard's listening socket.
const LISTENER: Token = Token(usize::MAX - 1);
/// Token of the shard's waker.
const WAKER: Token = Token(usize::MAX - 2);
/// Token of the shard's TLS listener (beside the plain one).
const TLS_LISTENER: Token = Token(usize::MAX - 3);
/// Readiness events taken per poll.
const EVENTS: usize = 1024;
/// A turn with at most this many events (and no read left for the next) is quiet: slow
/// housekeeping may run then.
const QUIET_EVENTS: usize = 8;

/// A shard ready to run: its poll, listening socket and inbox.
#[derive(Debug)]
pub(crate) struct Bound {
    index: usize,
    poll: Poll,
    /// The plain listener (`None` when the only listener speaks TLS).
    listener: Option<TcpListener>,
    tls_listener: Option<TcpListener>,
    mailbox: Mailbox,
    config: Arc<ServerConfig>,
    node: Arc<Node>,
}

/// Binds one listening socket per shard (SO_REUSEPORT, so that the kernel spreads connections
/// over them) and prepares the shards; returns the handle on them all. With `inherited`
/// listening sockets (bound by another process: socket activation, a hand-over), the main
/// listeners are those instead, shard `i` taking socket `i % n`: there are at least as many
/// shards as sockets, so that every socket's queue is served.
pub(crate) fn bind(
    config: Arc<ServerConfig>,
    inherited: &[std::net::TcpListener],
) -> io::Result<(ServerHandle, Vec<Bound>)> {
    let shards = if config.shards == 0 {
        sys::available_cpus()
    } else {
        config.shards
    }
    .max(inherited.len());
    if shards > usize::from(u16::MAX) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many shards"));
    }
    let (plain, tls_addr) = listeners(&config)?;
    let mut addr: SocketAddr = match inherited.first() {
        Some(l) => l.local_addr()?,
        None => config.addr,
    };
    let mut tls_addr = tls_addr;
    let mut parts = Vec::with_capacity(shards);
    let mut inboxes = Vec::with_capacity(shards);
    for i in 0..shards {
        let listener = match inherited.get(i % inherited.len().max(1)) {
            Some(l) => sys::adopt_listener(l)?,
            None => sys::listener(addr, config.backlog)?,
        };
        // The first socket may have been given a free port: the others share it.
        addr = listener.local_addr()?;
        let tls_listener = match tls_addr {
            Some(a) => {
                let l = sys::listener(a, config.backlog)?;
                tls_addr = Some(l.local_addr()?);
                Some(l)
            }
            None => None,
        };
        let (listener, tls_listener) = if plain {
            (Some(listener), tls_listener)
        } else {
            (None, Some(listener))
        };
        let poll = Poll::new()?;
        let (inbox, mailbox) = Inbox::new(poll.registry(), WAKER, config.max_inbox_bytes)?;
        inboxes.push(inbox);
        parts.push((poll, listener, tls_listener, mailbox));
    }
    let limits = NodeLimits {
        memory_budget: config.memory_budget as u64,
        per_address: config.max_connections_per_address,
        history: config.history,
    };
    let node = Arc::new(Node::new(inboxes, config.bridge.clone(), addr, tls_addr, limits));
    let bound = parts
        .into_iter()
        .enumerate()
        .map(|(index, (poll, listener, tls_listener, mailbox))| Bound {
            index,
            poll,
            listener,
            tls_listener,
            mailbox,
            config: Arc::clone(&config),
            node: Arc::clone(&node),
        })
        .collect();
    Ok((ServerHandle::new(node), bound))
}

/// Whether `config.addr` is a plain listener, and the address of a TLS listener beside it.
#[cfg(feature = "tls")]
fn listeners(config: &ServerConfig) -> io::Result<(bool, Option<SocketAddr>)> {
    match (config.tls.is_some(), config.tls_addr) {
        (false, None) => Ok((true, None)),
        (false, Some(_)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "tls_addr is set but there are no TLS settings (ServerConfig::tls)",
        )),
        (true, None) => Ok((false, None)),
        (true, Some(a)) => Ok((true, Some(a))),
    }
}

#[cfg(not(feature = "tls"))]
fn listeners(_: &ServerConfig) -> io::Result<(bool, Option<SocketAddr>)> {
    Ok((true, None))
}

impl Bound {
    /// Another descriptor of this shard's main listening socket (the same socket), to hand to
    /// another process.
    pub(crate) fn share_listener(&self) -> io::Result<std::net::TcpListener> {
        match self.listener.as_ref().or(self.tls_listener.as_ref()) {
            Some(l) => sys::share_listener(l),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no listening socket")),
        }
    }

    /// The index of this shard.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// Runs the shard on the calling thread (pinned to a CPU if the configuration says so) until
    /// it has drained after a shutdown. Its final statistics are then in the node. An error ends
    /// the shard at once, its connections dropped: the poll registry cannot be cloned, a listener
    /// cannot be registered, or polling failed (other than being interrupted). The thread that
    /// runs the shard logs it and hands it to `ServerHandle::join`.
    pub(crate) fn run<H: Handler>(self, handler: H) -> io::Result<()> {
        let Self {
            index,
            mut poll,
            mut listener,
            mut tls_listener,
            mailbox,
            config,
            node,
        } = self;
        if config.pin_cores
            && let Err(e) = sys::pin_to_cpu(index % sys::available_cpus())
        {
            log::warn!("shard {index}: cannot pin to a CPU: {e}");
        }
        let registry = match poll.registry().try_clone() {
            Ok(r) => r,
            Err(e) => {
                node.set_final_stats(index, Stats::default());
                return Err(context(e, "cannot clone the poll registry"));
            }
        };
        for (l, token) in [(&mut listener, LISTENER), (&mut tls_listener, TLS_LISTENER)] {
            if let Some(l) = l.as_mut()
                && let Err(e) = registry.register(l, token, Interest::READABLE)
            {
                node.set_final_stats(index, Stats::default());
                return Err(context(e, "cannot register the listener"));
            }
        }
        let shard = Shard::new(index, registry, listener, tls_listener, config, Arc::clone(&node));
        let mut event_loop = EventLoop::new(handler, mailbox, shard);
        event_loop.shard.publish_stats();
        let ended = event_loop.run(&mut poll);
        node.set_final_stats(index, event_loop.shard.snapshot());
        ended
    }
}

/// What the poll said about one token in a turn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ready {
    pub(super) token: Token,
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The peer's side is closed, or the socket has an error.
    pub(super) read_closed: bool,
}

impl Ready {
    fn of(ev: &mio::event::Event) -> Self {
        Self {
            token: ev.token(),
            readable: ev.is_readable(),
            writable: ev.is_writable(),
            read_closed: ev.is_read_closed() || ev.is_error(),
        }
    }
}

/// `e`, of the same kind, saying what failed.
fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A shard, its handler and what its loop needs between turns.
pub(super) struct EventLoop<H: Handler> {
    pub(super) app: App<H>,
    /// The shard's read buffer, shared by all its connections.
    scratch: Vec<u8>,
    mailbox: Mailbox,
    fired: Vec<Timer>,
    /// Connections whose read budget ran out with input left.
    pending_reads: Vec<usize>,
    pub(super) shard: Shard,
    /// The deadlines that fired, for a test to look at (`None`: not kept).
    #[cfg(feature = "testing")]
    pub(super) fired_log: Option<Vec<(u64, super::fired::Fired)>>,
}

impl<H: Handler> EventLoop<H> {
    pub(super) fn new(handler: H, mailbox: Mailbox, shard: Shard) -> Self {
        // A TLS record (up to 16 KiB of plaintext) must fit the read buffer twice over.
        let config = Arc::clone(&shard.config);
        let min = if shard.tls_listener.is_some() {
            48 << 10
        } else {
            4096
        };
        Self {
            app: App::new(handler),
            scratch: vec![0u8; config.read_buffer.max(min) + config.head_limits.max_bytes],
            mailbox,
            fired: Vec::new(),
            pending_reads: Vec::new(),
            shard,
            #[cfg(feature = "testing")]
            fired_log: None,
        }
    }

    fn run(&mut self, poll: &mut Poll) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            // Work left for the next turn (input past a budget, accepts, queues filled after
            // this turn's writes, by `on_drain` say) does not wait for an event.
            let timeout = if self.settled() {
                self.shard.poll_timeout()
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(context(e, "poll failed"));
            }
            self.shard.tick();
            self.turn(events.iter().map(Ready::of));
            if self.shard.finished() {
                return Ok(());
            }
        }
    }

    /// Whether the last turn left no work for the next one but what a timer or an event brings.
    pub(super) fn settled(&self) -> bool {
        self.pending_reads.is_empty() && self.shard.accept_more == 0 && self.shard.dirty.is_empty()
    }

    /// One turn of the loop, the clock read (`Shard::tick`): what the poll reported, then the
    /// work left over, the timers due, the queues to write, the memory budget, the dead.
    pub(super) fn turn(&mut self, events: impl Iterator<Item = Ready>) {
        self.shard.accept_left_over();
        let mut count = 0;
        for ev in events {
            count += 1;
            match ev.token {
                LISTENER => self.shard.accept(false),
                TLS_LISTENER => self.shard.accept(true),
                WAKER => self.drain_inbox(),
                Token(key) => {
                    if ev.writable {
                        self.shard.on_writable(key);
                        self.shard.notify_drained(&mut self.app);
                    }
                    if ev.readable || ev.read_closed {
                        self.read(key, ev.read_closed);
                    }
                }
            }
        }
        // Those whose work this turn has no allowance left for keep their place, ahead of
        // those that just had their turn: each gets its share in order.
        let mut waiting = Vec::new();
        for key in std::mem::take(&mut self.pending_reads) {
            if self.shard.waits_for_next_turn(key) {
                waiting.push(key);
            } else {
                self.read(key, false);
            }
        }
        if !waiting.is_empty() {
            waiting.append(&mut self.pending_reads);
            self.pending_reads = waiting;
        }
        self.expire_timers();
        self.shard.flush_dirty();
        self.shard.relieve_memory();
        self.shard.reap(&mut self.app);
        // A quiet turn: few events, nothing left for the next.
        let busy = count > QUIET_EVENTS || !self.pending_reads.is_empty();
        self.shard.trim_if_due(busy);
        self.shard.notify_drained(&mut self.app);
    }

    fn read(&mut self, key: usize, read_closed: bool) {
        let end = self
            .shard
            .on_readable(&mut self.app, &mut self.scratch, key, read_closed);
        if let ReadEnd::Again = end {
            self.pending_reads.push(key);
        }
        // One read can inflate a whole message: the budget is looked at after each, so that a
        // turn with many readable connections cannot go past it by more than one message.
        self.shard.relieve_memory();
    }

    pub(super) fn drain_inbox(&mut self) {
        let node = Arc::clone(self.shard.node());
        for cmd in node.drain(self.shard.index(), &self.mailbox) {
            let shard = &mut self.shard;
            match cmd {
                Command::Send { id, kind, data } => {
                    let _ = shard.send(id, kind, &data);
                }
                Command::Close { id, code, reason } => {
                    let _ = shard.close(id, code, &reason);
                }
                Command::Publish { topic, frame } => {
                    shard.deliver(&topic, Some(&frame), None);
                }
                Command::Stream { topic, event } => shard.take_event(&mut self.app, &topic, event),
                Command::Decide {
                    id,
                    decision,
                    receipt,
                } => {
                    let outcome = shard.decided(&mut self.app, &mut self.scratch, id, decision);
                    if outcome == DecisionOutcome::Applied {
                        // Bytes may have arrived while it waited, with no new edge to say so.
                        self.pending_reads.push(id.key as usize);
                    }
                    let _ = receipt.try_send(outcome);
                }
                Command::Shutdown => shard.shutdown(),
                Command::Stats(reply) => {
                    let _ = reply.send(shard.snapshot());
                }
            }
        }
        self.shard.notify_resumed(&mut self.app);
        // Producers waiting for room in the inbox look again.
        node.room_made();
    }

    fn expire_timers(&mut self) {
        self.shard.expired(&mut self.fired);
        for timer in std::mem::take(&mut self.fired) {
            #[cfg(feature = "testing")]
            if let Some(log) = self.fired_log.as_mut() {
                log.extend(super::fired::Fired::of(&self.shard, timer));
            }
            let shard = &mut self.shard;
            match timer {
                Timer::Conn { key, generation } => shard.deadline_passed(key as usize, generation),
                Timer::Message { key, generation } => shard.message_overdue(key as usize, generation),
                Timer::App(token) => {
                    let handler = &mut self.app.handler;
                    shard.guarded(Callback::Timer, None, None, |shard| {
                        handler.on_timer(&mut Ctx { shard }, token);
                    });
                }
                Timer::AcceptResume => shard.resume_accepting(),
                Timer::Grace => shard.begin_drain(),
                Timer::Publish => {
                    shard.publish_stats();
                    shard.sweep_history();
                }
                Timer::Drain => shard.drain_timed_out(),
            }
        }
    }
}
