//! One scenario spread over several load-generating processes (`c10k bench --processes P`), and
//! the merge of what they measured into one report.
//!
//! A process may hold only so many file descriptors (and a source address only so many ephemeral
//! ports towards one server), so a run of 30,000 or 100,000 connections needs several processes.
//! The coordinator starts P children, each running the same scenario over its share of the
//! connections, and talks to them over their stdin and stdout (their stderr is their own):
//!
//! 1. Child i gets `connections / P` connections (the first `connections % P` children one more),
//!    its share of `--rate`, and, when no source address was given and the server is on
//!    127.0.0.0/8, the source address 127.0.0.(2+i): its own range of ephemeral ports.
//! 2. A child opens its connections (testecho: on its ramp). Once every one of them is open or has
//!    failed, it prints `connected K` (K: open now) and waits for a line on stdin. Until that line
//!    comes, nothing closes a connection on purpose: testecho clients that have finished their
//!    rounds are held open.
//! 3. When every child has said `connected` (or has exited), the coordinator samples the server's
//!    memory and writes `go` to every child. The sum of the K is exactly the number of
//!    connections that were open at once when the last child spoke, since no child closed one
//!    in between (a connection the server drops meanwhile is an error, and fails the run).
//!    testecho's "N clients are connected!" is printed then, and only if that sum is N.
//! 4. Each child starts its warm-up and window at the go, and ends by printing its report as one
//!    JSON line that includes its histograms' recorded buckets. The coordinator samples the
//!    server's CPU time over the same warm-up and window, measured from the same go.
//! 5. The coordinator sums the counts and rates, merges the buckets (so the percentiles are exact,
//!    not averages of percentiles), and divides the server's CPU time by the summed message count.
//!
//! Every wait is bounded: a child that does not speak in time is killed and counted as an error.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{
    Options, Percentiles, Report, Scenario, ServerCpu, add_buckets, histogram_buckets, latency_histogram,
    procfs,
};
use c10k::client::WsUrl;

/// Most error samples kept in a merged report.
const MAX_ERROR_SAMPLES: usize = 10;
/// Time allowed to a child beyond its own bounds (start-up, closing, the report).
const CHILD_GRACE: Duration = Duration::from_secs(30);
/// Time a child's load generator may take to drain and close after its window.
const CHILD_CLOSE: Duration = Duration::from_secs(10);

/// What one child said on its stdout.
#[derive(Debug)]
enum Said {
    Connected(usize, u64),
    Report(usize, String),
    Exited(usize),
}

#[derive(Debug)]
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    connected: Option<u64>,
    report: Option<String>,
    exited: bool,
}

/// The options of each of `processes` children: their share of the connections and of the rate,
/// and their own source address when none was given and the server is on 127.0.0.0/8.
pub fn child_options(opts: &Options, processes: usize) -> Result<Vec<Options>, String> {
    let url = WsUrl::parse(&opts.url).map_err(|e| e.to_string())?;
    let addr = url.socket_addr().map_err(|e| e.to_string())?;
    let p = processes.clamp(1, opts.connections.max(1));
    let own_sources = opts.sources.is_empty() && p > 1 && addr.ip().is_loopback() && addr.is_ipv4();
    if own_sources && p > 253 {
        return Err(format!(
            "{p} processes would need source addresses past 127.0.0.254: give --source"
        ));
    }
    let (base, extra) = (opts.connections / p, opts.connections % p);
    Ok((0..p)
        .map(|i| {
            let connections = base + usize::from(i < extra);
            Options {
                connections,
                rate: opts.rate * connections as f64 / opts.connections.max(1) as f64,
                sources: if own_sources {
                    vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8))]
                } else {
                    opts.sources.clone()
                },
                // The coordinator measures the server itself, over the common window.
                server_pid: None,
                ..opts.clone()
            }
        })
        .collect())
}

