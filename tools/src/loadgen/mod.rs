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
//!   (with `final_echo`, every connection answers one echo at the end);
//! - `testecho`: the classic C10k scenario: N clients on a ramp, each sending a message after a
//!   delay and reading its echo, three times, then leaving.
//! - `slowloris`: N connections that send a handshake request one byte per `--delay` and never
//!   finish it; each must be answered 408 and closed (the server's handshake timeout), and is
//!   replaced by a new one until the end of the window. Run it next to an echo or rate run to see
//!   what the attack costs the well-behaved clients.
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
pub mod procfs;
mod sys;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use c10k::client::WsUrl;

pub use multi::run_processes;

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
    /// One publisher, N subscribers of one topic: deliveries/s and publish-to-delivery latency.
    Fanout,
    /// Connections that trickle an endless handshake request and must be answered 408 and closed.
    Slowloris,
}

/// What the messages of the echo, rate and hold scenarios contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// The letters a to z over and over, with the sequence number at the start.
    Pattern,
    /// JSON-like text: records whose numbers and names change from record to record, with the
    /// sequence number at the start. It compresses about as well as real JSON (3.4:1 at 1 KiB
    /// with zlib's level 6), where the pattern compresses far better than any real payload.
    Json,
}

impl PayloadKind {
    /// The kind's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pattern => "pattern",
            Self::Json => "json",
        }
    }
}

/// How the fan-out scenario subscribes and publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutProtocol {
    /// c10k's pubsub mode: `sub fanout`, then `pub fanout PAYLOAD`; subscribers get `fanout PAYLOAD`.
    Topics,
    /// A broadcast server that sends every `pub:`-prefixed message to every client as it came.
    Prefix,
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
            Self::Fanout => "fanout",
            Self::Slowloris => "slowloris",
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
    /// testecho: wait before each message; slowloris: wait between two bytes.
    pub delay: Duration,
    /// testecho: messages per client.
    pub rounds: u32,
    /// Time allowed to open all connections.
    pub connect_timeout: Duration,
    /// fanout: how the server is asked to subscribe and publish.
    pub fanout_protocol: FanoutProtocol,
    /// hold: at the end, every connection sends one message and waits for its echo (counted in
    /// `messages`; a missing echo is an error).
    pub final_echo: bool,
    /// hold: every connection exchanges one message as soon as it is open, before the server's
    /// memory is read (so that what a first message leaves behind is counted).
    pub first_echo: bool,
    /// Offer permessage-deflate (the default client policy: no context takeover either way);
    /// a server that declines it fails the connection. Messages are then sent compressed (from
    /// 64 bytes) and the echoes inflated, with one `DeflatePool` per thread.
    pub deflate: bool,
    /// fanout: the publisher connects here instead (another node), so that the latency measured
    /// is that of a publish crossing nodes.
    pub publish_url: Option<String>,
    /// What the messages contain.
    pub payload_kind: PayloadKind,
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
            fanout_protocol: FanoutProtocol::Topics,
            final_echo: false,
            first_echo: false,
            deflate: false,
            publish_url: None,
            payload_kind: PayloadKind::Pattern,
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
    /// Seconds from the start until every connection was open (or had failed).
    pub connect_s: f64,
    /// Connections still open at the end (hold, echo, rate).
    pub survivors: u64,
    /// Clients that finished all rounds (testecho).
    pub completed: u64,
    /// Errors of any kind.
    pub errors: u64,
    /// Replies that differed from what was sent.
    pub wrong_echoes: u64,
    /// Open loop (rate, fanout): sends made more than 1 ms after their intended time.
    pub late_sends: u64,
    /// Open loop: the largest lag of a send behind its intended time, in microseconds.
    pub max_send_lag_us: f64,
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
    /// The round-trip latency histogram's recorded buckets: (highest value of the bucket in
    /// nanoseconds, count), ascending. Enough to merge runs into exact percentiles.
    pub latency_hist: Vec<(u64, u64)>,
    /// The handshake latency histogram's recorded buckets, like `latency_hist`.
    pub handshake_hist: Vec<(u64, u64)>,
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
        if self.scenario != "testecho" {
            let _ = writeln!(s, "time to connect     {:.2} s", self.connect_s);
        }
        match self.scenario {
            "connect" => {
                let _ = writeln!(s, "handshakes/s        {:.0}", self.handshakes_per_s);
                let _ = writeln!(s, "handshake latency   {}", fmt_pct(&self.handshake_latency));
            }
            "hold" => {
                let _ = writeln!(s, "held for            {:.1} s", self.window_s);
                let _ = writeln!(s, "survivors           {}", self.survivors);
                if self.messages > 0 {
                    let _ = writeln!(
                        s,
                        "final echoes        {} ({})",
                        self.messages,
                        fmt_pct(&self.latency)
                    );
                }
            }
            "testecho" => {
                let _ = writeln!(s, "completed clients   {}", self.completed);
                let _ = writeln!(s, "round trip          {}", fmt_pct(&self.latency));
            }
            "slowloris" => {
                let _ = writeln!(s, "trickled for        {:.1} s", self.window_s);
                let _ = writeln!(s, "answered 408        {} (and closed)", self.completed);
                let _ = writeln!(s, "time to the 408     {}", fmt_pct(&self.latency));
                let _ = writeln!(s, "trickling at end    {}", self.survivors);
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
                if matches!(self.scenario, "rate" | "fanout") {
                    let _ = writeln!(
                        s,
                        "send schedule       {} sends more than 1 ms late (largest lag {:.0} µs)",
                        self.late_sends, self.max_send_lag_us
                    );
                }
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

    /// The report as one JSON object, with the recorded histogram buckets (`latency_hist` and
    /// `handshake_hist`, arrays of `[value_ns, count]`) that a coordinator merges.
    pub fn json_with_histograms(&self) -> String {
        let mut s = self.json();
        s.pop();
        let _ = write!(
            s,
            ",\"latency_hist\":{},\"handshake_hist\":{}}}",
            buckets_json(&self.latency_hist),
            buckets_json(&self.handshake_hist)
        );
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
                "\"connect_s\":{:.3},",
                "\"survivors\":{},\"completed\":{},\"errors\":{},\"wrong_echoes\":{},\"error_samples\":[{}],",
                "\"late_sends\":{},\"max_send_lag_us\":{:.1},",
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
            self.connect_s,
            self.survivors,
            self.completed,
            self.errors,
            self.wrong_echoes,
            samples.join(","),
            self.late_sends,
            self.max_send_lag_us,
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

fn buckets_json(buckets: &[(u64, u64)]) -> String {
    let mut s = String::with_capacity(buckets.len() * 16 + 2);
    s.push('[');
    for (i, (v, n)) in buckets.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "[{v},{n}]");
    }
    s.push(']');
    s
}

/// The histogram every latency is recorded in: 1 ns to 100 s, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("constant bounds that the constructor accepts")
}

