//! `c10k fuzz`: a frame fuzzer against any WebSocket echo server, with the core as its oracle.

use std::io::{IsTerminal, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use c10k_tools::check::{Target, Verdict};
use c10k_tools::fuzz::{self, Options, replay::Replay};

use c10k_tools::check::client::{CLIENT_BOUND, ServeOptions};

use crate::check_serve::{Shown, serve_and_print};
use crate::serve::parse_duration;

/// Sequences `--serve` plays by default, and at most.
const DEFAULT_SERVED: u64 = 200;
const MAX_SERVED: u64 = 100_000;

/// Options of `c10k fuzz`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The echo server to fuzz: ws://HOST:PORT/PATH. Not with --serve.
    #[arg(required_unless_present = "serve", conflicts_with = "serve")]
    url: Option<String>,
    /// Fuzz WebSocket CLIENTS instead: serve the sequences on ADDR (HOST:PORT; port 0 picks
    /// one) through the client suite's URLs (ws://ADDR/cases, ws://ADDR/case/fuzz.N?agent=NAME,
    /// ws://ADDR/done?agent=NAME; see `c10k check --serve`). --sequences of them (default 200)
    /// from --seed.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
    /// With --serve: the clients expected (comma-separated agent names); the run ends once each
    /// said /done. Without it, when the first client says /done.
    #[arg(long, value_name = "NAME,NAME", value_delimiter = ',', requires = "serve")]
    clients: Vec<String>,
    /// With --serve: end the run after this many seconds in any case (exit code 2 when a client
    /// is not done then).
    #[arg(long, value_name = "SECS", default_value_t = 600, requires = "serve")]
    wait: u64,
    /// With --serve: print only the sequences that did not pass (and the summaries).
    #[arg(long, requires = "serve")]
    failures_only: bool,
    /// The seed: the same seed sends the same sequences.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many sequences.
    #[arg(long, value_name = "N")]
    sequences: Option<u64>,
    /// Stop after this long (e.g. 30s, 5m); without it and without --sequences, 10 seconds.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Connections at the same time.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// The server's message size limit in bytes: lengths around it and past it are sent, and
    /// 1009 is expected past it. Without it no message reaches 128 KiB.
    #[arg(long, value_name = "BYTES")]
    max_message: Option<usize>,
    /// How long one sequence may take (beyond its own pauses) before it counts as no progress.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
    /// Stop at the first FAIL.
    #[arg(long)]
    stop_on_fail: bool,
    /// Where minimized findings are saved as replay files.
    #[arg(long, value_name = "DIR", default_value = "fuzz-findings")]
    out: PathBuf,
    /// Do not minimize or save findings.
    #[arg(long)]
    no_save: bool,
    /// Candidates tried when minimizing one finding.
    #[arg(long, default_value_t = 300)]
    shrink_attempts: usize,
    /// Replay one file (a saved finding) instead of fuzzing, and print its outcome.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    if let Some(addr) = &args.serve {
        return serve(addr, &args);
    }
    let url = args.url.clone().unwrap_or_default();
    if url.starts_with("wss://") {
        return Err(format!(
            "{url}: c10k fuzz speaks ws:// only (its driver has no TLS)"
        ));
    }
    let target = Target::parse(&url).map_err(|e| e.to_string())?;
    TcpStream::connect_timeout(&target.addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {url} ({}): {e}", target.addr))?;
    if let Some(file) = &args.replay {
        return replay(&target, file, &args);
    }
    if args.parallel == 0 {
        return Err("--parallel must be at least 1".to_owned());
    }
    let options = Options {
        seed: args.seed,
        sequences: args.sequences,
        duration: args
            .duration
            .or(args.sequences.is_none().then_some(Duration::from_secs(10))),
        parallel: args.parallel,
        max_message: args.max_message,
        bound: args.timeout,
        stop_on_fail: args.stop_on_fail,
        out_dir: (!args.no_save).then(|| args.out.clone()),
        shrink_attempts: args.shrink_attempts,
        ..Options::default()
    };
    let live = !args.json && std::io::stderr().is_terminal();
    let mut last_line = std::time::Instant::now();
    let report = fuzz::run(&target, &options, |p| {
        if args.json {
            return;
        }
        let mut err = std::io::stderr().lock();
        if live {
            let _ = write!(err, "\r{}   ", p.line());
        } else if last_line.elapsed() >= Duration::from_secs(10) {
            last_line = std::time::Instant::now();
            let _ = writeln!(err, "{}", p.line());
        }
    })
    .map_err(|e| format!("fuzz: {e}"))?;
    if live {
        eprintln!();
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = write!(out, "{}", report.to_json());
    } else {
        for f in &report.findings {
            let _ = writeln!(out, "{}", f.lines());
        }
        let _ = writeln!(
            out,
            "{} against {} (seed {})",
            report.summary_line(),
            report.target,
            report.seed
        );
    }
    if !report.ok() {
        let n = report.failed();
        return Err(format!("{n} sequence{} failed", if n == 1 { "" } else { "s" }));
    }
    Ok(())
}

/// Sequences served to clients under test (`--serve`).
fn serve(addr: &str, args: &Args) -> Result<(), String> {
    if args.replay.is_some() || args.duration.is_some() {
        return Err("--serve plays --sequences N sequences (not --replay, --duration)".to_owned());
    }
    let count = args.sequences.unwrap_or(DEFAULT_SERVED);
    if count == 0 || count > MAX_SERVED {
        return Err(format!("--sequences with --serve: 1 to {MAX_SERVED}"));
    }
    let options = ServeOptions {
        cases: None,
        clients: args.clients.clone(),
        wait: Duration::from_secs(args.wait),
        timeout_scale: args.timeout.as_secs_f64() / CLIENT_BOUND.as_secs_f64(),
    };
    let shown = Shown {
        json: args.json,
        failures_only: args.failures_only,
        wait: args.wait,
        report: None,
    };
    let cases = fuzz::served::cases(args.seed, count);
    serve_and_print(
        addr,
        cases,
        &options,
        &format!("fuzzed sequences (seed {})", args.seed),
        &shown,
    )
}

fn replay(target: &Target, file: &PathBuf, args: &Args) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut r = Replay::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    if args.max_message.is_some() {
        r.max_message = args.max_message;
    }
    let o = fuzz::replay(target, &r, args.timeout).map_err(|e| format!("replay: {e}"))?;
    let mut out = std::io::stdout().lock();
    if o.verdict == Verdict::Pass {
        let _ = writeln!(out, "PASS       {}: expected {}", file.display(), o.expected);
    } else {
        let _ = writeln!(
            out,
            "{:<10} {} {} [{}]\n{:<10} -> {}\n{:<10}    expected: {}",
            o.verdict,
            o.kind,
            file.display(),
            o.cause,
            "",
            o.reason,
            "",
            o.expected
        );
    }
    if o.verdict == Verdict::Fail {
        return Err(format!("{}: FAIL", file.display()));
    }
    Ok(())
}
