//! The client suite and the client fuzzer against the six real clients people use: Python
//! `websockets`, Node `ws`, Chromium's WebSocket (a page driven headless), tokio-tungstenite,
//! fastwebsockets and c10k's own client, each in its library's default configuration
//! (`tests/interop/echo_client*.{py,js}`, `benches/peers` clients, `examples/echo_client.rs`).
//!
//! Each runs the whole client suite (`c10k check --serve`), then a few hundred fuzzed sequences
//! (`c10k fuzz --serve`), to the end: every case gets a verdict and each client says `/done`.
//! What the others fail is a finding about them, written up in docs/conformance.md, not
//! asserted here (their versions move with Debian and the registries); c10k's own client fails
//! nothing and is never merely NON-STRICT. The peers are installed by `.ci/setup`; a missing
//! one fails the test (see `common/needs.rs`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c10k_tools::check::client::{self, ClientCase, ClientReport, ServeOptions};
use c10k_tools::check::{Verdict, html};
use procs::{example, needs};

#[path = "common/procs.rs"]
mod procs;

/// How long the clients get, together, for a run.
const RUN: Duration = Duration::from_secs(240);

/// The six clients: an agent name and the command that runs it against a base URL.
fn clients(base: &str) -> Vec<(&'static str, Command)> {
    let root = needs::root();
    let peers = root.join("benches/peers/target/release");
    let mut out = Vec::new();
    let mut add = |name: &'static str, program: PathBuf, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.current_dir(root).args(args).args([base, name]);
        out.push((name, cmd));
    };
    add(
        "python-websockets",
        needs::python(),
        &["tests/interop/echo_client.py"],
    );
    add("node-ws", "node".into(), &["tests/interop/echo_client.js"]);
    add(
        "chromium",
        "node".into(),
        &["tests/interop/echo_client_browser.js"],
    );
    add("tungstenite", peers.join("peer-client-tungstenite"), &[]);
    add("fastwebsockets", peers.join("peer-client-fastwebsockets"), &[]);
    add("c10k", example("echo_client"), &[]);
    out
}

/// Whether every peer program is there (a missing one fails, or skips under
/// `C10K_SKIP_MISSING_TOOLS=1`).
fn peers_present() -> bool {
    let root = needs::root();
    let peers = root.join("benches/peers/target/release");
    needs::needed(&needs::python(), "the Python venv")
        && needs::needed(&needs::node_modules().join("ws"), "the Node ws package")
        && needs::browser()
        && needs::needed(&peers.join("peer-client-tungstenite"), "the tungstenite client")
        && needs::needed(
            &peers.join("peer-client-fastwebsockets"),
            "the fastwebsockets client",
        )
}

/// A running client, killed if the test ends first.
struct Running(&'static str, Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.1.kill();
        let _ = self.1.wait();
    }
}

/// Serves `cases` for the six clients at once, runs them, and returns their reports (in the
/// order of [`clients`]) once every one said `/done` or [`RUN`] passed.
fn run_all(cases: Vec<ClientCase>) -> Vec<ClientReport> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("ws://{}", listener.local_addr().unwrap());
    let running: Vec<(&'static str, Command)> = clients(&base);
    let options = ServeOptions {
        cases: None,
        clients: running.iter().map(|(n, _)| (*n).to_owned()).collect(),
        wait: RUN,
        // Six clients, a browser among them, and a debug build of the checker share two cores:
        // a little more time for each answer than the suite's own bounds.
        timeout_scale: 1.5,
    };
    let server = std::thread::spawn(move || client::serve_cases(listener, cases, &options));
    let mut children: Vec<Running> = running
        .into_iter()
        .map(|(name, mut cmd)| {
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            Running(name, child)
        })
        .collect();
    let end = Instant::now() + RUN;
    for c in &mut children {
        while Instant::now() < end {
            if let Some(status) = c.1.try_wait().unwrap() {
                assert!(status.success(), "{} exited with {status}", c.0);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    server.join().unwrap()
}

/// Every client said `/done` and ran every case; c10k's own client failed none.
fn check_complete(reports: &[ClientReport], what: &str) {
    assert_eq!(
        reports.len(),
        6,
        "{what}: {:?}",
        reports.iter().map(|r| &r.agent).collect::<Vec<_>>()
    );
    for r in reports {
        eprintln!("{what}: {}", r.summary_line());
        assert!(r.done, "{what}: {} never said /done", r.agent);
        let not_run: Vec<&str> = r
            .results
            .iter()
            .filter(|c| c.reason == "not run")
            .map(|c| c.id.as_str())
            .collect();
        assert!(not_run.is_empty(), "{what}: {} did not run {not_run:?}", r.agent);
    }
    let own = reports.iter().find(|r| r.agent == "c10k").unwrap();
    let bad: Vec<String> = own
        .results
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Fail | Verdict::NonStrict))
        .map(|c| {
            format!(
                "{}\n{}: {}\n    {}",
                c.line(),
                c.id,
                c.reason,
                c.transcript.join("\n    ")
            )
        })
        .collect();
    assert!(bad.is_empty(), "{what}: c10k's own client:\n{}", bad.join("\n"));
}

#[test]
fn six_real_clients_run_the_client_suite_and_fuzzed_sequences_to_the_end() {
    if !peers_present() {
        return;
    }
    let reports = run_all(client::cases());
    check_complete(&reports, "client suite");
    // The report page: one column per client, one row per case.
    let grid = html::client_grid("WebSocket clients", "", &reports);
    assert_eq!(grid.columns.len(), 6);
    assert_eq!(grid.rows.len(), client::cases().len());
    assert!(grid.rows.iter().all(|r| r.cells.len() == 6));

    let fuzzed = run_all(c10k_tools::fuzz::served::cases(1, 150));
    check_complete(&fuzzed, "fuzzed sequences");
}
