//! Ready-made handlers, built only on the public API: what `c10k serve --mode ...` runs.

mod echo;
mod pubsub;

pub use echo::Echo;
pub use pubsub::{Chat, PubSub, room_of};
