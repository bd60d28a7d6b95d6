//! The resource-exhaustion suite behind `c10k attack URL`: attacks that anyone can point at their
//! own WebSocket server, each measured by what it costs the server and its other clients.
//!
//! For each attack ([`Attack`]) the suite:
//! 1. opens the bystanders ([`bystanders`]): echoing connections that measure round trips, first
//!    without the attack (the baseline), then during it;
//! 2. runs the attack for the run's duration, at its scale, in a fleet of attacker
//!    connections built on the protocol core's client side (handshake, frame headers, masking,
//!    permessage-deflate);
//! 3. with the server's pid, samples its memory and CPU time ([`monitor`]): RSS before, at its
//!    peak, and after (once it came back, within the settle period);
//! 4. records what the server did to the attackers: close codes, HTTP statuses, resets, counted
//!    by answer ([`Tally`]), and the first answer's bytes and time;
//! 5. judges it ([`AttackReport::judge`]): memory growth and latency ratio against the run's
//!    [`Limits`], bystander errors, and a crash (the pid gone, or the URL no longer answering).
//!
//! Every loop is bounded: an attack stops at its end (or at a count), its drain after
//! [`DRAIN_WAIT`], the settle period after `settle`.
//!
//! The attacker's own buffers are bounded too: a connection's unsent bytes stay under a few
//! hundred KiB (each attack queues the next piece only when the last one went), what it reads
//! is skimmed and dropped, and the bystanders keep one message in flight each.

mod attacks;
pub mod bystanders;
mod fleet;
mod frames;
pub mod monitor;
mod options;
mod peer;
pub mod report;
mod skim;
mod target;
#[cfg(feature = "tls")]
mod tls;

use std::time::{Duration, Instant};

pub use attacks::DRAIN_WAIT;
#[cfg(feature = "deflate")]
pub use attacks::deflate::{BOMB_INFLATED, bomb};
pub use options::{App, Attack, Limits, Options, parse_bytes};
pub use peer::{Answer, FirstAnswer, Tally};
pub use report::{AttackReport, Suite};
pub use target::Target;

use bystanders::Bystanders;
use fleet::{Fleet, News};
use monitor::Monitor;
use peer::Spec;

/// Descriptors kept free for the process itself (the poll, the bystanders' margin, logs).
const FD_MARGIN: usize = 64;
/// The longest wait for the URL to answer after an attack.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Runs every attack `opts` asks for, in order; `each` sees each attack's report as soon as it is
/// done. Fails only when the run cannot start (a bad URL, TLS settings missing).
pub fn run(opts: &Options, mut each: impl FnMut(&AttackReport)) -> Result<Suite, String> {
    let target = Target::resolve(opts)?;
    let watched = match &opts.bystander_url {
        Some(url) => {
            let mut o = opts.clone();
            o.url = url.clone();
            o.source = None;
            let t = Target::resolve(&o)?;
            opens(&t).map_err(|e| format!("{url}: {e}"))?;
            t
        }
        None => target.clone(),
    };
    if let Some(pid) = opts.server_pid
        && monitor::alive_sample(pid).is_none()
    {
        return Err(format!("--server-pid {pid}: no such process"));
    }
    opens(&target).map_err(|e| format!("{}: {e}", opts.url))?;
    let mut suite = Suite {
        url: opts.url.clone(),
        reports: Vec::new(),
    };
    let room = crate::loadgen::max_connections_per_process()
        .saturating_sub(opts.bystanders + FD_MARGIN)
        .max(1);
    let mut crashed: Option<String> = None;
    for attack in opts.attacks() {
        let report = match (&crashed, attacks::not_applicable(attack, &target, opts.app)) {
            (Some(when), _) => {
                AttackReport::skipped(attack.name(), format!("the server crashed during {when}"))
            }
            (None, Some(why)) => AttackReport::skipped(attack.name(), why),
            (None, None) => {
                let r = run_one(opts, &target, &watched, attack, room);
                if r.crashed.is_some() {
                    crashed = Some(attack.name().to_owned());
                }
                r
            }
        };
        each(&report);
        suite.reports.push(report);
    }
    Ok(suite)
}

