//! What a run found: progress while it runs, findings grouped by kind, and the summary as text
//! or one JSON object (like `c10k check --json`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::judge::Outcome;
use crate::check::{Verdict, json_string};

/// A live count, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Sequences done.
    pub sequences: u64,
    /// Sequences per second so far.
    pub rate: f64,
    /// NON-STRICT outcomes.
    pub non_strict: u64,
    /// FAIL outcomes.
    pub fail: u64,
    /// Distinct findings (verdict, kind, cause).
    pub distinct: usize,
}

impl Progress {
    pub(super) fn new(counts: [u64; 3], distinct: usize, elapsed: Duration) -> Self {
        let sequences = counts.iter().sum();
        Self {
            sequences,
            rate: sequences as f64 / elapsed.as_secs_f64().max(1e-3),
            non_strict: counts[1],
            fail: counts[2],
            distinct,
        }
    }

    /// `12000 sequences, 5400/s, 0 FAIL, 3 NON-STRICT, 1 distinct`.
    pub fn line(&self) -> String {
        format!(
            "{} sequences, {:.0}/s, {} FAIL, {} NON-STRICT, {} distinct",
            self.sequences, self.rate, self.fail, self.non_strict, self.distinct
        )
    }
}

/// One distinct finding: a (verdict, kind, cause) and how often it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The first sequence that showed it.
    pub first: u64,
    /// How many sequences showed it.
    pub count: u64,
    /// The outcome (of the minimized sequence once minimized).
    pub outcome: Outcome,
    /// Frames before and after minimizing, and the candidates tried.
    pub minimized: Option<(usize, usize, usize)>,
    /// The saved replay file.
    pub file: Option<PathBuf>,
    /// When the first sequence, run again alone, did something else: what it did (the finding
    /// came from load or timing, and was not saved).
    pub reproduced: Option<Outcome>,
}

impl Finding {
    pub(super) fn new(first: u64, outcome: Outcome) -> Self {
        Self {
            first,
            count: 1,
            outcome,
            minimized: None,
            file: None,
            reproduced: None,
        }
    }

    /// `fail-accepted-invalid-fail-1007-invalid-utf-8-s1-n345.replay`.
    pub fn file_name(&self, seed: u64) -> String {
        let o = &self.outcome;
        let raw = format!("{}-{}-{}", o.verdict.as_str(), o.kind, o.cause).to_ascii_lowercase();
        let mut slug = String::new();
        for c in raw.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        format!("{}-s{seed}-n{}.replay", slug.trim_end_matches('-'), self.first)
    }

    /// The comment lines of the replay file.
    pub fn comments(&self, seed: u64) -> Vec<String> {
        let o = &self.outcome;
        vec![
            format!("{} {}: {}", o.verdict, o.kind, o.reason),
            format!("expected: {}", o.expected),
            format!(
                "found with --seed {seed}: sequence {} (and {} more like it)",
                self.first,
                self.count - 1
            ),
        ]
    }

    /// Two or three lines for a terminal.
    pub fn lines(&self) -> String {
        let o = &self.outcome;
        let mut s = format!(
            "{:<10} {:<26} [{}] x{} (first: sequence {})\n{:<10} -> {}\n{:<10}    expected: {}",
            o.verdict, o.kind, o.cause, self.count, self.first, "", o.reason, "", o.expected
        );
        if let Some(again) = &self.reproduced {
            let _ = write!(
                s,
                "\n{:<10}    not saved: run again alone it gave {} {} (load or timing)",
                "", again.verdict, again.kind
            );
        }
        if let Some(file) = &self.file {
            let _ = write!(s, "\n{:<10}    saved: {}", "", file.display());
            if let Some((before, after, tried)) = self.minimized {
                let _ = write!(
                    s,
                    " ({before} frames minimized to {after}, {tried} candidates tried)"
                );
            }
        }
        s
    }

    fn json(&self, out: &mut String) {
        let o = &self.outcome;
        out.push('{');
        for (i, (k, v)) in [
            ("verdict", o.verdict.as_str()),
            ("kind", o.kind),
            ("cause", &o.cause),
            ("reason", &o.reason),
            ("expected", &o.expected),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            json_string(out, k);
            out.push(':');
            json_string(out, v);
        }
        let _ = write!(
            out,
            ",\"count\":{},\"first\":{},\"file\":",
            self.count, self.first
        );
        match &self.file {
            Some(f) => json_string(out, &f.display().to_string()),
            None => out.push_str("null"),
        }
        out.push_str(",\"reproduced\":");
        out.push_str(if self.reproduced.is_some() {
            "false"
        } else {
            "true"
        });
        match self.minimized {
            Some((b, a, t)) => {
                let _ = write!(
                    out,
                    ",\"frames_before\":{b},\"frames_after\":{a},\"shrink_candidates\":{t}"
                );
            }
            None => out.push_str(",\"frames_before\":null,\"frames_after\":null,\"shrink_candidates\":null"),
        }
        out.push('}');
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The URL fuzzed.
    pub target: String,
    /// The seed.
    pub seed: u64,
    /// PASS, NON-STRICT, FAIL counts.
    pub counts: [u64; 3],
    /// How long the sequences ran (minimizing excluded).
    pub fuzzed: Duration,
    /// How long the whole run took.
    pub elapsed: Duration,
    /// Distinct findings, FAIL first, then the most frequent.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Sequences run.
    pub fn sequences(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sequences per second while fuzzing.
    pub fn rate(&self) -> f64 {
        self.sequences() as f64 / self.fuzzed.as_secs_f64().max(1e-3)
    }

    /// Whether no sequence failed.
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }

    /// Sequences that failed.
    pub fn failed(&self) -> u64 {
        self.counts[slot(Verdict::Fail)]
    }

    /// `N sequences in T s (R/s): P PASS, S NON-STRICT, F FAIL; K distinct findings`.
    pub fn summary_line(&self) -> String {
        let [p, s, f] = self.counts;
        format!(
            "{} sequences in {:.1} s ({:.0}/s): {p} PASS, {s} NON-STRICT, {f} FAIL; {} distinct finding{}",
            self.sequences(),
            self.fuzzed.as_secs_f64(),
            self.rate(),
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" }
        )
    }

    /// One JSON object: target, seed, findings and the summary.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(512 + self.findings.len() * 400);
        out.push('{');
        json_string(&mut out, "target");
        out.push(':');
        json_string(&mut out, &self.target);
        let _ = write!(out, ",\"seed\":{},\"findings\":[", self.seed);
        for (i, f) in self.findings.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("\n  ");
            f.json(&mut out);
        }
        let [p, s, f] = self.counts;
        let _ = write!(
            out,
            "\n],\"summary\":{{\"sequences\":{},\"pass\":{p},\"non_strict\":{s},\"fail\":{f},\"distinct\":{},\"rate\":{:.1},\"fuzz_s\":{:.3},\"elapsed_s\":{:.3},\"line\":",
            self.sequences(),
            self.findings.len(),
            self.rate(),
            self.fuzzed.as_secs_f64(),
            self.elapsed.as_secs_f64()
        );
        json_string(&mut out, &self.summary_line());
        out.push_str("}}\n");
        out
    }
}

/// Where a verdict is counted in `counts` (PASS, NON-STRICT, FAIL): a sequence always runs, so
/// the fuzzer has no SKIPPED.
pub(super) fn slot(v: Verdict) -> usize {
    match v {
        Verdict::NonStrict => 1,
        Verdict::Fail => 2,
        Verdict::Pass | Verdict::Info | Verdict::Skipped => 0,
    }
}
