//! The pause before a dead worker is restarted: doubling from a first pause up to a cap, and back
//! to the first pause once a worker has run long enough to count as healthy.
//!
//! The cap is what an attacker who can crash a worker at will costs the service: that worker's
//! share of the connections is missing for at most the cap after each crash, and for at most the
//! cap after the attacks stop. A restart costs a process start (a few milliseconds of CPU), so a
//! longer cap would buy nothing but a longer outage; 30 s keeps a worker that crashes on every
//! start from spinning while keeping that outage short.

use std::time::Duration;

/// First pause before restarting a worker that died.
pub const FIRST: Duration = Duration::from_millis(500);
/// Longest pause before a restart: see the module docs for why 30 s.
pub const MAX: Duration = Duration::from_secs(30);
/// A worker that ran this long before it died starts over at the first pause.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The environment variable that sets the first and the longest pause: `FIRST,MAX`, e.g.
/// `100ms,2s` (for tests, or for an operator who wants faster or slower restarts).
pub const ENV: &str = "C10K_RESTART_BACKOFF";
/// The shortest first pause the variable may set: a restart loop never spins.
pub const FLOOR: Duration = Duration::from_millis(1);
/// The longest cap the variable may set.
pub const CEILING: Duration = Duration::from_secs(3600);

/// The bounds of the back-off: the first pause and the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            first: FIRST,
            max: MAX,
        }
    }
}

impl Policy {
    /// The policy [`ENV`] sets, or the default without it.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(ENV) {
            Ok(v) => Self::parse(&v).map_err(|e| format!("{ENV}={v:?}: {e}")),
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(e) => Err(format!("{ENV}: {e}")),
        }
    }

    /// Parses `FIRST,MAX` (durations as `--drain-timeout` takes them: `500ms`, `30s`, `2m`),
    /// with [`FLOOR`] <= FIRST <= MAX <= [`CEILING`].
    pub fn parse(s: &str) -> Result<Self, String> {
        let (first, max) = s
            .split_once(',')
            .ok_or_else(|| "expected FIRST,MAX (e.g. 500ms,30s)".to_owned())?;
        let first = crate::serve::parse_duration(first)?;
        let max = crate::serve::parse_duration(max)?;
        if first < FLOOR {
            return Err(format!("the first pause is under {FLOOR:?}"));
        }
        if first > max {
            return Err("the first pause is longer than the longest".to_owned());
        }
        if max > CEILING {
            return Err(format!("the longest pause is over {CEILING:?}"));
        }
        Ok(Self { first, max })
    }
}

/// One worker's back-off: the pause its next death will get.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    policy: Policy,
    next: Duration,
}

impl Backoff {
    /// A worker's back-off before its first death.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            next: policy.first,
        }
    }

    /// The pause before restarting a worker that died after running for `up` (`None`: it could
    /// not be started or waited for); the pause after it doubles, up to the cap.
    pub fn on_death(&mut self, up: Option<Duration>) -> Duration {
        if up.is_some_and(|up| up >= STABLE_AFTER) {
            self.next = self.policy.first;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(self.policy.max);
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pauses_double_up_to_the_cap_and_stay_there() {
        let mut b = Backoff::new(Policy::default());
        let pauses: Vec<Duration> = (0..10).map(|_| b.on_death(Some(ms(10)))).collect();
        let secs: Vec<f64> = pauses.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]);
    }

    #[test]
    fn a_worker_that_ran_a_minute_starts_over_at_the_first_pause() {
        let mut b = Backoff::new(Policy::default());
        for _ in 0..5 {
            b.on_death(Some(ms(10)));
        }
        assert_eq!(b.on_death(Some(STABLE_AFTER - ms(1))), ms(16_000));
        assert_eq!(b.on_death(Some(STABLE_AFTER)), FIRST);
        assert_eq!(b.on_death(Some(ms(10))), ms(1000));
    }

    #[test]
    fn a_worker_that_could_not_be_started_keeps_backing_off() {
        let mut b = Backoff::new(Policy::default());
        b.on_death(Some(ms(10)));
        assert_eq!(b.on_death(None), ms(1000));
        assert_eq!(b.on_death(None), ms(2000));
    }

    #[test]
    fn the_policy_parses_first_and_max_and_refuses_what_would_spin_or_never_end() {
        assert_eq!(
            Policy::parse("100ms,2s"),
            Ok(Policy {
                first: ms(100),
                max: ms(2000)
            })
        );
        assert_eq!(
            Policy::parse(" 1ms , 1ms "),
            Ok(Policy {
                first: ms(1),
                max: ms(1)
            })
        );
        for bad in ["", "1s", "0,1s", "0.5ms,1s", "2s,1s", "1s,2h", "x,1s", "1s,-1"] {
            assert!(Policy::parse(bad).is_err(), "{bad:?}");
        }
        let mut b = Backoff::new(Policy::parse("100ms,400ms").unwrap());
        let pauses: Vec<Duration> = (0..5).map(|_| b.on_death(Some(ms(1)))).collect();
        assert_eq!(pauses, [ms(100), ms(200), ms(400), ms(400), ms(400)]);
    }
}
