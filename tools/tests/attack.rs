//! `c10k attack` against `c10k serve`, each in its own process: every attack at a small scale
//! against a server with small limits, asserting the answer the attackers got (a close code, an
//! HTTP status, a refusal) and that the server's memory grew by less than its limits allow. And
//! the suite's own rules: an attack that does not apply is SKIPPED with the reason, a crash and a
//! passed limit fail the run.
//!
//! Sizes are small and every run short (half a second of baseline, an attack of a few seconds
//! that ends early once every attacker has its answer), so that the file stays well under a
//! minute.

#[path = "../../tests/common/pki.rs"]
#[cfg(feature = "tls")]
mod pki;
#[path = "common/procs.rs"]
mod procs;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procs::{EXE, Proc, Serve};

/// Memory a debug server's allocator may keep beyond what a limit allows.
const SLACK: u64 = 32 << 20;

/// Runs `c10k attack URL --json` with short phases and 4 bystanders, plus `args`; returns
/// whether it succeeded and its JSON report.
fn attack(url: &str, args: &[&str]) -> (bool, String) {
    let mut p = Proc::spawn(
        Command::new(EXE)
            .args([
                "-q",
                "attack",
                url,
                "--json",
                "--baseline",
                "500ms",
                "--settle",
                "1s",
            ])
            .args(["--bystanders", "4"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "c10k attack {args:?} did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    p.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report from c10k attack {args:?}: {out}{err}"))
        .to_owned();
    (status.success(), json)
}

/// The report of one attack in a suite's JSON.
fn report<'a>(json: &'a str, name: &str) -> &'a str {
    let start = json
        .find(&format!("{{\"attack\":\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} in {json}"));
    let rest = &json[start..];
    let end = rest[1..]
        .find("{\"attack\":")
        .map(|i| i + 1)
        .or_else(|| rest.find("],\"summary\""))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// How many attackers got `label` (`close 1008`, `HTTP 503`, `subscriber: close 1008`).
fn count(report: &str, label: &str) -> u64 {
    let answers = &report[report.find("\"answers\":{").expect("answers") + 11..];
    let answers = &answers[..answers.find('}').unwrap()];
    procs::json_u64(&format!("{{{answers}}}"), label).unwrap_or(0)
}

/// The server's memory growth during the attack (peak minus before).
fn growth(report: &str) -> u64 {
    procs::json_u64(report, "growth").unwrap_or_else(|| panic!("no memory figures: {report}"))
}

/// Starts `c10k serve -q ARGS...`.
fn serve(args: &[&str]) -> Serve {
    Serve::start(&[&["-q"][..], args].concat())
}

fn pid(server: &Serve) -> String {
    server.pid().to_string()
}

#[test]
fn ping_flood_is_closed_1008_past_the_control_frame_rate() {
    let server = serve(&["--control-frame-rate", "100"]);
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "ping-flood",
            "--duration",
            "3s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "ping-flood");
    assert!(ok, "{json}");
    assert_eq!(count(r, "close 1008"), 1, "{r}");
    // The pongs owed are not queued past the rate: a few KiB, not the flood.
    assert!(growth(r) < SLACK, "{r}");
}

#[test]
fn deflate_bombs_held_open_are_closed_1013_within_the_memory_budget() {
    // One shard: its share is the whole budget.
    let server = serve(&["--shards", "1", "--memory-budget", "64MiB"]);
    // 12 bombs of 16 MB: three times the budget if the server kept them all.
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "deflate-held",
            "--scale",
            "12",
            "--duration",
            "4s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "deflate-held");
    assert!(ok, "{json}");
    assert!(count(r, "close 1013") >= 1, "{r}");
    assert!(growth(r) < (64 << 20) + SLACK, "{r}");
}

#[test]
fn an_echo_that_is_never_read_is_closed_1008_at_the_queue_cap() {
    let server = serve(&["--max-queued", "262144"]);
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "slow-reader",
            "--duration",
            "4s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "slow-reader");
    assert!(ok, "{json}");
    assert_eq!(count(r, "close 1008"), 1, "{r}");
    // The message being read (16 MB) and the echo the kernel did not take, no more.
    assert!(growth(r) < (32 << 20) + SLACK, "{r}");
}

