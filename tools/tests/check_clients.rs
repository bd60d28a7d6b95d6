//! The client suite (`c10k check --serve`, `c10k_tools::check::client`): its case list is the
//! committed one (`check_client_cases.txt`); a correct client (the `planted_client` example with
//! no defect) fails no case; each planted defect fails exactly the cases of that defect; the URL
//! contract's answers (`/cases`, 400 for a bad upgrade to a case URL, 404, `/done`); and the
//! command line's first line, JSON and exit codes.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use c10k_tools::check::Verdict;
use c10k_tools::check::client::{self, ClientReport, ServeOptions};
use procs::example;

#[path = "common/procs.rs"]
mod procs;

/// Set to rewrite the committed list of client case ids after a change of cases made on purpose.
const UPDATE: &str = "C10K_UPDATE_CHECK_CLIENT_CASES";

/// Every group but the 16 MiB limit cases, for the runs of the defects (the correct client runs
/// them all).
const NO_LIMITS: &str = "framing,ping,reserved,frag,utf8,close,handshake,deflate";

/// Serves `cases` in-process for one client named `agent`, runs `planted_client` with `defect`
/// against it, and returns that client's report.
fn run_planted(agent: &str, defect: &str, cases: Option<&str>) -> ClientReport {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = ServeOptions {
        cases: cases.map(str::to_owned),
        clients: vec![agent.to_owned()],
        wait: Duration::from_secs(120),
        timeout_scale: 1.0,
    };
    let server = std::thread::spawn(move || client::serve(listener, &options));
    let status = Command::new(example("planted_client"))
        .args([&format!("ws://127.0.0.1:{port}"), agent, "--defect", defect])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "planted_client --defect {defect}: {status}");
    let mut reports = server.join().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = reports.remove(0);
    assert!(report.done, "{}", report.summary_line());
    report
}

fn ids_with(report: &ClientReport, verdict: Verdict) -> BTreeSet<String> {
    report
        .results
        .iter()
        .filter(|r| r.verdict == verdict)
        .map(|r| r.id.clone())
        .collect()
}

fn show(report: &ClientReport) -> String {
    let lines: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| format!("{}\n    {}", r.line(), r.transcript.join("\n    ")))
        .collect();
    format!("{}\n{}", report.summary_line(), lines.join("\n"))
}

#[test]
fn the_client_case_list_is_the_committed_one() {
    let ids: Vec<String> = client::cases().into_iter().map(|c| c.id).collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_client_cases.txt");
    if std::env::var(UPDATE).is_ok_and(|v| v == "1") {
        let text = format!(
            "# The ids of every case of `c10k check --serve`, in running order.\n\
             # tests/check_clients.rs compares the suite with this list; after changing the cases\n\
             # on purpose: {UPDATE}=1 cargo test -p c10k-tools --test check_clients the_client_case_list\n{}\n",
            ids.join("\n")
        );
        std::fs::write(&path, text).unwrap();
        return;
    }
    let pinned: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let gone: Vec<&String> = pinned.iter().filter(|i| !ids.contains(i)).collect();
    let new: Vec<&String> = ids.iter().filter(|i| !pinned.contains(i)).collect();
    assert!(
        ids == pinned,
        "the client cases differ from {} ({} there, {} in the suite)\ngone: {gone:?}\nnew: {new:?}\n\
         If the change is on purpose: {UPDATE}=1 cargo test -p c10k-tools --test check_clients \
         the_client_case_list, and commit the list with the change.",
        path.display(),
        pinned.len(),
        ids.len()
    );
}

