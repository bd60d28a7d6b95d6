//! A frame fuzzer for any WebSocket echo server, with the core as its oracle (`c10k fuzz`).
//!
//! Many connections run at once, each a generated sequence: an opening handshake (sometimes
//! mutated), then frames drawn from a grammar of valid, nearly valid and invalid frames, written
//! in pieces cut at random byte positions with random pauses. For each sequence the core computes
//! what RFC 6455 and RFC 7692 require of the server, and the fuzzer compares what the server did,
//! with the verdicts of `c10k check`: PASS, NON-STRICT (allowed, not ideal: dropped without a
//! Close frame, another close code), FAIL. Findings are grouped by kind, minimized, and saved as
//! small replay files that `c10k fuzz --replay` and `c10k check --regressions` run again.
//!
//! ```text
//!  seed, index ──► rng ──► grammar ──► Sequence ──► driver (mio loop, N connections)
//!                                                      │ request, frames in pieces
//!                                        server's 101 ─┼─► oracle (server-role core) ──► Expect(s)
//!                                      server's frames ┴─► client-role core ──► judge ──► Outcome
//!  findings ──► shrink (rerun while the outcome holds) ──► replay file
//! ```
//!
//! Everything but the driver is pure and tested without sockets: [`grammar`], [`oracle`],
//! [`judge`], [`shrink`], [`replay`](mod@replay).

pub mod driver;
pub mod grammar;
pub mod judge;
pub mod oracle;
pub mod replay;
mod report;
pub mod rng;
pub mod sequence;
pub mod served;
pub mod shrink;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use judge::Outcome;
pub use report::{Finding, Progress, Report};

use crate::check::{Target, Verdict};
use driver::{Driver, Settings};
use grammar::Grammar;
use replay::Replay;
use rng::Rng;
use sequence::Sequence;

/// How a fuzzing run goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed: the same seed draws the same sequences.
    pub seed: u64,
    /// Stop after this many sequences.
    pub sequences: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Connections at the same time.
    pub parallel: usize,
    /// The server's message size limit, if known.
    pub max_message: Option<usize>,
    /// How long one sequence may take (beyond its own pauses) before it is "no progress".
    pub bound: Duration,
    /// Stop at the first FAIL.
    pub stop_on_fail: bool,
    /// Where minimized findings are saved (`None`: not saved, not minimized).
    pub out_dir: Option<PathBuf>,
    /// Candidates tried when minimizing one finding.
    pub shrink_attempts: usize,
    /// Time allowed to minimize one finding.
    pub shrink_time: Duration,
    /// Distinct findings minimized and saved, at most (FAIL first).
    pub max_saved: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 1,
            sequences: None,
            duration: None,
            parallel: 64,
            max_message: None,
            bound: Duration::from_secs(2),
            stop_on_fail: false,
            out_dir: None,
            shrink_attempts: 300,
            shrink_time: Duration::from_secs(20),
            max_saved: 20,
        }
    }
}

/// Consecutive unreachable outcomes after which the server is taken as gone and the run stops.
const UNREACHABLE_STOP: u32 = 3;

