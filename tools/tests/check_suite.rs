//! The conformance suite (`c10k_tools::check`): its case list is the committed one
//! (`check_cases.txt`), every case passes against `c10k serve`, run as its own process; a case
//! that could not run is SKIPPED, never PASS; and the runner classifies misbehaving servers
//! (small fakes over std sockets) as the RFC says: accepting bad input is FAIL, dropping instead
//! of closing is NON-STRICT, silence is FAIL, garbage is FAIL — and none of it makes the checker
//! panic.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/procs.rs"]
mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use c10k::proto::handshake::accept_key;
use c10k_tools::check::{self, CaseResult, Options, Target, Verdict};
use cases::{CASE_LIST, assert_whole_suite_passed, failures, pinned_ids};
use procs::Serve;

/// Starts `c10k serve` on a free port (killed when dropped, also when a test fails); returns it
/// and its URL.
fn serve(extra: &[&str]) -> (Serve, String) {
    let server = Serve::start(&[&["-q"][..], extra].concat());
    let url = server.url.clone();
    (server, url)
}

fn run(url: &str, options: &Options, pattern: Option<&str>) -> (Vec<CaseResult>, String) {
    let target = Target::parse(url).unwrap();
    let cases = check::select(check::cases(options), pattern);
    let report = check::run(&target, &cases, options, |_| {});
    let line = report.summary_line();
    (report.results, line)
}

/// Set to rewrite [`CASE_LIST`] from the suite, after a change of cases made on purpose.
const UPDATE_CASE_LIST: &str = "C10K_UPDATE_CHECK_CASES";

/// Cases that vanish, or appear, must do so on purpose: the suite's ids are compared with the
/// committed list, exactly and in order.
#[test]
fn the_case_list_is_the_committed_one() {
    let options = Options {
        max_message: Some(1 << 20),
        ..Options::default()
    };
    let ids: Vec<String> = check::cases(&options).into_iter().map(|c| c.id).collect();
    if std::env::var(UPDATE_CASE_LIST).is_ok_and(|v| v == "1") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_cases.txt");
        let text = format!(
            "# The ids of every case of `c10k check` (with --max-message given), in running order.\n\
             # tests/check_suite.rs compares the suite with this list; after changing the cases on\n\
             # purpose: {UPDATE_CASE_LIST}=1 cargo test -p c10k-tools --test check_suite the_case_list\n{}\n",
            ids.join("\n")
        );
        std::fs::write(&path, text).unwrap();
        println!("wrote {} ids to {}", ids.len(), path.display());
        return;
    }
    let pinned = pinned_ids();
    if ids != pinned {
        let gone: Vec<&String> = pinned.iter().filter(|i| !ids.contains(i)).collect();
        let new: Vec<&String> = ids.iter().filter(|i| !pinned.contains(i)).collect();
        panic!(
            "the conformance cases differ from {CASE_LIST} ({} there, {} in the suite)\n\
             gone: {gone:?}\nnew: {new:?}{}\n\
             If the change is on purpose, rewrite the list with \
             `{UPDATE_CASE_LIST}=1 cargo test -p c10k-tools --test check_suite the_case_list` \
             and commit it with the change.",
            pinned.len(),
            ids.len(),
            if gone.is_empty() && new.is_empty() {
                " (same ids, another order)"
            } else {
                ""
            }
        );
    }
}

#[test]
fn every_case_passes_against_c10k_serve() {
    let (server, url) = serve(&["--max-message", "1048576"]);
    let options = Options {
        max_message: Some(1 << 20),
        ..Options::default()
    };
    let (results, line) = run(&url, &options, None);
    drop(server);
    assert_whole_suite_passed(&results, &line);
}

