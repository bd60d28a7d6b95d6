//! The load generator behind `c10k bench`: scenarios, measurement, and the report.
//!
//! Each thread runs its own mio event loop over its share of the connections (see
//! [`driver`](self)), using the client role of the same sans-I/O core as the server. Masking keys
//! come from a fast non-cryptographic generator (xorshift64*), fresh for every frame: a load
//! generator needs keys that vary, not keys an attacker cannot guess. (The public client,
//! [`c10k::client`], draws its keys from the operating system's CSPRNG.)
//!
//! Scenarios:
//! - `echo`: every connection keeps K messages in flight (closed loop);
//! - `rate`: a fixed total rate (open loop); latency counts from each message's intended send time,
//!   which corrects for coordinated omission;
//! - `connect`: opens N connections as fast as allowed: handshakes/s and handshake latency;
//! - `hold`: opens N connections and holds them idle; survivors, and server memory per connection
//!   (with `final_echo`, every connection answers one echo at the end; with `server_drain`, the
//!   server is then sent SIGTERM and every connection must get its 1001); the keep-alive pings
//!   received are counted second by second;
//! - `testecho`: the classic C10k scenario: N clients on a ramp, each sending a message after a
//!   delay and reading its echo, three times, then leaving.
//! - `slowloris`: N connections that send a handshake request one byte per `--delay` and never
//!   finish it; each must be answered 408 and closed (the server's handshake timeout), and is
//!   replaced by a new one until the end of the window. Run it next to an echo or rate run to see
//!   what the attack costs the well-behaved clients.
//!
//! A `wss://` URL runs every scenario over TLS (rustls, with the settings of `tls`): the
//! handshake latency then includes the TLS handshake, full ones unless `tls_resume` is set, and
//! the report says how many handshakes resumed a session.
//!
//! With `deflate`, every connection offers permessage-deflate and sends its messages compressed
//! (each thread keeps one [`DeflatePool`](c10k::proto::DeflatePool), as a server shard does);
//! `payload_kind` JSON-like text makes the ratio a realistic one.
//!
//! With the server's pid, the server's CPU time over the measured window gives the CPU cost per
//! message, the figure that ranks servers when the generator, not the server, saturates first.
//! The pid may be a supervisor's (`c10k serve --processes P`): its workers are measured with it.
//!
//! One process may hold only so many file descriptors, so a large run is spread over several
//! processes by [`run_processes`] (`c10k bench --processes P`); see [`multi`] for the protocol
//! that keeps their measured windows together and their figures exact.

mod driver;
pub mod multi;
mod options;
pub mod page;
pub mod procfs;
mod report;
mod sys;
pub mod timeline;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use c10k::client::WsUrl;

#[cfg(feature = "tls")]
pub(crate) use driver::server_name as tls_server_name;
pub use multi::run_processes;
pub use options::{DEFAULT_MAX_PENDING, FanoutProtocol, Options, PayloadKind, Scenario, parse_sources};
pub(crate) use report::json_string;
pub use report::{Percentiles, Report, ServerCpu, add_buckets, histogram_buckets, latency_histogram};
pub(crate) use sys::connect_with;
pub use sys::signal;

/// How many file descriptors a run of `connections` needs beyond the connections themselves.
const FD_MARGIN: u64 = 64;

/// The descriptor limit of this process, raised to the hard limit where allowed.
fn fd_limit() -> u64 {
    c10k::raise_fd_limit()
        .or_else(|_| c10k::fd_limits().map(|(s, _)| s))
        .unwrap_or(1024)
}

/// The most connections one process may open, within its descriptor limit.
pub fn max_connections_per_process() -> usize {
    usize::try_from(fd_limit().saturating_sub(FD_MARGIN).max(1)).unwrap_or(usize::MAX)
}

