//! Ready-made handlers, built only on the public API: what `c10k serve --mode ...` runs.

mod echo;
mod ops;
mod pubsub;

pub use echo::Echo;
pub use ops::{Ops, prometheus};
pub use pubsub::{Chat, PubSub, room_of};
