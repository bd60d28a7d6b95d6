//! `c10k fuzz`: a frame fuzzer against any WebSocket echo server, with the core as its oracle.

use std::io::{IsTerminal, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use c10k_tools::check::{Target, Verdict};
use c10k_tools::fuzz::{self, Options, replay::Replay};

use crate::serve::parse_duration;

/// Options of `c10k fuzz`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The echo server to fuzz: ws://HOST:PORT/PATH.
    url: String,
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
    if args.url.starts_with("wss://") {
        return Err(format!(
            "{}: c10k fuzz speaks ws:// only (its driver has no TLS)",
            args.url
        ));
    }
    let target = Target::parse(&args.url).map_err(|e| e.to_string())?;
    TcpStream::connect_timeout(&target.addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {} ({}): {e}", args.url, target.addr))?;
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