/// Checks that this process may open `connections` sockets, with an explanation if not.
pub fn check_fd_limit(connections: usize) -> Result<(), String> {
    let soft = fd_limit();
    let need = connections as u64 + FD_MARGIN;
    if need > soft {
        let per = soft.saturating_sub(FD_MARGIN).max(1);
        let procs = (connections as u64).div_ceil(per);
        return Err(format!(
            "{connections} connections need about {need} file descriptors, but this process may open at most \
             {soft} (ulimit -n; the hard limit cannot be raised from here). Spread the run over {procs} or more \
             processes with `--processes {procs}` (each process then opens about {} connections, from its own \
             source address 127.0.0.2, 127.0.0.3, ... unless --source is given); the server may need \
             `c10k serve --processes` too",
            (connections as u64).div_ceil(procs)
        ));
    }
    Ok(())
}

/// Where a process of a coordinated run waits for its coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Every connection is open or has failed; the run goes on (warm-up, window) at the go.
    Connected,
    /// hold with the server's drain: the final echoes are in; the connections wait for the
    /// server's 1001 once the coordinator has told the server to stop.
    Echoed,
}

impl Stage {
    /// The word a coordinated process prints, before the number of connections open.
    pub fn word(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Echoed => "echoed",
        }
    }

    /// The line the coordinator answers with.
    pub fn answer(self) -> &'static str {
        match self {
            Self::Connected => "go",
            Self::Echoed => "drain",
        }
    }
}

/// A coordinated process's gate: told the stage and the connections open, returns when the
/// coordinator says so (an error: the coordinator is gone).
pub type Gate<'a> = &'a mut dyn FnMut(Stage, u64) -> Result<(), String>;

/// Runs a scenario and returns its report. Bounded in time: it returns even if the server hangs.
pub fn run(opts: &Options) -> Result<Report, String> {
    run_inner(opts, None)
}

/// Runs a scenario as one process of several ([`run_processes`]): once every connection is open
/// (or has failed), `gate` is called with [`Stage::Connected`] and the number open, and the run
/// goes on (warm-up, window, testecho's last closes) only when it returns. With the server's
/// drain (hold), it is called again with [`Stage::Echoed`] once the final echoes are in, and the
/// connections wait for the server's 1001 when it returns. An error from `gate` (the
/// coordinator is gone) closes the connections and ends the run with that error.
///
/// While the gate is closed nothing closes a connection on purpose: testecho clients that have
/// finished their rounds stay open until it returns, so the counts given to the gates of every
/// process were open at the same time. The "N clients are connected!" line is the coordinator's
/// to print.
pub fn run_coordinated(opts: &Options, gate: Gate<'_>) -> Result<Report, String> {
    run_inner(opts, Some(gate))
}