#[test]
fn every_deflate_case_passes_against_c10k_serve_with_context_takeover_both_ways() {
    let (server, url) = serve(&[
        "--max-message",
        "1048576",
        "--deflate-takeover",
        "--deflate-client-takeover",
    ]);
    let options = Options {
        max_message: Some(1 << 20),
        ..Options::default()
    };
    let (results, line) = run(&url, &options, Some("deflate"));
    drop(server);
    let bad = failures(&results);
    assert!(bad.is_empty(), "{line}\n{bad}");
    assert!(results.iter().all(|r| r.verdict == Verdict::Pass), "{line}");
    // The offers that allow it got context takeover both ways, and the echoes still matched.
    let takeover = results
        .iter()
        .filter(|r| {
            r.observed.contains("agreed permessage-deflate;")
                || r.observed.contains("agreed permessage-deflate ")
        })
        .filter(|r| !r.observed.contains("no_context_takeover"))
        .count();
    assert!(takeover >= 20, "{takeover} cases with context takeover\n{line}");
}

#[test]
fn deflate_cases_are_skipped_neither_passed_nor_failed_when_the_server_declines_the_extension() {
    let (server, url) = serve(&["--max-message", "1048576", "--no-deflate"]);
    let options = Options {
        max_message: Some(1 << 20),
        ..Options::default()
    };
    let target = Target::parse(&url).unwrap();
    let cases = check::select(check::cases(&options), Some("deflate"));
    let report = check::run(&target, &cases, &options, |_| {});
    drop(server);
    let c = report.counts();
    assert!(c.skipped >= 100, "{}", report.summary_line());
    assert_eq!(
        report.summary_line(),
        format!(
            "{} cases: {} PASS, {} SKIPPED, 0 NON-STRICT, 0 FAIL",
            report.results.len(),
            report.results.len() - c.skipped,
            c.skipped
        )
    );
    // A SKIPPED case says why, in its line as in the JSON.
    let skipped = report
        .results
        .iter()
        .find(|r| r.verdict == Verdict::Skipped)
        .unwrap();
    assert!(
        skipped.reason.contains("declined permessage-deflate"),
        "{}",
        skipped.line()
    );
    assert!(skipped.line().starts_with("SKIPPED"), "{}", skipped.line());
    let json = report.to_json();
    assert!(json.contains("\"verdict\":\"SKIPPED\""), "{json}");
    assert!(json.contains(&format!("\"skipped\":{},", c.skipped)), "{json}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("declined permessage-deflate"))
    );
    // The negotiation cases ran in full, without the extension.
    let negotiation: Vec<&CaseResult> = report
        .results
        .iter()
        .filter(|r| r.id.starts_with("deflate.1."))
        .collect();
    assert!(!negotiation.is_empty());
    for r in negotiation {
        assert!(
            r.verdict == Verdict::Pass && r.observed.contains("declined"),
            "{}",
            r.line()
        );
    }
}

#[test]
fn framing_echoes_16_mib_when_no_limit_is_given() {
    let (server, url) = serve(&[]);
    let (results, line) = run(&url, &Options::default(), Some("framing.1,framing.2"));
    drop(server);
    assert!(results.iter().any(|r| r.description.contains("16 MiB")), "{line}");
    let bad = failures(&results);
    assert!(bad.is_empty(), "{line}\n{bad}");
}

#[test]
fn cli_prints_the_summary_and_json() {
    let (server, url) = serve(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args(["check", &url, "--cases", "ping.1,close.1.1", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with('{') && text.trim_end().ends_with('}'), "{text}");
    assert!(
        text.contains("\"summary\":{\"total\":11,\"pass\":11,\"skipped\":0,\"non_strict\":0,\"fail\":0,"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args(["check", &url, "--cases", "handshake.2.1"])
        .output()
        .unwrap();
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 cases: 1 PASS, 0 SKIPPED, 0 NON-STRICT, 0 FAIL"),
        "{text}"
    );
}

// ---- fake servers ----

/// How a fake server behaves after it accepts the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fake {
    /// Echoes every data frame as it came (RSV bits, opcodes and all), answers pings and closes,
    /// checks nothing.
    EchoEverything,
    /// Drops the TCP connection on the first frame, whatever it is.
    DropOnFirstFrame,
    /// Answers every frame with Close 1000.
    CloseNormally,
    /// Sends bytes that are not frames.
    Garbage,
    /// Accepts the TCP connection and never says anything.
    Silent,
    /// Answers any `Sec-WebSocket-Extensions` offer with `permessage-deflate` (with both
    /// `no_context_takeover` parameters when the offer names `server_no_context_takeover`), then
    /// behaves as `EchoEverything` (compressed frames go back as they came).
    AcceptDeflate,
}

fn fake(mode: Fake) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let _ = serve_fake(stream, mode);
            });
        }
    });
    format!("ws://{addr}/")
}

