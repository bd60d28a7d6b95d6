//! Many short connections of every kind of ending leave nothing behind: no descriptor, no slab
//! entry, no timer.
//!
//! This file holds one test on purpose: it counts the descriptors of the whole process, which
//! other tests running at the same time would disturb.

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;

const CYCLES: u64 = 50_000;
const THREADS: u64 = 8;

/// How a client's connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Handshake, one echoed message, closing handshake.
    CleanClose,
    /// Handshake, then a reset.
    ResetOpen,
    /// A reset before sending anything.
    ResetAtOnce,
    /// Half a request, then a FIN.
    LeaveMidHandshake,
    /// Handshake, half a frame, then a FIN.
    LeaveMidFrame,
    /// A plain HTTP request, answered and closed.
    PlainHttp,
}

const KINDS: [Kind; 6] = [
    Kind::CleanClose,
    Kind::ResetOpen,
    Kind::ResetAtOnce,
    Kind::LeaveMidHandshake,
    Kind::LeaveMidFrame,
    Kind::PlainHttp,
];

fn cycle(addr: SocketAddr, source: IpAddr, kind: Kind) {
    let mut s = raw_from(addr, source);
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    match kind {
        Kind::CleanClose => {
            let mut bytes = UPGRADE.to_vec();
            bytes.extend(frame(true, 0x1, b"hello"));
            bytes.extend(close_frame(1000, ""));
            s.write_all(&bytes).unwrap();
            let head = read_head(&mut s);
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            assert_eq!(read_frame(&mut s), (true, 0x1, b"hello".to_vec()));
            assert_eq!(read_close_code(&mut s), 1000);
            assert!(closed_by_server(&mut s));
        }
        Kind::ResetOpen => {
            s.write_all(UPGRADE).unwrap();
            let head = read_head(&mut s);
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            reset(s);
        }
        Kind::ResetAtOnce => reset(s),
        Kind::LeaveMidHandshake => s.write_all(&UPGRADE[..UPGRADE.len() / 2]).unwrap(),
        Kind::LeaveMidFrame => {
            s.write_all(UPGRADE).unwrap();
            let head = read_head(&mut s);
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            s.write_all(&frame(true, 0x2, &[0u8; 64])[..20]).unwrap();
        }
        Kind::PlainHttp => {
            s.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let answer = read_to_end(&mut s);
            assert!(
                answer.starts_with(b"HTTP/1.1 404"),
                "{}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
}

#[test]
fn server_leaves_no_descriptor_socket_or_timer_after_connect_close_cycles() {
    let mut config = quick_config();
    config.shards = 2;
    // Keep-alive on: every open connection arms a timer that its end must cancel.
    config.ping_interval = Some(Duration::from_secs(30));
    // Sockets must go when their peer does, not when a deadline gives up on them.
    config.close_timeout = Duration::from_secs(30);
    config.handshake_timeout = Duration::from_secs(30);
    let h = start(config, |_| Echo);
    let addr = h.local_addr();
    // Statistics come from each shard's own loop: once they answer, every shard is running and
    // holds all the descriptors it will hold while idle.
    assert_eq!(h.shard_stats().len(), 2);
    let fds_before = open_fds();
    let started = Instant::now();
    let counts: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let counts = Arc::clone(&counts);
            let barrier = Arc::clone(&barrier);
            // Each thread its own source address: its own range of ephemeral ports.
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + t as u8));
            std::thread::spawn(move || {
                barrier.wait();
                let mut i = t;
                while i < CYCLES {
                    let kind = KINDS[(i % KINDS.len() as u64) as usize];
                    cycle(addr, source, kind);
                    counts[kind as usize].fetch_add(1, Ordering::Relaxed);
                    i += THREADS;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let count = |k: Kind| counts[k as usize].load(Ordering::Relaxed);
    let st = wait_stats(&h, Duration::from_secs(20), |s| {
        s.accepted == CYCLES && s.sockets == 0
    });
    let elapsed = started.elapsed();
    assert_eq!(st.timers, 0, "{st:#?}");
    assert_eq!(st.connections_open, 0);
    assert_eq!(st.handshaking, 0);
    let opened = count(Kind::CleanClose) + count(Kind::ResetOpen) + count(Kind::LeaveMidFrame);
    assert_eq!(st.handshakes, opened);
    assert_eq!(st.closes.values().sum::<u64>(), opened, "{st:#?}");
    assert_eq!(st.closes.get(&1000), Some(&count(Kind::CleanClose)));
    assert_eq!(
        st.closes.get(&1006),
        Some(&(count(Kind::ResetOpen) + count(Kind::LeaveMidFrame)))
    );
    assert_eq!(st.http_requests, count(Kind::PlainHttp));
    assert_eq!(st.rejected_total(), 0, "{st:#?}");
    assert_eq!(
        open_fds(),
        fds_before,
        "descriptors leaked after {CYCLES} connections: {:#?}",
        fd_targets()
    );
    stop(&h);
    eprintln!("{CYCLES} connect/close cycles in {elapsed:?}");
}