#[test]
fn chat_subscribers_that_never_read_are_closed_1008_and_the_publisher_is_not() {
    let server = serve(&["--mode", "chat", "--max-queued", "262144"]);
    let url = format!("{}chat/attack", server.url);
    let (ok, json) = attack(
        &url,
        &[
            "--attack",
            "slow-reader",
            "--scale",
            "4",
            "--duration",
            "4s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "slow-reader");
    assert!(ok, "{json}");
    assert_eq!(count(r, "subscriber: close 1008"), 4, "{r}");
    assert_eq!(count(r, "publisher: open"), 1, "{r}");
    // The message being read, one copy shared by the subscribers' queues and the publisher's
    // own: not one per subscriber.
    assert!(growth(r) < (48 << 20) + SLACK, "{r}");
}

#[test]
fn unfinished_messages_are_closed_1008_at_the_message_timeout() {
    let server = serve(&["--message-timeout", "1s"]);
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "unfinished-message",
            "--attack",
            "fragment-dribble",
            "--scale",
            "8",
            "--duration",
            "4s",
            "--server-pid",
            &pid(&server),
        ],
    );
    assert!(ok, "{json}");
    let r = report(&json, "unfinished-message");
    assert_eq!(count(r, "close 1008"), 8, "{r}");
    assert!(growth(r) < SLACK, "{r}");
    // A message that keeps growing a byte at a time is no less unfinished.
    let r = report(&json, "fragment-dribble");
    assert_eq!(count(r, "close 1008"), 8, "{r}");
}

#[test]
fn handshakes_beyond_the_pending_cap_get_503_at_once() {
    // Upgrades under /slow wait 2 s for their decision (the bystanders' too): they stay
    // pending meanwhile, and the silent sockets until the handshake timeout. One shard: one cap.
    let server = serve(&[
        "--shards",
        "1",
        "--max-handshakes",
        "8",
        "--defer-path",
        "/slow",
        "--defer",
        "2s",
    ]);
    let url = format!("{}slow", server.url);
    let (ok, json) = attack(
        &url,
        &[
            "--attack",
            "pending-handshakes",
            "--scale",
            "40",
            "--duration",
            "3s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "pending-handshakes");
    assert!(ok, "{json}");
    let refused = count(r, "request: HTTP 503") + count(r, "silent: HTTP 503");
    assert!(refused >= 40 - 8, "{r}");
    assert!(growth(r) < SLACK, "{r}");
}

#[test]
fn silent_and_trickling_handshakes_get_408_at_the_handshake_timeout() {
    let server = serve(&["--handshake-timeout", "1s"]);
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "pending-handshakes",
            "--attack",
            "slowloris",
            "--scale",
            "16",
            "--duration",
            "3s",
            "--server-pid",
            &pid(&server),
        ],
    );
    assert!(ok, "{json}");
    let r = report(&json, "pending-handshakes");
    // The echo server decides at once: the complete requests are upgraded.
    assert_eq!(count(r, "silent: HTTP 408"), 8, "{r}");
    assert_eq!(count(r, "request: open"), 8, "{r}");
    let r = report(&json, "slowloris");
    assert_eq!(count(r, "HTTP 408"), 16, "{r}");
    assert!(growth(r) < SLACK, "{r}");
}

#[test]
fn subscriptions_past_the_topic_cap_are_refused() {
    let server = serve(&["--mode", "pubsub", "--max-topics", "64"]);
    let (ok, json) = attack(
        &server.url,
        &[
            "--app",
            "pubsub",
            "--attack",
            "subscribe-flood",
            "--scale",
            "2000",
            "--duration",
            "5s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "subscribe-flood");
    assert!(ok, "{json}");
    assert!(r.contains("reply \\\"error"), "{r}");
    assert!(r.contains("500 subscriptions asked for, 64 accepted"), "{r}");
}

#[test]
fn close_flood_in_every_way_leaves_no_memory_behind() {
    let server = serve(&[]);
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "close-flood",
            "--scale",
            "4",
            "--duration",
            "2s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "close-flood");
    assert!(ok, "{json}");
    assert!(count(r, "close: close 1000") > 10, "{r}");
    assert!(count(r, "close+data: close 1000") > 10, "{r}");
    assert!(count(r, "fin: EOF") > 10, "{r}");
    assert!(growth(r) < SLACK, "{r}");
}

#[test]
fn connections_beyond_the_per_address_cap_get_503() {
    // One shard: one count per address, whatever the cap is kept by.
    let server = serve(&["--shards", "1", "--max-per-address", "16"]);
    // The attack comes from 127.0.0.2; the bystanders, from 127.0.0.1, are not counted with it.
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "address-flood",
            "--scale",
            "40",
            "--source",
            "127.0.0.2",
            "--duration",
            "2s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "address-flood");
    assert!(ok, "{json}");
    assert_eq!(count(r, "open"), 16, "{r}");
    assert_eq!(count(r, "HTTP 503"), 24, "{r}");
}

#[test]
fn frames_that_no_message_may_have_are_answered_at_once() {
    let server = serve(&["--max-message", "1048576"]);
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "huge-frame",
            "--attack",
            "utf8-dribble",
            "--attack",
            "header-flood",
            "--duration",
            "3s",
            "--server-pid",
            &pid(&server),
        ],
    );
    assert!(ok, "{json}");
    let r = report(&json, "huge-frame");
    assert_eq!(count(r, "2^63-1: close 1009"), 2, "{r}");
    assert_eq!(count(r, "2^63: close 1002"), 2, "{r}");
    assert!(growth(r) < SLACK, "{r}");
    let r = report(&json, "utf8-dribble");
    assert_eq!(count(r, "close 1007"), 4, "{r}");
    let r = report(&json, "header-flood");
    assert_eq!(count(r, "HTTP 431"), 16, "{r}");
    assert!(growth(r) < SLACK, "{r}");
}

