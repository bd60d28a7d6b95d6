//! What each attack did to the server, the rules that make it fail, and the suite's report: a
//! table for people (one row per attack, then each attack's details) or one JSON object.
//!
//! An attack fails when the server's memory grew past `--max-growth`, when the bystanders' p99
//! grew past `--max-latency-ratio` times its baseline, when a bystander had an error, or when the
//! server crashed (its process disappeared, or its URL stopped answering).

use std::fmt::Write as _;

use super::bystanders::BystanderReport;
use super::monitor::Memory;
use super::options::Limits;
use super::peer::Tally;
use crate::loadgen::{Percentiles, json_string};

/// The bystanders' baseline p99 counts as at least this many microseconds when the latency ratio
/// is computed, so that a baseline of a few microseconds does not turn jitter into a failure.
pub const RATIO_FLOOR_US: f64 = 1000.0;

/// What one attack did.
#[derive(Debug, Clone, Default)]
pub struct AttackReport {
    /// The attack's name.
    pub attack: &'static str,
    /// Its size (what it counts: [`Attack::scale_unit`](super::Attack::scale_unit)).
    pub scale: usize,
    /// How long it ran, drain included, in seconds.
    pub duration_s: f64,
    /// Why it did not run, when it did not.
    pub skipped: Option<String>,
    /// The server's answers to the attack's connections.
    pub answers: Tally,
    /// What else the attack has to say (what it sent, what it could not do).
    pub notes: Vec<String>,
    /// The server's memory and CPU (with its pid).
    pub memory: Option<Memory>,
    /// What the bystanders measured (with bystanders).
    pub bystanders: Option<BystanderReport>,
    /// How the server crashed, if it did.
    pub crashed: Option<String>,
    /// Why the attack failed (empty: it passed, or was skipped).
    pub failures: Vec<String>,
}

impl AttackReport {
    /// A report for an attack that did not run.
    pub fn skipped(attack: &'static str, why: String) -> Self {
        Self {
            attack,
            skipped: Some(why),
            ..Self::default()
        }
    }

    /// The bystanders' p99 during the attack over their baseline p99 (at least
    /// [`RATIO_FLOOR_US`]); `None` without round trips in both phases.
    pub fn latency_ratio(&self) -> Option<f64> {
        let b = self.bystanders.as_ref()?;
        (b.base.count > 0 && b.attack.count > 0).then(|| b.attack.p99 / b.base.p99.max(RATIO_FLOOR_US))
    }

    /// Applies the rules: fills [`AttackReport::failures`].
    pub fn judge(&mut self, limits: &Limits) {
        self.failures.clear();
        if self.skipped.is_some() {
            return;
        }
        if let Some(c) = &self.crashed {
            self.failures.push(format!("the server crashed: {c}"));
        }
        if let (Some(max), Some(m)) = (limits.max_growth, &self.memory)
            && m.growth() > max
        {
            self.failures.push(format!(
                "the server's memory grew by {} (more than {})",
                bytes(m.growth()),
                bytes(max)
            ));
        }
        if let (Some(max), Some(r)) = (limits.max_latency_ratio, self.latency_ratio())
            && r > max
        {
            self.failures
                .push(format!("the bystanders' p99 grew {r:.1} times (more than {max})"));
        }
        if let Some(b) = &self.bystanders
            && b.errors > 0
        {
            self.failures.push(format!("{} bystander errors", b.errors));
        }
    }