fn serve_fake(mut s: TcpStream, mode: Fake) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    if mode == Fake::Silent {
        let mut sink = [0u8; 1024];
        while s.read(&mut sink)? > 0 {}
        return Ok(());
    }
    // The request head, one byte at a time so that no frame byte is taken with it.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Ok(());
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let key = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let accept = accept_key(key.as_bytes());
    let mut resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".to_vec();
    resp.extend_from_slice(&accept);
    let lower = head.to_ascii_lowercase();
    if mode == Fake::AcceptDeflate && lower.contains("sec-websocket-extensions:") {
        resp.extend_from_slice(b"\r\nSec-WebSocket-Extensions: permessage-deflate");
        if lower.contains("server_no_context_takeover") {
            resp.extend_from_slice(b"; server_no_context_takeover; client_no_context_takeover");
        }
    }
    resp.extend_from_slice(b"\r\n\r\n");
    s.write_all(&resp)?;
    if mode == Fake::Garbage {
        s.write_all(&[0xff; 64])?;
        thread::sleep(Duration::from_millis(200));
        return Ok(());
    }
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h)?;
        let len = match h[1] & 0x7f {
            126 => {
                let mut e = [0u8; 2];
                s.read_exact(&mut e)?;
                u64::from(u16::from_be_bytes(e))
            }
            127 => {
                let mut e = [0u8; 8];
                s.read_exact(&mut e)?;
                u64::from_be_bytes(e)
            }
            n => u64::from(n),
        };
        let mut key = [0u8; 4];
        if h[1] & 0x80 != 0 {
            s.read_exact(&mut key)?;
        }
        if mode == Fake::DropOnFirstFrame {
            return Ok(());
        }
        if mode == Fake::CloseNormally {
            s.write_all(&[0x88, 0x02, 0x03, 0xe8])?;
            thread::sleep(Duration::from_millis(100));
            return Ok(());
        }
        let mut payload = vec![0u8; usize::try_from(len).unwrap_or(0).min(64 << 20)];
        s.read_exact(&mut payload)?;
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
        let opcode = h[0] & 0x0f;
        let reply_head = |first: u8, n: usize| -> Vec<u8> {
            let mut v = vec![first];
            match n {
                0..=125 => v.push(n as u8),
                126..=0xffff => {
                    v.push(126);
                    v.extend_from_slice(&(n as u16).to_be_bytes());
                }
                _ => {
                    v.push(127);
                    v.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            v
        };
        match opcode {
            0x8 => {
                let mut out = reply_head(0x88, payload.len());
                out.extend_from_slice(&payload);
                s.write_all(&out)?;
                return Ok(());
            }
            0x9 => {
                let mut out = reply_head(0x8a, payload.len());
                out.extend_from_slice(&payload);
                s.write_all(&out)?;
            }
            0xa => {}
            _ => {
                let mut out = reply_head(h[0], payload.len());
                out.extend_from_slice(&payload);
                s.write_all(&out)?;
            }
        }
    }
}

fn fast() -> Options {
    Options {
        max_message: Some(1 << 20),
        timeout_scale: 0.1,
    }
}

fn verdicts(url: &str, pattern: &str) -> Vec<CaseResult> {
    let (results, line) = run(url, &fast(), Some(pattern));
    assert!(!results.is_empty(), "{pattern} selects nothing ({line})");
    results
}

fn all_are(results: &[CaseResult], verdict: Verdict) {
    for r in results {
        assert_eq!(r.verdict, verdict, "{}", r.line());
    }
}

