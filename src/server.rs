//! The server: shards on threads of their own, built from the engine's parts.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::engine::{self, Bound, Handler, ServerConfig, ServerHandle};

/// A bound, not yet running server.
pub struct Server<H: Handler> {
    factory: Arc<dyn Fn(usize) -> H + Send + Sync>,
    shards: Vec<Bound>,
    handle: ServerHandle,
}

impl<H: Handler> fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.handle.local_addr())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<H: Handler> Server<H> {
    /// Binds one listening socket per shard (SO_REUSEPORT) and prepares the shards. `factory`
    /// makes each shard's handler on the shard's own thread, given the shard index.
    pub fn bind<F>(config: ServerConfig, factory: F) -> io::Result<Self>
    where
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        Self::from_listeners(config, Vec::new(), factory)
    }

    /// Prepares the shards on listening sockets this process did not bind: handed over by the
    /// process it replaces, or by systemd's socket activation (see
    /// [`inherited_listeners`](crate::handover::inherited_listeners)), or bound by the
    /// application itself. They take the place of `config.addr` (of the TLS listener when
    /// `config.tls` is set without `config.tls_addr`); shard `i` serves socket `i % n`, and there
    /// are at least as many shards as sockets, so that every socket's accept queue is served.
    /// An empty list binds `config.addr` as [`Server::bind`] does.
    pub fn from_listeners<F>(
        config: ServerConfig,
        listeners: Vec<TcpListener>,
        factory: F,
    ) -> io::Result<Self>
    where
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let (handle, shards) = engine::bind(Arc::new(config), &listeners)?;
        Ok(Self {
            factory: Arc::new(factory),
            shards,
            handle,
        })
    }

    /// Other descriptors of the shards' listening sockets (the same sockets and accept
    /// queues), one per shard, to hand to a successor when this process restarts
    /// ([`start_successor`](crate::handover::start_successor)). Take them before the server
    /// runs; this process keeps its own until it shuts down.
    pub fn listeners(&self) -> io::Result<Vec<TcpListener>> {
        self.shards.iter().map(|s| s.share_listener()).collect()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Starts every shard on its own thread and returns at once.
    pub fn start(self) -> io::Result<ServerHandle> {
        if let Some(b) = self.handle.node().bridge() {
            b.attach(self.handle.clone());
        }
        let mut threads = Vec::with_capacity(self.shards.len());
        for shard in self.shards {
            let factory = Arc::clone(&self.factory);
            let handle = self.handle.clone();
            let index = shard.index();
            let thread = std::thread::Builder::new()
                .name(format!("c10k-shard-{index}"))
                .spawn(move || {
                    // A panic here is outside the handler's guarded callbacks (in the factory or
                    // the engine): the shard is lost, and its error is the thread's result.
                    let ended = panic::catch_unwind(AssertUnwindSafe(|| shard.run(factory(index))))
                        .unwrap_or_else(|payload| Err(engine::panicked(&*payload)));
                    if let Err(e) = &ended {
                        // A server short of a shard is not what was started: stop the others
                        // (gracefully), so that `join` and `run` return the error.
                        log::error!("shard {index} failed: {e}; shutting the server down");
                        handle.node().shard_gone(index);
                        handle.shutdown();
                    }
                    ended
                })?;
            threads.push((index, thread));
        }
        self.handle.node().adopt_threads(threads);
        Ok(self.handle)
    }

    /// Runs the server on its shard threads until it is shut down. `Err` when a shard failed
    /// (see [`ServerHandle::join`]), after the others have shut down.
    pub fn run(self) -> io::Result<()> {
        self.start()?.join()
    }
}
