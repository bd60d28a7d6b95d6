//! What a shard does when it nears its share of the memory budget, once per loop turn: the
//! steps are decided by [`Memory::pressure`](super::memory::Memory::pressure); this carries them
//! out. Stop accepting (listeners stay registered: the backlog holds new connections, the kernel
//! refuses them once it is full), accept again when memory came back under the low mark; over
//! the share, or still over the low mark a second after accepting stopped, close the
//! connections that hold the most until the shard is under the low mark.

use super::conn::Mark;
use super::memory::{BIG_HOLDER, Pressure};

/// Bytes a shard lets go of (from its highest since the last trim) before the allocator's heaps
/// are trimmed.
const TRIM_AFTER: u64 = 32 << 20;
use super::shard::Shard;
use crate::proto::CloseCode;

impl Shard {
    /// Acts on the shard's memory pressure: called at the end of every loop turn, O(1) unless
    /// the shard is over its share.
    pub(super) fn relieve_memory(&mut self) {
        let paused_for = self.overloaded_since.map(|t| self.now_ms.saturating_sub(t));
        match self.mem.pressure(paused_for) {
            Pressure::Normal => {
                if self.overloaded_since.take().is_some() {
                    log::info!(
                        "shard {}: memory back under its mark, accepting again",
                        self.index
                    );
                    self.accept(false);
                    self.accept(true);
                }
            }
            Pressure::Hold => {}
            Pressure::Pause => self.stop_accepting(),
            Pressure::Shed(need) => {
                self.stop_accepting();
                self.shed(need);
            }
        }
    }

    /// After the turn's connections were removed: gives the allocator's free memory back to the
    /// system if the shard shed memory, or let go of much since the last time (at most once a
    /// second: the trim walks the heaps). Small blocks (under 128 KiB: a first fragment, a
    /// queue's chunks) come from the allocator's heaps, which keep what is freed until trimmed.
    ///
    /// A trim walks every free block of the heaps, holding their locks (tens of milliseconds
    /// after thousands of connections went): it waits for a quiet turn (`busy` false), so that
    /// it does not stall the connections of a busy shard, nor those of another shard allocating
    /// meanwhile.
    pub(super) fn trim_if_due(&mut self, busy: bool) {
        let total = self.mem.total();
        self.held_peak = self.held_peak.max(total);
        if self.held_peak - total >= TRIM_AFTER {
            self.trim_due = true;
        }
        if self.trim_due && !busy && self.last_trim_ms.is_none_or(|t| self.now_ms >= t + 1000) {
            self.trim_due = false;
            self.held_peak = total;
            self.last_trim_ms = Some(self.now_ms);
            super::sys::trim_heap();
        }
    }

    fn stop_accepting(&mut self) {
        if self.overloaded_since.is_some() {
            return;
        }
        self.overloaded_since = Some(self.now_ms);
        self.stats.overload_pauses += 1;
        log::warn!(
            "shard {}: {} bytes held of a {}-byte share of the memory budget: not accepting",
            self.index,
            self.mem.total(),
            self.mem.share()
        );
    }

    /// Closes the connections that hold the most, largest first, until `need` bytes are freed
    /// or no connection holding at least `BIG_HOLDER` bytes is left, at most `SHED_PER_TURN` a
    /// loop turn (each close costs system calls and the release of what it held: many at once
    /// would hold up the other connections; the next ones go at the next turn). A connection whose
    /// message is being assembled gets 1013 and its message buffer is freed at once; one with a
    /// write queue (a reader that does not keep up, which a Close frame would only wait
    /// behind) is dropped, its queue freed at the end of the turn.
    fn shed(&mut self, need: u64) {
        if self.shed_left == 0 {
            return;
        }
        let mut big = std::mem::take(&mut self.big);
        big.retain(|&key| match self.conns.get_mut(key) {
            Some(c) if !c.is_closed() && c.held() >= BIG_HOLDER => true,
            Some(c) => {
                c.mark(Mark::Big, false);
                false
            }
            None => false,
        });
        // The few largest first: a selection, then a sort of those alone (O(n), not O(n log n),
        // over thousands of candidates).
        let k = self.shed_left.min(big.len());
        let held = |key: &usize| std::cmp::Reverse(self.conns[*key].held());
        if k > 0 && k < big.len() {
            big.select_nth_unstable_by_key(k - 1, held);
        }
        big[..k].sort_unstable_by_key(held);
        let mut freed = 0u64;
        let mut victims = 0;
        while freed < need && victims < big.len() && self.shed_left > 0 {
            self.shed_left -= 1;
            let key = big[victims];
            victims += 1;
            let held = self.conns[key].held() as u64;
            self.stats.overload_closes += 1;
            self.fail(key, CloseCode::TryAgainLater, "server over its memory budget");
            if self.conns.get(key).is_some_and(|c| !c.queue.is_empty()) {
                self.kill(key);
            }
            freed += held;
        }
        for &key in &big[..victims] {
            if let Some(c) = self.conns.get_mut(key) {
                c.mark(Mark::Big, false);
            }
        }
        self.big = big.split_off(victims);
        if victims == 0 {
            // Nothing large to close: not accepting is what protects the budget now.
            return;
        }
        log::warn!(
            "shard {}: over its share of the memory budget: closed the {victims} largest holders ({freed} bytes)",
            self.index
        );
        // What they held is freed now or at the end of the turn: let the allocator give back
        // what it keeps of it.
        self.trim_due = true;
    }
}
