//! `c10k bench` over `wss://` against `c10k serve --tls-cert/--tls-key`, each in its own process,
//! with a CA made by the test: every scenario, full and resumed handshakes, and what happens
//! when the generator has no trust or does not trust the server.

#![cfg(feature = "tls")]

#[path = "../../tests/common/pki.rs"]
mod pki;
#[path = "common/procs.rs"]
mod procs;

use std::time::Duration;

use pki::Pki;
use procs::{Serve, bench, bench_text, json_u64};

/// A server with a TLS listener beside its plain one, its certificate signed by a CA of the
/// test's own; returns the server, its `wss://` URL and the CA.
fn tls_serve(tag: &str, extra: &[&str]) -> (Serve, String, Pki) {
    let pki = Pki::new(tag);
    let leaf = pki.leaf("leaf", &["localhost", "127.0.0.1"]);
    let (cert, key) = (leaf.cert.to_str().unwrap(), leaf.key.to_str().unwrap());
    let mut args = vec![
        "-q",
        "--shards",
        "1",
        "--tls-addr",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ];
    args.extend_from_slice(extra);
    let server = Serve::start(&args);
    let url = wss_url(&server);
    (server, url, pki)
}

/// The URL of the server's TLS listener, from its `c10k listening on wss://ADDR/ (TLS)` line.
fn wss_url(server: &Serve) -> String {
    let log = server.log();
    let line = log
        .iter()
        .find(|l| l.starts_with("c10k listening on wss://"))
        .unwrap_or_else(|| panic!("no TLS listening line: {log:?}"));
    line.split_whitespace()
        .find(|w| w.starts_with("wss://"))
        .unwrap()
        .to_owned()
}

fn stop(mut server: Serve) {
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "server exited with {status}");
}

/// A report's count, which must be there.
fn count(json: &str, key: &str) -> u64 {
    json_u64(json, key).unwrap_or_else(|| panic!("no {key} in {json}"))
}

/// Runs `c10k bench SCENARIO --url URL --tls-ca CA ARGS...`; asserts that it succeeded with
/// no error, over TLS, and returns its report.
fn bench_ok(scenario: &str, url: &str, ca: &Pki, args: &[&str]) -> String {
    let ca = ca.ca().to_str().unwrap();
    let all = [&[scenario, "--url", url, "--tls-ca", ca][..], args].concat();
    let (ok, json) = bench(&all);
    assert!(ok, "{all:?}: {json}");
    assert_eq!(count(&json, "errors"), 0, "{json}");
    assert_eq!(count(&json, "wrong_echoes"), 0, "{json}");
    assert!(json.contains("\"tls\":true"), "{json}");
    json
}

#[test]
fn echo_rate_hold_and_testecho_run_over_wss_with_every_echo_right() {
    let (server, url, ca) = tls_serve("bench-echo", &[]);
    let json = bench_ok(
        "echo",
        &url,
        &ca,
        &[
            "-c",
            "20",
            "--duration",
            "1s",
            "--warmup",
            "0.2s",
            "--in-flight",
            "2",
        ],
    );
    assert_eq!(count(&json, "connected"), 20, "{json}");
    assert!(count(&json, "messages") > 0, "{json}");
    assert!(json.contains("\"tls_params\":\"TLSv1_3, "), "{json}");
    // Messages larger than a TLS record (16 KiB), binary.
    let json = bench_ok(
        "echo",
        &url,
        &ca,
        &[
            "-c",
            "4",
            "--duration",
            "0.5s",
            "--warmup",
            "0s",
            "--payload",
            "40000",
            "--binary",
        ],
    );
    assert!(count(&json, "messages") > 0, "{json}");
    let json = bench_ok(
        "rate",
        &url,
        &ca,
        &["-c", "10", "--rate", "200", "--duration", "1s", "--warmup", "0s"],
    );
    assert!(count(&json, "messages") > 0, "{json}");
    let json = bench_ok(
        "hold",
        &url,
        &ca,
        &["-c", "20", "--duration", "0.5s", "--first-echo", "--final-echo"],
    );
    assert_eq!(count(&json, "survivors"), 20, "{json}");
    assert_eq!(count(&json, "messages"), 20, "{json}");
    let json = bench_ok(
        "testecho",
        &url,
        &ca,
        &["-c", "20", "--ramp", "1s", "--delay", "0.2s", "--rounds", "2"],
    );
    assert_eq!(count(&json, "completed"), 20, "{json}");
    // Spread over load processes: the trust reaches each of them.
    let json = bench_ok(
        "echo",
        &url,
        &ca,
        &[
            "-c",
            "10",
            "--duration",
            "0.5s",
            "--warmup",
            "0s",
            "--processes",
            "2",
        ],
    );
    assert_eq!(count(&json, "connected"), 10, "{json}");
    assert!(count(&json, "messages") > 0, "{json}");
    stop(server);
}

