//! `c10k check`: the RFC 6455 (and RFC 7692 permessage-deflate) conformance suite against any
//! echo server; with `--serve ADDR`, the client suite (`check_serve.rs`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use c10k_tools::check::{self, Group, Options, Target, Verdict};

#[cfg(feature = "tls")]
use crate::tls_client::TlsClientArgs;

/// Options of `c10k check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The echo server to check: ws://HOST:PORT/PATH, or wss://HOST:PORT/PATH (every case over
    /// TLS; give --tls-ca FILE or --insecure). Not with --serve.
    #[arg(required_unless_present = "serve", conflicts_with = "serve")]
    url: Option<String>,
    /// Check WebSocket CLIENTS instead: serve the client cases on ADDR (HOST:PORT; port 0 picks
    /// one) at ws://ADDR/cases, ws://ADDR/case/ID?agent=NAME and ws://ADDR/done?agent=NAME.
    #[arg(long, value_name = "ADDR")]
    pub(crate) serve: Option<String>,
    /// With --serve: the clients expected (comma-separated agent names); the run ends once each
    /// said /done. Without it, the run ends when the first client says /done.
    #[arg(long, value_name = "NAME,NAME", value_delimiter = ',', requires = "serve")]
    pub(crate) clients: Vec<String>,
    /// With --serve: end the run after this many seconds in any case (clients not done then are
    /// reported so, and the exit code is 2).
    #[arg(long, value_name = "SECS", default_value_t = 600, requires = "serve")]
    pub(crate) wait: u64,
    /// Run only the cases whose id or RFC section matches: a prefix (`utf8`, `close.2`) or a glob
    /// (`5.*`, `*.1`); several separated by commas.
    #[arg(long, value_name = "PATTERN")]
    pub(crate) cases: Option<String>,
    /// Print one JSON object (the cases and a summary) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Multiply every case's time bound (default bounds: 3 s, 20 s for cases that move megabytes;
    /// 2 s for client cases).
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub(crate) timeout_scale: f64,
    /// The server's message size limit in bytes: runs the limit cases and the decompression bomb
    /// cases, and expects 1009 for larger echo cases. Without it those cases are left out (a note
    /// says so).
    #[arg(long, value_name = "BYTES")]
    max_message: Option<usize>,
    /// List the selected cases without running them.
    #[arg(long)]
    pub(crate) list: bool,
    /// Print only the cases that did not pass (and the summary).
    #[arg(long)]
    pub(crate) failures_only: bool,
    /// Also run the replay files (`*.replay`) of this directory, saved by `c10k fuzz`, as
    /// regression cases `regress.NAME`. Without --cases, only they run.
    #[arg(long, value_name = "DIR")]
    regressions: Option<PathBuf>,
    #[cfg(feature = "tls")]
    #[command(flatten)]
    tls: TlsClientArgs,
}

pub fn run(args: Args) -> Result<(), String> {
    if !(args.timeout_scale.is_finite() && args.timeout_scale > 0.0) {
        return Err(format!(
            "--timeout-scale must be a positive number, not {}",
            args.timeout_scale
        ));
    }
    if args.serve.is_some() {
        return crate::check_serve::run(&args);
    }
    let url = args.url.clone().unwrap_or_default();
    let options = Options {
        max_message: args.max_message,
        timeout_scale: args.timeout_scale,
    };
    let cases = match (&args.regressions, &args.cases) {
        (Some(_), None) => Vec::new(),
        _ => check::select(check::cases(&options), args.cases.as_deref()),
    };
    let regressions: Vec<PathBuf> = match &args.regressions {
        Some(dir) => check::regression_files(dir)
            .map_err(|e| format!("--regressions {}: {e}", dir.display()))?
            .into_iter()
            .filter(|p| {
                args.cases.as_deref().is_none_or(|pat| {
                    let id = check::regression_id(p);
                    pat.split(',')
                        .map(str::trim)
                        .any(|p| id == p || id.starts_with(&format!("{p}.")))
                })
            })
            .collect(),
        None => Vec::new(),
    };
    if cases.is_empty() && regressions.is_empty() {
        return Err(format!(
            "no case matches {:?} (try utf8, close.2, 5.*)",
            args.cases.unwrap_or_default()
        ));
    }
    // A reader that stops early (`| head`) is not an error: writes to stdout are not checked.
    if args.list {
        let mut out = std::io::stdout().lock();
        for c in &cases {
            let _ = writeln!(out, "{:<16} [{}] {}", c.id, c.section, c.description);
        }
        for p in &regressions {
            let _ = writeln!(out, "{:<16} [fuzz] {}", check::regression_id(p), p.display());
        }
        let _ = writeln!(out, "{} cases", cases.len() + regressions.len());
        return Ok(());
    }
    let target = target(&args)?;
    // Before hundreds of cases fail for one reason: nothing listens, the certificate is refused,
    // TLS on one side only.
    let tls = check::probe(&target, Duration::from_secs(5)).map_err(|e| format!("{url}: {e}"))?;

    let mut group: Option<Group> = None;
    let mut print = |r: &check::CaseResult| {
        if args.json {
            return;
        }
        let mut out = std::io::stdout().lock();
        if group != Some(r.group) && !args.failures_only {
            group = Some(r.group);
            let _ = writeln!(out, "\n== {}", r.group.title());
        }
        if !args.failures_only || r.verdict != Verdict::Pass {
            let _ = writeln!(out, "{}", r.line());
        }
    };
    let mut report = check::run(&target, &cases, &options, &mut print);
    for path in &regressions {
        let r = check::run_regression(&target, path, &options);
        print(&r);
        report.results.push(r);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = write!(out, "{}", report.to_json());
    } else {
        let _ = writeln!(out);
        for note in &report.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for (g, c) in report.by_group() {
            let _ = writeln!(
                out,
                "{:<10} {:>4} PASS {:>4} SKIPPED {:>4} NON-STRICT {:>4} FAIL",
                g.name(),
                c.pass,
                c.skipped,
                c.non_strict,
                c.fail
            );
        }
        let _ = writeln!(
            out,
            "{} against {}{} in {:.1} s",
            report.summary_line(),
            report.target,
            tls.map_or_else(String::new, |agreed| format!(" over {agreed}")),
            report.elapsed.as_secs_f64()
        );
    }
    let failed = report.counts().fail;
    if failed > 0 {
        return Err(format!(
            "{failed} case{} failed",
            if failed == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// The target of the URL, with the TLS settings --tls-ca or --insecure give for `wss://`.
fn target(args: &Args) -> Result<Target, String> {
    let url = args.url.as_deref().unwrap_or_default();
    #[cfg(feature = "tls")]
    let target = Target::parse_with_tls(url, args.tls.config_for(url)?);
    #[cfg(not(feature = "tls"))]
    let target = Target::parse(url);
    target.map_err(|e| e.to_string())
}
