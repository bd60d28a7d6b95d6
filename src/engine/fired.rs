//! What a test sees of the timers that fire in a shard (feature `testing`): which deadline of
//! which connection, or which timer, and when (see [`crate::testing::TestServer::fired`]).

use super::deadline::Deadline;
use super::id::ConnId;
use super::shard::{Shard, Timer};

/// A deadline or timer that fired in a test, and for which connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// The request head (and the handler's decision) were not complete in time: 408, or 503
    /// for a decision that never came.
    Handshake(ConnId),
    /// The decision on a request left pending did not come in time (503).
    Decision(ConnId),
    /// A keep-alive deadline: a connection silent since then is pinged.
    Ping(ConnId),
    /// The answer to a keep-alive ping was due.
    Pong(ConnId),
    /// The closing handshake (or the last bytes' flush) was due.
    Closing(ConnId),
    /// A message being received was due whole (1008 if it was not).
    Message(ConnId),
    /// A handler's timer ([`Ctx::set_timer`](super::handler::Ctx::set_timer)), by token.
    Timer(u64),
    /// The lame-duck period of a shutdown ended: the drain begins.
    Grace,
    /// The drain of a shutdown ended: what is left is closed.
    Drain,
}

impl Fired {
    /// What `timer` is about to do, if it is one a test may want to see (the shard's own
    /// bookkeeping is left out, as is a timer of a connection that is gone).
    pub(super) fn of(shard: &Shard, timer: Timer) -> Option<(u64, Fired)> {
        let conn = |key: u32, generation: u32| {
            let c = shard.conns.get(key as usize)?;
            (c.generation == generation && !c.is_closed()).then(|| (shard.id(key as usize, c), c))
        };
        let what = match timer {
            Timer::Conn { key, generation } => {
                let (id, c) = conn(key, generation)?;
                match c.deadline()? {
                    Deadline::Handshake => Fired::Handshake(id),
                    Deadline::Decision => Fired::Decision(id),
                    Deadline::FirstPing | Deadline::Keepalive => Fired::Ping(id),
                    Deadline::Pong => Fired::Pong(id),
                    Deadline::Closing => Fired::Closing(id),
                }
            }
            Timer::Message { key, generation } => {
                let (id, c) = conn(key, generation)?;
                c.message_timer?;
                Fired::Message(id)
            }
            Timer::App(token) => Fired::Timer(token),
            Timer::Grace => Fired::Grace,
            Timer::Drain => Fired::Drain,
            Timer::AcceptResume | Timer::Publish => return None,
        };
        Some((shard.now_ms, what))
    }
}
