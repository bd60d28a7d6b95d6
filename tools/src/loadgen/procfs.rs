//! Reading another process's CPU time and memory from /proc, for per-message cost figures.
//!
//! A process is sampled with its descendants (see [`process_tree`]), so the pid of a supervisor
//! (`c10k serve --processes P`) measures the whole server: supervisor and workers.

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

/// utime + stime of a `stat` file's contents, in clock ticks; with `reaped`, plus cutime + cstime
/// (the CPU time of the children the process has waited for).
fn stat_ticks(stat: &str, reaped: bool) -> Option<u64> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file, utime field 14 and stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    if !reaped {
        return Some(utime + stime);
    }
    // cutime and cstime are fields 16 and 17; they are signed in the kernel's format.
    let cutime: i64 = fields.get(13)?.parse().ok()?;
    let cstime: i64 = fields.get(14)?.parse().ok()?;
    Some(utime + stime + cutime.max(0) as u64 + cstime.max(0) as u64)
}

/// Longest chain of descendants followed below a process (a guard against odd /proc contents).
const MAX_TREE_DEPTH: usize = 8;
/// Most processes sampled in one tree.
const MAX_TREE_PROCESSES: usize = 4096;

/// `pid` and its descendants, parents before children, from `/proc/PID/task/TID/children`.
///
/// A supervisor (`c10k serve --processes P`) and its workers are one tree: sampling the supervisor
/// samples them all. A process that ends between two reads is simply missing from the list.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut level = vec![pid];
    for _ in 0..MAX_TREE_DEPTH {
        let mut next = Vec::new();
        for p in level {
            let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
                continue;
            };
            for t in tasks.flatten() {
                let Ok(list) = fs::read_to_string(t.path().join("children")) else {
                    continue;
                };
                for c in list.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                    if !out.contains(&c) && out.len() < MAX_TREE_PROCESSES {
                        out.push(c);
                        next.push(c);
                    }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    out
}

/// One process's own sample: (CPU ticks of its threads, and with `reaped` of the children it
/// waited for; the busiest thread's ticks; RSS in bytes).
fn sample_one(base: &str, reaped: bool) -> Option<(u64, u64, u64)> {
    let ticks = stat_ticks(&fs::read_to_string(format!("{base}/stat")).ok()?, reaped)?;
    let mut busiest = 0;
    if let Ok(tasks) = fs::read_dir(format!("{base}/task")) {
        for t in tasks.flatten() {
            if let Some(ticks) = fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| stat_ticks(&s, false))
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
    Some((ticks, busiest, rss_kb * 1024))
}

/// Samples process `pid` and its descendants, summed (`None`: this process alone).
///
/// CPU time includes the children a process has already reaped (`cutime` + `cstime`), so that a
/// worker that dies and is replaced during a measurement still counts the time it used: over
/// a supervisor's tree, the CPU time only grows. RSS is the sum of the processes' RSS (pages
/// shared between them, such as the program text, count once per process).
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let hz = ticks_per_second();
    let (ticks, busiest, rss) = match pid {
        None => sample_one("/proc/self", false)?,
        Some(p) => {
            let mut total = sample_one(&format!("/proc/{p}"), true)?;
            for c in process_tree(p).into_iter().skip(1) {
                if let Some((t, b, r)) = sample_one(&format!("/proc/{c}"), true) {
                    total.0 += t;
                    total.1 = total.1.max(b);
                    total.2 += r;
                }
            }
            total
        }
    };
    Some(ProcSample {
        cpu_us: ticks * 1_000_000 / hz,
        busiest_thread_cpu_us: busiest * 1_000_000 / hz,
        rss_bytes: rss,
    })
}

/// CPU time per thread of a process and its descendants (`None`: this process alone), keyed by
/// thread id (unique over the system), in microseconds.
pub fn thread_cpu(pid: Option<u32>) -> Vec<(u32, u64)> {
    let bases: Vec<String> = match pid {
        Some(p) => process_tree(p)
            .into_iter()
            .map(|p| format!("/proc/{p}/task"))
            .collect(),
        None => vec!["/proc/self/task".to_owned()],
    };
    let hz = ticks_per_second();
    let mut out = Vec::new();
    for base in bases {
        let Ok(tasks) = fs::read_dir(base) else { continue };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(ticks) = fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| stat_ticks(&s, false))
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
        let stat = "1234 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 7 3 20 0 3 0";
        assert_eq!(stat_ticks(stat, false), Some(300));
        assert_eq!(stat_ticks(stat, true), Some(310));
    }

    #[test]
    fn samples_this_process() {
        let s = sample(None).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(!thread_cpu(None).is_empty());
    }

    #[test]
    fn samples_a_process_tree_with_its_children() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id();
        let tree = process_tree(me);
        assert_eq!(tree[0], me);
        assert!(tree.contains(&child.id()), "{tree:?}");
        assert!(sample(Some(me)).is_some_and(|s| s.rss_bytes > 0));
        let tids = thread_cpu(Some(me));
        assert!(tids.iter().any(|(t, _)| *t == child.id()), "{tids:?}");
        let _ = child.kill();
        let _ = child.wait();
    }
}
