//! Ready-made handlers, built only on the engine's public API: what `c10k serve --mode ...` runs.

mod dashboard;
mod deferred;
mod echo;
pub mod origin;
mod pubsub;

pub use c10k::ops::{Ops, prometheus};
pub use dashboard::{DASHBOARD_PAGE, Dashboard, LIVE_PATH, PAGE_PATH, sample_json};
pub use deferred::DeferredEcho;
pub use echo::Echo;
pub use pubsub::{
    Chat, ChatMember, PubSub, chat_notice, parse_position, parse_since, pubsub_notice, room_of, since_of,
};
