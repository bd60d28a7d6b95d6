//! c10k beside a tokio runtime, as a service that already runs tokio would embed it: the shards
//! run on threads of their own (one mio loop each), the runtime on its few worker threads, and
//! they talk only through bounded channels one way and the `ServerHandle` the other way.
//!
//! - A handshake is decided by an HTTP authentication service (`--auth-url`, called with hyper):
//!   the shard leaves it pending and hands `(id, token)` to the runtime with `try_send`; a task
//!   calls the service and decides through `ServerHandle::decide`. A good token (the service
//!   answers 200 with the user's name): 101; a bad or missing one: 401; the service down or too
//!   slow for the handshake timeout: 503 (see `check.rs`).
//! - Messages are echoed with the user's name, by the shard itself (`front.rs`).
//! - A ticker task sends every open connection "tick N (USER)" every `--tick-ms`, and waits for
//!   room (`ServerHandle::room(..).await`) for a connection whose client reads slowly
//!   (`ticker.rs`).
//! - Ctrl-C or SIGTERM: a graceful shutdown (1001 to every connection), then the runtime stops.
//!
//! The shard threads never wait for the runtime: every channel into it is bounded and taken
//! with `try_send`, and a full one is answered at once (503 for a handshake). See
//! docs/embedding.md.
//!
//! `cargo run --example tokio -- --auth-url http://127.0.0.1:8080/check`
//! Options: `--addr ADDR` (default 127.0.0.1:9003), `--handshake-timeout-ms N` (default 2000),
//! `--shards N` (default: the cores left after the runtime's, at least one), `--workers N`
//! (the runtime's worker threads, default [`DEFAULT_WORKERS`]), `--queue N` (handshakes waiting
//! for the runtime, default [`DEFAULT_QUEUE`]), `--calls N` (calls to the service at once,
//! default [`check::DEFAULT_CALLS`]), `--tick-ms N` (default 1000).

mod check;
mod front;
// Shared with examples/auth: this example only decodes (a `token` query parameter); the token
// travels to the service in a header, not encoded in a query.
#[allow(dead_code)]
#[path = "../auth/percent.rs"]
mod percent;
mod ticker;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use c10k::{Server, ServerConfig, ServerHandle};
use hyper::Uri;
use tokio::sync::mpsc;

use check::Service;
use front::Front;

/// The runtime's worker threads: it only waits on the authentication service and a clock, so
/// a few serve many thousands of connections.
pub const DEFAULT_WORKERS: usize = 2;
/// Handshakes handed to the runtime and not taken yet; past it, 503 at once.
pub const DEFAULT_QUEUE: usize = 256;
/// Opens and closes not taken by the ticker yet; past it, a new connection is closed with 1013
/// (try again later). The ticker takes them as they come, so this holds a burst.
pub const EVENT_QUEUE: usize = 4096;
/// Threads the runtime may start for blocking work: the `join` of the shards, and the name
/// lookups of a `--auth-url` naming a host.
pub const BLOCKING_THREADS: usize = 8;
/// How long the runtime's tasks get to end once the shards have stopped.
pub const RUNTIME_GRACE: Duration = Duration::from_secs(1);

struct Options {
    addr: SocketAddr,
    auth_url: Uri,
    handshake_timeout: Duration,
    shards: usize,
    workers: usize,
    queue: usize,
    calls: usize,
    tick: Duration,
}

fn options() -> Options {
    let mut o = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 9003)),
        auth_url: Uri::default(),
        handshake_timeout: Duration::from_secs(2),
        shards: 0,
        workers: DEFAULT_WORKERS,
        queue: DEFAULT_QUEUE,
        calls: check::DEFAULT_CALLS,
        tick: ticker::DEFAULT_TICK,
    };
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        let bad = |e: &dyn std::fmt::Display| -> ! {
            eprintln!("tokio: {a} {v:?}: {e}");
            std::process::exit(2)
        };
        let at_least_one = |v: &str| match v.parse::<usize>() {
            Ok(0) => bad(&"at least 1"),
            Ok(n) => n,
            Err(e) => bad(&e),
        };
        match a.as_str() {
            "--addr" => o.addr = v.parse().unwrap_or_else(|e| bad(&e)),
            "--auth-url" => url = Some(v.parse::<Uri>().unwrap_or_else(|e| bad(&e))),
            "--handshake-timeout-ms" => {
                o.handshake_timeout = Duration::from_millis(at_least_one(&v) as u64);
            }
            "--shards" => o.shards = at_least_one(&v),
            "--workers" => o.workers = at_least_one(&v),
            "--queue" => o.queue = at_least_one(&v),
            "--calls" => o.calls = at_least_one(&v),
            "--tick-ms" => o.tick = Duration::from_millis(at_least_one(&v) as u64),
            _ => bad(
                &"unknown option (--addr, --auth-url, --handshake-timeout-ms, --shards, --workers, --queue, --calls, --tick-ms)",
            ),
        }
    }
    match url {
        Some(u) if u.scheme_str() == Some("http") => o.auth_url = u,
        _ => {
            eprintln!("tokio: --auth-url http://HOST:PORT/PATH is required");
            std::process::exit(2)
        }
    }
    if o.shards == 0 {
        // The cores the runtime leaves: a shard that shares its core with a busy worker waits
        // for it, and every connection of that shard with it.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        o.shards = cores.saturating_sub(o.workers).max(1);
    }
    o
}

fn main() -> io::Result<()> {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.workers)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("tokio-worker")
        .enable_all()
        .build()?;

    let (asks, asks_rx) = mpsc::channel(o.queue);
    let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
    let mut config = ServerConfig::default();
    config.addr = o.addr;
    config.shards = o.shards;
    config.handshake_timeout = o.handshake_timeout;
    // The shards start here, on threads of their own; the runtime is not involved.
    let server = Server::bind(config, move |_shard| Front {
        asks: asks.clone(),
        events: events.clone(),
    })?
    .start()?;
    println!(
        "tokio: listening on ws://{}/ ({} shards, {} runtime workers, authentication by {})",
        server.local_addr(),
        server.shards(),
        o.workers,
        o.auth_url
    );

    let service = Arc::new(Service {
        url: o.auth_url,
        client: check::client(o.handshake_timeout),
        handshake_timeout: o.handshake_timeout,
        server: server.clone(),
    });
    rt.spawn(check::serve(asks_rx, service, o.calls));
    rt.spawn(ticker::run(events_rx, server.clone(), o.tick));
    let ended = rt.block_on(async move {
        stop_on_signals(&server)?;
        // `join` blocks until every shard has stopped: a thread of the blocking pool waits for
        // it, never a worker (a worker that blocks stalls every task queued on it).
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
    });
    // The shards are gone, and with them the channels' senders: the tasks taking from them end.
    // A call still waiting for the service is cut off after the grace.
    rt.shutdown_timeout(RUNTIME_GRACE);
    ended
}

/// Starts a graceful shutdown of the server on Ctrl-C or SIGTERM.
fn stop_on_signals(server: &ServerHandle) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let mut signals = signal(kind)?;
        let server = server.clone();
        tokio::spawn(async move {
            if signals.recv().await.is_some() {
                eprintln!("tokio: shutting down");
                server.shutdown();
            }
        });
    }
    Ok(())
}