#[test]
fn a_server_that_echoes_everything_fails_the_1002_and_1007_cases() {
    let url = fake(Fake::EchoEverything);
    // What an echo server must do, it does.
    all_are(
        &verdicts(&url, "framing.1.1,framing.1.2,ping.1.1,frag.1.1"),
        Verdict::Pass,
    );
    // What it must reject, it echoes.
    all_are(
        &verdicts(&url, "reserved.1.1,reserved.3.1,reserved.3.2"),
        Verdict::Fail,
    );
    all_are(&verdicts(&url, "utf8.2.1,utf8.2.2,utf8.2.3"), Verdict::Fail);
    all_are(&verdicts(&url, "frag.6.1,frag.6.3"), Verdict::Fail);
    all_are(&verdicts(&url, "limits.1.2"), Verdict::Fail);
    // It accepts every handshake, even those it must reject.
    all_are(
        &verdicts(&url, "handshake.2.1,handshake.2.8,handshake.2.15"),
        Verdict::Fail,
    );
    // It echoes an invalid close code.
    let r = verdicts(&url, "close.1.7");
    all_are(&r, Verdict::Fail);
    assert!(r[0].reason.contains("1004"), "{}", r[0].line());
}

#[test]
fn a_server_that_drops_instead_of_closing_is_non_strict_on_errors_and_fails_echoes() {
    let url = fake(Fake::DropOnFirstFrame);
    let r = verdicts(&url, "reserved.1.1,utf8.2.1,ping.2.1");
    all_are(&r, Verdict::NonStrict);
    for r in &r {
        assert!(r.observed.contains("without a Close frame"), "{}", r.line());
    }
    all_are(&verdicts(&url, "framing.1.1,ping.1.1"), Verdict::Fail);
}

#[test]
fn a_server_that_closes_with_1000_is_non_strict_on_errors() {
    let url = fake(Fake::CloseNormally);
    let r = verdicts(&url, "utf8.2.1,reserved.3.1");
    all_are(&r, Verdict::NonStrict);
    let utf8 = r.iter().find(|r| r.id == "utf8.2.1").unwrap();
    assert!(utf8.reason.contains("1007"), "{}", utf8.line());
    all_are(&verdicts(&url, "close.1.3"), Verdict::Pass);
}

#[test]
fn garbage_and_silence_fail_without_a_panic() {
    let url = fake(Fake::Garbage);
    let r = verdicts(&url, "framing.1.1,reserved.1.1");
    all_are(&r, Verdict::Fail);
    assert!(r[0].reason.contains("invalid frame"), "{}", r[0].line());
    let url = fake(Fake::Silent);
    // close.2.1 has 1000 connections: it stops at the first FAIL.
    let r = verdicts(&url, "framing.1.1,close.2.1,handshake.2.1");
    all_are(&r, Verdict::Fail);
    assert!(
        r.iter().all(|r| r.elapsed < Duration::from_secs(2)),
        "the bound was not kept"
    );
}

#[test]
fn a_server_that_accepts_every_deflate_offer_fails_what_it_gets_wrong() {
    let url = fake(Fake::AcceptDeflate);
    // A bare answer to a bare offer is right, and compressed frames echoed as they came inflate
    // to the same messages (with the context kept both ways, and without).
    all_are(
        &verdicts(&url, "deflate.1.1,deflate.1.2,deflate.5.5,deflate.6.5"),
        Verdict::Pass,
    );
    // server_max_window_bits offered and not answered; offers that must be declined.
    let r = verdicts(&url, "deflate.1.6,deflate.3.1,deflate.3.24");
    all_are(&r, Verdict::Fail);
    assert!(
        r[0].reason.contains("server_max_window_bits=10"),
        "{}",
        r[0].line()
    );
    assert!(r[1].reason.contains("must"), "{}", r[1].line());
    // Invalid compressed data is echoed; RSV1 on a continuation comes back and is caught.
    let r = verdicts(&url, "deflate.14.1,deflate.16.1");
    all_are(&r, Verdict::Fail);
    assert!(r[1].reason.contains("RSV1 on a continuation"), "{}", r[1].line());
}

#[test]
fn a_closed_port_fails_every_case_quickly() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = verdicts(&format!("ws://{addr}/"), "framing.1.1,close.2.2");
    all_are(&r, Verdict::Fail);
    assert!(r[0].reason.contains("cannot connect"), "{}", r[0].line());
}
