//! `c10k serve`: run a server until SIGINT or SIGTERM, then drain gracefully.

use std::net::SocketAddr;
use std::time::Duration;

use c10k::{Backpressure, Server, ServerConfig};
use c10k_tools::apps;
use clap::ValueEnum;

use crate::supervisor;

/// Options of `c10k serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: SocketAddr,
    /// Event-loop threads (shards); 0 = one per core.
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// What the server does with messages.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    /// Pin shard i to CPU i.
    #[arg(long)]
    pin: bool,
    /// Listen backlog per shard.
    #[arg(long, default_value_t = c10k::DEFAULT_BACKLOG)]
    backlog: i32,
    /// Largest frame payload accepted, in bytes (larger: close 1009).
    #[arg(long, default_value_t = c10k::proto::conn::DEFAULT_MAX_FRAME_SIZE)]
    max_frame: usize,
    /// Largest message accepted, in bytes (larger: close 1009).
    #[arg(long, default_value_t = c10k::proto::conn::DEFAULT_MAX_MESSAGE_SIZE)]
    max_message: usize,
    /// Largest handshake request head, in bytes (larger: 431).
    #[arg(long, default_value_t = c10k::proto::handshake::DEFAULT_MAX_HEAD_BYTES)]
    max_head: usize,
    /// Time allowed for the handshake (e.g. 10s, 500ms), plus up to an eighth at random per connection.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Ping a connection after this much silence; 0 turns pings off. A new connection's first
    /// ping comes at a random point of the second half of its first interval (to spread a burst).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    ping_interval: Duration,
    /// Drop a connection that does not answer a ping within this time.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pong_timeout: Duration,
    /// Close the socket if a Close frame gets no answer within this time.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    close_timeout: Duration,
    /// On SIGINT/SIGTERM, time allowed for connections to close after 1001 Going Away.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Cap on the bytes queued for one slow connection.
    #[arg(long, default_value_t = c10k::DEFAULT_MAX_QUEUED_BYTES)]
    max_queued: usize,
    /// What to do past the cap: close the connection with 1008, or drop the message.
    #[arg(long, value_enum, default_value_t = Policy::Close)]
    backpressure: Policy,
    /// Memory the server may hold for its peers (e.g. 1GiB, 512MiB), shared by its shards (and
    /// worker processes): near it a shard stops accepting, then closes the connections holding
    /// the most with 1013. Default: half of the machine's or the control group's memory.
    #[arg(long, value_parser = parse_bytes)]
    memory_budget: Option<u64>,
    /// Time allowed for a message from its first byte to its last (unfinished past it: 1008).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    message_timeout: Duration,
    /// Control frames (pings, pongs) a connection may send per second (more: 1008).
    #[arg(long, default_value_t = c10k::DEFAULT_CONTROL_FRAME_RATE,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    control_frame_rate: u32,
    /// Connections a shard may hold in their handshake (more: 503 at once).
    #[arg(long, default_value_t = c10k::DEFAULT_MAX_HANDSHAKES)]
    max_handshakes: usize,
    /// Connections one client address may hold (more: 503 at once); no limit by default.
    #[arg(long)]
    max_per_address: Option<usize>,
    /// Senders (load balancers) trusted to say whom a connection is from with a PROXY protocol
    /// header, v1 or v2 (HAProxy's `send-proxy-v2`): a network or address, repeatable or
    /// comma-separated (`--proxy-protocol 10.0.0.0/8,127.0.0.1`). Their connections must start
    /// with one; anyone else's header is refused (400). Off by default.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(c10k::Cidr))]
    proxy_protocol: Vec<c10k::Cidr>,
    /// Topics one connection may subscribe to (pubsub mode: `sub` past it answers an error).
    #[arg(long, default_value_t = c10k::DEFAULT_MAX_TOPICS)]
    max_topics: usize,
    /// Pubsub and chat modes: keep no history of topics (no offsets, no resume after a
    /// reconnection: `sub TOPIC @...` and `?since=` are answered with an error).
    #[arg(long)]
    no_history: bool,
    /// Messages of history kept per topic, for clients that resume after a reconnection.
    #[arg(long, value_name = "N", default_value_t = c10k::DEFAULT_HISTORY_MESSAGES)]
    history_messages: usize,
    /// Bytes of history kept per topic (e.g. 1MiB).
    #[arg(long, value_name = "B", value_parser = parse_bytes,
          default_value_t = c10k::DEFAULT_HISTORY_BYTES as u64)]
    history_bytes: u64,
    /// How long a message stays in a topic's history (e.g. 300s, 5m) [default: 300s].
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    history_age: Option<Duration>,
    /// Bytes of history kept for all topics together (past it, the oldest messages go first).
    #[arg(long, value_name = "B", value_parser = parse_bytes,
          default_value_t = c10k::DEFAULT_HISTORY_TOTAL_BYTES as u64)]
    history_total: u64,
    /// Bytes other threads may queue for one shard (past it, their sends are refused).
    #[arg(long, default_value_t = c10k::DEFAULT_MAX_INBOX_BYTES as u64, value_parser = parse_bytes)]
    max_inbox: u64,
    /// Do not answer pings automatically.
    #[arg(long)]
    no_auto_pong: bool,
    /// Decline permessage-deflate offers (by default they are accepted, without context
    /// takeover, so that idle connections hold no compression state).
    #[arg(long)]
    no_deflate: bool,
    /// Keep the server's compression context between messages (better ratio; a compressor of
    /// about 370 KiB per connection that asks for compression).
    #[arg(long)]
    deflate_takeover: bool,
    /// Let clients keep their compression context (a decompressor of about 46 KiB per
    /// connection).
    #[arg(long)]
    deflate_client_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed.
    #[arg(long, default_value_t = c10k::proto::deflate::DEFAULT_THRESHOLD)]
    deflate_threshold: usize,
    /// Compression level, 0 (stored) to 9 (best).
    #[arg(long, default_value_t = c10k::proto::deflate::DEFAULT_LEVEL,
          value_parser = clap::value_parser!(u32).range(0..=9))]
    deflate_level: u32,
    /// Run this many worker processes on the address (each with --shards shards), under a
    /// supervisor that restarts them: more connections than one process may hold descriptors for.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    processes: Option<u32>,
    /// Share topics with other nodes through this Redis server (redis://HOST:PORT), or this Redis
    /// Cluster (redis-cluster://HOST:PORT[,HOST:PORT...], streams mode), for the pubsub and chat
    /// modes.
    #[cfg(feature = "redis")]
    #[arg(long)]
    redis: Option<String>,
    /// Share topics through Redis Streams rather than pub/sub: one order and the same offsets on
    /// every node, and a bounded history per topic kept in Redis (always so with a cluster URL).
    /// With --no-history, a node still delivers every message once, without offsets.
    #[cfg(feature = "redis")]
    #[arg(long)]
    redis_streams: bool,
    /// Streams mode: messages kept per topic in Redis, and loaded by a node that starts wanting
    /// the topic.
    #[cfg(feature = "redis")]
    #[arg(long, default_value_t = c10k::bridge::redis::DEFAULT_HISTORY_LEN as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    redis_history: u32,
    /// Prefix of the Redis channels (pub/sub: channel = prefix + topic; streams: keys and channel
    /// `prefix{topic}...`, and the prefix may hold no brace).
    #[cfg(feature = "redis")]
    #[arg(long, default_value = c10k::bridge::redis::DEFAULT_PREFIX)]
    redis_prefix: String,
    /// Answer `GET /healthz`: 200 while serving, 503 while shutting down.
    #[arg(long)]
    healthz: bool,
    /// Answer `GET /metrics` in the Prometheus text format (per shard, labelled by worker).
    #[arg(long)]
    metrics: bool,
    /// Serve a live view on `GET /dashboard`: connections, messages and bytes per second,
    /// handshakes and rejections, queued bytes, pings and pong round trips, per worker and shard,
    /// updated every second over a WebSocket (`/dashboard/live`).
    #[arg(long)]
    dashboard: bool,
    /// On SIGINT/SIGTERM, keep accepting for this long first, answering /healthz and upgrades
    /// with 503, so that a load balancer takes the server out before it stops accepting.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    drain_grace: Duration,
    /// Echo mode: leave upgrades to paths under this prefix pending, and accept them --defer
    /// later from another thread (a stand-in for an authentication service; benches/pending.py).
    #[arg(long)]
    defer_path: Option<String>,
    /// With --defer-path: how long each of those handshakes waits for its decision (keep it
    /// below --handshake-timeout, or they are answered 503).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    defer: Duration,
    /// Internal: this process is worker I of a supervisor.
    #[arg(long, hide = true)]
    worker_index: Option<u32>,
    #[cfg(feature = "tls")]
    #[command(flatten)]
    tls: crate::serve_tls::TlsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Send every message back as it came.
    Echo,
    /// Topics over a text protocol: `sub T`, `sub T @EPOCH:OFFSET` (resume), `unsub T`, `pub T PAYLOAD`, `sync X`.
    Pubsub,
    /// Chat rooms: a client joins the room of its URL path (/chat/ROOM, `?since=EPOCH:OFFSET` to resume); its messages reach every member.
    Chat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Policy {
    Close,
    Drop,
}

