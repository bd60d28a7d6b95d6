//! The hold scenario: connections opened and held idle, to count the survivors and the server's
//! memory per connection. With `first_echo`, each exchanges one message as soon as it is open
//! (when it opens, in `client`); with `final_echo`, each answers one echo at the end.

use std::time::{Duration, Instant};

use super::Driver;
use super::client::Phase;

/// The longest wait for the final echoes.
pub(in crate::loadgen) const FINAL_ECHO_WAIT: Duration = Duration::from_secs(30);

impl Driver {
    /// hold with `final_echo`: every connection still open sends one message, whose echo is
    /// counted in the report. Returns how long to wait for the echoes.
    pub(super) fn send_final_echoes(&mut self) -> Duration {
        let now = Instant::now();
        self.window = Some((now, now + Duration::from_secs(3600)));
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open)
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.send_next(key, Instant::now());
        }
        FINAL_ECHO_WAIT
    }
}
