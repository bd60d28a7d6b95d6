//! The load generator behind `c10k bench`: scenarios, measurement, and the report.
//!
//! Each thread runs its own mio event loop over its share of the connections (see
//! [`driver`](self)), using the client role of the same sans-I/O core as the server. Masking keys
//! come from a fast non-cryptographic generator (xorshift64*), fresh for every frame: a load
//! generator needs keys that vary, not keys an attacker cannot guess. (The public client,
//! [`crate::client`], draws its keys from the operating system's CSPRNG.)
//!
//! Scenarios:
//! - `echo`: every connection keeps K messages in flight (closed loop);
//! - `rate`: a fixed total rate (open loop); latency counts from each message's intended send time,
//!   which corrects for coordinated omission;
//! - `connect`: opens N connections as fast as allowed: handshakes/s and handshake latency;
//! - `hold`: opens N connections and holds them idle; survivors, and server memory per connection;
//! - `testecho`: the classic C10k scenario: N clients on a ramp, each sending a message after a
//!   delay and reading its echo, three times, then leaving.
//!
//! With the server's pid, the server's CPU time over the measured window gives the CPU cost per
//! message, the figure that ranks servers when the generator, not the server, saturates first.

mod driver;
pub mod procfs;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::WsUrl;
use crate::engine::sys;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Closed loop: K messages in flight per connection.
    Echo,
    /// Open loop at a fixed total rate.
    Rate,
    /// Handshakes per second.
    Connect,
    /// Idle connections held open.
    Hold,
    /// The classic C10k scenario.
    TestEcho,
}

impl Scenario {
    /// The scenario's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Rate => "rate",
            Self::Connect => "connect",
            Self::Hold => "hold",
            Self::TestEcho => "testecho",
        }
    }
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// `ws://host:port/path`.
    pub url: String,
    /// Number of connections.
    pub connections: usize,
    /// Message payload size in bytes.
    pub payload: usize,
    /// Binary messages instead of text.
    pub binary: bool,
    /// Messages in flight per connection (echo).
    pub in_flight: usize,
    /// Measured window (echo, rate), or how long to hold (hold).
    pub duration: Duration,
    /// Time before the window (echo, rate).
    pub warmup: Duration,
    /// Total messages per second (rate).
    pub rate: f64,
    /// Load-generating threads.
    pub threads: usize,
    /// Source addresses to spread connections over (more ephemeral ports).
    pub sources: Vec<IpAddr>,
    /// The server's process id, to read its CPU time and memory.
    pub server_pid: Option<u32>,
    /// testecho: time over which clients connect.
    pub ramp: Duration,
    /// testecho: wait before each message.
    pub delay: Duration,
    /// testecho: messages per client.
    pub rounds: u32,
    /// Time allowed to open all connections.
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scenario: Scenario::Echo,
            url: "ws://127.0.0.1:9001/".to_owned(),
            connections: 100,
            payload: 20,
            binary: false,
            in_flight: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            rate: 10_000.0,
            threads: 1,
            sources: Vec::new(),
            server_pid: None,
            ramp: Duration::from_secs(120),
            delay: Duration::from_secs(60),
            rounds: 3,
            connect_timeout: Duration::from_secs(60),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Connections asked for.
    pub connections: usize,
    /// Connections that completed their handshake.
    pub connected: u64,
    /// The most connections open at once.
    pub peak_concurrent: u64,
    /// Payload size.
    pub payload: usize,
    /// Binary or text.
    pub binary: bool,
    /// Measured window in seconds.
    pub window_s: f64,
    /// Echoes received in the window.
    pub messages: u64,
    /// Messages per second in the window.
    pub messages_per_s: f64,
    /// Payload bytes per second in the window.
    pub bytes_per_s: f64,
    /// Round-trip latency.
    pub latency: Percentiles,
    /// Handshake latency (connect to 101).
    pub handshake_latency: Percentiles,
    /// Handshakes per second (connect).
    pub handshakes_per_s: f64,
    /// Connections still open at the end (hold, echo, rate).
    pub survivors: u64,
    /// Clients that finished all rounds (testecho).
    pub completed: u64,
    /// Errors of any kind.
    pub errors: u64,
    /// Replies that differed from what was sent.
    pub wrong_echoes: u64,
    /// The first few errors.
    pub error_samples: Vec<String>,
    /// Server CPU time over the window, in microseconds.
    pub server_cpu_us: Option<u64>,
    /// Server CPU per echoed message, in microseconds.
    pub server_cpu_us_per_msg: Option<f64>,
    /// Server CPU use over the window, in cores (1.0 = one core busy).
    pub server_cores: Option<f64>,
    /// The busiest server thread's CPU use, in cores.
    pub server_busiest_thread: Option<f64>,
    /// This generator's CPU use over the window, in cores.
    pub generator_cores: f64,
    /// Generator threads.
    pub threads: usize,
    /// Server RSS before the connections were opened.
    pub server_rss_before: Option<u64>,
    /// Server RSS with every connection open.
    pub server_rss_after: Option<u64>,
    /// (after - before) / connections.
    pub server_bytes_per_connection: Option<f64>,
    /// Which side saturated: "server", "generator" or "neither".
    pub saturated: &'static str,
}

