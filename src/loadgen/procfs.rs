//! Reading another process's CPU time and memory from /proc, for per-message cost figures.

use std::fs;

/// CPU time and memory of a process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// User + system CPU time, in microseconds.
    pub cpu_us: u64,
    /// The largest CPU time of any one thread, in microseconds.
    pub busiest_thread_cpu_us: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// utime + stime of a `stat` file's contents, in clock ticks.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file, utime field 14 and stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Samples process `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let base = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    };
    let hz = ticks_per_second();
    let ticks = stat_ticks(&fs::read_to_string(format!("{base}/stat")).ok()?)?;
    let mut busiest = 0;
    if let Ok(tasks) = fs::read_dir(format!("{base}/task")) {
        for t in tasks.flatten() {
            if let Some(ticks) = fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| stat_ticks(&s))
            {
                busiest = busiest.max(ticks);
            }
        }
    }
    let status = fs::read_to_string(format!("{base}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some(ProcSample {
        cpu_us: ticks * 1_000_000 / hz,
        busiest_thread_cpu_us: busiest * 1_000_000 / hz,
        rss_bytes: rss_kb * 1024,
    })
}

/// CPU time per thread of a process, keyed by thread id, in microseconds.
pub fn thread_cpu(pid: Option<u32>) -> Vec<(u32, u64)> {
    let base = match pid {
        Some(p) => format!("/proc/{p}/task"),
        None => "/proc/self/task".to_owned(),
    };
    let hz = ticks_per_second();
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(base) {
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(ticks) = fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| stat_ticks(&s))
            {
                out.push((tid, ticks * 1_000_000 / hz));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = "1234 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0";
        assert_eq!(stat_ticks(stat), Some(300));
    }

    #[test]
    fn samples_this_process() {
        let s = sample(None).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(!thread_cpu(None).is_empty());
    }
}
