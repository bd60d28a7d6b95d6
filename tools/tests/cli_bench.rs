//! `c10k bench` against `c10k serve`, each in its own process, as a user would run them.

#[path = "common/procs.rs"]
mod procs;

use std::time::Duration;

use procs::{Serve, bench_text as bench, bench_text_with_fd_limit, fd_hard_limit};

/// Starts `c10k serve` on a free port; returns the process and its URL.
fn serve(extra: &[&str]) -> (Serve, String) {
    let server = Serve::start(&[&["-q"][..], extra].concat());
    let url = server.url.clone();
    (server, url)
}

/// SIGTERM drains gracefully; the process must exit by itself, successfully.
fn stop(mut server: Serve) {
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "server exited with {status}");
}

#[test]
fn testecho_holds_10000_concurrent_clients_and_every_echo_is_right() {
    const CLIENTS: u64 = 10_000;
    // Where this machine's descriptor limit lets one process hold them all, one server and one
    // load process; elsewhere both are spread over processes (the server's twice as many as
    // needed, as the kernel shares connections among them only about evenly).
    let per = fd_hard_limit().saturating_sub(200).max(100);
    let server_procs = CLIENTS.div_ceil(per / 2).to_string();
    let bench_procs = CLIENTS.div_ceil(per).to_string();
    let (serve_extra, bench_extra) = if CLIENTS <= per {
        (vec![], vec![])
    } else {
        (
            vec!["--processes", &server_procs],
            vec!["--processes", &bench_procs],
        )
    };
    let (server, url) = serve(&serve_extra);
    let clients = CLIENTS.to_string();
    let mut args = vec![
        "testecho",
        "--url",
        &url,
        "--connections",
        &clients,
        "--ramp",
        "8s",
        "--delay",
        "3s",
        "--connect-timeout",
        "60s",
    ];
    args.extend(bench_extra);
    let (ok, out) = bench(&args);
    assert!(ok, "{out}");
    assert!(out.contains("10000 clients are connected!"), "{out}");
    assert!(out.contains("completed clients   10000"), "{out}");
    stop(server);
}