/// The correct client and the four defects, run at the same time; each defect's FAIL set is
/// derived from the suite's own metadata and the correct client's transcripts, never listed by
/// hand, and compared exactly.
#[test]
fn a_correct_client_passes_and_each_planted_defect_fails_exactly_its_cases() {
    let defects = ["no-mask", "no-accept-check", "accepts-bad-utf8", "closes-first"];
    let (good, bad): (ClientReport, Vec<ClientReport>) = std::thread::scope(|s| {
        let good = s.spawn(|| run_planted("good", "none", None));
        let bad: Vec<_> = defects
            .iter()
            .map(|d| s.spawn(move || run_planted(d, d, Some(NO_LIMITS))))
            .collect();
        (
            good.join().unwrap(),
            bad.into_iter().map(|h| h.join().unwrap()).collect(),
        )
    });

    // The correct client: no FAIL, no NON-STRICT; SKIPPED only where it offered no deflate;
    // INFO only where the RFC leaves it free.
    assert_eq!(good.results.len(), client::cases().len());
    assert!(good.ok(), "{}", show(&good));
    assert_eq!(good.counts().non_strict, 0, "{}", show(&good));
    for r in &good.results {
        match r.verdict {
            Verdict::Skipped => assert!(
                r.id.starts_with("deflate.") && r.reason.contains("permessage-deflate"),
                "{}",
                r.line()
            ),
            Verdict::Info => assert!(
                r.id.starts_with("limits.") || r.id == "close.tcp.3",
                "{}",
                r.line()
            ),
            _ => {}
        }
        assert!(!r.transcript.is_empty(), "{}", r.id);
    }
    let echo = good.results.iter().find(|r| r.id == "framing.1.2").unwrap();
    assert!(
        echo.transcript.iter().any(|l| l.contains("> text 1 B"))
            && echo
                .transcript
                .iter()
                .any(|l| l.contains("< text 1 B") && l.ends_with("(masked)")),
        "{:#?}",
        echo.transcript
    );

    let ran: Vec<&client::ClientCaseResult> = good
        .results
        .iter()
        .filter(|r| !r.id.starts_with("limits."))
        .collect();
    let sends_a_frame = |r: &&client::ClientCaseResult| {
        r.verdict != Verdict::Skipped
            && r.transcript
                .iter()
                .any(|l| l.contains("ms  < ") && l.contains("(masked)"))
    };
    let expected = |defect: &str| -> BTreeSet<String> {
        ran.iter()
            .filter(|r| match defect {
                "no-mask" => sends_a_frame(r),
                "no-accept-check" => r.description.contains("Sec-WebSocket-Accept"),
                "accepts-bad-utf8" => {
                    r.verdict != Verdict::Skipped && r.description.contains("fail with 1007")
                }
                "closes-first" => r.id.starts_with("close.tcp.") && r.verdict == Verdict::Pass,
                _ => false,
            })
            .map(|r| r.id.clone())
            .collect()
    };
    for (defect, report) in defects.iter().zip(&bad) {
        let want = expected(defect);
        assert!(!want.is_empty(), "{defect}");
        let got = ids_with(report, Verdict::Fail);
        assert_eq!(got, want, "{defect}:\n{}", show(report));
        assert_eq!(report.counts().non_strict, 0, "{defect}:\n{}", show(report));
    }
    let no_mask = &bad[0];
    for r in no_mask.results.iter().filter(|r| r.verdict == Verdict::Fail) {
        assert!(r.reason.contains("unmasked"), "{}", r.line());
    }
    let closes_first = &bad[3];
    for r in closes_first.results.iter().filter(|r| r.verdict == Verdict::Fail) {
        assert!(r.reason.contains("before the checker did"), "{}", r.line());
    }
}

