//! The client suite's results: one per case and client, a report per client, as text lines or
//! one JSON object.

use std::fmt::Write as _;
use std::time::Duration;

use super::super::case::Group;
use super::super::report::string as json_string;
use super::super::{Counts, Verdict};
use super::case::ClientCase;

/// What one client did in one case.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCaseResult {
    /// The case id (`utf8.3.2`, `close.tcp.1`).
    pub id: String,
    /// The case's group.
    pub group: Group,
    /// The RFC section checked (`5.5.1`, `rfc7692.7.1`).
    pub section: &'static str,
    /// What the case checks.
    pub description: String,
    /// What the checker sends.
    pub sent: String,
    /// What the client did, in short.
    pub observed: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is not PASS (for INFO: what was seen; for SKIPPED: why the case could not
    /// run); empty for PASS.
    pub reason: String,
    /// What went over the connection, with times since the connection was accepted: lines like
    /// `+0.412 ms  < text 5 B "Hello" (masked)` (`>`: checker to client, `<`: client to
    /// checker), at most [`super::MAX_TRANSCRIPT_LINES`] lines, payloads shown up to
    /// [`super::SHOWN_PAYLOAD`] bytes.
    pub transcript: Vec<String>,
    /// How long the case's connection lasted.
    pub elapsed: Duration,
}

impl ClientCaseResult {
    /// The result of a case the client never ran: FAIL, "not run".
    pub fn not_run(case: &ClientCase) -> Self {
        Self {
            id: case.id.clone(),
            group: case.group,
            section: case.section,
            description: case.description.clone(),
            sent: case.sent.clone(),
            observed: "never connected to this case".to_owned(),
            verdict: Verdict::Fail,
            reason: "not run".to_owned(),
            transcript: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// One line (two when the verdict is not PASS), laid out as the server suite's.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{:<10} {:<16} [{}] {}: sent {}; client {}",
            self.verdict, self.id, self.section, self.description, self.sent, self.observed
        );
        if self.verdict != Verdict::Pass {
            let _ = write!(s, "\n{:<10} {:<16} -> {}", "", "", self.reason);
        }
        s
    }

    fn json(&self, out: &mut String) {
        out.push('{');
        for (i, (name, value)) in [
            ("id", self.id.as_str()),
            ("group", self.group.name()),
            ("section", self.section),
            ("description", &self.description),
            ("sent", &self.sent),
            ("observed", &self.observed),
            ("verdict", self.verdict.as_str()),
            ("reason", &self.reason),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            json_string(out, name);
            out.push(':');
            json_string(out, value);
        }
        let _ = write!(
            out,
            ",\"elapsed_ms\":{:.3},\"transcript\":[",
            self.elapsed.as_secs_f64() * 1000.0
        );
        for (i, line) in self.transcript.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(out, line);
        }
        out.push_str("]}");
    }
}

/// Every case's result for one client (named by `agent=` in its URLs).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientReport {
    /// The client's name, as its URLs gave it.
    pub agent: String,
    /// Whether the client said it was finished (`/done`) before the run ended.
    pub done: bool,
    /// One result per selected case, in the suite's order; a case the client never ran is FAIL,
    /// "not run".
    pub results: Vec<ClientCaseResult>,
}

impl ClientReport {
    /// How many cases got each verdict.
    pub fn counts(&self) -> Counts {
        Counts::of(self.results.iter().map(|r| r.verdict))
    }

    /// Whether no case failed.
    pub fn ok(&self) -> bool {
        self.counts().fail == 0
    }

    /// `AGENT: N cases: P PASS, I INFO, K SKIPPED, S NON-STRICT, F FAIL` (and `, not done` when
    /// the client never said `/done`).
    pub fn summary_line(&self) -> String {
        let c = self.counts();
        format!(
            "{}: {} cases: {} PASS, {} INFO, {} SKIPPED, {} NON-STRICT, {} FAIL{}",
            self.agent,
            self.results.len(),
            c.pass,
            c.info,
            c.skipped,
            c.non_strict,
            c.fail,
            if self.done { "" } else { ", not done" }
        )
    }

    fn json(&self, out: &mut String) {
        out.push_str("{\"agent\":");
        json_string(out, &self.agent);
        let _ = write!(out, ",\"done\":{},\"cases\":[", self.done);
        for (i, r) in self.results.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("\n  ");
            r.json(out);
        }
        let c = self.counts();
        let _ = write!(
            out,
            "\n],\"summary\":{{\"total\":{},\"pass\":{},\"info\":{},\"skipped\":{},\
             \"non_strict\":{},\"fail\":{},\"line\":",
            self.results.len(),
            c.pass,
            c.info,
            c.skipped,
            c.non_strict,
            c.fail
        );
        json_string(out, &self.summary_line());
        out.push_str("}}");
    }
}

/// `{"clients":[{"agent":..,"done":..,"cases":[..],"summary":{..}},..]}` and a newline.
pub fn to_json(reports: &[ClientReport]) -> String {
    let mut out = String::with_capacity(reports.iter().map(|r| r.results.len() * 600).sum());
    out.push_str("{\"clients\":[");
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('\n');
        r.json(&mut out);
    }
    out.push_str("\n]}\n");
    out
}
