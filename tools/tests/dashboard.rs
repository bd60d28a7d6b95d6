//! `c10k serve --dashboard` in headless Chromium while `c10k bench` loads the server: the page
//! holds a socket per worker, its numbers move, and they match `/metrics` within the sampling
//! period (`tests/interop/dashboard.js` does the checks in the browser).
//!
//! Chromium and the Node playwright-core package are installed by `.ci/setup`; a missing one
//! fails the test unless `C10K_SKIP_MISSING_TOOLS=1`.

#[path = "common/procs.rs"]
mod procs;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procs::{Proc, Serve, bench_in_background, serial};

/// Serves with the dashboard, loads it with an echo run, and runs the browser's checks.
fn dashboard_under_load(serve_args: &[&str], workers: usize) {
    let _one = serial();
    if !procs::needs::browser() {
        return;
    }
    let args = [
        &["-q", "--dashboard", "--metrics", "--ping-interval", "200ms"][..],
        serve_args,
    ]
    .concat();
    let server = Serve::start(&args);
    // Long enough for the page's checks; killed when they are done.
    let _load: Proc = bench_in_background(&[
        "echo",
        "--url",
        &server.url,
        "-c",
        "40",
        "--duration",
        "120s",
        "--warmup",
        "0s",
    ]);
    let page = server.url.replacen("ws://", "http://", 1);
    let mut cmd = Command::new("node");
    cmd.arg(procs::needs::root().join("tests/interop/dashboard.js"))
        .arg(&page)
        .args(["--workers", &workers.to_string()]);
    // A picture of the page for people to look at, where asked for.
    if let Ok(dir) = std::env::var("C10K_SCREENSHOTS") {
        cmd.args(["--screenshot", &format!("{dir}/dashboard-{workers}.png")]);
    }
    let mut node = Proc::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(s) = node.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the browser checks did not end in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    for pipe in [
        node.0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        node.0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut out);
    }
    println!("{out}");
    assert!(status.success(), "{out}");
    assert!(out.contains("all passed"), "{out}");
}

#[test]
fn dashboard_shows_live_figures_that_match_metrics_under_load() {
    dashboard_under_load(&["--shards", "2"], 1);
}

#[test]
fn dashboard_shows_every_worker_under_a_supervisor() {
    dashboard_under_load(&["--processes", "2", "--shards", "1"], 2);
}