/// A histogram's recorded buckets as (highest equivalent value, count), ascending.
///
/// Recording each pair back into a histogram of the same bounds and precision ([`add_buckets`])
/// puts every count in the bucket it came from, so the percentiles of merged buckets are exactly
/// those of the merged histograms.
pub fn histogram_buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Records buckets from [`histogram_buckets`] into `h`.
pub fn add_buckets(h: &mut Histogram<u64>, buckets: &[(u64, u64)]) -> Result<(), String> {
    for &(value, count) in buckets {
        h.record_n(value, count)
            .map_err(|e| format!("histogram bucket {value} out of range: {e:?}"))?;
    }
    Ok(())
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

/// Runs a scenario and returns its report. Bounded in time: it returns even if the server hangs.
pub fn run(opts: &Options) -> Result<Report, String> {
    run_inner(opts, None)
}

/// Runs a scenario as one process of several ([`run_processes`]): once every connection is open
/// (or has failed), `gate` is called with the number open, and the run goes on (warm-up, window,
/// testecho's last closes) only when it returns. An error from `gate` (the coordinator is gone)
/// closes the connections and ends the run with that error.
///
/// While the gate is closed nothing closes a connection on purpose: testecho clients that have
/// finished their rounds stay open until it returns, so the counts given to the gates of every
/// process were open at the same time. The "N clients are connected!" line is the coordinator's
/// to print.
pub fn run_coordinated(
    opts: &Options,
    gate: &mut dyn FnMut(u64) -> Result<(), String>,
) -> Result<Report, String> {
    run_inner(opts, Some(gate))
}

/// The server's CPU time, per thread, at one instant.
#[derive(Debug, Clone, Default)]
pub struct ServerCpu {
    /// The process (tree) as a whole.
    pub total: Option<procfs::ProcSample>,
    /// Each thread of every process in the tree.
    pub threads: Vec<(u32, u64)>,
}

impl ServerCpu {
    /// Samples `pid` and its descendants (nothing without a pid).
    pub fn sample(pid: Option<u32>) -> Self {
        match pid {
            Some(p) => Self {
                total: procfs::sample(Some(p)),
                threads: procfs::thread_cpu(Some(p)),
            },
            None => Self::default(),
        }
    }
}

impl Report {
    /// Fills the server's CPU figures from samples taken at the start and the end of a window
    /// of `secs` seconds, and says which side saturated. Needs `messages`, `generator_cores` and
    /// `threads` to be set.
    pub fn set_server_cpu(&mut self, start: &ServerCpu, end: &ServerCpu, secs: f64) {
        let (Some(a), Some(b)) = (start.total, end.total) else {
            return;
        };
        let secs = secs.max(1e-9);
        let used = b.cpu_us.saturating_sub(a.cpu_us);
        self.server_cpu_us = Some(used);
        self.server_cores = Some(used as f64 / 1e6 / secs);
        if self.messages > 0 {
            self.server_cpu_us_per_msg = Some(used as f64 / self.messages as f64);
        }
        let busiest = end
            .threads
            .iter()
            .map(|(tid, cpu)| {
                let before = start
                    .threads
                    .iter()
                    .find(|(t, _)| t == tid)
                    .map_or(0, |(_, c)| *c);
                cpu.saturating_sub(before)
            })
            .max()
            .unwrap_or(0);
        let busiest = busiest as f64 / 1e6 / secs;
        self.server_busiest_thread = Some(busiest);
        let gen_per_thread = self.generator_cores / self.threads.max(1) as f64;
        // Open loop: the generator polls without sleeping near each send, so its CPU use says
        // nothing; it is saturated when it falls behind its schedule.
        let open_loop = matches!(self.scenario, "rate" | "fanout");
        let generator_behind = if open_loop {
            self.late_sends * 100 > self.messages.max(1)
        } else {
            gen_per_thread >= 0.9
        };
        self.saturated = if busiest >= 0.9 {
            "server"
        } else if generator_behind {
            "generator"
        } else {
            "neither"
        };
    }
}

fn run_inner(
    opts: &Options,
    mut gate: Option<&mut dyn FnMut(u64) -> Result<(), String>>,
) -> Result<Report, String> {
    let url = WsUrl::parse(&opts.url).map_err(|e| e.to_string())?;
    let addr = url.socket_addr().map_err(|e| e.to_string())?;
    check_fd_limit(opts.connections)?;
    let threads = opts.threads.clamp(1, opts.connections.max(1));
    let shared = Arc::new(driver::RunState {
        opts: Options {
            threads,
            ..opts.clone()
        },
        addr,
        publish_addr: match opts.publish_url.as_deref() {
            Some(u) => Some(
                WsUrl::parse(u)
                    .and_then(|u| u.socket_addr())
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        },
        host: url.host_header(),
        target: url.target.clone(),
        connected: Barrier::new(threads + 1),
        go: Barrier::new(threads + 1),
        coordinated: gate.is_some(),
        released: AtomicBool::new(false),
        abort: AtomicBool::new(false),
        settled: AtomicUsize::new(0),
        open_now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        epoch: Instant::now(),
        published: std::sync::atomic::AtomicU64::new(u64::MAX),
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
            gate_error = gate(shared.open_now.load(Ordering::Acquire) as u64).err();
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
            gate_error = gate(shared.open_now.load(Ordering::Acquire) as u64).err();
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
            std::thread::sleep((opts.warmup + opts.duration).saturating_sub(t0.elapsed()));
            window = w0.elapsed();
            cpu_end = ServerCpu::sample(opts.server_pid);
            self_end = procfs::sample(None);
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
        for e in &r.error_samples {
            if report.error_samples.len() < 10 {
                report.error_samples.push(e.clone());
            }
        }
    }
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

impl Report {
    /// Server memory per connection (hold), from the RSS before and after the connections opened.
    fn set_bytes_per_connection(&mut self) {
        if self.scenario == Scenario::Hold.name()
            && let (Some(b), Some(a)) = (self.server_rss_before, self.server_rss_after)
            && self.connected > 0
        {
            self.server_bytes_per_connection = Some((a as f64 - b as f64) / self.connected as f64);
        }
    }
}

/// Parses source addresses given as a list of (comma-separated) IP addresses.
pub fn parse_sources(list: &[String]) -> Result<Vec<IpAddr>, String> {
    list.iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().map_err(|_| format!("not an IP address: {s:?}")))
        .collect()
}
