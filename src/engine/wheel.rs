//! A hashed timing wheel: O(1) arm and cancel, no allocation per timer once warm.
//!
//! Time is counted in ticks of [`TICK_MS`]. A timer due at tick `t` lives in slot `t % SLOTS`, in
//! a doubly linked list threaded through a slab of nodes, so cancelling needs only its key. Timers
//! further away than one turn of the wheel simply stay in their slot until their tick comes round.
//! Keys carry a generation, so cancelling a timer that already fired is harmless even if its slab
//! slot was reused.

use std::num::NonZeroU32;

use slab::Slab;

/// Resolution of the wheel.
pub(crate) const TICK_MS: u64 = 10;

/// Number of slots: one turn is 40.96 s, longer than the default timeouts.
const SLOTS: usize = 4096;

const NIL: u32 = u32::MAX;

/// How many ticks ahead [`Wheel::timeout_ms`] looks for a timer: an idle shard with only
/// far-away timers wakes every 640 ms rather than every tick.
const LOOKAHEAD: u64 = 64;

/// Identifies an armed timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: u32,
    /// Never zero, so that an `Option<TimerKey>` takes no more room than the key.
    generation: NonZeroU32,
}

#[derive(Debug)]
struct Node<T> {
    tick: u64,
    prev: u32,
    next: u32,
    generation: NonZeroU32,
    value: T,
}

#[derive(Debug)]
pub(crate) struct Wheel<T> {
    heads: Box<[u32]>,
    nodes: Slab<Node<T>>,
    /// The last tick whose timers were expired.
    current: u64,
    generation: NonZeroU32,
}

impl<T> Wheel<T> {
    pub(crate) fn new(now_ms: u64) -> Self {
        Self {
            heads: vec![NIL; SLOTS].into_boxed_slice(),
            nodes: Slab::new(),
            current: now_ms / TICK_MS,
            generation: NonZeroU32::MIN,
        }
    }

    /// Number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Arms a timer due at `deadline_ms` (rounded up to the next tick; a deadline in the past
    /// fires at the next [`Wheel::expire`]).
    pub(crate) fn arm(&mut self, deadline_ms: u64, value: T) -> TimerKey {
        let tick = deadline_ms.div_ceil(TICK_MS).max(self.current + 1);
        self.generation = self.generation.checked_add(1).unwrap_or(NonZeroU32::MIN);
        let slot = (tick % SLOTS as u64) as usize;
        let head = self.heads[slot];
        let index = self.nodes.insert(Node {
            tick,
            prev: NIL,
            next: head,
            generation: self.generation,
            value,
        }) as u32;
        if head != NIL {
            self.nodes[head as usize].prev = index;
        }
        self.heads[slot] = index;
        TimerKey {
            index,
            generation: self.generation,
        }
    }

    /// Cancels a timer; returns its value if it was still armed.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        match self.nodes.get(key.index as usize) {
            Some(n) if n.generation == key.generation => Some(self.unlink(key.index)),
            _ => None,
        }
    }

    fn unlink(&mut self, index: u32) -> T {
        let node = self.nodes.remove(index as usize);
        if node.prev != NIL {
            self.nodes[node.prev as usize].next = node.next;
        } else {
            self.heads[(node.tick % SLOTS as u64) as usize] = node.next;
        }
        if node.next != NIL {
            self.nodes[node.next as usize].prev = node.prev;
        }
        node.value
    }

    /// Moves every timer due at or before `now_ms` into `out`.
    pub(crate) fn expire(&mut self, now_ms: u64, out: &mut Vec<T>) {
        let now = now_ms / TICK_MS;
        if now <= self.current {
            return;
        }
        // Visit each slot at most once, even after a long pause.
        let first = (self.current + 1).max(now.saturating_sub(SLOTS as u64 - 1));
        for tick in first..=now {
            let mut index = self.heads[(tick % SLOTS as u64) as usize];
            while index != NIL {
                let node = &self.nodes[index as usize];
                let next = node.next;
                if node.tick <= now {
                    out.push(self.unlink(index));
                }
                index = next;
            }
        }
        self.current = now;
    }

    /// How long the event loop may sleep: until the first of the next few ticks whose slot holds
    /// a timer (at most [`LOOKAHEAD`] ticks ahead), or `None` when no timer is armed. A slot may
    /// hold timers of later turns, so this can wake the loop early, never late.
    pub(crate) fn timeout_ms(&self, now_ms: u64) -> Option<u64> {
        if self.nodes.is_empty() {
            return None;
        }
        let ahead = (1..=LOOKAHEAD)
            .find(|d| self.heads[((self.current + d) % SLOTS as u64) as usize] != NIL)
            .unwrap_or(LOOKAHEAD);
        Some(((self.current + ahead) * TICK_MS).saturating_sub(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_their_tick_and_not_before() {
        let mut w = Wheel::new(0);
        w.arm(25, "a");
        w.arm(5, "b");
        w.arm(100_000, "far");
        let mut out = Vec::new();
        w.expire(9, &mut out);
        assert!(out.is_empty());
        w.expire(10, &mut out);
        assert_eq!(out, ["b"]);
        out.clear();
        w.expire(29, &mut out);
        assert!(out.is_empty());
        w.expire(30, &mut out);
        assert_eq!(out, ["a"]);
        out.clear();
        // More than one turn later: the far timer has passed its slot several times.
        w.expire(99_990, &mut out);
        assert!(out.is_empty());
        w.expire(100_000, &mut out);
        assert_eq!(out, ["far"]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn cancel_is_o1_and_stale_keys_are_harmless() {
        let mut w = Wheel::new(0);
        let a = w.arm(50, 1);
        let b = w.arm(50, 2);
        let c = w.arm(50, 3);
        assert_eq!(w.cancel(b), Some(2));
        assert_eq!(w.cancel(b), None);
        let mut out = Vec::new();
        w.expire(50, &mut out);
        out.sort();
        assert_eq!(out, [1, 3]);
        // The slots of a and c are reused; the old keys must not cancel the new timers.
        let d = w.arm(60, 4);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.cancel(c), None);
        assert_eq!(w.cancel(d), Some(4));
    }

    #[test]
    fn an_optional_key_costs_no_more_than_a_key() {
        assert_eq!(std::mem::size_of::<Option<TimerKey>>(), 8);
    }

    #[test]
    fn past_deadline_fires_next_expire() {
        let mut w = Wheel::new(1000);
        w.arm(10, 'x');
        let mut out = Vec::new();
        w.expire(1010, &mut out);
        assert_eq!(out, ['x']);
    }

    #[test]
    fn long_pause_collects_everything_due() {
        let mut w = Wheel::new(0);
        for i in 0..10_000u64 {
            w.arm(i * 7, i);
        }
        let mut out = Vec::new();
        w.expire(1_000_000, &mut out);
        assert_eq!(out.len(), 10_000);
    }

    #[test]
    fn timeout_is_until_the_next_slot_with_a_timer() {
        let mut w = Wheel::new(0);
        assert_eq!(w.timeout_ms(0), None);
        w.arm(100, ());
        assert_eq!(w.timeout_ms(3), Some(97));
        w.arm(20, ());
        assert_eq!(w.timeout_ms(3), Some(17));
        let mut w = Wheel::new(0);
        w.arm(100_000, ());
        assert_eq!(w.timeout_ms(0), Some(LOOKAHEAD * TICK_MS));
        // A timer armed in the past fires at the next tick.
        let mut w = Wheel::new(1000);
        w.arm(5, ());
        assert_eq!(w.timeout_ms(1004), Some(6));
    }
}
