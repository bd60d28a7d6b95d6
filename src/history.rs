//! Stand-in for the per-topic history API until the engine's lands (compile only: history is
//! always off here).
#![allow(missing_docs, clippy::unused_self, clippy::missing_const_for_fn)]

use std::time::Duration;

use crate::{ConnId, Ctx, SendError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    pub epoch: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Now,
    After(Position),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    Recovered { at: Position, count: u64 },
    Lost { at: Position },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
    pub max_total_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_messages: 1000,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(300),
            max_total_bytes: 64 << 20,
        }
    }
}

impl Ctx<'_> {
    pub fn subscribe_from(
        &mut self,
        id: ConnId,
        topic: &str,
        since: Since,
    ) -> Result<Option<Resume>, SendError> {
        let _ = (id, topic, since);
        Err(SendError::NoHistory)
    }
}
