//! Testing a [`Handler`] without sockets or sleeps (feature `testing`).
//!
//! A [`TestServer`] runs one shard with your handler through the engine's own code (the same
//! read loop, write path, deadlines and back-pressure as in production), over in-memory
//! connections instead of TCP, on a clock that moves only when the test says
//! ([`TestServer::advance`]). A [`TestClient`] is the other end of one connection: it sends
//! frames (masked, whole or in pieces, or any bytes at all) and decodes what the server sent.
//!
//! Nothing runs in the background: after a client writes, [`TestServer::settle`] runs the
//! shard's loop until it has nothing left to do, and then the client reads the answers. What
//! the kernel would do is modelled plainly: a client's receive window
//! ([`TestClient::set_window`]) stands for the socket buffers, so back-pressure and `on_drain`
//! can be tested; a FIN ([`TestClient::finish`]) and a reset ([`TestClient::reset`]) are what
//! they are on TCP.
//!
//! ```
//! use std::time::Duration;
//! use c10k::proto::{CloseCode, Message};
//! use c10k::testing::{Received, TestServer};
//! use c10k::{ConnId, Ctx, Handler, ServerConfig};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     type State = ();
//!     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), msg: Message<'_>) {
//!         let _ = ctx.send(id, msg.kind(), msg.as_bytes());
//!     }
//! }
//!
//! let mut config = ServerConfig::default();
//! config.ping_interval = Some(Duration::from_secs(30));
//! config.pong_timeout = Duration::from_secs(10);
//! let mut server = TestServer::new(config, Echo);
//! let mut client = server.connect("/chat").unwrap();
//! client.send_text("hello");
//! server.settle();
//! assert_eq!(client.recv(), Some(Received::Text("hello".into())));
//!
//! // A client that never answers pings is dropped when the pong is overdue: no waiting.
//! client.set_auto_reply(false);
//! server.advance(Duration::from_secs(60));
//! assert!(matches!(client.recv(), Some(Received::Ping(_))));
//! assert!(client.server_closed());
//! assert_eq!(server.stats().pong_timeouts, 1);
//! ```

mod client;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use self::client::TestClient;
/// What the server sent, as [`TestClient::recv`] gives it (the blocking client's type).
pub use crate::client::Received;
pub use crate::engine::harness::Fired;
use crate::engine::harness::Harness;
use crate::engine::{Handler, HttpResponse, ServerConfig, ServerHandle, Stats};

/// One shard running a handler over in-memory connections, on a virtual clock.
pub struct TestServer<H: Handler> {
    harness: Harness<H>,
    /// The port of the next client's address (127.0.0.1 unless it says otherwise).
    next_port: u16,
}

impl<H: Handler> std::fmt::Debug for TestServer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("now", &self.harness.now())
            .finish_non_exhaustive()
    }
}

impl<H: Handler> TestServer<H> {
    /// A shard with `config` and `handler`. `config.addr` is only reported, never bound;
    /// `config.shards` is ignored (one shard).
    ///
    /// # Panics
    /// If the operating system refuses a poll instance (out of descriptors).
    pub fn new(config: ServerConfig, handler: H) -> Self {
        let harness = Harness::new(config, handler).expect("a poll instance for the test shard");
        Self {
            harness,
            next_port: 40_000,
        }
    }

    /// A new connection from 127.0.0.1 (a new port each time), as if just accepted; nothing sent
    /// yet. Use [`TestClient::request`] to start the handshake, or write any bytes.
    ///
    /// # Panics
    /// If the shard did not take the connection (it never refuses one it is handed over a
    /// pipe unless a limit says so; then see [`TestServer::open_from`]).
    pub fn open(&mut self) -> TestClient {
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        self.open_from(peer).expect("the shard took the connection")
    }

    /// A new connection from `peer`; `None` if the shard did not take it.
    pub fn open_from(&mut self, peer: SocketAddr) -> Option<TestClient> {
        let (id, pipe) = self.harness.connect(peer)?;
        Some(TestClient::new(id, pipe))
    }

    /// Opens a connection and upgrades it to a WebSocket on `target` (path and query): the
    /// client, or the server's HTTP answer if it was not 101.
    ///
    /// # Panics
    /// If the server gave no answer at all (a handler that left the request pending: use
    /// [`TestServer::open`] and [`TestClient::request`] then).
    pub fn connect(&mut self, target: &str) -> Result<TestClient, HttpResponse> {
        self.connect_with(target, &[])
    }

    /// [`TestServer::connect`] with more header fields in the request.
    pub fn connect_with(
        &mut self,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Result<TestClient, HttpResponse> {
        let mut client = self.open();
        client.request(target, headers);
        self.settle();
        match client.response() {
            Some(Ok(())) => Ok(client),
            Some(Err(answer)) => Err(answer),
            None => panic!("no answer to the handshake of {target}: left pending?"),
        }
    }

    /// Runs the shard's loop at the current time until it has nothing left to do but wait for
    /// the clock or a client.
    ///
    /// # Panics
    /// If the loop never settles (100,000 turns at one instant).
    pub fn settle(&mut self) {
        self.harness.settle();
    }

    /// Moves the clock forward by `by`: every deadline and timer due on the way fires at its
    /// own time (to the 10 ms tick of the shard's timing wheel), and what it causes is handled
    /// before the next.
    pub fn advance(&mut self, by: Duration) {
        self.harness.advance(by);
    }

    /// The time on the shard's clock since the server was made.
    pub fn now(&self) -> Duration {
        self.harness.now()
    }

    /// The deadlines and timers that fired since the last call, with when they fired.
    pub fn fired(&mut self) -> Vec<(Duration, Fired)> {
        self.harness.take_fired()
    }

    /// The shard's statistics now.
    pub fn stats(&self) -> Stats {
        self.harness.stats()
    }

    /// Bytes the server holds queued for connection `id`, waiting for the client to read (see
    /// [`TestClient::set_window`]); `None` once the connection is gone. What
    /// [`Ctx::buffered_amount`](crate::Ctx::buffered_amount) says.
    pub fn buffered_amount(&self, id: crate::ConnId) -> Option<usize> {
        self.harness.buffered_amount(id)
    }

    /// The handler, to look at (or change) what it kept.
    pub fn handler(&mut self) -> &mut H {
        self.harness.handler()
    }

    /// A handle as other threads have it ([`ServerHandle::send`], [`ServerHandle::decide`],
    /// ...): what it sends is handled at the next [`TestServer::settle`]. Its `stats` and
    /// `join` wait for shard threads that a test server does not have: use
    /// [`TestServer::stats`].
    pub fn handle(&self) -> ServerHandle {
        self.harness.handle().clone()
    }

    /// Starts a graceful shutdown, as [`ServerHandle::shutdown`] does; the clock and the
    /// clients decide how it goes on.
    pub fn shutdown(&mut self) {
        self.harness.shutdown();
        self.settle();
    }

    /// Whether a shutdown has finished: every connection is gone.
    pub fn finished(&mut self) -> bool {
        self.harness.finished()
    }
}
