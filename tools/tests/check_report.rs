//! `c10k check` against several servers at once: one report page with a column each, JSON as an
//! array, a server that cannot be reached failing its own column only; and the transcript each
//! case keeps of the frames written and received.

#[path = "common/procs.rs"]
mod procs;

use std::net::TcpListener;
use std::process::Command;

use c10k_tools::check::{self, Options, Target};
use procs::Serve;

/// The `+T ms` of a transcript line.
fn time_of(line: &str) -> f64 {
    line.strip_prefix('+')
        .and_then(|l| l.split(" ms").next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {line:?}"))
}

#[test]
fn a_case_keeps_a_transcript_of_its_frames_in_order() {
    let server = Serve::start(&["-q"]);
    let target = Target::parse(&server.url).unwrap();
    let options = Options::default();
    let cases = check::select(check::cases(&options), Some("framing.1.2"));
    let report = check::run(&target, &cases, &options, |_| {});
    drop(server);
    let r = &report.results[0];
    let t = &r.transcript;
    let expected = [
        "TCP connected",
        "> HTTP request \"GET / HTTP/1.1\"",
        "< \"HTTP/1.1 101 ",
        "> text ",
        "< text ",
        "> close 1000 \"\" (masked)",
        "< close 1000",
        "server closed TCP",
    ];
    let mut at = 0;
    for want in expected {
        let found = t[at..].iter().position(|l| l.contains(want));
        let Some(i) = found else {
            panic!("no {want:?} after line {at} of the transcript:\n{}", t.join("\n"));
        };
        at += i + 1;
    }
    let times: Vec<f64> = t.iter().map(|l| time_of(l)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{}", t.join("\n"));
    assert!(
        report.to_json().contains("\"transcript\":[\"+"),
        "the JSON holds it"
    );
}

#[test]
fn several_urls_make_one_report_with_a_column_each() {
    let server = Serve::start(&["-q"]);
    let url = server.url.clone();
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check_report_two.html");
    let out = Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args(["check", &url, &url, "--cases", "framing.1.1,ping.1", "--json"])
        .args(["--names", "first,second", "--report"])
        .arg(&file)
        .output()
        .unwrap();
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with('[') && text.trim_end().ends_with(']'), "{text}");
    assert_eq!(text.matches("\"target\":").count(), 2, "{text}");
    let cases = text.matches("\"summary\":{\"total\":").count();
    assert_eq!(cases, 2, "{text}");
    let page = std::fs::read_to_string(&file).unwrap();
    let rows = check::select(check::cases(&Options::default()), Some("framing.1.1,ping.1")).len();
    assert_eq!(page.matches("class=\"cell ").count(), 2 * rows);
    assert_eq!(page.matches("data-verdict=\"PASS\" data-c=").count(), 2 * rows);
    assert!(page.contains("<th class=\"impl\">first</th><th class=\"impl\">second</th>"));
}

#[test]
fn a_server_that_cannot_be_reached_fails_its_column_and_the_others_run() {
    let server = Serve::start(&["-q"]);
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("ws://{}/", l.local_addr().unwrap())
    };
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check_report_down.html");
    let out = Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args([
            "check",
            &server.url,
            &closed,
            "--cases",
            "framing.1.1",
            "--report",
        ])
        .arg(&file)
        .output()
        .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("1 of 2 servers could not be checked"), "{stderr}");
    assert!(
        stdout.contains("1 cases: 1 PASS"),
        "the first still ran: {stdout}"
    );
    let page = std::fs::read_to_string(&file).unwrap();
    assert!(page.contains("data-verdict=\"PASS\" data-c=\"0\""), "{page}");
    assert!(page.contains("data-verdict=\"FAIL\" data-c=\"1\""), "{page}");
    assert!(page.contains("the server could not be checked"));
}

#[test]
fn names_must_match_the_urls() {
    let out = Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args([
            "check",
            "ws://127.0.0.1:1/",
            "--names",
            "a,b",
            "--cases",
            "framing.1.1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--names gives 2 names for 1 URLs"), "{stderr}");
}