/// Runs the fuzzer against `target`; `progress` is called about four times a second.
pub fn run(target: &Target, options: &Options, mut progress: impl FnMut(&Progress)) -> io::Result<Report> {
    let started = Instant::now();
    let grammar = Grammar {
        max_message: options.max_message,
    };
    let settings = Settings {
        max_message: options.max_message,
        bound: options.bound,
    };
    let mut driver = Driver::new(target.clone(), settings.clone(), options.parallel)?;
    let mut counts = [0u64; 3];
    let mut groups: BTreeMap<(Verdict, &'static str, String), (Finding, Sequence)> = BTreeMap::new();
    let mut next_index = 0u64;
    let stop = std::cell::Cell::new(false);
    let mut unreachable_run = 0u32;
    let mut last_progress = Instant::now();
    let end = options.duration.map(|d| started + d);
    driver.run(
        || {
            let more = !stop.get()
                && options.sequences.is_none_or(|n| next_index < n)
                && end.is_none_or(|e| Instant::now() < e);
            if !more {
                return None;
            }
            let i = next_index;
            next_index += 1;
            Some((i, grammar.sequence(&mut Rng::for_sequence(options.seed, i))))
        },
        |index, seq, outcome| {
            counts[report::slot(outcome.verdict)] += 1;
            unreachable_run = if outcome.kind == "unreachable" {
                unreachable_run + 1
            } else {
                0
            };
            if outcome.verdict != Verdict::Pass {
                let key = (outcome.verdict, outcome.kind, outcome.cause.clone());
                groups
                    .entry(key)
                    .and_modify(|(f, _)| f.count += 1)
                    .or_insert_with(|| (Finding::new(index, outcome.clone()), seq.clone()));
                if outcome.verdict == Verdict::Fail && options.stop_on_fail {
                    stop.set(true);
                }
            }
            if unreachable_run >= UNREACHABLE_STOP {
                stop.set(true);
            }
            if last_progress.elapsed() >= Duration::from_millis(250) {
                last_progress = Instant::now();
                progress(&Progress::new(counts, groups.len(), started.elapsed()));
            }
            !stop.get()
        },
    );
    let fuzzed = started.elapsed();
    let mut findings: Vec<(Finding, Sequence)> = groups.into_values().collect();
    findings.sort_by_key(|(f, _)| (std::cmp::Reverse(f.outcome.verdict), std::cmp::Reverse(f.count)));
    if let Some(dir) = &options.out_dir {
        std::fs::create_dir_all(dir)?;
        let mut one = Driver::new(target.clone(), settings, 1)?;
        for (finding, seq) in findings.iter_mut().take(options.max_saved) {
            if finding.outcome.kind == "unreachable" {
                continue;
            }
            if !minimize(&mut one, options, finding, seq) {
                continue;
            }
            let path = dir.join(finding.file_name(options.seed));
            let replay = Replay {
                max_message: options.max_message,
                sequence: seq.clone(),
            };
            std::fs::write(&path, replay.to_text(&finding.comments(options.seed)))?;
            finding.file = Some(path);
        }
    }
    Ok(Report {
        target: target.url(),
        seed: options.seed,
        counts,
        fuzzed,
        elapsed: started.elapsed(),
        findings: findings.into_iter().map(|(f, _)| f).collect(),
    })
}

/// Shrinks a finding's sequence while the same verdict, kind and cause come back. False when
/// the sequence, run alone, does not show the finding again (it came from load or timing): it is
/// then neither minimized nor saved.
fn minimize(driver: &mut Driver, options: &Options, finding: &mut Finding, seq: &mut Sequence) -> bool {
    let want = &finding.outcome;
    let again = driver.run_one(seq);
    if (again.verdict, again.kind, &again.cause) != (want.verdict, want.kind, &want.cause) {
        finding.reproduced = Some(again);
        return false;
    }
    let deadline = Instant::now() + options.shrink_time;
    let before = seq.frames.len();
    let (small, used) = shrink::shrink(seq, options.shrink_attempts, |candidate| {
        if Instant::now() >= deadline {
            return false;
        }
        let o = driver.run_one(candidate);
        o.verdict == want.verdict && o.kind == want.kind && o.cause == want.cause
    });
    // The minimized sequence is run once more: its own outcome goes in the file.
    let confirmed = driver.run_one(&small);
    finding.minimized = Some((before, small.frames.len(), used));
    if confirmed.verdict == want.verdict && confirmed.kind == want.kind {
        finding.outcome = confirmed;
        *seq = small;
    }
    true
}

/// Runs a replay file's sequence once against `target`.
pub fn replay(target: &Target, replay: &Replay, bound: Duration) -> io::Result<Outcome> {
    let settings = Settings {
        max_message: replay.max_message,
        bound,
    };
    Ok(Driver::new(target.clone(), settings, 1)?.run_one(&replay.sequence))
}
