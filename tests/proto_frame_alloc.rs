//! `proto::frame::message_frame` collected into a shared buffer allocates once, at its final
//! size: the promise its documentation makes to the engine, which encodes every broadcast frame
//! that way. Measured with a counting allocator that counts only this thread's allocations while
//! a measurement is on (the test harness's own threads allocate when they like).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use c10k::proto::MessageKind;
use c10k::proto::frame::{message_frame, split_frame};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted (a const initializer: no allocation).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count(bytes: usize) {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn message_frame_collects_into_an_arc_with_one_allocation_of_the_final_size() {
    for (len, header_len) in [(0usize, 2usize), (125, 2), (126, 4), (65536, 10), (1 << 20, 10)] {
        let payload = vec![b'x'; len];
        let (count, bytes) = (ALLOCATIONS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
        COUNTING.with(|c| c.set(true));
        let frame: Arc<[u8]> = message_frame(MessageKind::Binary, &payload).collect();
        COUNTING.with(|c| c.set(false));
        let count = ALLOCATIONS.load(Ordering::Relaxed) - count;
        let bytes = BYTES.load(Ordering::Relaxed) - bytes;
        assert_eq!(count, 1, "len {len}: one allocation");
        // The frame and the two reference counts, padded to their alignment; nothing more.
        let exact = header_len + len + 2 * size_of::<usize>();
        assert_eq!(bytes, exact.next_multiple_of(align_of::<usize>()), "len {len}");
        assert_eq!(frame.len(), header_len + len);
        assert_eq!(split_frame(&frame).map(|(_, p)| p.len()), Some(len));
    }
}