/// Runs `opts` spread over `processes` children and returns the merged report.
///
/// `command` makes the command line of child i from its options; it must run
/// [`run_coordinated`](super::run_coordinated) with a gate that prints `connected K` and waits
/// for a line on stdin, and print [`Report::json_with_histograms`] as a line on stdout at the
/// end (`c10k bench --coordinated --json-histograms`). Stdin and stdout are set here.
pub fn run_processes(
    opts: &Options,
    processes: usize,
    command: &mut dyn FnMut(usize, &Options) -> Command,
) -> Result<Report, String> {
    let parts = child_options(opts, processes)?;
    let p = parts.len();
    // The children inherit this process's descriptor limit: check the largest share here, once.
    let per = super::max_connections_per_process();
    if parts[0].connections > per {
        return Err(format!(
            "with --processes {p}, a process would open {} connections, but one may open at most {per} \
             within its file descriptor limit: use --processes {} or more",
            parts[0].connections,
            opts.connections.div_ceil(per)
        ));
    }
    let rss_before = opts
        .server_pid
        .and_then(|pid| procfs::sample(Some(pid)))
        .map(|s| s.rss_bytes);
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let mut procs: Vec<Proc> = Vec::with_capacity(p);
    for (i, child_opts) in parts.iter().enumerate() {
        let spawned = command(i, child_opts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                kill_all(&mut procs);
                return Err(format!("cannot start load process {i}: {e}"));
            }
        };
        let stdin = child.stdin.take();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("c10k-bench-proc-{i}"))
                .spawn(move || read_child(i, out, &tx))
                .map_err(|e| e.to_string())?;
        }
        procs.push(Proc {
            child,
            stdin,
            connected: None,
            report: None,
            exited: false,
        });
    }
    drop(tx);

    // 1. Every child connected (or gone).
    let connect_bound = match opts.scenario {
        Scenario::TestEcho => opts.ramp + opts.connect_timeout + opts.delay * (opts.rounds + 1),
        _ => opts.connect_timeout,
    };
    let deadline = started + connect_bound + CHILD_GRACE;
    let mut late = wait_for(&rx, &mut procs, deadline, |p| p.exited || p.connected.is_some());
    let connected_at = Instant::now();
    let connect_s = connected_at.duration_since(started).as_secs_f64();
    let open_at_once: u64 = procs.iter().filter_map(|p| p.connected).sum();
    if opts.scenario == Scenario::TestEcho && open_at_once == opts.connections as u64 {
        println!("{} clients are connected!", opts.connections);
    }
    let rss_after = opts
        .server_pid
        .and_then(|pid| procfs::sample(Some(pid)))
        .map(|s| s.rss_bytes);

    // 2. Go, and measure the server over the same warm-up and window as the children.
    for proc in &mut procs {
        if let Some(mut stdin) = proc.stdin.take() {
            // A child that is gone cannot read it; it is counted when its report is missing.
            let _ = stdin.write_all(b"go\n").and_then(|()| stdin.flush());
        }
    }
    let t0 = Instant::now();
    let (mut cpu_start, mut cpu_end, mut window) = (ServerCpu::default(), ServerCpu::default(), None);
    if matches!(opts.scenario, Scenario::Echo | Scenario::Rate) && late.is_empty() {
        std::thread::sleep(opts.warmup);
        cpu_start = ServerCpu::sample(opts.server_pid);
        let w0 = Instant::now();
        std::thread::sleep((opts.warmup + opts.duration).saturating_sub(t0.elapsed()));
        window = Some(w0.elapsed());
        cpu_end = ServerCpu::sample(opts.server_pid);
    }

    // 3. Every report.
    let run_bound = match opts.scenario {
        Scenario::TestEcho => connect_bound,
        Scenario::Connect => Duration::ZERO,
        _ => opts.warmup + opts.duration,
    };
    let deadline = Instant::now().max(t0 + run_bound) + CHILD_CLOSE + CHILD_GRACE;
    late.extend(wait_for(&rx, &mut procs, deadline, |p| p.exited));
    let mut statuses = Vec::with_capacity(p);
    for proc in &mut procs {
        statuses.push(proc.child.wait().map_err(|e| e.to_string())?);
    }

    // 4. The merge.
    let mut reports = Vec::with_capacity(p);
    let mut missing = Vec::new();
    for (i, proc) in procs.iter().enumerate() {
        match proc.report.as_deref().map(Report::from_json) {
            Some(Ok(r)) => reports.push((i, r)),
            Some(Err(e)) => missing.push(format!("load process {i}: unreadable report: {e}")),
            None if late.contains(&i) => {
                missing.push(format!("load process {i}: did not finish in time (killed)"))
            }
            None => missing.push(format!(
                "load process {i}: exited with {} without a report",
                statuses[i]
            )),
        }
    }
    let mut report = merge(&reports)?;
    report.scenario = opts.scenario.name();
    report.connections = opts.connections;
    report.payload = opts.payload;
    report.binary = opts.binary;
    report.peak_concurrent = open_at_once;
    report.connect_s = connect_s;
    report.errors += missing.len() as u64;
    for m in missing.into_iter().rev() {
        report.error_samples.insert(0, m);
    }
    report.error_samples.truncate(MAX_ERROR_SAMPLES);
    match opts.scenario {
        Scenario::Connect => {
            let secs = connected_at.duration_since(started).as_secs_f64();
            report.window_s = secs;
            report.handshakes_per_s = report.connected as f64 / secs.max(1e-9);
        }
        Scenario::Hold | Scenario::Slowloris => report.window_s = opts.duration.as_secs_f64(),
        Scenario::TestEcho => report.window_s = started.elapsed().as_secs_f64(),
        Scenario::Echo | Scenario::Rate | Scenario::Fanout => {
            if let Some(w) = window {
                report.window_s = w.as_secs_f64();
            }
        }
    }
    report.set_server_cpu(&cpu_start, &cpu_end, report.window_s);
    if opts.scenario != Scenario::Connect {
        report.server_rss_before = rss_before;
        report.server_rss_after = rss_after;
    }
    report.set_bytes_per_connection();
    Ok(report)
}