fn run_inner(opts: &Options, mut gate: Option<Gate<'_>>) -> Result<Report, String> {
    let url = WsUrl::parse(&opts.url).map_err(|e| e.to_string())?;
    let addr = url.socket_addr().map_err(|e| e.to_string())?;
    let publish_url = match opts.publish_url.as_deref() {
        Some(u) => Some(WsUrl::parse(u).map_err(|e| e.to_string())?),
        None => None,
    };
    #[cfg(feature = "tls")]
    let (tls_name, publish_tls_name) = (
        tls_name(opts, &url)?,
        publish_url
            .as_ref()
            .map(|u| tls_name(opts, u))
            .transpose()?
            .flatten(),
    );
    #[cfg(not(feature = "tls"))]
    if let Some(u) = std::iter::once(&url).chain(&publish_url).find(|u| u.secure) {
        return Err(format!(
            "wss://{}:{}: this build has no TLS (the tls feature)",
            u.host, u.port
        ));
    }
    check_fd_limit(opts.connections)?;
    if opts.server_drain && (opts.scenario != Scenario::Hold || (gate.is_none() && opts.server_pid.is_none()))
    {
        return Err(
            "the server's drain ends a hold run, and needs the server's pid to send it SIGTERM".to_owned(),
        );
    }
    let threads = opts.threads.clamp(1, opts.connections.max(1));
    let shared = Arc::new(driver::RunState {
        opts: Options {
            threads,
            ..opts.clone()
        },
        addr,
        publish_addr: match &publish_url {
            Some(u) => Some(u.socket_addr().map_err(|e| e.to_string())?),
            None => None,
        },
        host: url.host_header(),
        target: url.target.clone(),
        connected: Barrier::new(threads + 1),
        go: Barrier::new(threads + 1),
        echoed: Barrier::new(threads + 1),
        drain: Barrier::new(threads + 1),
        coordinated: gate.is_some(),
        released: AtomicBool::new(false),
        abort: AtomicBool::new(false),
        settled: AtomicUsize::new(0),
        open_now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        epoch: Instant::now(),
        published: std::sync::atomic::AtomicU64::new(u64::MAX),
        progress: (0..threads).map(|_| timeline::Progress::default()).collect(),
        #[cfg(feature = "tls")]
        tls_name,
        #[cfg(feature = "tls")]
        publish_tls_name,
    });
    let rss_before = opts
        .server_pid
        .and_then(|p| procfs::sample(Some(p)))
        .map(|s| s.rss_bytes);
    let started = Instant::now();
    let self_before = procfs::sample(None);
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        // Client i belongs to thread i % threads, so a ramp is spread over every thread.
        let clients: Vec<usize> = (t..opts.connections).step_by(threads).collect();
        let d = driver::Driver::new(Arc::clone(&shared), t, clients).map_err(|e| e.to_string())?;
        let h = std::thread::Builder::new()
            .name(format!("c10k-bench-{t}"))
            .spawn(move || d.run())
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }

    let mut report = Report {
        scenario: opts.scenario.name(),
        connections: opts.connections,
        payload: opts.payload,
        binary: opts.binary,
        threads,
        saturated: "neither",
        tls: url.secure,
        ..Report::default()
    };
    let (mut cpu_start, mut cpu_end) = (ServerCpu::default(), ServerCpu::default());
    let (mut self_start, mut self_end) = (None, None);
    let mut window = Duration::ZERO;
    let mut gate_error = None;
    if opts.scenario == Scenario::TestEcho {
        if let Some(gate) = gate.as_mut() {
            // Wait until every client is open or has failed; finished clients are held meanwhile.
            let deadline = started + opts.ramp + opts.connect_timeout + opts.delay * (opts.rounds + 1);
            while shared.settled.load(Ordering::Acquire) < opts.connections
                && !handles.iter().all(|h| h.is_finished())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            gate_error = gate(Stage::Connected, shared.open_now.load(Ordering::Acquire) as u64).err();
            if gate_error.is_some() {
                shared.abort.store(true, Ordering::Release);
            }
            shared.released.store(true, Ordering::Release);
        }
    } else {
        shared.connected.wait();
        report.connect_s = started.elapsed().as_secs_f64();
        if opts.scenario == Scenario::Connect {
            window = started.elapsed();
            report.handshakes_per_s =
                shared.peak.load(Ordering::Relaxed) as f64 / window.as_secs_f64().max(1e-9);
        }
        if let Some(gate) = gate.as_mut() {
            gate_error = gate(Stage::Connected, shared.open_now.load(Ordering::Acquire) as u64).err();
            if gate_error.is_some() {
                shared.abort.store(true, Ordering::Release);
            }
        }
        // The drivers start their warm-up when they pass this barrier too.
        shared.go.wait();
        let t0 = Instant::now();
        if opts.scenario != Scenario::Connect && gate_error.is_none() {
            report.server_rss_after = opts
                .server_pid
                .and_then(|p| procfs::sample(Some(p)))
                .map(|s| s.rss_bytes);
            std::thread::sleep(opts.warmup.saturating_sub(t0.elapsed()));
            cpu_start = ServerCpu::sample(opts.server_pid);
            self_start = procfs::sample(None);
            let w0 = Instant::now();
            report.timeline = timeline::sample(
                w0,
                t0 + opts.warmup + opts.duration,
                timeline::interval_for(opts.duration),
                || timeline::Point {
                    messages: timeline::Progress::total(&shared.progress),
                    server_cpu_us: opts
                        .server_pid
                        .and_then(|p| procfs::sample(Some(p)))
                        .map(|s| s.cpu_us),
                    generator_cpu_us: procfs::sample(None).map(|s| s.cpu_us),
                },
            );
            window = w0.elapsed();
            cpu_end = ServerCpu::sample(opts.server_pid);
            self_end = procfs::sample(None);
        }
        if opts.server_drain && gate_error.is_none() {
            // Every thread has its final echoes: now the server drains.
            shared.echoed.wait();
            let open = shared.open_now.load(Ordering::Acquire) as u64;
            let told = match (gate.as_mut(), opts.server_pid) {
                (Some(gate), _) => gate(Stage::Echoed, open),
                (None, Some(pid)) => {
                    report.drain_started_unix = Some(unix_now());
                    signal(pid, libc::SIGTERM).map_err(|e| format!("cannot tell the server to drain: {e}"))
                }
                (None, None) => Err("no server to drain".to_owned()),
            };
            if let Err(e) = told {
                gate_error = Some(e);
                shared.abort.store(true, Ordering::Release);
            }
            shared.drain.wait();
        }
    }
    let mut results = Vec::with_capacity(threads);
    for h in handles {
        results.push(h.join().map_err(|_| "a load thread panicked".to_owned())?);
    }
    if let Some(e) = gate_error {
        return Err(e);
    }
    if opts.scenario == Scenario::TestEcho {
        window = started.elapsed();
        self_start = self_before;
        self_end = procfs::sample(None);
    }

    let mut latency = latency_histogram();
    let mut hs = latency_histogram();
    let mut pings = std::collections::BTreeMap::new();
    for r in &results {
        let _ = latency.add(&r.latency);
        let _ = hs.add(&r.handshake_latency);
        report.messages += r.messages;
        report.bytes_per_s += r.bytes as f64;
        report.connected += r.connected;
        report.survivors += r.survivors;
        report.errors += r.errors;
        report.wrong_echoes += r.wrong_echoes;
        report.late_sends += r.late_sends;
        report.max_send_lag_us = report.max_send_lag_us.max(r.max_lag_ns as f64 / 1000.0);
        report.completed += r.completed_clients;
        report.tls_resumed += r.tls_resumed;
        report.going_away = opts
            .server_drain
            .then(|| report.going_away.unwrap_or(0) + r.going_away);
        report.drain_s = opts
            .server_drain
            .then(|| report.drain_s.unwrap_or(0.0).max(r.drain.as_secs_f64()));
        for (&second, &n) in &r.pings {
            *pings.entry(second).or_insert(0) += n;
        }
        if report.tls_params.is_empty() {
            report.tls_params.clone_from(&r.tls_params);
        }
        for e in &r.error_samples {
            if report.error_samples.len() < 10 {
                report.error_samples.push(e.clone());
            }
        }
    }
    report.pings_per_s = pings.into_iter().collect();
    report.peak_concurrent = shared.peak.load(Ordering::Relaxed) as u64;
    report.latency = Percentiles::of(&latency);
    report.handshake_latency = Percentiles::of(&hs);
    report.latency_hist = histogram_buckets(&latency);
    report.handshake_hist = histogram_buckets(&hs);
    let secs = window.as_secs_f64().max(1e-9);
    report.window_s = window.as_secs_f64();
    if matches!(opts.scenario, Scenario::Hold | Scenario::Slowloris) {
        report.window_s = opts.duration.as_secs_f64();
    }
    report.messages_per_s = report.messages as f64 / secs;
    report.bytes_per_s /= secs;
    if let (Some(a), Some(b)) = (self_start, self_end) {
        report.generator_cores = (b.cpu_us.saturating_sub(a.cpu_us)) as f64 / 1e6 / secs;
    }
    report.set_server_cpu(&cpu_start, &cpu_end, secs);
    report.server_rss_before = rss_before;
    report.set_bytes_per_connection();
    Ok(report)
}

/// Now, in seconds since the Unix epoch.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// wss: the name `url`'s server must have a certificate for (None for `ws://`); the settings
/// must be there.
#[cfg(feature = "tls")]
fn tls_name(opts: &Options, url: &WsUrl) -> Result<Option<rustls::pki_types::ServerName<'static>>, String> {
    if !url.secure {
        return Ok(None);
    }
    if opts.tls.is_none() {
        return Err(format!(
            "wss://{}:{}: TLS settings are needed (Options::tls; c10k bench: --tls-ca FILE or --insecure)",
            url.host, url.port
        ));
    }
    driver::server_name(&url.host).map(Some)
}