impl Report {
    /// Whether the run had no error.
    pub fn ok(&self) -> bool {
        self.errors == 0 && self.wrong_echoes == 0
    }

    /// The report as a human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let kind = if self.binary { "binary" } else { "text" };
        let _ = writeln!(s, "scenario            {}", self.scenario);
        let _ = writeln!(
            s,
            "connections         {} asked, {} connected, peak {} at once",
            self.connections, self.connected, self.peak_concurrent
        );
        match self.scenario {
            "connect" => {
                let _ = writeln!(s, "handshakes/s        {:.0}", self.handshakes_per_s);
                let _ = writeln!(s, "handshake latency   {}", fmt_pct(&self.handshake_latency));
            }
            "hold" => {
                let _ = writeln!(s, "held for            {:.1} s", self.window_s);
                let _ = writeln!(s, "survivors           {}", self.survivors);
            }
            "testecho" => {
                let _ = writeln!(s, "completed clients   {}", self.completed);
                let _ = writeln!(s, "round trip          {}", fmt_pct(&self.latency));
            }
            _ => {
                let _ = writeln!(s, "payload             {} B {kind}", self.payload);
                let _ = writeln!(s, "window              {:.1} s", self.window_s);
                let _ = writeln!(
                    s,
                    "messages            {} ({:.0} msg/s, {:.1} MB/s)",
                    self.messages,
                    self.messages_per_s,
                    self.bytes_per_s / 1e6
                );
                let _ = writeln!(s, "round trip          {}", fmt_pct(&self.latency));
            }
        }
        if let Some(cpu) = self.server_cpu_us_per_msg {
            let _ = writeln!(s, "server CPU          {cpu:.2} µs per message");
        }
        if let (Some(c), Some(b)) = (self.server_cores, self.server_busiest_thread) {
            let _ = writeln!(
                s,
                "server load         {:.0}% of a core (busiest thread {:.0}%)",
                c * 100.0,
                b * 100.0
            );
        }
        let _ = writeln!(
            s,
            "generator load      {:.0}% of a core over {} thread{}",
            self.generator_cores * 100.0,
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        );
        if self.server_cores.is_some() {
            let _ = writeln!(s, "saturated           {}", self.saturated);
        }
        if let (Some(b), Some(a)) = (self.server_rss_before, self.server_rss_after) {
            let _ = writeln!(s, "server RSS          {:.1} MiB -> {:.1} MiB", mib(b), mib(a));
        }
        if let Some(b) = self.server_bytes_per_connection {
            let _ = writeln!(s, "server memory       {b:.0} bytes per connection");
        }
        let _ = writeln!(
            s,
            "errors              {} ({} wrong echoes)",
            self.errors, self.wrong_echoes
        );
        for e in &self.error_samples {
            let _ = writeln!(s, "  {e}");
        }
        s
    }

    /// The report as one JSON object.
    pub fn json(&self) -> String {
        fn pct(p: &Percentiles) -> String {
            format!(
                "{{\"count\":{},\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1}}}",
                p.count, p.p50, p.p90, p.p99, p.p999, p.max
            )
        }
        fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or("null".to_owned(), |v| v.to_string())
        }
        let samples: Vec<String> = self.error_samples.iter().map(|e| json_string(e)).collect();
        format!(
            concat!(
                "{{\"scenario\":\"{}\",\"connections\":{},\"connected\":{},\"peak_concurrent\":{},",
                "\"payload\":{},\"binary\":{},\"window_s\":{:.3},\"messages\":{},\"messages_per_s\":{:.1},",
                "\"bytes_per_s\":{:.1},\"latency\":{},\"handshake_latency\":{},\"handshakes_per_s\":{:.1},",
                "\"survivors\":{},\"completed\":{},\"errors\":{},\"wrong_echoes\":{},\"error_samples\":[{}],",
                "\"server_cpu_us\":{},\"server_cpu_us_per_msg\":{},\"server_cores\":{},",
                "\"server_busiest_thread\":{},\"generator_cores\":{:.3},\"threads\":{},",
                "\"server_rss_before\":{},\"server_rss_after\":{},\"server_bytes_per_connection\":{},",
                "\"saturated\":\"{}\"}}"
            ),
            self.scenario,
            self.connections,
            self.connected,
            self.peak_concurrent,
            self.payload,
            self.binary,
            self.window_s,
            self.messages,
            self.messages_per_s,
            self.bytes_per_s,
            pct(&self.latency),
            pct(&self.handshake_latency),
            self.handshakes_per_s,
            self.survivors,
            self.completed,
            self.errors,
            self.wrong_echoes,
            samples.join(","),
            opt(self.server_cpu_us),
            opt(self.server_cpu_us_per_msg.map(|v| format!("{v:.3}"))),
            opt(self.server_cores.map(|v| format!("{v:.3}"))),
            opt(self.server_busiest_thread.map(|v| format!("{v:.3}"))),
            self.generator_cores,
            self.threads,
            opt(self.server_rss_before),
            opt(self.server_rss_after),
            opt(self.server_bytes_per_connection.map(|v| format!("{v:.1}"))),
            self.saturated,
        )
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn fmt_pct(p: &Percentiles) -> String {
    if p.count == 0 {
        return "no samples".to_owned();
    }
    format!(
        "p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs ({} samples)",
        p.p50, p.p90, p.p99, p.p999, p.max, p.count
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How many file descriptors a run of `connections` needs beyond the connections themselves.
const FD_MARGIN: u64 = 64;

/// Checks that this process may open `connections` sockets, with an explanation if not.
pub fn check_fd_limit(connections: usize) -> Result<(), String> {
    let soft = sys::raise_fd_limit()
        .or_else(|_| sys::fd_limits().map(|(s, _)| s))
        .unwrap_or(1024);
    let need = connections as u64 + FD_MARGIN;
    if need > soft {
        let per = soft.saturating_sub(FD_MARGIN).max(1);
        let procs = (connections as u64).div_ceil(per);
        return Err(format!(
            "{connections} connections need about {need} file descriptors, but this process may open at most \
             {soft} (ulimit -n; the hard limit cannot be raised from here). Split the run over {procs} or more \
             processes of at most {per} connections each (for example {procs} `c10k bench` commands with \
             --connections {} each, each with its own --source address such as 127.0.0.2, 127.0.0.3, ...)",
            (connections as u64).div_ceil(procs)
        ));
    }
    Ok(())
}

/// Runs a scenario and returns its report. Bounded in time: it returns even if the server hangs.
pub fn run(opts: &Options) -> Result<Report, String> {
    let url = WsUrl::parse(&opts.url).map_err(|e| e.to_string())?;
    let addr = url.socket_addr().map_err(|e| e.to_string())?;
    check_fd_limit(opts.connections)?;
    let threads = opts.threads.clamp(1, opts.connections.max(1));
    let shared = Arc::new(driver::Shared {
        opts: Options {
            threads,
            ..opts.clone()
        },
        addr,
        host: url.host_header(),
        target: url.target.clone(),
        connected: Barrier::new(threads + 1),
        open_now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
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
        ..Report::default()
    };
    let (mut cpu_start, mut cpu_end, mut self_start, mut self_end) = (None, None, None, None);
    let mut window = Duration::ZERO;
    let mut threads_start = Vec::new();
    if opts.scenario != Scenario::TestEcho {
        shared.connected.wait();
        let t0 = Instant::now();
        if opts.scenario == Scenario::Connect {
            let elapsed = t0.duration_since(started).as_secs_f64();
            window = t0.duration_since(started);
            cpu_start = None;
            report.handshakes_per_s =
                shared.peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / elapsed.max(1e-9);
        } else {
            report.server_rss_after = opts
                .server_pid
                .and_then(|p| procfs::sample(Some(p)))
                .map(|s| s.rss_bytes);
            std::thread::sleep(opts.warmup.saturating_sub(t0.elapsed()));
            cpu_start = opts.server_pid.and_then(|p| procfs::sample(Some(p)));
            threads_start = opts
                .server_pid
                .map(|p| procfs::thread_cpu(Some(p)))
                .unwrap_or_default();
            self_start = procfs::sample(None);
            let w0 = Instant::now();
            std::thread::sleep((opts.warmup + opts.duration).saturating_sub(t0.elapsed()));
            window = w0.elapsed();
            cpu_end = opts.server_pid.and_then(|p| procfs::sample(Some(p)));
            self_end = procfs::sample(None);
        }
    }
    let mut results = Vec::with_capacity(threads);
    for h in handles {
        results.push(h.join().map_err(|_| "a load thread panicked".to_owned())?);
    }
    if opts.scenario == Scenario::TestEcho {
        window = started.elapsed();
        self_start = self_before;
        self_end = procfs::sample(None);
    }

    let mut latency = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).map_err(|e| e.to_string())?;
    let mut hs = latency.clone();
    for r in &results {
        let _ = latency.add(&r.latency);
        let _ = hs.add(&r.handshake_latency);
        report.messages += r.messages;
        report.bytes_per_s += r.bytes as f64;
        report.connected += r.connected;
        report.survivors += r.survivors;
        report.errors += r.errors;
        report.wrong_echoes += r.wrong_echoes;
        report.completed += r.completed_clients;
        for e in &r.error_samples {
            if report.error_samples.len() < 10 {
                report.error_samples.push(e.clone());
            }
        }
    }
    report.peak_concurrent = shared.peak.load(std::sync::atomic::Ordering::Relaxed) as u64;
    report.latency = Percentiles::of(&latency);
    report.handshake_latency = Percentiles::of(&hs);
    let secs = window.as_secs_f64().max(1e-9);
    report.window_s = window.as_secs_f64();
    if opts.scenario == Scenario::Hold {
        report.window_s = opts.duration.as_secs_f64();
    }
    report.messages_per_s = report.messages as f64 / secs;
    report.bytes_per_s /= secs;
    if let (Some(a), Some(b)) = (self_start, self_end) {
        report.generator_cores = (b.cpu_us.saturating_sub(a.cpu_us)) as f64 / 1e6 / secs;
    }
    if let (Some(a), Some(b)) = (cpu_start, cpu_end) {
        let used = b.cpu_us.saturating_sub(a.cpu_us);
        report.server_cpu_us = Some(used);
        report.server_cores = Some(used as f64 / 1e6 / secs);
        if report.messages > 0 {
            report.server_cpu_us_per_msg = Some(used as f64 / report.messages as f64);
        }
        let end_threads = opts
            .server_pid
            .map(|p| procfs::thread_cpu(Some(p)))
            .unwrap_or_default();
        let busiest = end_threads
            .iter()
            .map(|(tid, cpu)| {
                let before = threads_start
                    .iter()
                    .find(|(t, _)| t == tid)
                    .map_or(0, |(_, c)| *c);
                cpu.saturating_sub(before)
            })
            .max()
            .unwrap_or(0);
        report.server_busiest_thread = Some(busiest as f64 / 1e6 / secs);
        let gen_per_thread = report.generator_cores / threads as f64;
        report.saturated = if busiest as f64 / 1e6 / secs >= 0.9 {
            "server"
        } else if gen_per_thread >= 0.9 {
            "generator"
        } else {
            "neither"
        };
    }
    report.server_rss_before = rss_before;
    if opts.scenario == Scenario::Hold
        && let (Some(b), Some(a)) = (rss_before, report.server_rss_after)
        && report.connected > 0
    {
        report.server_bytes_per_connection = Some((a as f64 - b as f64) / report.connected as f64);
    }
    if opts.scenario == Scenario::Hold {
        std::hint::black_box(&cpu_start);
    }
    Ok(report)
}

/// Parses source addresses given as a list of (comma-separated) IP addresses.
pub fn parse_sources(list: &[String]) -> Result<Vec<IpAddr>, String> {
    list.iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().map_err(|_| format!("not an IP address: {s:?}")))
        .collect()
}