    /// PASS, FAIL or SKIPPED.
    pub fn verdict(&self) -> &'static str {
        if self.skipped.is_some() {
            "SKIPPED"
        } else if self.failures.is_empty() {
            "PASS"
        } else {
            "FAIL"
        }
    }

    /// The answers in short: the most frequent first, with their counts.
    pub fn answer(&self) -> String {
        let all = self.answers.by_count();
        if all.is_empty() {
            return "-".to_owned();
        }
        all.iter()
            .map(|(label, n)| {
                if *n == 1 {
                    (*label).to_owned()
                } else {
                    format!("{label} x{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The report as one JSON object.
    pub fn json(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"attack\":\"{}\",\"verdict\":\"{}\",\"scale\":{},\"duration_s\":{:.3},\"skipped\":{},",
            self.attack,
            self.verdict(),
            self.scale,
            self.duration_s,
            opt_str(self.skipped.as_deref())
        );
        let answers: Vec<String> = self
            .answers
            .counts
            .iter()
            .map(|(k, n)| format!("{}:{n}", json_string(k)))
            .collect();
        let _ = write!(s, "\"answers\":{{{}}},", answers.join(","));
        match &self.answers.first {
            Some(f) => {
                let _ = write!(
                    s,
                    "\"first_answer\":{{\"label\":{},\"detail\":{},\"sent_bytes\":{},\"after_s\":{:.3}}},",
                    json_string(&f.label),
                    json_string(&f.detail),
                    f.sent,
                    f.after.as_secs_f64()
                );
            }
            None => s.push_str("\"first_answer\":null,"),
        }
        let _ = write!(
            s,
            "\"sent_bytes\":{},\"attacker_errors\":{},\"notes\":{},",
            self.answers.sent,
            strings(&self.answers.samples),
            strings(&self.notes)
        );
        match &self.memory {
            Some(m) => {
                let _ = write!(
                    s,
                    "\"memory\":{{\"before\":{},\"peak\":{},\"growth\":{},\"after\":{},\"settled_s\":{},\"cpu_s\":{:.3}}},",
                    m.before,
                    m.peak,
                    m.growth(),
                    m.after,
                    m.settled_s.map_or("null".to_owned(), |v| format!("{v:.3}")),
                    m.cpu_s
                );
            }
            None => s.push_str("\"memory\":null,"),
        }
        match &self.bystanders {
            Some(b) => {
                let _ = write!(
                    s,
                    "\"bystanders\":{{\"connections\":{},\"base\":{},\"attack\":{},\"ratio\":{},\"errors\":{},\"error_samples\":{}}},",
                    b.connections,
                    pct(&b.base),
                    pct(&b.attack),
                    self.latency_ratio()
                        .map_or("null".to_owned(), |r| format!("{r:.3}")),
                    b.errors,
                    strings(&b.samples)
                );
            }
            None => s.push_str("\"bystanders\":null,"),
        }
        let _ = write!(
            s,
            "\"crashed\":{},\"failures\":{}}}",
            opt_str(self.crashed.as_deref()),
            strings(&self.failures)
        );
        s
    }
}

/// The reports of a suite run.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    /// The URL attacked.
    pub url: String,
    /// One report per attack, in the order they ran.
    pub reports: Vec<AttackReport>,
}

impl Suite {
    /// Whether no attack failed.
    pub fn ok(&self) -> bool {
        self.reports.iter().all(|r| r.failures.is_empty())
    }

    fn count(&self, verdict: &str) -> usize {
        self.reports.iter().filter(|r| r.verdict() == verdict).count()
    }

    /// The suite as one JSON object: `{"url":..,"attacks":[..],"summary":{..}}`.
    pub fn json(&self) -> String {
        let attacks: Vec<String> = self.reports.iter().map(AttackReport::json).collect();
        format!(
            "{{\"url\":{},\"attacks\":[{}],\"summary\":{{\"attacks\":{},\"passed\":{},\"failed\":{},\"skipped\":{},\"ok\":{}}}}}",
            json_string(&self.url),
            attacks.join(","),
            self.reports.len(),
            self.count("PASS"),
            self.count("FAIL"),
            self.count("SKIPPED"),
            self.ok()
        )
    }

    /// The suite as a table, one row per attack, then the details of each.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "c10k attack {}", self.url);
        let _ = writeln!(
            s,
            "{:<19} {:>6} {:>10} {:>10} {:>10} {:>7} {:>17} {:>6}  {:<7}  answer",
            "attack", "scale", "growth", "peak", "after", "cpu", "p99 base/attack", "errors", "verdict"
        );
        for r in &self.reports {
            let (growth, peak, after, cpu) = match &r.memory {
                Some(m) => (
                    bytes(m.growth()),
                    bytes(m.peak),
                    bytes(m.after),
                    format!("{:.2} s", m.cpu_s),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
            let (p99, errors) = match &r.bystanders {
                Some(b) => (
                    format!("{}/{}", ms(b.base.p99), ms(b.attack.p99)),
                    b.errors.to_string(),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            };
            let answer = if r.skipped.is_some() {
                "-".to_owned()
            } else {
                r.answer()
            };
            let _ = writeln!(
                s,
                "{:<19} {:>6} {growth:>10} {peak:>10} {after:>10} {cpu:>7} {p99:>17} {errors:>6}  {:<7}  {answer}",
                r.attack,
                if r.skipped.is_some() {
                    "-".to_owned()
                } else {
                    r.scale.to_string()
                },
                r.verdict(),
            );
        }
        for r in &self.reports {
            let _ = writeln!(s, "\n{}: {}", r.attack, r.verdict());
            if let Some(why) = &r.skipped {
                let _ = writeln!(s, "  skipped: {why}");
                continue;
            }
            if let Some(f) = &r.answers.first {
                let detail = if f.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", f.detail)
                };
                let _ = writeln!(
                    s,
                    "  first answer: {}{detail}, after {} sent and {:.2} s",
                    f.label,
                    bytes(f.sent),
                    f.after.as_secs_f64()
                );
            }
            if let Some(m) = &r.memory {
                let settled = m.settled_s.map_or_else(
                    || "not back within the settle period".to_owned(),
                    |v| format!("back in {v:.1} s"),
                );
                let _ = writeln!(
                    s,
                    "  memory: {} before, {} peak, {} after ({settled}); {:.2} CPU s",
                    bytes(m.before),
                    bytes(m.peak),
                    bytes(m.after),
                    m.cpu_s
                );
            }
            if let Some(ratio) = r.latency_ratio() {
                let _ = writeln!(s, "  bystanders: p99 x{ratio:.1} during the attack");
            }
            for n in r.notes.iter().chain(&r.answers.samples) {
                let _ = writeln!(s, "  {n}");
            }
            if let Some(b) = &r.bystanders {
                for e in &b.samples {
                    let _ = writeln!(s, "  bystander error: {e}");
                }
            }
            for f in &r.failures {
                let _ = writeln!(s, "  FAIL: {f}");
            }
        }
        let _ = writeln!(
            s,
            "\n{} attacks: {} passed, {} failed, {} skipped",
            self.reports.len(),
            self.count("PASS"),
            self.count("FAIL"),
            self.count("SKIPPED")
        );
        s
    }
}

/// A byte count for people: `512 B`, `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Microseconds as milliseconds for the table.
fn ms(us: f64) -> String {
    format!("{:.1}ms", us / 1000.0)
}

fn pct(p: &Percentiles) -> String {
    format!(
        "{{\"count\":{},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
        p.count, p.p50, p.p99, p.max
    )
}

fn opt_str(s: Option<&str>) -> String {
    s.map_or("null".to_owned(), json_string)
}

fn strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| json_string(s)).collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::attack::peer::Answer;

    fn report() -> AttackReport {
        let mut answers = Tally::default();
        let t0 = Instant::now();
        answers.count(
            "",
            &Answer::Close(1008, "too fast".into()),
            4096,
            t0,
            Some((t0 + Duration::from_millis(1500), 2048)),
        );
        AttackReport {
            attack: "ping-flood",
            scale: 1,
            duration_s: 3.0,
            answers,
            memory: Some(Memory {
                before: 10 << 20,
                peak: 30 << 20,
                after: 11 << 20,
                settled_s: Some(0.5),
                cpu_s: 1.25,
            }),
            bystanders: Some(BystanderReport {
                connections: 4,
                base: Percentiles {
                    count: 10,
                    p99: 200.0,
                    ..Percentiles::default()
                },
                attack: Percentiles {
                    count: 10,
                    p99: 5000.0,
                    ..Percentiles::default()
                },
                errors: 0,
                samples: Vec::new(),
            }),
            ..AttackReport::default()
        }
    }

    #[test]
    fn an_attack_within_its_limits_passes() {
        let mut r = report();
        r.judge(&Limits {
            max_growth: Some(64 << 20),
            max_latency_ratio: Some(10.0),
        });
        assert_eq!(r.verdict(), "PASS", "{:?}", r.failures);
        // The baseline of 0.2 ms counts as 1 ms.
        assert_eq!(r.latency_ratio(), Some(5.0));
        r.judge(&Limits::default());
        assert_eq!(r.verdict(), "PASS");
    }

    #[test]
    fn growth_latency_errors_and_a_crash_each_fail_an_attack() {
        type Case = (&'static str, fn(&mut AttackReport), Limits);
        let cases: [Case; 4] = [
            (
                "memory grew",
                |_| {},
                Limits {
                    max_growth: Some(1 << 20),
                    ..Limits::default()
                },
            ),
            (
                "p99 grew 5.0 times",
                |_| {},
                Limits {
                    max_latency_ratio: Some(4.0),
                    ..Limits::default()
                },
            ),
            (
                "2 bystander errors",
                |r| r.bystanders.as_mut().unwrap().errors = 2,
                Limits::default(),
            ),
            (
                "crashed",
                |r| r.crashed = Some("process 1 is gone".into()),
                Limits::default(),
            ),
        ];
        for (want, change, limits) in cases {
            let mut r = report();
            change(&mut r);
            r.judge(&limits);
            assert_eq!(r.verdict(), "FAIL", "{want}");
            assert!(
                r.failures.iter().any(|f| f.contains(want)),
                "{want}: {:?}",
                r.failures
            );
        }
    }

    #[test]
    fn a_skipped_attack_never_fails_and_says_why() {
        let mut r = AttackReport::skipped("tls-hello-flood", "needs a wss:// URL".into());
        r.crashed = Some("ignored".into());
        r.judge(&Limits {
            max_growth: Some(0),
            ..Limits::default()
        });
        let suite = Suite {
            url: "ws://127.0.0.1:1/".into(),
            reports: vec![r, report()],
        };
        assert!(suite.ok());
        let table = suite.table();
        assert!(table.contains("skipped: needs a wss:// URL"), "{table}");
        assert!(
            table.contains("first answer: close 1008 (too fast), after 2.0 KiB sent and 1.50 s"),
            "{table}"
        );
        let json = suite.json();
        assert!(
            json.contains("\"summary\":{\"attacks\":2,\"passed\":1,\"failed\":0,\"skipped\":1,\"ok\":true}"),
            "{json}"
        );
        assert!(json.contains("\"answers\":{\"close 1008\":1}"), "{json}");
        assert!(json.contains("\"growth\":20971520"), "{json}");
        assert!(json.contains("\"skipped\":\"needs a wss:// URL\""), "{json}");
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
    }
}
