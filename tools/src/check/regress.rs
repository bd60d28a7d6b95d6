//! Regression cases: the replay files that `c10k fuzz` saves, run as cases of the suite with the
//! same verdicts (`c10k check --regressions DIR`). A finding that was fixed passes.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CaseResult, Group, Options, Target, Verdict};
use crate::fuzz::{self, replay::Replay};

/// The time bound of one regression case, before `--timeout-scale`.
pub const REGRESSION_BOUND: Duration = Duration::from_secs(2);

/// The replay files (`*.replay`) of `dir`, sorted by name.
pub fn regression_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "replay"))
        .collect();
    files.sort();
    Ok(files)
}

/// The case id of a replay file: `regress.` and the file's name without `.replay`.
pub fn regression_id(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    format!("regress.{stem}")
}

/// Runs one replay file against `target` as a case.
pub fn run_regression(target: &Target, path: &Path, options: &Options) -> CaseResult {
    let started = Instant::now();
    let id = regression_id(path);
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string());
    let parsed = text.as_deref().map_err(Clone::clone).and_then(Replay::parse);
    let description = text
        .as_deref()
        .ok()
        .and_then(|t| t.lines().nth(1))
        .and_then(|l| l.strip_prefix("# "))
        .map_or_else(
            || format!("replay of {}", path.display()),
            |l| format!("once: {l}"),
        );
    let mut result = CaseResult {
        id,
        group: Group::Regression,
        section: "fuzz",
        description,
        sent: String::new(),
        observed: String::new(),
        took: Duration::ZERO,
        elapsed: Duration::ZERO,
        verdict: Verdict::Fail,
        reason: String::new(),
        transcript: Vec::new(),
    };
    if target.is_tls() {
        result.verdict = Verdict::Skipped;
        result.reason = "replay files are played by the driver of c10k fuzz, which speaks ws:// \
                         only: not run over wss://"
            .to_owned();
        result.sent = "nothing".to_owned();
        result.observed = "nothing (not run)".to_owned();
        result.elapsed = started.elapsed();
        return result;
    }
    let replay = match parsed {
        Ok(r) => r,
        Err(e) => {
            result.reason = format!("cannot read the replay file: {e}");
            result.observed = "nothing (not run)".to_owned();
            result.elapsed = started.elapsed();
            return result;
        }
    };
    let replay = Replay {
        max_message: options.max_message.or(replay.max_message),
        ..replay
    };
    result.sent = format!("{} frames from {}", replay.sequence.frames.len(), path.display());
    let scale = if options.timeout_scale.is_finite() && options.timeout_scale > 0.0 {
        options.timeout_scale
    } else {
        1.0
    };
    match fuzz::replay(target, &replay, REGRESSION_BOUND.mul_f64(scale)) {
        Ok(o) => {
            result.verdict = o.verdict;
            result.observed = if o.verdict == Verdict::Pass {
                format!("did what was expected ({})", o.expected)
            } else {
                format!("{}: {}", o.kind, o.reason)
            };
            if o.verdict != Verdict::Pass {
                result.reason = format!("{} (expected: {})", o.reason, o.expected);
            }
        }
        Err(e) => {
            result.reason = format!("cannot run: {e}");
            result.observed = "nothing".to_owned();
        }
    }
    result.elapsed = started.elapsed();
    result.took = result.elapsed;
    result
}