/// Reads child `i`'s stdout until it ends.
fn read_child(i: usize, out: std::process::ChildStdout, tx: &mpsc::Sender<Said>) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        if let Some(k) = line
            .strip_prefix("connected ")
            .and_then(|k| k.trim().parse().ok())
        {
            let _ = tx.send(Said::Connected(i, k));
        } else if line.starts_with('{') {
            let _ = tx.send(Said::Report(i, line));
        } else {
            // Not part of the protocol: pass it on, away from the coordinator's own report.
            eprintln!("load process {i}: {line}");
        }
    }
    let _ = tx.send(Said::Exited(i));
}

/// Handles what the children say until `done` holds for each or `deadline` passes; children still
/// not done then are killed. Returns the indices of the children that were killed.
fn wait_for(
    rx: &mpsc::Receiver<Said>,
    procs: &mut [Proc],
    deadline: Instant,
    done: impl Fn(&Proc) -> bool,
) -> Vec<usize> {
    while !procs.iter().all(&done) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Said::Connected(i, k)) => procs[i].connected = Some(k),
            Ok(Said::Report(i, r)) => procs[i].report = Some(r),
            Ok(Said::Exited(i)) => procs[i].exited = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let late: Vec<usize> = (0..procs.len()).filter(|&i| !done(&procs[i])).collect();
                for &i in &late {
                    log::warn!("load process {i} did not answer in time: killing it");
                    let _ = procs[i].child.kill();
                }
                return late;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Vec::new()
}

