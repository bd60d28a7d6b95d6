//! Freed memory goes back to the system once `release_memory_promptly` ran: a process of its
//! own (this file is one test), so that no other test's allocations move its resident size.

use std::time::Duration;

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb << 10
}

#[test]
fn a_freed_message_buffer_goes_back_to_the_system_even_after_a_larger_one() {
    c10k::release_memory_promptly();
    // Without the call, glibc raises its mmap threshold to this block's size once it is freed,
    // and the next ones, smaller, come from a heap it keeps.
    drop(std::hint::black_box(vec![1u8; 16 << 20]));
    let before = rss();
    let again = std::hint::black_box(vec![2u8; 8 << 20]);
    assert!(
        rss() >= before + (7 << 20),
        "the block was written, so it is resident"
    );
    drop(again);
    std::thread::sleep(Duration::from_millis(10));
    let after = rss();
    assert!(
        after < before + (2 << 20),
        "8 MiB freed, {} MiB still resident",
        (after - before) >> 20
    );
}
