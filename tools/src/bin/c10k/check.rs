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
    /// TLS; give --tls-ca FILE or --insecure). Several are checked one after the other, each with
    /// the same cases (see --report). Not with --serve.
    #[arg(
        required_unless_present = "serve",
        conflicts_with = "serve",
        value_name = "URL"
    )]
    urls: Vec<String>,
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
    /// Print one JSON object (the cases and a summary) instead of text; with several URLs, an
    /// array of them, one per URL.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write one HTML page of every case against every URL (a column each; with --serve, every
    /// client case against every client) to FILE: colours per verdict, counts per column, and
    /// each cell's reason and transcript on a click.
    #[arg(long, value_name = "FILE.html")]
    pub(crate) report: Option<PathBuf>,
    /// The columns' names in the --report page, one per URL, separated by commas (default: the
    /// URLs).
    #[arg(long, value_name = "A,B,C", value_delimiter = ',', conflicts_with = "serve")]
    names: Vec<String>,
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
    if !args.names.is_empty() && args.names.len() != args.urls.len() {
        return Err(format!(
            "--names gives {} names for {} URLs",
            args.names.len(),
            args.urls.len()
        ));
    }
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
            args.cases.clone().unwrap_or_default()
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
    if let [url] = args.urls.as_slice() {
        let report = check_one(&args, url, &cases, &regressions, &options)?;
        if args.json {
            let _ = write!(std::io::stdout().lock(), "{}", report.to_json());
        }
        if let Some(path) = &args.report {
            write_report(&args, path, std::slice::from_ref(&report))?;
        }
        return verdict(report.counts().fail);
    }
    let mut reports = Vec::with_capacity(args.urls.len());
    let mut unreachable = 0;
    for (i, url) in args.urls.iter().enumerate() {
        if !args.json {
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}=== {} ({url})",
                if i > 0 { "\n" } else { "" },
                column_name(&args, i)
            );
        }
        match check_one(&args, url, &cases, &regressions, &options) {
            Ok(report) => reports.push(report),
            Err(e) => {
                // The other URLs are still checked; this one's column says why it is empty.
                eprintln!("c10k check: {e}");
                unreachable += 1;
                reports.push(not_run(url, &cases, &e));
            }
        }
    }
    if args.json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[");
        for (i, r) in reports.iter().enumerate() {
            let _ = write!(
                out,
                "{}{}",
                if i > 0 { ",\n" } else { "" },
                r.to_json().trim_end()
            );
        }
        let _ = writeln!(out, "\n]");
    }
    if let Some(path) = &args.report {
        write_report(&args, path, &reports)?;
    }
    if unreachable > 0 {
        return Err(format!(
            "{unreachable} of {} servers could not be checked",
            reports.len()
        ));
    }
    verdict(reports.iter().map(|r| r.counts().fail).sum())
}

/// Runs the cases and the regression files against `url`, printing each result as it comes
/// (unless --json), then the notes and the summary.
fn check_one(
    args: &Args,
    url: &str,
    cases: &[check::Case],
    regressions: &[PathBuf],
    options: &Options,
) -> Result<check::Report, String> {
    let target = target(args, url)?;
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
    let mut report = check::run(&target, cases, options, &mut print);
    for path in regressions {
        let r = check::run_regression(&target, path, options);
        print(&r);
        report.results.push(r);
    }
    let mut out = std::io::stdout().lock();
    if !args.json {
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
    Ok(report)
}

/// An error when `failed` cases failed.
fn verdict(failed: usize) -> Result<(), String> {
    if failed > 0 {
        return Err(format!(
            "{failed} case{} failed",
            if failed == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// The report of a server that could not be checked: every case FAIL, with `why`.
fn not_run(url: &str, cases: &[check::Case], why: &str) -> check::Report {
    let results = cases
        .iter()
        .map(|c| check::CaseResult {
            id: c.id.clone(),
            group: c.group,
            section: c.section,
            description: c.description.clone(),
            sent: "nothing".to_owned(),
            observed: "nothing (not run)".to_owned(),
            took: Duration::ZERO,
            elapsed: Duration::ZERO,
            verdict: Verdict::Fail,
            reason: format!("the server could not be checked: {why}"),
            transcript: Vec::new(),
        })
        .collect();
    check::Report {
        target: url.to_owned(),
        tls: None,
        results,
        notes: vec![format!("not checked: {why}")],
        elapsed: Duration::ZERO,
    }
}

/// Column `i`'s name: its --names entry, or its URL.
fn column_name(args: &Args, i: usize) -> String {
    args.names
        .get(i)
        .or_else(|| args.urls.get(i))
        .cloned()
        .unwrap_or_default()
}

/// Writes the HTML page of `reports` (one per URL, in order) to `path`.
fn write_report(args: &Args, path: &std::path::Path, reports: &[check::Report]) -> Result<(), String> {
    let columns: Vec<String> = (0..reports.len()).map(|i| column_name(args, i)).collect();
    let cases = reports.first().map_or(0, |r| r.results.len());
    let mut subtitle = format!(
        "c10k check {}: {cases} cases{} against {} implementation{}",
        env!("CARGO_PKG_VERSION"),
        args.cases
            .as_deref()
            .map_or_else(String::new, |p| format!(" (selected by {p})")),
        reports.len(),
        if reports.len() == 1 { "" } else { "s" }
    );
    if let Some(max) = args.max_message {
        subtitle.push_str(&format!(", --max-message {max}"));
    }
    let targets: Vec<String> = reports
        .iter()
        .zip(&columns)
        .map(|(r, name)| {
            if *name == r.target {
                name.clone()
            } else {
                format!("{name} = {}", r.target)
            }
        })
        .collect();
    subtitle.push_str(&format!("; {}", targets.join(", ")));
    let grid = check::html::grid_of(
        "WebSocket conformance: RFC 6455 and RFC 7692",
        &subtitle,
        &columns,
        reports,
    );
    std::fs::write(path, check::html::render(&grid)).map_err(|e| format!("--report {}: {e}", path.display()))
}

/// The target of `url`, with the TLS settings --tls-ca or --insecure give for `wss://`.
fn target(args: &Args, url: &str) -> Result<Target, String> {
    #[cfg(feature = "tls")]
    let target = Target::parse_with_tls(url, args.tls.config_for(url)?);
    #[cfg(not(feature = "tls"))]
    let target = {
        let _ = args;
        Target::parse(url)
    };
    target.map_err(|e| e.to_string())
}
