//! # c10k-tools
//!
//! The tools built on the [`c10k`] engine's public API: the load generator behind `c10k bench`,
//! the conformance suite behind `c10k check`, the resource-exhaustion suite behind `c10k attack`,
//! and the ready-made handlers that `c10k serve` runs. A service that embeds the engine depends
//! on `c10k` alone and never compiles this crate.
#![deny(missing_docs, missing_debug_implementations)]

pub mod apps;
pub mod attack;
pub mod check;
pub mod fuzz;
pub mod loadgen;
