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
//! 5. hold with the server's drain: each child, its final echoes in, prints `echoed K` and waits
//!    for a line on stdin; when every child has, the coordinator sends the server SIGTERM and
//!    writes `drain` to every child, whose connections then wait for the server's 1001.
//! 6. The coordinator sums the counts and rates, merges the buckets (so the percentiles are exact,
//!    not averages of percentiles), and divides the server's CPU time by the summed message count.
//!
//! Every wait is bounded: a child that does not speak in time is killed and counted as an error.

mod json;
mod reports;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use c10k::client::WsUrl;

use super::driver::{DRAIN_WAIT_MAX, FINAL_ECHO_WAIT};
use super::{Options, Report, Scenario, ServerCpu, Stage, procfs, timeline};

pub use reports::merge;

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
    Echoed(usize, u64),
    Report(usize, String),
    Exited(usize),
}

#[derive(Debug)]
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    connected: Option<u64>,
    echoed: Option<u64>,
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
    if opts.server_drain && opts.server_pid.is_none() {
        return Err("the server's drain needs the server's pid to send it SIGTERM".to_owned());
    }
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
            echoed: None,
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
    tell_all(&mut procs, Stage::Connected);
    let t0 = Instant::now();
    let (mut cpu_start, mut cpu_end, mut window) = (ServerCpu::default(), ServerCpu::default(), None);
    let mut timeline = Vec::new();
    if matches!(opts.scenario, Scenario::Echo | Scenario::Rate) && late.is_empty() {
        std::thread::sleep(opts.warmup);
        cpu_start = ServerCpu::sample(opts.server_pid);
        let w0 = Instant::now();
        // The children count the messages of each interval; the CPU time is the server's and
        // that of every load process (this one's tree).
        let me = std::process::id();
        timeline = timeline::sample(
            w0,
            t0 + opts.warmup + opts.duration,
            timeline::interval_for(opts.duration),
            || timeline::Point {
                messages: 0,
                server_cpu_us: opts
                    .server_pid
                    .and_then(|p| procfs::sample(Some(p)))
                    .map(|s| s.cpu_us),
                generator_cpu_us: procfs::sample(Some(me)).map(|s| s.cpu_us),
            },
        );
        window = Some(w0.elapsed());
        cpu_end = ServerCpu::sample(opts.server_pid);
    }

    // 3. The server's drain, once every child has its final echoes.
    let mut drain_started = None;
    if opts.server_drain {
        let deadline = t0 + opts.warmup + opts.duration + FINAL_ECHO_WAIT + CHILD_GRACE;
        late.extend(wait_for(&rx, &mut procs, deadline, |p| {
            p.exited || p.echoed.is_some()
        }));
        drain_started = Some(super::unix_now());
        if let Some(pid) = opts.server_pid
            && let Err(e) = super::signal(pid, libc::SIGTERM)
        {
            kill_all(&mut procs);
            return Err(format!("cannot tell the server (pid {pid}) to drain: {e}"));
        }
        tell_all(&mut procs, Stage::Echoed);
    }

    // 4. Every report.
    let run_bound = match opts.scenario {
        Scenario::TestEcho => connect_bound,
        Scenario::Connect => Duration::ZERO,
        _ => opts.warmup + opts.duration,
    };
    let drain_bound = if opts.server_drain {
        DRAIN_WAIT_MAX
    } else {
        Duration::ZERO
    };
    let deadline = Instant::now().max(t0 + run_bound) + drain_bound + CHILD_CLOSE + CHILD_GRACE;
    late.extend(wait_for(&rx, &mut procs, deadline, |p| p.exited));
    let mut statuses = Vec::with_capacity(p);
    for proc in &mut procs {
        statuses.push(proc.child.wait().map_err(|e| e.to_string())?);
    }

    // 5. The merge.
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
    // The children's messages, interval by interval, over this process's CPU samples.
    for (_, r) in &reports {
        timeline::add_messages(&mut timeline, &r.timeline);
    }
    report.timeline = timeline;
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
    report.drain_started_unix = drain_started;
    Ok(report)
}

/// Answers every child waiting at `stage` (a child that is gone cannot read it; it is counted
/// when its report is missing).
fn tell_all(procs: &mut [Proc], stage: Stage) {
    for proc in procs {
        if let Some(stdin) = proc.stdin.as_mut() {
            let _ = writeln!(stdin, "{}", stage.answer()).and_then(|()| stdin.flush());
        }
    }
}

/// Reads child `i`'s stdout until it ends.
fn read_child(i: usize, out: std::process::ChildStdout, tx: &mpsc::Sender<Said>) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let count = |stage: Stage| {
            line.strip_prefix(stage.word())
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|k| k.trim().parse().ok())
        };
        if let Some(k) = count(Stage::Connected) {
            let _ = tx.send(Said::Connected(i, k));
        } else if let Some(k) = count(Stage::Echoed) {
            let _ = tx.send(Said::Echoed(i, k));
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
            Ok(Said::Echoed(i, k)) => procs[i].echoed = Some(k),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
