//! The pinned list of conformance cases and how a run's results are shown when some did not
//! pass: shared by the tests that run the whole suite (over ws:// and over wss://).
//!
//! Included with `#[path = "common/cases.rs"] mod cases;`.
#![allow(dead_code)]

use c10k_tools::check::{CaseResult, Verdict};

/// The committed list of case ids (with the server's message limit given, so every case).
pub const CASE_LIST: &str = "tools/tests/check_cases.txt";

/// The ids of [`CASE_LIST`], in order.
pub fn pinned_ids() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_cases.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The results that are not PASS, one or two lines each.
pub fn failures(results: &[CaseResult]) -> String {
    results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(CaseResult::line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that every pinned case ran, in order, and passed, and that the summary `line` says
/// so.
pub fn assert_whole_suite_passed(results: &[CaseResult], line: &str) {
    let bad = failures(results);
    assert!(bad.is_empty(), "{line}\n{bad}");
    let ran: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ran,
        pinned_ids(),
        "the cases that ran are not those of {CASE_LIST}"
    );
    assert_eq!(
        line,
        format!(
            "{n} cases: {n} PASS, 0 SKIPPED, 0 NON-STRICT, 0 FAIL",
            n = results.len()
        )
    );
}
