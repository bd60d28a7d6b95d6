//! The attacks themselves, one file per family: frames that hold a message open or flood control
//! frames (`messages`), the compression bomb (`deflate`), readers that fall behind (`readers`),
//! the handshake and socket floods (`handshakes`), topics (`topics`) and connection churn
//! (`churn`). Each runs its connections in a [`Fleet`] until the attack's end, then drains them
//! and returns the server's answers.

mod churn;
#[cfg(feature = "deflate")]
pub(crate) mod deflate;
mod handshakes;
mod messages;
mod readers;
mod topics;

use std::time::{Duration, Instant};

use super::fleet::{Fleet, News};
use super::peer::{Spec, Tally};
use super::target::Target;
use super::{App, Attack};

/// After an attack: the longest wait for the server's last answers.
pub const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// The longest poll of an attack that writes on a clock of its own.
const TICK: Duration = Duration::from_millis(5);

/// What an attack runs against, and for how long.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) target: &'a Target,
    pub(crate) app: App,
    pub(crate) scale: usize,
    /// When the attack stops (every loop ends by then).
    pub(crate) end: Instant,
}

/// What an attack saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) tally: Tally,
    pub(crate) notes: Vec<String>,
}

/// Why `attack` does not apply to this server, if it does not.
pub(crate) fn not_applicable(attack: Attack, target: &Target, app: App) -> Option<String> {
    match attack {
        Attack::TlsHelloFlood if !target.secure => Some("needs a wss:// URL".to_owned()),
        Attack::SubscribeFlood if app != App::PubSub => Some(format!(
            "needs a server with topics (--app pubsub; this is {})",
            app.name()
        )),
        Attack::DeflateHeld if !c10k::proto::deflate::AVAILABLE => {
            Some("this build has no permessage-deflate (the deflate feature)".to_owned())
        }
        _ => None,
    }
}

/// Runs `attack` until `ctx.end`, then drains its connections.
pub(crate) fn run(attack: Attack, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    match attack {
        Attack::PingFlood => messages::ping_flood(ctx),
        #[cfg(feature = "deflate")]
        Attack::DeflateHeld => deflate::held(ctx),
        #[cfg(not(feature = "deflate"))]
        Attack::DeflateHeld => Err("this build has no permessage-deflate".to_owned()),
        Attack::SlowReader => readers::slow_reader(ctx),
        Attack::UnfinishedMessage => messages::unfinished(ctx),
        Attack::FragmentDribble => messages::fragment_dribble(ctx),
        Attack::PendingHandshakes => handshakes::pending(ctx),
        Attack::Slowloris => handshakes::slowloris(ctx),
        Attack::SubscribeFlood => topics::subscribe_flood(ctx),
        Attack::CloseFlood => churn::close_flood(ctx),
        Attack::TlsHelloFlood => handshakes::tls_hello_flood(ctx),
        Attack::AddressFlood => handshakes::address_flood(ctx),
        Attack::HugeFrame => messages::huge_frame(ctx),
        Attack::Utf8Dribble => messages::utf8_dribble(ctx),
        Attack::HeaderFlood => handshakes::header_flood(ctx),
    }
}

/// The loop most attacks are: `specs` connect, `on_news` acts on what happens to them and
/// `on_tick` writes on the attack's own clock (every turn, at most [`TICK`] apart), until the
/// end or until every connection is gone; then the drain.
pub(crate) fn drive(
    ctx: &Ctx<'_>,
    specs: impl IntoIterator<Item = Spec>,
    mut on_news: impl FnMut(&mut Fleet, &News),
    mut on_tick: impl FnMut(&mut Fleet, Instant),
) -> Result<Tally, String> {
    let mut fleet = Fleet::new(ctx.target, 0xa77ac).map_err(|e| e.to_string())?;
    for s in specs {
        fleet.add(s);
    }
    while Instant::now() < ctx.end && fleet.len() > 0 {
        let wait = ctx.end.saturating_duration_since(Instant::now()).min(TICK);
        for news in fleet.turn(wait) {
            on_news(&mut fleet, &news);
        }
        on_tick(&mut fleet, Instant::now());
    }
    Ok(fleet.drain(DRAIN_WAIT))
}

/// `n` copies of `spec`.
pub(crate) fn many(spec: Spec, n: usize) -> impl Iterator<Item = Spec> {
    std::iter::repeat_n(spec, n)
}