/// Parses `10s`, `500ms`, `2m`, or a plain number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 10s, 500ms, 2m)"))?;
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Parses a size in bytes: `1048576`, `64KiB`, `512MiB`, `1GiB` (also `K`, `M`, `G` for the
/// same powers of 1024, and `KB`, `MB`, `GB` for powers of 1000).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("not a size: {s:?} (try 1GiB, 512MiB, 1048576)")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("not a size: {s:?} (try 1GiB, 512MiB, 1048576)"))
}

pub fn run(args: Args) -> Result<(), String> {
    if let Some(processes) = args.processes {
        if args.worker_index.is_some() {
            return Err("--processes is for the supervisor, not for a worker".to_owned());
        }
        if args.pin && processes > 1 {
            log::warn!("--pin with --processes: every worker pins its shard i to CPU i");
        }
        // Certificates that do not load are said once, here, rather than by every worker.
        #[cfg(feature = "tls")]
        args.tls.apply(&mut ServerConfig::default())?;
        #[cfg(feature = "tls")]
        let tls_addr = args.tls.addr();
        #[cfg(not(feature = "tls"))]
        let tls_addr = None;
        return supervisor::run(supervisor::Plan {
            processes: processes as usize,
            addr: args.addr,
            tls_addr,
            // The workers' lame-duck period comes before their drain.
            drain_timeout: args.drain_grace + args.drain_timeout,
        });
    }
    let worker = args
        .worker_index
        .map_or_else(String::new, |i| format!("worker {i}: "));
    // Memory held for peers that are gone goes back to the system, not to the allocator for good.
    c10k::release_memory_promptly();
    match c10k::raise_fd_limit() {
        Ok(n) => log::debug!("file descriptor limit: {n}"),
        Err(e) => log::warn!("cannot raise the file descriptor limit: {e}"),
    }
    let mut config = ServerConfig::default();
    config.addr = args.addr;
    config.shards = args.shards;
    config.backlog = args.backlog;
    config.pin_cores = args.pin;
    config.handshake_timeout = args.handshake_timeout;
    config.ping_interval = (!args.ping_interval.is_zero()).then_some(args.ping_interval);
    config.pong_timeout = args.pong_timeout;
    config.close_timeout = args.close_timeout;
    config.drain_timeout = args.drain_timeout;
    config.drain_grace = args.drain_grace;
    config.max_queued_bytes = args.max_queued;
    // The budget is the whole server's: a worker of a supervisor takes its part.
    let workers = std::env::var("C10K_WORKERS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|_| args.worker_index.is_some())
        .unwrap_or(1)
        .max(1);
    let budget = args.memory_budget.unwrap_or(c10k::default_memory_budget() as u64);
    config.memory_budget = usize::try_from(budget / workers).unwrap_or(usize::MAX);
    config.message_timeout = args.message_timeout;
    config.control_frame_rate = args.control_frame_rate;
    config.max_handshakes = args.max_handshakes;
    config.max_connections_per_address = args.max_per_address;
    config.trusted_proxies = args.proxy_protocol.clone();
    config.max_topics = args.max_topics;
    config.max_inbox_bytes = usize::try_from(args.max_inbox).unwrap_or(usize::MAX);
    config.history = history(&args);
    config.backpressure = match args.backpressure {
        Policy::Close => Backpressure::Close,
        Policy::Drop => Backpressure::Drop,
    };
    config.protocol.max_frame_size = args.max_frame;
    config.protocol.max_message_size = args.max_message;
    config.protocol.auto_pong = !args.no_auto_pong;
    config.head_limits.max_bytes = args.max_head;
    config.deflate = (!args.no_deflate).then_some(c10k::proto::DeflateConfig {
        compress_context_takeover: args.deflate_takeover,
        decompress_context_takeover: args.deflate_client_takeover,
        threshold: args.deflate_threshold,
        level: args.deflate_level,
        ..c10k::proto::DeflateConfig::default()
    });
    #[cfg(feature = "redis")]
    if let Some(url) = args.redis.as_deref() {
        if args.mode == Mode::Echo {
            return Err("--redis shares topics: use it with --mode pubsub or --mode chat".to_owned());
        }
        use c10k::bridge::redis::{Mode as BridgeMode, RedisBridge, RedisLimits};
        let streams = args.redis_streams || url.starts_with("redis-cluster://");
        let mode = if streams {
            BridgeMode::Streams
        } else {
            BridgeMode::PubSub
        };
        let mut limits = RedisLimits::for_server(&config);
        limits.history_len = args.redis_history as usize;
        let bridge = RedisBridge::with_mode(mode, url, &args.redis_prefix, limits)?;
        let _ = BRIDGE_STATS.set(std::sync::Arc::clone(bridge.stats()));
        config.bridge = Some(bridge);
    }
    #[cfg(feature = "tls")]
    let tls = args.tls.apply(&mut config)?;
    #[cfg(not(feature = "tls"))]
    let tls: Option<Tls> = None;
    let bind_error = |e: std::io::Error| format!("cannot listen on {}: {e}", args.addr);
    let wrap = Wrap {
        healthz: args.healthz,
        metrics: args.metrics,
        dashboard: args.dashboard,
        worker: args.worker_index,
        // Set by the supervisor for its workers: the dashboard page looks for every one.
        workers: std::env::var("C10K_WORKERS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
    };
    match args.mode {
        Mode::Echo if args.defer_path.is_some() => {
            let (prefix, delay) = (args.defer_path.clone().unwrap_or_default(), args.defer);
            serve(
                crate::restart::bind(config, move |_| {
                    wrap.around(apps::DeferredEcho::new(&prefix, delay))
                })
                .map_err(bind_error)?,
                &args,
                &worker,
                tls.clone(),
            )
        }
        _ if args.defer_path.is_some() => Err("--defer-path is for --mode echo".to_owned()),
        Mode::Echo => serve(
            crate::restart::bind(config, move |_| wrap.around(apps::Echo)).map_err(bind_error)?,
            &args,
            &worker,
            tls.clone(),
        ),
        Mode::Pubsub => serve(
            crate::restart::bind(config, move |_| wrap.around(apps::PubSub)).map_err(bind_error)?,
            &args,
            &worker,
            tls.clone(),
        ),
        Mode::Chat => serve(
            crate::restart::bind(config, move |_| wrap.around(apps::Chat)).map_err(bind_error)?,
            &args,
            &worker,
            tls.clone(),
        ),
    }
}

/// The topics' history: on for the pubsub and chat modes unless `--no-history`.
fn history(args: &Args) -> Option<c10k::HistoryConfig> {
    if args.no_history || args.mode == Mode::Echo {
        return None;
    }
    Some(c10k::HistoryConfig {
        max_messages: args.history_messages,
        max_bytes: usize::try_from(args.history_bytes).unwrap_or(usize::MAX),
        max_age: args.history_age.unwrap_or(c10k::DEFAULT_HISTORY_AGE),
        max_total_bytes: usize::try_from(args.history_total).unwrap_or(usize::MAX),
    })
}

/// The Redis bridge's counters, for SIGUSR1 and the last log line (set once, with `--redis`).
#[cfg(feature = "redis")]
static BRIDGE_STATS: std::sync::OnceLock<std::sync::Arc<c10k::bridge::redis::BridgeStats>> =
    std::sync::OnceLock::new();

/// The bridge's counters as a JSON object, if there is a bridge.
fn bridge_json() -> Option<String> {
    #[cfg(feature = "redis")]
    if let Some(b) = BRIDGE_STATS.get() {
        let pairs: Vec<String> = b
            .snapshot()
            .pairs()
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        return Some(format!("{{{}}}", pairs.join(",")));
    }
    None
}

/// What goes around the mode's handler: health, metrics and the dashboard.
#[derive(Debug, Clone, Copy)]
struct Wrap {
    healthz: bool,
    metrics: bool,
    dashboard: bool,
    worker: Option<u32>,
    workers: u32,
}

impl Wrap {
    fn around<H: c10k::Handler>(self, inner: H) -> apps::Ops<apps::Dashboard<H>> {
        let live = apps::Dashboard::new(inner, self.dashboard, self.worker, self.workers);
        apps::Ops::new(live, self.healthz, self.metrics, self.worker)
    }
}

/// The TLS settings reloaded on SIGHUP.
#[cfg(feature = "tls")]
type Tls = std::sync::Arc<c10k::tls::TlsConfig>;
#[cfg(not(feature = "tls"))]
type Tls = ();

/// Runs a bound server until a signal drains it (SIGHUP reloads the TLS certificates).
fn serve<H: c10k::Handler>(
    server: Server<H>,
    args: &Args,
    worker: &str,
    tls: Option<Tls>,
) -> Result<(), String> {
    let handle = server.handle();
    let shards = handle.shards();
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGUSR1,
        signal_hook::consts::SIGUSR2,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let on_signal = handle.clone();
    // The same listening sockets, for a successor (SIGUSR2).
    let listeners = server
        .listeners()
        .map_err(|e| format!("cannot share the listening sockets: {e}"))?;
    let index = args.worker_index;
    let secure = tls.is_some();
    std::thread::Builder::new()
        .name("c10k-signals".into())
        .spawn(move || {
            let mut signals = signals;
            let mut count = 0;
            for sig in signals.forever() {
                if sig == signal_hook::consts::SIGUSR1 {
                    print_stats(&on_signal.stats(), index);
                    continue;
                }
                if sig == signal_hook::consts::SIGUSR2 {
                    match crate::restart::start_next(&listeners) {
                        Ok(()) => on_signal.shutdown(),
                        Err(e) => log::error!("restart failed, serving on: {e}"),
                    }
                    continue;
                }
                if sig == signal_hook::consts::SIGHUP {
                    #[cfg(feature = "tls")]
                    match tls.as_deref() {
                        Some(tls) => crate::serve_tls::reload(tls),
                        None => log::info!("SIGHUP: nothing to reload (no --tls-cert)"),
                    }
                    #[cfg(not(feature = "tls"))]
                    let _ = &tls;
                    continue;
                }
                count += 1;
                if count == 1 {
                    log::info!("signal {sig}: draining connections (again to exit at once)");
                    on_signal.shutdown();
                } else {
                    log::warn!("signal {sig} again: exiting now");
                    std::process::exit(130);
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let (scheme, page) = if secure && handle.tls_addr().is_none() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    if let Some(a) = handle.tls_addr() {
        println!("c10k listening on wss://{a}/ (TLS)");
    }
    println!(
        "c10k listening on {scheme}://{}/ ({} shard{}, mode {}); open {page}://{}/ in a browser",
        handle.local_addr(),
        shards,
        if shards == 1 { "" } else { "s" },
        args.mode
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned()),
        handle.local_addr()
    );
    server.start().map_err(|e| e.to_string())?;
    match c10k::handover::tell_predecessor_ready() {
        Ok(true) => log::info!("told the process this one replaces that it serves"),
        Ok(false) => {}
        Err(e) => log::warn!("cannot tell the process this one replaces that it serves: {e}"),
    }
    handle.join().map_err(|e| e.to_string())?;
    let stats = handle.stats();
    log::info!(
        "{worker}stopped: {} accepted, {} handshakes, {} messages in, {} out",
        stats.accepted,
        stats.handshakes,
        stats.messages_in,
        stats.messages_out
    );
    if let Some(b) = bridge_json() {
        log::info!("{worker}redis bridge: {b}");
    }
    Ok(())
}

/// SIGUSR1: the server's counters (every shard's, summed) as one line on stdout,
/// `c10k stats {JSON}`, for operators and for the tests that run `c10k serve` as a process.
fn print_stats(s: &c10k::Stats, worker: Option<u32>) {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let mut j = String::with_capacity(640);
    let _ = write!(
        j,
        "{{\"pid\":{},\"worker\":{}",
        std::process::id(),
        worker.map_or_else(|| "null".to_owned(), |w| w.to_string())
    );
    for (k, v) in [
        ("connections_open", s.connections_open),
        ("handshaking", s.handshaking),
        ("sockets", s.sockets),
        ("timers", s.timers),
        ("accepted", s.accepted),
        ("handshakes", s.handshakes),
        ("http_requests", s.http_requests),
        ("messages_in", s.messages_in),
        ("bytes_in", s.bytes_in),
        ("messages_out", s.messages_out),
        ("bytes_out", s.bytes_out),
        ("protocol_errors", s.protocol_errors),
        ("backpressure_closes", s.backpressure_closes),
        ("backpressure_drops", s.backpressure_drops),
        ("accept_errors", s.accept_errors),
        ("accept_pauses", s.accept_pauses),
        ("pings_sent", s.pings_sent),
        ("pong_timeouts", s.pong_timeouts),
        ("close_timeouts", s.close_timeouts),
        ("published", s.published),
        ("deliveries", s.deliveries),
        ("topics", s.topics),
        ("deflated", s.deflated),
        ("tls_handshakes", s.tls_handshakes),
        ("tls_resumed", s.tls_resumed),
    ] {
        let _ = write!(j, ",\"{k}\":{v}");
    }
    j.push_str(",\"rejected\":{");
    for (i, (reason, n)) in s.rejected.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(j, "{sep}\"{}\":{n}", snake(&format!("{reason:?}")));
    }
    j.push_str("},\"closes\":{");
    for (i, (code, n)) in s.closes.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(j, "{sep}\"{code}\":{n}");
    }
    j.push('}');
    if let Some(b) = bridge_json() {
        let _ = write!(j, ",\"bridge\":{b}");
    }
    j.push('}');
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "c10k stats {j}").and_then(|()| out.flush());
}

/// `TooLarge` -> `too_large`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("3MB"), Ok(3_000_000));
        assert!(parse_bytes("1.5GiB").is_err());
        assert!(parse_bytes("GiB").is_err());
        assert!(parse_bytes("1TiB").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
    }
}