#[test]
fn echo_scenario_reports_json_with_server_cpu() {
    let (server, url) = serve(&["--shards", "1"]);
    let pid = server.pid().to_string();
    let (ok, out) = bench(&[
        "echo",
        "--url",
        &url,
        "-c",
        "50",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert!(ok, "{out}");
    let json = out.lines().find(|l| l.starts_with('{')).unwrap();
    assert!(json.contains("\"scenario\":\"echo\""), "{json}");
    assert!(json.contains("\"errors\":0"), "{json}");
    assert!(!json.contains("\"server_cpu_us\":null"), "{json}");
    assert!(!json.contains("\"messages\":0,"), "{json}");
    stop(server);
}

#[test]
fn echo_report_is_a_self_contained_page_with_the_latency_curve_and_the_parameters() {
    let (server, url) = serve(&["--shards", "1"]);
    let pid = server.pid().to_string();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let html = dir.join(format!("bench-report-{}.html", std::process::id()));
    let svg = html.with_extension("svg");
    for path in [&html, &svg] {
        let (ok, out) = bench(&[
            "echo",
            "--url",
            &url,
            "-c",
            "20",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--server-pid",
            &pid,
            "--report",
            path.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let page = std::fs::read_to_string(path).unwrap();
        let _ = std::fs::remove_file(path);
        // Nothing fetched: no external source, link or script.
        for attr in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "<script",
            "url(",
        ] {
            assert!(!page.contains(attr), "{attr} in {page}");
        }
        // The latency curve, messages/s, server and generator CPU: each a line with points.
        let curves: Vec<&str> = page
            .split("<polyline")
            .skip(1)
            .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(curves.len(), 4, "{page}");
        for points in &curves {
            assert!(points.split(' ').count() >= 2, "{points}");
        }
        assert!(page.contains("Round-trip latency by percentile"), "{page}");
        assert!(page.contains("99.9%"), "the percentile axis: {page}");
        // The run's parameters.
        for text in [
            url.as_str(),
            "echo",
            "connections",
            "20",
            "1 s",
            "0.2 s",
            &format!("pid {pid}"),
        ] {
            assert!(page.contains(text), "{text} missing from {page}");
        }
        if path == &html {
            assert!(page.starts_with("<!doctype html>"));
            assert!(page.contains("<td>connections</td><td>20</td>"), "{page}");
        } else {
            assert!(page.starts_with("<svg xmlns="));
        }
    }
    stop(server);
}

#[test]
fn bench_fails_when_the_server_does_not_echo_correctly() {
    // A server that answers with a different message size: the generator must notice.
    let (server, url) = serve(&["--max-message", "10"]);
    let (ok, out) = bench(&[
        "echo",
        "--url",
        &url,
        "-c",
        "2",
        "--payload",
        "50",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("1009"), "{out}");
    stop(server);
}

#[test]
fn bench_explains_the_file_descriptor_limit() {
    // Twice as many connections as descriptors, with a limit the test sets (or this machine's,
    // if lower).
    let limit = 1000.min(fd_hard_limit());
    let c = (2 * limit + 1).to_string();
    let (ok, out) = bench_text_with_fd_limit(&["hold", "--url", "ws://127.0.0.1:9/", "-c", &c], limit);
    assert!(!ok);
    assert!(
        out.contains("file descriptors") && out.contains("processes"),
        "{out}"
    );
}

#[test]
fn fanout_scenario_delivers_every_message_to_every_subscriber() {
    let (server, url) = serve(&["--mode", "pubsub", "--shards", "2"]);
    let pid = server.pid().to_string();
    let (ok, out) = bench(&[
        "fanout",
        "--url",
        &url,
        "-c",
        "201",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert!(ok, "{out}");
    let json = out.lines().find(|l| l.starts_with('{')).unwrap();
    assert!(json.contains("\"scenario\":\"fanout\""), "{json}");
    assert!(json.contains("\"errors\":0,"), "{json}");
    // errors 0: every subscriber got every message published, in order (the generator checks
    // each sequence number and waits for the last). How many were published in the 1 s window
    // depends on the machine's speed (sends run late on a loaded one): at most about 200 x 200,
    // and at least one message to every subscriber.
    let messages: u64 = json
        .split("\"messages\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (200..=41_000).contains(&messages),
        "{messages} deliveries: {json}"
    );
    stop(server);
}

#[test]
fn deflate_runs_compress_every_message_and_fail_when_the_server_declines() {
    let (server, url) = serve(&["--shards", "1"]);
    // Compressed echoes inflate only on a connection with permessage-deflate turned on: no error
    // means the agreement reached every connection, also through --processes.
    let (ok, out) = bench(&[
        "echo",
        "--url",
        &url,
        "-c",
        "20",
        "--duration",
        "1s",
        "--warmup",
        "0.2s",
        "--payload",
        "1024",
        "--payload-kind",
        "json",
        "--deflate",
        "--processes",
        "2",
        "--json",
    ]);
    assert!(ok && out.contains("\"errors\":0"), "{out}");
    let (ok, out) = bench(&[
        "hold",
        "--url",
        &url,
        "-c",
        "50",
        "--duration",
        "0.5s",
        "--first-echo",
        "--final-echo",
        "--deflate",
        "--payload",
        "300",
        "--payload-kind",
        "json",
    ]);
    assert!(ok && out.contains("final echoes        50"), "{out}");
    stop(server);
    let (server, url) = serve(&["--no-deflate"]);
    let (ok, out) = bench(&[
        "echo",
        "--url",
        &url,
        "-c",
        "2",
        "--duration",
        "0.5s",
        "--warmup",
        "0s",
        "--deflate",
    ]);
    assert!(
        !ok && out.contains("the server declined permessage-deflate"),
        "{out}"
    );
    stop(server);
}

/// The end of a hold run with `--server-drain`: the load side sends the server SIGTERM once the
/// final echoes are in, every connection gets 1001 and is closed by the server, and the server
/// (here a supervisor of two workers) exits by itself. The pings the clients got are counted by
/// second.
#[test]
fn hold_ends_with_the_servers_drain_and_counts_every_1001_and_the_pings() {
    for (serve_args, bench_args, n) in [
        (
            &["--processes", "2", "--ping-interval", "1s"][..],
            &["--processes", "2"][..],
            300u64,
        ),
        (
            &["--shards", "1", "--ping-interval", "1s"][..],
            &["--threads", "2"][..],
            100,
        ),
    ] {
        let (mut server, url) = serve(serve_args);
        let pid = server.pid().to_string();
        let conns = n.to_string();
        let mut args = vec![
            "hold",
            "--url",
            &url,
            "-c",
            &conns,
            "--duration",
            "2500ms",
            "--warmup",
            "0s",
            "--final-echo",
            "--server-drain",
            "--server-pid",
            &pid,
            "--json",
        ];
        args.extend(bench_args);
        let (ok, out) = bench(&args);
        assert!(ok, "{out}");
        let json = out.lines().find(|l| l.starts_with('{')).unwrap();
        assert_eq!(procs::json_u64(json, "going_away"), Some(n), "{json}");
        assert_eq!(
            procs::json_u64(json, "messages"),
            Some(n),
            "the final echoes: {json}"
        );
        assert_eq!(procs::json_u64(json, "errors"), Some(0), "{json}");
        assert!(procs::json_f64(json, "drain_started_unix").is_some(), "{json}");
        // Every connection was pinged at least once in 2.5 s of 1 s intervals.
        let pings = json
            .split("\"pings_per_s\":[")
            .nth(1)
            .unwrap()
            .split("]]")
            .next()
            .unwrap();
        let total: u64 = pings
            .split("],[")
            .map(|pair| {
                pair.trim_matches(['[', ']'])
                    .split(',')
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert!(total >= n, "{total} pings for {n} connections: {json}");
        let status = server.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "the server exited with {status}");
    }
}

#[test]
fn the_servers_drain_needs_the_servers_pid() {
    let (ok, out) = bench(&["hold", "--url", "ws://127.0.0.1:9/", "-c", "1", "--server-drain"]);
    assert!(!ok);
    assert!(out.contains("server's pid"), "{out}");
}

/// benches/c1m.sh end to end at a small size, with the kernel's settings as they are (no root
/// needed, nothing on the machine changes) and this build's binary: the script starts the server
/// and the load side, proves every connection from the server's /metrics, has each answer an
/// echo, drains the server and says every client got 1001.
#[test]
fn the_c1m_script_proves_a_small_run_from_the_servers_side() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let port = procs::free_port().to_string();
    let out = std::process::Command::new("bash")
        .arg(root.join("benches/c1m.sh"))
        .arg("3000")
        .current_dir(&root)
        .env("C10K_BIN", procs::EXE)
        .env("LIMITS", "keep")
        .env("NETNS", "0")
        .env("HOLD", "3s")
        .env("PER_PROC", "1000")
        .env("SOURCES", "1")
        .env("SAMPLE_EVERY", "1")
        .env("PORT", &port)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for line in [
        "3000 asked, 3000 connected, 3000 open at once, 3000 still open after the 3 s hold",
        "c10k_connections_open summed over 3 workers: 3000 to 3000",
        "final echoes        3000 of 3000",
        "3000 of 3000 clients got 1001 Going Away",
        "server exit status 0",
        "errors              0 []",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
}
