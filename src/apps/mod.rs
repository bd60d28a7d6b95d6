//! Ready-made handlers, built only on the public API: what `c10k serve --mode ...` runs.

mod echo;

pub use echo::Echo;