fn kill_all(procs: &mut [Proc]) {
    for p in procs {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}

/// Sums the reports of processes that ran the same scenario at the same time, each tagged with
/// its process index (for the error samples). Counts, rates and loads add up; the latency
/// percentiles come from the merged histogram buckets, so they are exact.
pub fn merge(parts: &[(usize, Report)]) -> Result<Report, String> {
    let mut latency = latency_histogram();
    let mut handshake = latency_histogram();
    let mut out = Report {
        saturated: "neither",
        ..Report::default()
    };
    let mut samples = Vec::new();
    for (i, r) in parts {
        out.scenario = r.scenario;
        out.connections += r.connections;
        out.connected += r.connected;
        out.peak_concurrent += r.peak_concurrent;
        out.payload = r.payload;
        out.binary = r.binary;
        out.window_s = out.window_s.max(r.window_s);
        out.messages += r.messages;
        out.messages_per_s += r.messages_per_s;
        out.bytes_per_s += r.bytes_per_s;
        out.handshakes_per_s += r.handshakes_per_s;
        out.connect_s = out.connect_s.max(r.connect_s);
        out.survivors += r.survivors;
        out.completed += r.completed;
        out.errors += r.errors;
        out.wrong_echoes += r.wrong_echoes;
        out.late_sends += r.late_sends;
        out.max_send_lag_us = out.max_send_lag_us.max(r.max_send_lag_us);
        out.generator_cores += r.generator_cores;
        out.threads += r.threads;
        samples.extend(r.error_samples.iter().map(|e| format!("load process {i}: {e}")));
        add_buckets(&mut latency, &r.latency_hist)?;
        add_buckets(&mut handshake, &r.handshake_hist)?;
    }
    samples.truncate(MAX_ERROR_SAMPLES);
    out.error_samples = samples;
    out.latency = Percentiles::of(&latency);
    out.handshake_latency = Percentiles::of(&handshake);
    out.latency_hist = histogram_buckets(&latency);
    out.handshake_hist = histogram_buckets(&handshake);
    Ok(out)
}

impl Report {
    /// Reads back what [`Report::json_with_histograms`] (or [`Report::json`]) wrote: every count,
    /// rate and histogram bucket. Percentiles are recomputed from the buckets when they are there.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v = json::parse(text)?;
        let num = |k: &str| v.get(k).and_then(json::Value::as_f64).unwrap_or(0.0);
        let int = |k: &str| v.get(k).and_then(json::Value::as_u64).unwrap_or(0);
        let buckets = |k: &str| -> Result<Vec<(u64, u64)>, String> {
            let Some(list) = v.get(k).and_then(json::Value::as_array) else {
                return Ok(Vec::new());
            };
            list.iter()
                .map(|pair| match pair.as_array() {
                    Some([a, b]) => a.as_u64().zip(b.as_u64()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{k}: not a list of [value, count] pairs"))
        };
        let name = v.get("scenario").and_then(json::Value::as_str).unwrap_or("");
        let scenario = [
            Scenario::Echo,
            Scenario::Rate,
            Scenario::Connect,
            Scenario::Hold,
            Scenario::TestEcho,
            Scenario::Slowloris,
        ]
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("unknown scenario {name:?}"))?;
        let mut r = Report {
            scenario: scenario.name(),
            connections: int("connections") as usize,
            connected: int("connected"),
            peak_concurrent: int("peak_concurrent"),
            payload: int("payload") as usize,
            binary: v.get("binary").and_then(json::Value::as_bool).unwrap_or(false),
            window_s: num("window_s"),
            messages: int("messages"),
            messages_per_s: num("messages_per_s"),
            bytes_per_s: num("bytes_per_s"),
            handshakes_per_s: num("handshakes_per_s"),
            connect_s: num("connect_s"),
            survivors: int("survivors"),
            completed: int("completed"),
            errors: int("errors"),
            wrong_echoes: int("wrong_echoes"),
            late_sends: int("late_sends"),
            max_send_lag_us: num("max_send_lag_us"),
            error_samples: v
                .get("error_samples")
                .and_then(json::Value::as_array)
                .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            generator_cores: num("generator_cores"),
            threads: int("threads") as usize,
            saturated: "neither",
            latency_hist: buckets("latency_hist")?,
            handshake_hist: buckets("handshake_hist")?,
            ..Report::default()
        };
        for (hist, pct) in [
            (&r.latency_hist, &mut r.latency),
            (&r.handshake_hist, &mut r.handshake_latency),
        ] {
            if !hist.is_empty() {
                let mut h = latency_histogram();
                add_buckets(&mut h, hist)?;
                *pct = Percentiles::of(&h);
            }
        }
        Ok(r)
    }
}

/// Just enough JSON to read a report back: objects, arrays, strings, numbers (kept as text so
/// that integers stay exact), booleans and null.
mod json {
    /// Nesting deeper than this is refused.
    const MAX_DEPTH: usize = 16;

    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Value {
        Null,
        Bool(bool),
        Number(String),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub(super) fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub(super) fn as_u64(&self) -> Option<u64> {
            match self {
                Value::Number(n) => n.parse().ok(),
                _ => None,
            }
        }

        pub(super) fn as_f64(&self) -> Option<f64> {
            match self {
                Value::Number(n) => n.parse().ok(),
                _ => None,
            }
        }

        pub(super) fn as_bool(&self) -> Option<bool> {
            match self {
                Value::Bool(b) => Some(*b),
                _ => None,
            }
        }

        pub(super) fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }

        pub(super) fn as_array(&self) -> Option<&[Value]> {
            match self {
                Value::Array(a) => Some(a),
                _ => None,
            }
        }
    }

    /// Parses one JSON value that makes up the whole text (surrounding white space aside).
    pub(super) fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            pos: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.pos != p.s.len() {
            return Err(p.err("trailing characters"));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn err(&self, what: &str) -> String {
            format!("JSON: {what} at byte {}", self.pos)
        }

        fn ws(&mut self) {
            while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
                self.pos += 1;
            }
        }

        fn eat(&mut self, b: u8) -> bool {
            self.ws();
            if self.s.get(self.pos) == Some(&b) {
                self.pos += 1;
                true
            } else {
                false
            }
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > MAX_DEPTH {
                return Err(self.err("nested too deeply"));
            }
            self.ws();
            match self.s.get(self.pos) {
                Some(b'{') => {
                    self.pos += 1;
                    let mut fields = Vec::new();
                    if self.eat(b'}') {
                        return Ok(Value::Object(fields));
                    }
                    loop {
                        self.ws();
                        let key = self.string()?;
                        if !self.eat(b':') {
                            return Err(self.err("expected ':'"));
                        }
                        fields.push((key, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            return Ok(Value::Object(fields));
                        }
                        if !self.eat(b',') {
                            return Err(self.err("expected ',' or '}'"));
                        }
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    let mut items = Vec::new();
                    if self.eat(b']') {
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            return Ok(Value::Array(items));
                        }
                        if !self.eat(b',') {
                            return Err(self.err("expected ',' or ']'"));
                        }
                    }
                }
                Some(b'"') => Ok(Value::String(self.string()?)),
                Some(b't') => self.word("true", Value::Bool(true)),
                Some(b'f') => self.word("false", Value::Bool(false)),
                Some(b'n') => self.word("null", Value::Null),
                Some(b'-' | b'0'..=b'9') => {
                    let start = self.pos;
                    while self
                        .s
                        .get(self.pos)
                        .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
                    {
                        self.pos += 1;
                    }
                    let n = std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| self.err("number"))?;
                    n.parse::<f64>().map_err(|_| self.err("bad number"))?;
                    Ok(Value::Number(n.to_owned()))
                }
                _ => Err(self.err("expected a value")),
            }
        }

        fn word(&mut self, w: &str, v: Value) -> Result<Value, String> {
            if self.s[self.pos..].starts_with(w.as_bytes()) {
                self.pos += w.len();
                Ok(v)
            } else {
                Err(self.err("expected a value"))
            }
        }

        fn string(&mut self) -> Result<String, String> {
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected a string"));
            }
            self.pos += 1;
            let mut out = Vec::new();
            loop {
                let Some(&b) = self.s.get(self.pos) else {
                    return Err(self.err("unterminated string"));
                };
                self.pos += 1;
                match b {
                    b'"' => return String::from_utf8(out).map_err(|_| self.err("string is not UTF-8")),
                    b'\\' => {
                        let Some(&e) = self.s.get(self.pos) else {
                            return Err(self.err("unterminated string"));
                        };
                        self.pos += 1;
                        let c = match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hex = self
                                    .s
                                    .get(self.pos..self.pos + 4)
                                    .and_then(|h| std::str::from_utf8(h).ok())
                                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                                    .ok_or_else(|| self.err("bad \\u escape"))?;
                                self.pos += 4;
                                // Surrogate halves (never written by this crate) become U+FFFD.
                                char::from_u32(hex).unwrap_or(char::REPLACEMENT_CHARACTER)
                            }
                            _ => return Err(self.err("bad escape")),
                        };
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    b => out.push(b),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(seed: u64, n: usize, scale: u64) -> hdrhistogram::Histogram<u64> {
        let mut h = latency_histogram();
        let mut x = seed | 1;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread over several orders of magnitude, like real latencies.
            let v = 1 + (x % scale) * (1 + (x >> 60));
            h.record(v).unwrap();
        }
        h
    }

    fn part(h: &hdrhistogram::Histogram<u64>, messages: u64) -> Report {
        Report {
            scenario: "echo",
            messages,
            latency_hist: histogram_buckets(h),
            ..Report::default()
        }
    }

    #[test]
    fn merged_buckets_give_the_exact_percentiles_of_the_merged_histograms() {
        let a = histogram(1, 20_000, 50_000);
        let b = histogram(2, 5_000, 5_000_000);
        let c = histogram(3, 1, 70_000_000_000);
        let mut direct = a.clone();
        direct.add(&b).unwrap();
        direct.add(&c).unwrap();

        // Through the JSON a child prints, as the coordinator reads it.
        let parts: Vec<(usize, Report)> = [(&a, 20_000), (&b, 5_000), (&c, 1)]
            .into_iter()
            .enumerate()
            .map(|(i, (h, n))| (i, Report::from_json(&part(h, n).json_with_histograms()).unwrap()))
            .collect();
        let merged = merge(&parts).unwrap();

        assert_eq!(merged.messages, 25_001);
        assert_eq!(merged.latency, Percentiles::of(&direct));
        assert_eq!(merged.latency_hist, histogram_buckets(&direct));
        let mut rebuilt = latency_histogram();
        add_buckets(&mut rebuilt, &merged.latency_hist).unwrap();
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                rebuilt.value_at_quantile(q),
                direct.value_at_quantile(q),
                "quantile {q}"
            );
        }
        assert_eq!(rebuilt.len(), direct.len());
        assert_eq!(rebuilt.max(), direct.max());
        assert_eq!(rebuilt.min(), direct.min());
    }

    #[test]
    fn report_survives_its_json_with_histograms() {
        let h = histogram(7, 1000, 1_000_000);
        let r = Report {
            scenario: "testecho",
            connections: 15_000,
            connected: 14_999,
            peak_concurrent: 14_999,
            messages: 44_997,
            messages_per_s: 1234.5,
            completed: 14_999,
            errors: 1,
            error_samples: vec!["client 3 (thread 0): server closed with 1011 \"\\\"odd\\\"\"\n".to_owned()],
            threads: 2,
            generator_cores: 0.25,
            latency: Percentiles::of(&h),
            latency_hist: histogram_buckets(&h),
            ..Report::default()
        };
        let back = Report::from_json(&r.json_with_histograms()).unwrap();
        assert_eq!(back.scenario, "testecho");
        assert_eq!(back.connections, 15_000);
        assert_eq!(back.connected, 14_999);
        assert_eq!(back.messages, 44_997);
        assert_eq!(back.completed, 14_999);
        assert_eq!(back.errors, 1);
        assert_eq!(back.error_samples, r.error_samples);
        assert_eq!(back.threads, 2);
        assert_eq!(back.latency, r.latency);
        assert_eq!(back.latency_hist, r.latency_hist);
        assert!((back.messages_per_s - 1234.5).abs() < 0.05);
    }

    #[test]
    fn slowloris_and_hold_reports_survive_their_json() {
        for scenario in ["slowloris", "hold"] {
            let r = Report {
                scenario,
                connections: 2000,
                connected: 6000,
                completed: 4000,
                survivors: 2000,
                messages: 2000,
                connect_s: 1.25,
                ..Report::default()
            };
            let back = Report::from_json(&r.json_with_histograms()).unwrap();
            assert_eq!(back.scenario, scenario);
            assert_eq!(
                (back.connected, back.completed, back.survivors, back.messages),
                (6000, 4000, 2000, 2000)
            );
            assert!((back.connect_s - 1.25).abs() < 1e-9);
            let merged = merge(&[(0, back.clone()), (1, back)]).unwrap();
            assert_eq!(merged.completed, 8000);
            assert!(
                (merged.connect_s - 1.25).abs() < 1e-9,
                "the slowest process's time"
            );
        }
    }

    #[test]
    fn children_share_connections_rate_and_get_their_own_source() {
        let opts = Options {
            url: "ws://127.0.0.1:9001/".to_owned(),
            connections: 10,
            rate: 1000.0,
            server_pid: Some(1),
            ..Options::default()
        };
        let parts = child_options(&opts, 3).unwrap();
        let counts: Vec<usize> = parts.iter().map(|o| o.connections).collect();
        assert_eq!(counts, [4, 3, 3]);
        assert!((parts.iter().map(|o| o.rate).sum::<f64>() - 1000.0).abs() < 1e-9);
        let sources: Vec<String> = parts.iter().map(|o| o.sources[0].to_string()).collect();
        assert_eq!(sources, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
        assert!(parts.iter().all(|o| o.server_pid.is_none()));
        // Given sources are kept; more processes than connections is fewer processes.
        let given = Options {
            sources: vec!["127.0.0.9".parse().unwrap()],
            connections: 2,
            ..opts
        };
        let parts = child_options(&given, 5).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|o| o.sources == given.sources));
    }

    #[test]
    fn json_reader_refuses_what_is_not_json() {
        for bad in ["", "{", "{\"a\":}", "[1,]", "{\"a\":1} x", "\"\\q\"", "nul"] {
            assert!(json::parse(bad).is_err(), "{bad:?}");
        }
        let v = json::parse(" {\"a\":[1,-2.5e3,true,null,\"\\u00e9\\n\"],\"b\":{}} ").unwrap();
        let a = v.get("a").and_then(json::Value::as_array).unwrap();
        assert_eq!(a[0].as_u64(), Some(1));
        assert_eq!(a[1].as_f64(), Some(-2500.0));
        assert_eq!(a[2].as_bool(), Some(true));
        assert_eq!(a[4].as_str(), Some("é\n"));
    }
}