/// Runs one attack on `target` with its bystanders (on `watched`: the same server, or another)
/// and measurements.
fn run_one(opts: &Options, target: &Target, watched: &Target, attack: Attack, room: usize) -> AttackReport {
    let mut report = AttackReport {
        attack: attack.name(),
        scale: opts.scale_of(attack),
        ..AttackReport::default()
    };
    if report.scale > room && attack != Attack::SubscribeFlood {
        report.notes.push(format!(
            "scale cut from {} to {room}: the descriptor limit of this process (ulimit -n)",
            report.scale
        ));
        report.scale = room;
    }
    log::info!("{}: baseline", attack.name());
    let bystanders = if opts.bystanders > 0 {
        match Bystanders::start(watched, opts.bystanders, opts.app) {
            Ok(b) => Some(b),
            Err(e) => {
                report.crashed = Some(format!("before the attack, {e}"));
                report.judge(&opts.limits);
                return report;
            }
        }
    } else {
        None
    };
    std::thread::sleep(opts.baseline);
    if let Some(b) = &bystanders {
        b.attack_phase();
    }
    let monitor = match opts.server_pid.map(Monitor::start).transpose() {
        Ok(m) => m,
        Err(e) => {
            report.crashed = Some(e);
            None
        }
    };
    log::info!("{}: attack at scale {}", attack.name(), report.scale);
    let started = Instant::now();
    let ctx = attacks::Ctx {
        target,
        app: opts.app,
        scale: report.scale,
        end: started + opts.duration,
    };
    match attacks::run(attack, &ctx) {
        Ok(outcome) => {
            report.answers = outcome.tally;
            report.notes.extend(outcome.notes);
        }
        Err(e) => report.notes.push(format!("the attack could not run: {e}")),
    }
    report.duration_s = started.elapsed().as_secs_f64();
    report.bystanders = bystanders.map(Bystanders::stop);
    if let Some(m) = monitor {
        log::info!("{}: settling", attack.name());
        let (memory, gone) = m.finish(opts.settle);
        report.memory = Some(memory);
        if gone && let Some(pid) = opts.server_pid {
            report.crashed = Some(format!("process {pid} is gone"));
        }
    }
    if report.crashed.is_none()
        && let Err(e) = answers(target)
    {
        report.crashed = Some(e);
    }
    report.judge(&opts.limits);
    report
}

/// Whether the URL accepts an upgrade before the run: one that does not (nothing listens, a
/// certificate that is not trusted, a refusal) ends the run before any attack.
fn opens(target: &Target) -> Result<(), String> {
    let mut fleet = Fleet::new(target, 0x0b).map_err(|e| e.to_string())?;
    fleet.add(Spec {
        from_source: false,
        ..Spec::upgrade("")
    });
    let end = Instant::now() + ANSWER_WAIT;
    while Instant::now() < end {
        for news in fleet.turn(Duration::from_millis(20)) {
            match news {
                News::Open(k) => {
                    fleet.close(k, 1000);
                    return Ok(());
                }
                News::Gone(_, _, answer) => {
                    let detail = answer.detail();
                    return Err(if detail.is_empty() {
                        format!("the upgrade failed: {}", answer.label())
                    } else {
                        format!("the upgrade failed: {} ({detail})", answer.label())
                    });
                }
                _ => {}
            }
        }
    }
    Err(format!(
        "no answer to an upgrade within {} s",
        ANSWER_WAIT.as_secs()
    ))
}

/// Whether the URL still answers an upgrade (with a 101, or any HTTP status).
fn answers(target: &Target) -> Result<(), String> {
    let mut fleet = Fleet::new(target, 0x0c).map_err(|e| e.to_string())?;
    fleet.add(Spec {
        from_source: false,
        ..Spec::upgrade("")
    });
    let end = Instant::now() + ANSWER_WAIT;
    while Instant::now() < end {
        for news in fleet.turn(Duration::from_millis(20)) {
            match news {
                News::Open(k) => {
                    fleet.close(k, 1000);
                    return Ok(());
                }
                News::Gone(_, _, Answer::Status(_)) => return Ok(()),
                News::Gone(_, _, answer) => {
                    return Err(format!("the URL stopped answering ({})", answer.label()));
                }
                _ => {}
            }
        }
        if fleet
            .peers()
            .any(|(_, p)| matches!(p.answer, Some(Answer::Status(_))))
        {
            return Ok(());
        }
    }
    Err(format!(
        "the URL gave no answer within {} s",
        ANSWER_WAIT.as_secs()
    ))
}