#[test]
fn connect_makes_full_handshakes_unless_asked_to_resume() {
    let (server, url, ca) = tls_serve("bench-connect", &[]);
    let json = bench_ok("connect", &url, &ca, &["-c", "30"]);
    assert_eq!(count(&json, "connected"), 30, "{json}");
    assert_eq!(count(&json, "tls_resumed"), 0, "{json}");
    // One connection at a time: each finds the ticket the one before it got (the server's
    // session cache keeps them), so every handshake after the first resumes.
    let json = bench_ok(
        "connect",
        &url,
        &ca,
        &["-c", "30", "--max-pending", "1", "--tls-resume"],
    );
    assert_eq!(count(&json, "connected"), 30, "{json}");
    assert_eq!(count(&json, "tls_resumed"), 29, "{json}");
    // The same spread over two load processes, each with its own tickets.
    let json = bench_ok(
        "connect",
        &url,
        &ca,
        &[
            "-c",
            "20",
            "--max-pending",
            "1",
            "--tls-resume",
            "--processes",
            "2",
        ],
    );
    assert_eq!(count(&json, "connected"), 20, "{json}");
    assert_eq!(count(&json, "tls_resumed"), 18, "{json}");
    let (ok, text) = bench_text(&[
        "connect",
        "--url",
        &url,
        "--tls-ca",
        ca.ca().to_str().unwrap(),
        "-c",
        "3",
        "--max-pending",
        "1",
        "--tls-resume",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("2 of 3 handshakes resumed a session"), "{text}");
    stop(server);
}

#[test]
fn fanout_and_slowloris_run_over_wss() {
    let (server, url, ca) = tls_serve("bench-fanout", &["--mode", "pubsub"]);
    let json = bench_ok(
        "fanout",
        &url,
        &ca,
        &["-c", "11", "--rate", "50", "--duration", "1s", "--warmup", "0s"],
    );
    // Every one of the 10 subscribers got every message, in order (else an error): at least one.
    assert!(count(&json, "messages") >= 10, "{json}");
    stop(server);
    // The request trickles inside TLS; the server's handshake timeout (1 s, plus up to an
    // eighth) answers each with 408 over TLS, well within the 2.5 s window.
    let (server, url, ca) = tls_serve("bench-slow", &["--handshake-timeout", "1s"]);
    let json = bench_ok(
        "slowloris",
        &url,
        &ca,
        &[
            "-c",
            "5",
            "--duration",
            "2.5s",
            "--warmup",
            "0s",
            "--delay",
            "200ms",
        ],
    );
    assert!(count(&json, "completed") >= 5, "{json}");
    stop(server);
}

#[test]
fn wss_needs_a_trust_and_an_untrusted_certificate_fails_each_connection() {
    let (server, url, _ca) = tls_serve("bench-trust", &[]);
    let (ok, text) = bench_text(&["echo", "--url", &url, "-c", "2"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("wss:// needs --tls-ca FILE or --insecure"),
        "{text}"
    );
    // A CA that did not sign the server's certificate: each connection fails its handshake,
    // counted as an error with the reason.
    let other = Pki::new("bench-trust-other");
    let (ok, json) = bench(&[
        "connect",
        "--url",
        &url,
        "--tls-ca",
        other.ca().to_str().unwrap(),
        "-c",
        "5",
    ]);
    assert!(!ok, "{json}");
    assert_eq!(count(&json, "errors"), 5, "{json}");
    assert_eq!(count(&json, "connected"), 0, "{json}");
    // (The two CAs have the same name: the chain is refused for its signature.)
    assert!(json.contains("TLS: invalid peer certificate: "), "{json}");
    // --insecure takes any certificate.
    let (ok, json) = bench(&["connect", "--url", &url, "--insecure", "-c", "5"]);
    assert!(ok && count(&json, "connected") == 5, "{json}");
    stop(server);
}