/// One HTTP exchange: the request, and the whole answer (the checker closes after it).
fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn the_url_contract_lists_cases_refuses_bad_upgrades_and_unknown_paths() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = ServeOptions {
        cases: Some("framing.1".to_owned()),
        clients: vec!["probe".to_owned()],
        wait: Duration::from_secs(60),
        timeout_scale: 1.0,
    };
    let server = std::thread::spawn(move || client::serve(listener, &options));

    let want: Vec<String> = client::select(client::cases(), Some("framing.1"))
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(want.len(), 9);
    let list = http(port, "GET /cases HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(list.starts_with("HTTP/1.1 200 "), "{list}");
    assert!(list.ends_with(&format!("\r\n\r\n{}", want.join("\n"))), "{list}");

    let lost = http(port, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(lost.starts_with("HTTP/1.1 404 "), "{lost}");
    let other = http(
        port,
        "GET /case/close.1.1?agent=probe HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(other.starts_with("HTTP/1.1 404 "), "a case not selected: {other}");
    let nameless = http(port, "GET /case/framing.1.1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(nameless.starts_with("HTTP/1.1 400 "), "{nameless}");

    // An upgrade with version 8: not a valid client handshake.
    let bad = http(
        port,
        "GET /case/framing.1.1?agent=probe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 8\r\n\r\n",
    );
    assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");

    let done = http(port, "GET /done?agent=probe HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(done.starts_with("HTTP/1.1 200 "), "{done}");
    let reports = server.join().unwrap();
    assert_eq!(reports.len(), 1);
    let probe = &reports[0];
    assert!(probe.done);
    assert_eq!(probe.results.len(), 9);
    let first = &probe.results[0];
    assert_eq!(first.verdict, Verdict::Fail);
    assert!(
        first.reason.contains("valid client handshake"),
        "{}",
        first.line()
    );
    let second = &probe.results[1];
    assert_eq!(
        (second.verdict, second.reason.as_str()),
        (Verdict::Fail, "not run")
    );
}

#[test]
fn cli_prints_the_serving_line_first_then_json_and_exits_2_when_a_client_is_not_done() {
    let exe = env!("CARGO_BIN_EXE_c10k");
    let mut child = Command::new(exe)
        .args([
            "check",
            "--serve",
            "127.0.0.1:0",
            "--cases",
            "close.1.1,ping.1.1",
            "--clients",
            "a",
            "--json",
            // Bounded, should the test fail before the client runs.
            "--wait",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("serving 2 client cases on ws://127.0.0.1:"),
        "{first}"
    );
    let url = first.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(!url.ends_with(":0"), "{url}");
    let status = Command::new(example("planted_client"))
        .args([url.as_str(), "a"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut json = String::new();
    out.read_to_string(&mut json).unwrap();
    assert!(child.wait().unwrap().success(), "{json}");
    assert!(
        json.starts_with("{\"clients\":[\n{\"agent\":\"a\",\"done\":true,\"cases\":["),
        "{json}"
    );
    assert!(json.contains("\"id\":\"close.1.1\""), "{json}");
    assert!(json.contains("\"transcript\":[\"+"), "{json}");
    assert!(json.contains("\"pass\":2,"), "{json}");

    // Nobody comes: the run ends at --wait and says so with exit code 2.
    let quiet = Command::new(exe)
        .args([
            "check",
            "--serve",
            "127.0.0.1:0",
            "--cases",
            "ping.1.1",
            "--wait",
            "1",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(quiet.status.code(), Some(2), "{quiet:?}");
}

/// The engine's own blocking client, offering permessage-deflate with context takeover both
/// ways, as an echo client of the deflate cases: they run (none SKIPPED but the one its offer
/// makes valid) and it passes them, compressed echoes and refusals alike.
#[cfg(feature = "deflate")]
#[test]
fn a_client_that_offers_deflate_runs_and_passes_the_deflate_cases() {
    use c10k::client::{Client, ClientConfig, Received};
    use c10k::proto::DeflateConfig;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = ServeOptions {
        cases: Some("deflate".to_owned()),
        clients: vec!["engine".to_owned()],
        wait: Duration::from_secs(60),
        timeout_scale: 1.0,
    };
    let server = std::thread::spawn(move || client::serve(listener, &options));
    let list = http(port, "GET /cases HTTP/1.1\r\nHost: x\r\n\r\n");
    let ids: Vec<String> = list
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split('\n')
        .map(str::to_owned)
        .collect();
    assert!(ids.len() > 15, "{ids:?}");
    let config = ClientConfig {
        deflate: Some(DeflateConfig {
            compress_context_takeover: true,
            decompress_context_takeover: true,
            ..DeflateConfig::default()
        }),
        timeout: Some(Duration::from_secs(5)),
        ..ClientConfig::default()
    };
    for id in &ids {
        let url = format!("ws://127.0.0.1:{port}/case/{id}?agent=engine");
        let Ok(mut c) = Client::connect_with(&url, &config) else {
            continue;
        };
        loop {
            let sent = match c.recv() {
                Ok(Received::Text(t)) => c.send_text(&t),
                Ok(Received::Binary(b)) => c.send_binary(&b),
                Ok(Received::Ping(_) | Received::Pong(_)) => Ok(()),
                Ok(Received::Close(..)) | Err(_) => break,
            };
            if sent.is_err() {
                break;
            }
        }
    }
    let done = http(port, "GET /done?agent=engine HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(done.starts_with("HTTP/1.1 200 "), "{done}");
    let report = server.join().unwrap().remove(0);
    assert!(report.ok(), "{}", show(&report));
    for r in &report.results {
        match r.verdict {
            Verdict::Pass => {}
            Verdict::Skipped => assert!(r.reason.contains("client_max_window_bits"), "{}", r.line()),
            _ => panic!("{}", show(&report)),
        }
    }
    assert!(
        ids_with(&report, Verdict::Pass).len() >= ids.len() - 1,
        "{}",
        show(&report)
    );
}

/// Opens a case as client `raw` with a hand-written upgrade; returns the stream after the 101.
fn raw_case(port: u16, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /case/{id}?agent=raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A client that refuses 16 MiB with 1009 is INFO, one that drops the connection instead of
/// failing it with a Close frame NON-STRICT, one that never echoes FAIL.
#[test]
fn a_1009_is_info_a_drop_non_strict_and_silence_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = ServeOptions {
        cases: Some("limits.1.2,reserved.2.1,framing.1.2".to_owned()),
        clients: vec!["raw".to_owned()],
        wait: Duration::from_secs(60),
        timeout_scale: 0.5,
    };
    let server = std::thread::spawn(move || client::serve(listener, &options));

    // 16 MiB: read the frame's header, answer with a masked Close 1009, wait for the end.
    let mut s = raw_case(port, "limits.1.2");
    let mut header = [0u8; 10];
    s.read_exact(&mut header).unwrap();
    assert_eq!(header[..2], [0x82, 127]);
    s.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xf1 ^ 2])
        .unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);

    // A reserved opcode: drop the connection without a Close frame.
    drop(raw_case(port, "reserved.2.1"));

    // An echo case: say nothing until the checker gives up.
    let mut s = raw_case(port, "framing.1.2");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);

    let done = http(port, "GET /done?agent=raw HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(done.starts_with("HTTP/1.1 200 "), "{done}");
    let report = server.join().unwrap().remove(0);
    let by_id = |id: &str| report.results.iter().find(|r| r.id == id).unwrap().clone();
    let big = by_id("limits.1.2");
    assert_eq!(big.verdict, Verdict::Info, "{}", big.line());
    assert!(big.reason.contains("refused it with 1009"), "{}", big.line());
    let dropped = by_id("reserved.2.1");
    assert_eq!(dropped.verdict, Verdict::NonStrict, "{}", dropped.line());
    assert!(
        dropped.reason.contains("without a Close frame"),
        "{}",
        dropped.line()
    );
    let silent = by_id("framing.1.2");
    assert_eq!(silent.verdict, Verdict::Fail, "{}", silent.line());
    assert!(silent.reason.contains("no answer within"), "{}", silent.line());
    assert!(
        silent
            .transcript
            .last()
            .is_some_and(|l| l.ends_with("checker closed TCP")),
        "{:?}",
        silent.transcript
    );
}
