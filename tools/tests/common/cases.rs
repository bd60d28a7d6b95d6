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
