//! Results: one per case, a report of all of them, as text lines or one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::Verdict;
use super::case::{Case, Group};
use super::runner::transcript::merge;
use super::runner::{Run, ms};

/// What happened in one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    /// The case id (`utf8.2.14`).
    pub id: String,
    /// The case's group.
    pub group: Group,
    /// The RFC 6455 section checked.
    pub section: &'static str,
    /// What the case checks.
    pub description: String,
    /// What was sent.
    pub sent: String,
    /// What the server did.
    pub observed: String,
    /// How long the server took to answer (the longest wait after a write, over the case's
    /// connections).
    pub took: Duration,
    /// How long the whole case ran.
    pub elapsed: Duration,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is not PASS (for SKIPPED: why the case could not run); empty for PASS.
    pub reason: String,
    /// The frames written and received, with their times since the case started, per
    /// connection (under a heading when the case opened several): at most 200 lines.
    pub transcript: Vec<String>,
}

impl CaseResult {
    /// One line (two when the verdict is not PASS) for a terminal.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{:<10} {:<16} [{}] {}: sent {}; server {} ({})",
            self.verdict,
            self.id,
            self.section,
            self.description,
            self.sent,
            self.observed,
            ms(self.took)
        );
        if self.verdict != Verdict::Pass {
            let _ = write!(s, "\n{:<10} {:<16} -> {}", "", "", self.reason);
        }
        s
    }

    fn json(&self, out: &mut String) {
        out.push('{');
        field(out, "id", &self.id);
        out.push(',');
        field(out, "group", self.group.name());
        out.push(',');
        field(out, "section", self.section);
        out.push(',');
        field(out, "description", &self.description);
        out.push(',');
        field(out, "sent", &self.sent);
        out.push(',');
        field(out, "observed", &self.observed);
        let _ = write!(
            out,
            ",\"took_ms\":{:.3},\"elapsed_ms\":{:.3},",
            self.took.as_secs_f64() * 1000.0,
            self.elapsed.as_secs_f64() * 1000.0
        );
        field(out, "verdict", self.verdict.as_str());
        out.push(',');
        field(out, "reason", &self.reason);
        out.push_str(",\"transcript\":[");
        for (i, line) in self.transcript.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, line);
        }
        out.push_str("]}");
    }
}

/// How many cases got each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// PASS.
    pub pass: usize,
    /// INFO: informational, no judgment (only the client suite gives it).
    pub info: usize,
    /// SKIPPED: not run (the server declined an extension they need).
    pub skipped: usize,
    /// NON-STRICT.
    pub non_strict: usize,
    /// FAIL.
    pub fail: usize,
}

impl Counts {
    /// The counts of `verdicts`.
    pub fn of(verdicts: impl IntoIterator<Item = Verdict>) -> Self {
        let mut c = Self::default();
        for v in verdicts {
            c.add(v);
        }
        c
    }

    /// Counts one more case with `verdict`.
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Pass => self.pass += 1,
            Verdict::Info => self.info += 1,
            Verdict::Skipped => self.skipped += 1,
            Verdict::NonStrict => self.non_strict += 1,
            Verdict::Fail => self.fail += 1,
        }
    }

    /// `P PASS, K SKIPPED, S NON-STRICT, F FAIL`, with `I INFO` after PASS when there is any.
    pub fn line(&self) -> String {
        let info = if self.info > 0 {
            format!("{} INFO, ", self.info)
        } else {
            String::new()
        };
        format!(
            "{} PASS, {info}{} SKIPPED, {} NON-STRICT, {} FAIL",
            self.pass, self.skipped, self.non_strict, self.fail
        )
    }

    /// The counts as JSON members (no braces): `"pass":P,"skipped":K,...`, with `"info":I` after
    /// `pass` when there is any (the server suite gives none, and its JSON stays as it was).
    pub(crate) fn json(&self, out: &mut String) {
        let _ = write!(out, "\"pass\":{},", self.pass);
        if self.info > 0 {
            let _ = write!(out, "\"info\":{},", self.info);
        }
        let _ = write!(
            out,
            "\"skipped\":{},\"non_strict\":{},\"fail\":{}",
            self.skipped, self.non_strict, self.fail
        );
    }
}

