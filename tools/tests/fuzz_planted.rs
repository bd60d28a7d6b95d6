//! `c10k fuzz` finds bugs: each deliberately broken server (one planted defect each) is found
//! within a bounded number of sequences at a fixed seed, the minimized replay file reproduces the
//! FAIL, and `c10k check --regressions` runs it as a case. The same fuzzer finds nothing against
//! the correct version of that server and against `c10k serve`.

#[path = "common/broken.rs"]
mod broken;
#[path = "common/procs.rs"]
mod procs;

use std::path::PathBuf;
use std::process::Command;

use broken::Defect;
use procs::{EXE, Serve};

/// The planted servers' limit, and the fuzzer's.
const LIMIT: &str = "131072";

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("c10k-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `c10k fuzz` and returns (exit success, stdout). The bound on each answer is 1 s unless
/// `extra` sets `--timeout`.
fn fuzz(url: &str, extra: &[&str]) -> (bool, String) {
    let timeout: &[&str] = if extra.contains(&"--timeout") {
        &[]
    } else {
        &["--timeout", "1s"]
    };
    let out = Command::new(EXE)
        .args([
            "-q",
            "fuzz",
            url,
            "--seed",
            "1",
            "--max-message",
            LIMIT,
            "--parallel",
            "16",
        ])
        .args(timeout)
        .args(extra)
        .output()
        .expect("run c10k fuzz");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// Fuzzes a broken server until the first FAIL; checks it is one of `kinds` (kind, and a piece
/// of the oracle's cause), that the saved file replays as FAIL, and that `c10k check
/// --regressions` calls it FAIL too.
fn finds(defect: Defect, sequences: u32, kinds: &[(&str, &str)]) {
    let server = broken::start(defect, LIMIT.parse().unwrap());
    let dir = out_dir(&format!("{defect:?}"));
    let n = sequences.to_string();
    let (ok, out) = fuzz(
        &server.url,
        &[
            "--sequences",
            &n,
            "--stop-on-fail",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{defect:?}: no FAIL within {sequences} sequences:\n{out}");
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with("FAIL"), "{defect:?}:\n{out}");
    assert!(
        kinds
            .iter()
            .any(|(kind, cause)| first.contains(&format!(" {kind} ")) && first.contains(cause)),
        "{defect:?}: unexpected kind:\n{out}"
    );
    let file = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("saved: "))
        .map(|l| l.split(" (").next().unwrap_or(l).to_owned())
        .unwrap_or_else(|| panic!("{defect:?}: nothing saved:\n{out}"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.lines().count() < 40, "{defect:?}: not minimized:\n{text}");
    let replay = Command::new(EXE)
        .args(["-q", "fuzz", &server.url, "--replay", &file])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&replay.stdout);
    assert!(
        !replay.status.success() && shown.starts_with("FAIL"),
        "{defect:?}: replay of\n{text}\ngave\n{shown}"
    );
    let check = Command::new(EXE)
        .args(["-q", "check", &server.url, "--regressions", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        !check.status.success() && shown.contains("FAIL       regress."),
        "{defect:?}: check gave\n{shown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn finds_text_that_is_not_utf8_echoed() {
    finds(
        Defect::Utf8Unchecked,
        3000,
        &[("accepted-invalid", "fail 1007 (invalid UTF-8)")],
    );
}

#[test]
fn finds_a_64_bit_length_read_as_32_bits() {
    finds(
        Defect::Length32,
        3000,
        &[
            ("accepted-invalid", "fail 1009"),
            ("accepted-invalid", "fail 1002 (length overflow)"),
        ],
    );
}

#[test]
fn finds_fragmented_control_frames_accepted() {
    finds(
        Defect::FragmentedControl,
        3000,
        &[("accepted-invalid", "fragmented control frame")],
    );
}

#[test]
fn finds_a_close_code_echoed_unchecked() {
    finds(Defect::CloseCodeUnchecked, 3000, &[("invalid-close", "")]);
}

#[test]
fn finds_a_panic_on_a_rare_frame() {
    finds(
        Defect::PanicOnLongestPing,
        5000,
        &[("missing-pong", ""), ("dropped-before-echo", "")],
    );
}

#[test]
fn the_correct_server_has_no_fail() {
    let server = broken::start(Defect::None, LIMIT.parse().unwrap());
    // A correct server has nothing to find: a loaded machine must not turn a slow answer into a
    // finding, so the bound is generous here.
    let (ok, out) = fuzz(
        &server.url,
        &["--sequences", "3000", "--no-save", "--timeout", "10s"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("0 FAIL"), "{out}");
}

#[test]
fn c10k_serve_has_no_finding() {
    let server = Serve::start(&["-q", "--max-message", LIMIT]);
    // A correct server has nothing to find: a loaded machine must not turn a slow answer into a
    // finding, so the bound is generous here.
    let (ok, out) = fuzz(
        &server.url,
        &["--sequences", "3000", "--no-save", "--timeout", "10s"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(" 0 NON-STRICT, 0 FAIL; 0 distinct findings"),
        "{out}"
    );
}
