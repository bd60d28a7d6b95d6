//! `c10k check --serve ADDR`: the conformance suite for WebSocket clients. c10k plays the
//! server; each client under test fetches `/cases`, runs each case on its own connection, and
//! says `/done`.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use c10k_tools::check::client::{self, ServeOptions};
use c10k_tools::check::{Verdict, html};

use crate::check::Args;

pub fn run(args: &Args) -> Result<(), String> {
    let addr = args.serve.as_deref().unwrap_or_default();
    let cases = client::select(client::cases(), args.cases.as_deref());
    if cases.is_empty() {
        return Err(format!(
            "no client case matches {:?} (try utf8, close.tcp, 5.*)",
            args.cases.as_deref().unwrap_or_default()
        ));
    }
    let mut out = std::io::stdout().lock();
    if args.list {
        for c in &cases {
            let _ = writeln!(out, "{:<16} [{}] {}", c.id, c.section, c.description);
        }
        let _ = writeln!(out, "{} client cases", cases.len());
        return Ok(());
    }
    let options = ServeOptions {
        cases: args.cases.clone(),
        clients: args.clients.clone(),
        wait: Duration::from_secs(args.wait),
        timeout_scale: args.timeout_scale,
    };
    let shown = Shown {
        json: args.json,
        failures_only: args.failures_only,
        wait: args.wait,
        report: args.report.clone(),
    };
    serve_and_print(addr, cases, &options, "client cases", &shown)
}

/// How the reports are printed.
pub struct Shown {
    /// One JSON object.
    pub json: bool,
    /// Only the cases that did not pass (and the summaries).
    pub failures_only: bool,
    /// `--wait`, for the message when clients are not done.
    pub wait: u64,
    /// Where to write the HTML page of every case against every client.
    pub report: Option<PathBuf>,
}

/// Binds `addr`, prints the first line (`serving N WHAT on ws://ADDR`, flushed: scripts wait
/// for it and read the port from it), serves `cases` until the clients are done, prints one
/// report per client; exits 2 when a client was not done, and is an error when a case failed.
/// `c10k check --serve` and `c10k fuzz --serve` both end here.
pub fn serve_and_print(
    addr: &str,
    cases: Vec<client::ClientCase>,
    options: &ServeOptions,
    what: &str,
    shown: &Shown,
) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("--serve {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("--serve {addr}: {e}"))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "serving {} {what} on ws://{local}", cases.len());
    let _ = out.flush();
    drop(out);
    let count = cases.len();
    let reports = client::serve_cases(listener, cases, options);
    if let Some(path) = &shown.report {
        let subtitle = format!(
            "c10k {}: {count} {what} against {} client{}",
            env!("CARGO_PKG_VERSION"),
            reports.len(),
            if reports.len() == 1 { "" } else { "s" }
        );
        let grid = html::client_grid("WebSocket clients: RFC 6455 and RFC 7692", &subtitle, &reports);
        std::fs::write(path, html::render(&grid)).map_err(|e| format!("--report {}: {e}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if shown.json {
        let _ = write!(out, "{}", client::to_json(&reports));
    } else {
        for report in &reports {
            let _ = writeln!(out, "\n== client {}", report.agent);
            for r in &report.results {
                if !shown.failures_only || r.verdict != Verdict::Pass {
                    let _ = writeln!(out, "{}", r.line());
                }
            }
        }
        let _ = writeln!(out);
        for report in &reports {
            let _ = writeln!(out, "{}", report.summary_line());
        }
        if reports.is_empty() {
            let _ = writeln!(out, "no client connected");
        }
    }
    let _ = out.flush();
    if reports.is_empty() || reports.iter().any(|r| !r.done) {
        eprintln!("c10k: the run ended after {} s with clients not done", shown.wait);
        std::process::exit(2);
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.agent.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("cases failed for {}", failed.join(", ")))
    }
}
