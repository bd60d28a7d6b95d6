//! Streams mode's reads of a topic's history: sent in rounds (one pipeline per node, bounded
//! in bytes), and applied: a load, or the messages after the last offset handed on.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::link;
use super::super::resp::Value;
use super::super::script::{self, History, Range};
use super::{READS_PER_ROUND, ROUND_BYTES, State, StreamSubscriber};
use crate::engine::Position;
use crate::proto::MessageKind;

impl StreamSubscriber {
    /// Sends the reads that are due (one pipeline per node) and applies their replies.
    pub(super) fn read(&mut self, st: &mut State) {
        let now = Instant::now();
        if now < st.read_at || !st.busy {
            return;
        }
        // Loads first (a topic the node knows nothing of yet), then the rest.
        let mut due: Vec<(bool, String, Range)> = st
            .topics
            .iter()
            .filter_map(|(n, t)| Some((t.known.is_some(), n.clone(), t.read.filter(|_| t.confirmed)?)))
            .collect();
        due.sort_unstable_by_key(|d| d.0);
        let due: Vec<(String, Range)> = due
            .into_iter()
            .take((ROUND_BYTES / self.limits.history_bytes()).clamp(1, READS_PER_ROUND))
            .map(|d| (d.1, d.2))
            .collect();
        if due.is_empty() {
            return;
        }
        let l = self.limits;
        let cmds: Vec<(u16, Vec<u8>)> = due
            .iter()
            .filter_map(|(n, range)| {
                let t = st.topics.get(n)?;
                let cmd = script::read(
                    &t.keys,
                    self.epochs.candidate(),
                    *range,
                    l.history_len,
                    l.history_bytes(),
                    t.known,
                );
                Some((t.keys.slot, cmd))
            })
            .collect();
        let items: Vec<(u16, &[u8])> = cmds.iter().map(|(s, c)| (*s, c.as_slice())).collect();
        let replies = st.router.pipeline(&items);
        // Held until applied: counted with the bridge's bytes against the memory budget.
        let held: usize = replies.iter().map(|r| r.as_ref().map_or(0, Value::size)).sum();
        self.stats.reading_bytes.store(held as u64, Ordering::Relaxed);
        let mut failed = None;
        for ((name, range), reply) in due.into_iter().zip(replies) {
            match reply {
                Ok(Value::Error(e)) => {
                    let e = String::from_utf8_lossy(&e).into_owned();
                    failed = Some(io::Error::other(format!("Redis refused a read: {e}")));
                }
                Ok(v) => match script::history(v) {
                    Some(h) => self.apply(st, &name, range, h),
                    None => {
                        failed = Some(io::Error::other(
                            "Redis answered a read with what is not a history",
                        ))
                    }
                },
                Err(e) => failed = Some(e),
            }
        }
        self.stats.reading_bytes.store(0, Ordering::Relaxed);
        if let Some(e) = failed {
            if link::is_timeout(&e) {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            let wait = self.backoff.failed();
            st.read_at = Instant::now() + wait;
            log::warn!("redis bridge: reading a topic's history: {e}; trying again in {wait:?}");
        }
    }

    /// A read's reply for `name`.
    fn apply(&self, st: &mut State, name: &str, range: Range, h: History) {
        let stats = &self.stats;
        stats
            .dropped_too_large_in
            .fetch_add(h.too_large as u64, Ordering::Relaxed);
        stats
            .dropped_malformed_in
            .fetch_add(h.malformed as u64, Ordering::Relaxed);
        let Some(t) = st.topics.get_mut(name) else {
            return;
        };
        t.read = None;
        match (range, t.known) {
            (Range::From { .. }, Some((epoch, mut last))) if epoch == h.epoch => {
                let progressed = !h.entries.is_empty();
                for e in h.entries {
                    if e.offset > last {
                        last = e.offset;
                        let at = Position {
                            epoch,
                            offset: e.offset,
                        };
                        self.hand_on(name, &e.node, e.kind, &e.payload, at);
                    }
                }
                if h.last > last {
                    if progressed {
                        st.busy = true;
                        t.read = Some(Range::From {
                            from: last + 1,
                            to: None,
                        });
                    } else {
                        // Trimmed away (or larger than a read holds): the follower sees the gap.
                        last = h.last;
                    }
                }
                t.known = Some((epoch, last));
            }
            (Range::From { .. }, Some(_)) => {
                st.busy = true;
                t.read = Some(Range::Newest);
            }
            _ => {
                if t.known.is_some_and(|(e, _)| e != h.epoch) {
                    stats.epoch_changes.fetch_add(1, Ordering::Relaxed);
                    log::warn!("redis bridge: topic {name:?} has a new epoch in Redis: its history was lost");
                }
                let last = h.entries.last().map_or(0, |e| e.offset).max(h.last);
                stats.history_loads.fetch_add(1, Ordering::Relaxed);
                t.known = Some((h.epoch, last));
                let entries = h
                    .entries
                    .into_iter()
                    .map(|e| (e.offset, e.kind, e.payload))
                    .collect();
                self.sink.history_load(name, h.epoch, entries);
            }
        }
    }

    /// Hands on the next message of `name`; skipped (counted an own echo) when this node
    /// published it and its sink delivered it already.
    pub(super) fn hand_on(&self, name: &str, node: &[u8], kind: MessageKind, payload: &[u8], at: Position) {
        if node == self.node.as_slice() && self.sink.delivers_own() {
            self.stats.own_echoes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.sink.publish_at(name, kind, payload, at);
    }
}
