//! Ready-made handlers, built only on the engine's public API: what `c10k serve --mode ...` runs.

mod deferred;
mod echo;
mod pubsub;

pub use c10k::ops::{Ops, prometheus};
pub use deferred::DeferredEcho;
pub use echo::Echo;
pub use pubsub::{Chat, PubSub, room_of};
