//! What happened during the measured window, interval by interval: messages received, the
//! server's CPU time and the generator's, sampled by the thread that waits out the window (the
//! load threads only publish their running message count, one store per message to a cache line
//! of their own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shortest interval between two samples: /proc counts CPU time in clock ticks (10 ms on
/// most systems), which is 5% of 200 ms; shorter intervals would be mostly rounding.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// The longest interval between two samples.
pub const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// About this many samples over a window, within the bounds above.
const SAMPLES_PER_WINDOW: u32 = 60;

/// One interval of the window: what it counted, and when it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    /// The end of the interval, in seconds from the start of the window.
    pub end_s: f64,
    /// Messages received in the interval (echoes, or deliveries in fan-out).
    pub messages: u64,
    /// The server's CPU time in the interval, in microseconds (with `--server-pid`).
    pub server_cpu_us: Option<u64>,
    /// The generator's CPU time in the interval, in microseconds (every load process).
    pub generator_cpu_us: Option<u64>,
}

/// Cumulative counts at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    /// Messages received so far.
    pub messages: u64,
    /// The server's CPU time so far, in microseconds.
    pub server_cpu_us: Option<u64>,
    /// The generator's CPU time so far, in microseconds.
    pub generator_cpu_us: Option<u64>,
}

/// A load thread's running message count, alone on its cache line(s) so that the threads do not
/// slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Progress(AtomicU64);

impl Progress {
    /// Publishes the thread's count (only the thread itself writes it).
    pub fn set(&self, messages: u64) {
        self.0.store(messages, Ordering::Relaxed);
    }

    /// The sum over every thread.
    pub fn total(all: &[Progress]) -> u64 {
        all.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

/// The interval between samples for a window of `duration`.
pub fn interval_for(duration: Duration) -> Duration {
    (duration / SAMPLES_PER_WINDOW).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// Samples `read` every `every` from `start` until `end` (the window), and returns the intervals
/// between the samples (the last one may be shorter). Returns at `end`.
pub fn sample(
    start: Instant,
    end: Instant,
    every: Duration,
    mut read: impl FnMut() -> Point,
) -> Vec<Interval> {
    let every = every.max(Duration::from_millis(1));
    let mut out = Vec::new();
    let mut last = read();
    let mut k = 1u32;
    loop {
        let next = (start + every * k).min(end);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let now = read();
        let delta = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| b.saturating_sub(a));
        out.push(Interval {
            end_s: start.elapsed().as_secs_f64(),
            messages: now.messages.saturating_sub(last.messages),
            server_cpu_us: delta(last.server_cpu_us, now.server_cpu_us),
            generator_cpu_us: delta(last.generator_cpu_us, now.generator_cpu_us),
        });
        last = now;
        if next >= end {
            return out;
        }
        k += 1;
    }
}

/// Adds the message counts of other processes' timelines, interval by interval (they sampled the
/// same window on the same schedule, from the same go); the CPU figures stay `base`'s.
pub fn add_messages(base: &mut Vec<Interval>, other: &[Interval]) {
    if base.len() < other.len() {
        let from = base.len();
        base.extend(other[from..].iter().map(|i| Interval {
            end_s: i.end_s,
            messages: 0,
            server_cpu_us: None,
            generator_cpu_us: None,
        }));
    }
    for (b, o) in base.iter_mut().zip(other) {
        b.messages += o.messages;
    }
}

/// An interval's figures per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The start of the interval, in seconds from the start of the window.
    pub from_s: f64,
    /// Its end.
    pub to_s: f64,
    /// Messages per second.
    pub messages_per_s: f64,
    /// The server's CPU use, in cores.
    pub server_cores: Option<f64>,
    /// The generator's CPU use, in cores.
    pub generator_cores: Option<f64>,
}

/// Every interval's figures per second.
pub fn rates(timeline: &[Interval]) -> Vec<Rate> {
    let mut from_s = 0.0;
    timeline
        .iter()
        .map(|i| {
            let secs = (i.end_s - from_s).max(1e-9);
            let r = Rate {
                from_s,
                to_s: i.end_s,
                messages_per_s: i.messages as f64 / secs,
                server_cores: i.server_cpu_us.map(|c| c as f64 / 1e6 / secs),
                generator_cores: i.generator_cpu_us.map(|c| c as f64 / 1e6 / secs),
            };
            from_s = i.end_s;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_the_window_and_sum_to_the_counts() {
        let start = Instant::now();
        let end = start + Duration::from_millis(700);
        let mut n = 0u64;
        let t = sample(start, end, Duration::from_millis(200), || {
            n += 10;
            Point {
                messages: n,
                server_cpu_us: Some(n * 2),
                generator_cpu_us: None,
            }
        });
        // Three whole intervals and a shorter last one, ending at the end of the window.
        assert_eq!(t.len(), 4);
        assert_eq!(t.iter().map(|i| i.messages).sum::<u64>(), 40);
        assert_eq!(t.iter().map(|i| i.server_cpu_us.unwrap()).sum::<u64>(), 80);
        assert!(t.iter().all(|i| i.generator_cpu_us.is_none()));
        assert!(t.windows(2).all(|w| w[0].end_s < w[1].end_s));
    }

    #[test]
    fn other_processes_add_their_messages_interval_by_interval() {
        let at = |end_s, messages| Interval {
            end_s,
            messages,
            server_cpu_us: Some(7),
            generator_cpu_us: None,
        };
        let mut base = vec![at(0.1, 0), at(0.2, 0)];
        add_messages(&mut base, &[at(0.1, 5), at(0.2, 6), at(0.3, 7)]);
        add_messages(&mut base, &[at(0.1, 1)]);
        let counts: Vec<u64> = base.iter().map(|i| i.messages).collect();
        assert_eq!(counts, [6, 6, 7]);
        assert_eq!(base[0].server_cpu_us, Some(7));
        assert_eq!(base[2].server_cpu_us, None);
        let r = rates(&base);
        assert!((r[0].messages_per_s - 60.0).abs() < 1e-6);
        assert!((r[1].from_s - 0.1).abs() < 1e-9);
    }
}
