//! What a run measured: the report, as a table for people and as JSON for tools and for the
//! coordinator of a multi-process run, and the latency histograms it is computed from.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::timeline::Interval;
use super::{Scenario, procfs};

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
    /// The connections spoke TLS (`wss://`): their handshakes include a TLS handshake.
    pub tls: bool,
    /// wss: the handshakes that resumed a TLS session (the others were full TLS handshakes).
    pub tls_resumed: u64,
    /// wss: what TLS agreed on (version, cipher suite, key exchange group), as one
    /// connection saw it.
    pub tls_params: String,
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
    /// The measured window interval by interval: messages, server and generator CPU time.
    pub timeline: Vec<Interval>,
    /// hold with the server's drain: connections that got the server's Close 1001 (Going Away)
    /// and closed cleanly; None when the run closed its connections itself.
    pub going_away: Option<u64>,
    /// hold with the server's drain: seconds from the SIGTERM to the last connection's close.
    pub drain_s: Option<f64>,
    /// hold with the server's drain: when the SIGTERM went, in seconds since the Unix epoch.
    pub drain_started_unix: Option<f64>,
    /// Keep-alive pings the connections received, second by second: (Unix second, pings).
    pub pings_per_s: Vec<(u64, u64)>,
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
        if self.tls && self.scenario == "slowloris" {
            let _ = writeln!(s, "TLS                 wss (the request trickles inside TLS)");
        } else if self.tls {
            let _ = writeln!(
                s,
                "TLS                 {} of {} handshakes resumed a session ({})",
                self.tls_resumed,
                self.connected,
                if self.tls_params.is_empty() {
                    "none completed"
                } else {
                    &self.tls_params
                }
            );
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
                if let Some(n) = self.going_away {
                    let _ = writeln!(
                        s,
                        "server's drain      {n} closed with 1001 Going Away, the last {:.1} s after the SIGTERM",
                        self.drain_s.unwrap_or(0.0)
                    );
                }
                if !self.pings_per_s.is_empty() {
                    let counts: Vec<u64> = self.pings_per_s.iter().map(|&(_, n)| n).collect();
                    let _ = writeln!(
                        s,
                        "pings received      {} over {} s (at most {} in one second)",
                        counts.iter().sum::<u64>(),
                        counts.len(),
                        counts.iter().max().unwrap_or(&0)
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
                "\"tls\":{},\"tls_resumed\":{},\"tls_params\":{},\"connect_s\":{:.3},",
                "\"survivors\":{},\"completed\":{},\"errors\":{},\"wrong_echoes\":{},\"error_samples\":[{}],",
                "\"late_sends\":{},\"max_send_lag_us\":{:.1},",
                "\"server_cpu_us\":{},\"server_cpu_us_per_msg\":{},\"server_cores\":{},",
                "\"server_busiest_thread\":{},\"generator_cores\":{:.3},\"threads\":{},",
                "\"server_rss_before\":{},\"server_rss_after\":{},\"server_bytes_per_connection\":{},",
                "\"going_away\":{},\"drain_s\":{},\"drain_started_unix\":{},\"pings_per_s\":{},",
                "\"saturated\":\"{}\",\"timeline\":{}}}"
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
            self.tls,
            self.tls_resumed,
            json_string(&self.tls_params),
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
            opt(self.going_away),
            opt(self.drain_s.map(|v| format!("{v:.3}"))),
            opt(self.drain_started_unix.map(|v| format!("{v:.3}"))),
            buckets_json(&self.pings_per_s),
            self.saturated,
            timeline_json(&self.timeline),
        )
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

impl Report {
    /// Server memory per connection (hold), from the RSS before and after the connections opened.
    pub(super) fn set_bytes_per_connection(&mut self) {
        if self.scenario == Scenario::Hold.name()
            && let (Some(b), Some(a)) = (self.server_rss_before, self.server_rss_after)
            && self.connected > 0
        {
            self.server_bytes_per_connection = Some((a as f64 - b as f64) / self.connected as f64);
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
    /// The percentiles of a histogram of nanoseconds (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
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

/// `[[end_s, messages, server_cpu_us, generator_cpu_us], ...]`, null for what was not measured.
fn timeline_json(timeline: &[Interval]) -> String {
    let opt = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
    let mut s = String::with_capacity(timeline.len() * 32 + 2);
    s.push('[');
    for (i, t) in timeline.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "[{:.3},{},{},{}]",
            t.end_s,
            t.messages,
            opt(t.server_cpu_us),
            opt(t.generator_cpu_us)
        );
    }
    s.push(']');
    s
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

/// `s` as a JSON string, quoted and escaped.
pub(crate) fn json_string(s: &str) -> String {
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