/// All results of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The URL checked.
    pub target: String,
    /// For a `wss://` URL: the TLS version, cipher suite and ALPN protocol agreed (or why a
    /// first handshake failed); `None` for `ws://`.
    pub tls: Option<String>,
    /// One result per case, in running order.
    pub results: Vec<CaseResult>,
    /// Cases left out, and why.
    pub notes: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Report {
    /// How many cases got each verdict.
    pub fn counts(&self) -> Counts {
        Counts::of(self.results.iter().map(|r| r.verdict))
    }

    /// Whether no case failed (SKIPPED and NON-STRICT are not failures).
    pub fn ok(&self) -> bool {
        self.counts().fail == 0
    }

    /// `N cases: P PASS, K SKIPPED, S NON-STRICT, F FAIL`.
    pub fn summary_line(&self) -> String {
        format!("{} cases: {}", self.results.len(), self.counts().line())
    }

    /// The counts of each group, in the groups' order.
    pub fn by_group(&self) -> Vec<(Group, Counts)> {
        let mut map: BTreeMap<Group, Counts> = BTreeMap::new();
        for r in &self.results {
            map.entry(r.group).or_default().add(r.verdict);
        }
        map.into_iter().collect()
    }

    /// One JSON object: target, TLS (or null), cases, notes, per-group counts and the summary.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.results.len() * 300);
        out.push('{');
        field(&mut out, "target", &self.target);
        out.push_str(",\"tls\":");
        match &self.tls {
            Some(agreed) => string(&mut out, agreed),
            None => out.push_str("null"),
        }
        out.push_str(",\"cases\":[");
        for (i, r) in self.results.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("\n  ");
            r.json(&mut out);
        }
        out.push_str("\n],\"notes\":[");
        for (i, n) in self.notes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(&mut out, n);
        }
        out.push_str("],\"groups\":{");
        for (i, (g, c)) in self.by_group().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(&mut out, g.name());
            out.push_str(":{");
            c.json(&mut out);
            out.push('}');
        }
        let _ = write!(out, "}},\"summary\":{{\"total\":{},", self.results.len());
        self.counts().json(&mut out);
        let _ = write!(out, ",\"elapsed_ms\":{:.1},", self.elapsed.as_secs_f64() * 1000.0);
        field(&mut out, "line", &self.summary_line());
        out.push_str("}}\n");
        out
    }
}

fn field(out: &mut String, name: &str, value: &str) {
    string(out, name);
    out.push(':');
    string(out, value);
}

/// A JSON string literal.
pub(crate) fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Combines the runs of one case into its result.
pub(crate) fn combine(case: &Case, runs: Vec<Run>, planned: usize, elapsed: Duration) -> CaseResult {
    let skipped_runs: Vec<&String> = runs.iter().filter_map(|r| r.skipped.as_ref()).collect();
    // A case passes only when all of its steps ran: one whose connections could not all run
    // (and none did worse) is SKIPPED.
    let verdict = match runs.iter().map(|r| r.verdict).max().unwrap_or(Verdict::Fail) {
        Verdict::Pass if !skipped_runs.is_empty() => Verdict::Skipped,
        v => v,
    };
    let took = runs.iter().map(|r| r.took).max().unwrap_or_default();
    let reason = runs
        .iter()
        .find(|r| r.verdict == verdict && verdict > Verdict::Skipped)
        .map(|r| {
            if runs.len() > 1 && !r.label.is_empty() {
                format!("{}: {}", r.label, r.reason)
            } else {
                r.reason.clone()
            }
        })
        .unwrap_or_else(|| match (verdict, skipped_runs.first()) {
            (Verdict::Skipped, Some(why)) if skipped_runs.len() == runs.len() => (*why).clone(),
            (Verdict::Skipped, Some(why)) => {
                format!("{} of {} connections: {why}", skipped_runs.len(), runs.len())
            }
            _ if runs.is_empty() => "the case has no scripts".to_owned(),
            _ => String::new(),
        });
    let observed = match runs.as_slice() {
        [] => "nothing to observe".to_owned(),
        [one] => one.observed.join("; "),
        many => {
            // Group the connections by what the server did.
            let mut kinds: Vec<(String, usize, &str)> = Vec::new();
            for r in many {
                let what = r.observed.join("; ");
                match kinds.iter_mut().find(|(w, _, _)| *w == what) {
                    Some(k) => k.1 += 1,
                    None => kinds.push((what, 1, r.label.as_str())),
                }
            }
            let shown: Vec<String> = kinds
                .iter()
                .take(4)
                .map(|(what, n, first)| {
                    if *n == 1 && !first.is_empty() {
                        format!("{first}: {what}")
                    } else {
                        format!("{n}x {what}")
                    }
                })
                .collect();
            let more = kinds.len().saturating_sub(4);
            format!(
                "{} connections: {}{}",
                many.len(),
                shown.join(" | "),
                if more > 0 {
                    format!(" | and {more} other outcomes")
                } else {
                    String::new()
                }
            )
        }
    };
    let observed = if runs.len() < planned {
        format!(
            "{observed} (stopped at the first FAIL: {} of {planned} connections ran)",
            runs.len()
        )
    } else {
        observed
    };
    let transcript = merge(runs.iter().map(|r| (r.label.as_str(), &r.transcript)));
    CaseResult {
        transcript,
        id: case.id.clone(),
        group: case.group,
        section: case.section,
        description: case.description.clone(),
        sent: case.sent.clone(),
        observed,
        took,
        elapsed,
        verdict,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cases_json_ends_with_its_transcript_escaped() {
        let r = CaseResult {
            id: "framing.1.1".to_owned(),
            group: Group::Framing,
            section: "5.2",
            description: "d".to_owned(),
            sent: "s".to_owned(),
            observed: "o".to_owned(),
            took: Duration::ZERO,
            elapsed: Duration::ZERO,
            verdict: Verdict::Pass,
            reason: String::new(),
            transcript: vec!["+0.000 ms  > text 1 B \"\\\"\"".to_owned(), "b".to_owned()],
        };
        let mut out = String::new();
        r.json(&mut out);
        assert!(
            out.ends_with(r#""reason":"","transcript":["+0.000 ms  > text 1 B \"\\\"\"","b"]}"#),
            "{out}"
        );
        // The text line does not show it.
        assert!(!r.line().contains("+0.000"));
    }
}
