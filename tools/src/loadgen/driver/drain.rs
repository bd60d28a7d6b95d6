//! The end of a hold run with the server's drain: the server, told to stop, closes every
//! connection with 1001 Going Away; each must get it, answer it, and see the server close.

use std::time::Duration;

use super::Driver;
use super::client::Phase;

/// A server that closes no connection for this long has stopped draining.
const DRAIN_STALL: Duration = Duration::from_secs(30);
/// The longest wait for the server to close every connection.
pub(in crate::loadgen) const DRAIN_WAIT_MAX: Duration = Duration::from_secs(300);

impl Driver {
    /// Waits while the server closes every connection (1001 expected: see `process`); counts
    /// the time to the last close. A connection still open after the wait is an error.
    pub(super) fn await_drain(&mut self) {
        self.draining = true;
        self.result.drain = self.await_closes(DRAIN_STALL, DRAIN_WAIT_MAX);
        let left: Vec<(usize, Phase)> = self.conns.iter().map(|(k, c)| (k, c.phase)).collect();
        for (key, phase) in left {
            let what = if phase == Phase::Closing {
                "got 1001 but the server did not close the connection during its drain"
            } else {
                "the server's drain did not close it"
            };
            self.fail(key, what.to_owned());
        }
    }
}