#[cfg(feature = "tls")]
#[test]
fn tls_hellos_without_a_handshake_are_closed_at_the_handshake_timeout() {
    let pki = pki::Pki::new("attack");
    let leaf = pki.leaf("leaf", &["localhost", "127.0.0.1"]);
    let server = serve(&[
        "--tls-cert",
        leaf.cert.to_str().unwrap(),
        "--tls-key",
        leaf.key.to_str().unwrap(),
        "--handshake-timeout",
        "1s",
    ]);
    let url = format!("wss://localhost:{}/", server.addr.port());
    let (ok, json) = attack(
        &url,
        &[
            "--tls-ca",
            pki.ca().to_str().unwrap(),
            "--attack",
            "tls-hello-flood",
            "--scale",
            "32",
            "--duration",
            "3s",
            "--server-pid",
            &pid(&server),
        ],
    );
    let r = report(&json, "tls-hello-flood");
    assert!(ok, "{json}");
    assert_eq!(count(r, "EOF") + count(r, "reset"), 32, "{r}");
    assert!(growth(r) < SLACK, "{r}");
}

#[test]
fn attacks_that_do_not_apply_are_skipped_with_the_reason() {
    let server = serve(&[]);
    let (ok, json) = attack(
        &server.url,
        &["--attack", "tls-hello-flood", "--attack", "subscribe-flood"],
    );
    assert!(ok, "{json}");
    let r = report(&json, "tls-hello-flood");
    assert!(
        r.contains("\"verdict\":\"SKIPPED\",") && r.contains("needs a wss:// URL"),
        "{r}"
    );
    let r = report(&json, "subscribe-flood");
    assert!(
        r.contains("\"verdict\":\"SKIPPED\",") && r.contains("needs a server with topics"),
        "{r}"
    );
    assert!(json.contains("\"skipped\":2,\"ok\":true"), "{json}");
}

#[test]
fn a_passed_limit_fails_the_run() {
    let server = serve(&[]);
    // Any round trip during the attack is more than 0 times the baseline.
    let (ok, json) = attack(
        &server.url,
        &[
            "--attack",
            "huge-frame",
            "--duration",
            "2s",
            "--max-latency-ratio",
            "0",
        ],
    );
    assert!(!ok, "{json}");
    let r = report(&json, "huge-frame");
    assert!(r.contains("\"verdict\":\"FAIL\""), "{r}");
    assert!(r.contains("the bystanders' p99 grew"), "{r}");
}

#[test]
fn a_server_that_dies_during_an_attack_fails_the_run() {
    let server = serve(&[]);
    let pid = server.pid();
    let url = server.url.clone();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        procs::signal(pid, libc::SIGKILL);
        server
    });
    let (ok, json) = attack(
        &url,
        &[
            "--attack",
            "unfinished-message",
            "--attack",
            "huge-frame",
            "--duration",
            "3s",
            "--server-pid",
            &pid.to_string(),
        ],
    );
    drop(killer.join());
    assert!(!ok, "{json}");
    let r = report(&json, "unfinished-message");
    assert!(r.contains("\"verdict\":\"FAIL\""), "{r}");
    assert!(r.contains("the server crashed"), "{r}");
    // Nothing more is attacked once the server is gone.
    let r = report(&json, "huge-frame");
    assert!(r.contains("the server crashed during unfinished-message"), "{r}");
}
