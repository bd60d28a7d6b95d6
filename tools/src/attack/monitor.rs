//! The server's memory and CPU time around an attack, from /proc (the process and its
//! descendants, see [`procfs`]): RSS before, at its peak during the attack (sampled every
//! [`SAMPLE_EVERY`]), and after, once it has come back or the settle period is over; and the CPU
//! time the attack cost. A process that disappears is a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::loadgen::procfs::{self, ProcSample};

/// How often the server is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// After an attack, RSS counts as come back within this many bytes of its value before...
pub const SETTLE_SLACK_BYTES: u64 = 4 << 20;
/// ...or within this share of the growth, whichever is larger (an allocator keeps some).
pub const SETTLE_SLACK_SHARE: f64 = 0.10;

/// The server's memory and CPU around one attack.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Memory {
    /// RSS when the attack started, in bytes.
    pub before: u64,
    /// The largest RSS seen during the attack.
    pub peak: u64,
    /// RSS at the end of the settle period (or once it came back).
    pub after: u64,
    /// Seconds after the attack until RSS came back (see [`SETTLE_SLACK_BYTES`]); `None` when it
    /// did not within the settle period.
    pub settled_s: Option<f64>,
    /// CPU seconds (user + system) the server used during the attack.
    pub cpu_s: f64,
}

impl Memory {
    /// Peak minus before: what the attack made the server hold.
    pub fn growth(&self) -> u64 {
        self.peak.saturating_sub(self.before)
    }

    /// The RSS under which memory counts as come back.
    pub fn settled_below(&self) -> u64 {
        let share = (self.growth() as f64 * SETTLE_SLACK_SHARE) as u64;
        self.before + SETTLE_SLACK_BYTES.max(share)
    }
}

/// What the sampling thread saw.
#[derive(Debug, Clone, Copy)]
struct Watch {
    before: ProcSample,
    peak: u64,
    last: ProcSample,
    gone: bool,
}

/// The sampling of one attack, in a thread of its own.
#[derive(Debug)]
pub(crate) struct Monitor {
    pid: u32,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Watch>,
}

impl Monitor {
    /// Starts sampling `pid`; fails if there is no such process.
    pub(crate) fn start(pid: u32) -> Result<Self, String> {
        let before = alive_sample(pid).ok_or_else(|| format!("no process {pid} to measure"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("c10k-attack-monitor".into())
            .spawn(move || {
                let mut w = Watch {
                    before,
                    peak: before.rss_bytes,
                    last: before,
                    gone: false,
                };
                while !flag.load(Ordering::Acquire) {
                    std::thread::sleep(SAMPLE_EVERY);
                    match alive_sample(pid) {
                        Some(s) => {
                            w.peak = w.peak.max(s.rss_bytes);
                            w.last = s;
                        }
                        None => {
                            w.gone = true;
                            break;
                        }
                    }
                }
                w
            })
            .map_err(|e| e.to_string())?;
        Ok(Self { pid, stop, handle })
    }

    /// Ends the attack's sampling, then waits up to `settle` for RSS to come back. Returns the
    /// figures, and whether the process is gone.
    pub(crate) fn finish(self, settle: Duration) -> (Memory, bool) {
        self.stop.store(true, Ordering::Release);
        let Ok(mut w) = self.handle.join() else {
            return (Memory::default(), false);
        };
        if !w.gone
            && let Some(s) = alive_sample(self.pid)
        {
            w.peak = w.peak.max(s.rss_bytes);
            w.last = s;
        } else {
            w.gone = true;
        }
        let mut m = Memory {
            before: w.before.rss_bytes,
            peak: w.peak,
            after: w.last.rss_bytes,
            settled_s: None,
            cpu_s: w.last.cpu_us.saturating_sub(w.before.cpu_us) as f64 / 1e6,
        };
        if w.gone {
            return (m, true);
        }
        let start = Instant::now();
        loop {
            let Some(s) = alive_sample(self.pid) else {
                return (m, true);
            };
            m.after = s.rss_bytes;
            if m.after <= m.settled_below() {
                m.settled_s = Some(start.elapsed().as_secs_f64());
                return (m, false);
            }
            if start.elapsed() >= settle {
                return (m, false);
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
    }
}

/// A sample of `pid` (with its descendants) if it is alive: not gone, not a zombie.
pub(crate) fn alive_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    procfs::sample(Some(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_comes_back_within_the_larger_slack() {
        let m = Memory {
            before: 100 << 20,
            peak: 300 << 20,
            ..Memory::default()
        };
        assert_eq!(m.growth(), 200 << 20);
        assert_eq!(m.settled_below(), (100 << 20) + (20 << 20));
        let small = Memory {
            before: 10 << 20,
            peak: 11 << 20,
            ..Memory::default()
        };
        assert_eq!(small.settled_below(), (10 << 20) + SETTLE_SLACK_BYTES);
    }

    #[test]
    fn a_process_that_ends_is_gone_even_before_it_is_reaped() {
        assert!(alive_sample(std::process::id()).is_some());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let end = Instant::now() + Duration::from_secs(10);
        while alive_sample(pid).is_some() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Not waited for yet: a zombie, which is no server.
        assert!(alive_sample(pid).is_none());
        let _ = child.wait();
    }
}
