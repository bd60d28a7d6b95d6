//! What permessage-deflate costs in memory, measured with a counting allocator (this test binary
//! has one test, so nothing else allocates while it runs).
//!
//! - A decompression bomb (64 MiB of zeros in about 64 KiB) read by a server with a 1 MiB
//!   message limit fails with 1009, and the read never has more than the limit plus the zlib
//!   state allocated at once.
//! - An idle connection with deflate and no context takeover holds no zlib state: after a
//!   compressed message each way, 1,000 connections hold a few hundred bytes each.
//! - With context takeover, each connection that compressed and inflated once holds its own
//!   compressor and decompressor (the documented cost); the figure is printed.

#![cfg(feature = "deflate")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use c10k::proto::deflate::{Compressor, Decompressor, DeflateConfig, DeflateParams, InflateError, TAIL};
use c10k::proto::frame::{OpCode, encode_header};
use c10k::proto::mask::apply_mask;
use c10k::proto::{Config, Connection, DeflatePool, Error, Event, MessageKind, Role};

struct Counting;

static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let delta = new_size as isize - layout.size() as isize;
        let now = CURRENT.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn current() -> isize {
    CURRENT.load(Ordering::Relaxed)
}

/// Restarts peak tracking from the current level; returns that level.
fn reset_peak() -> isize {
    let now = current();
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn negotiated(takeover: bool, role: Role) -> c10k::proto::Negotiated {
    let policy = DeflateConfig {
        compress_context_takeover: takeover,
        decompress_context_takeover: takeover,
        ..DeflateConfig::default()
    };
    let params = DeflateParams {
        server_no_context_takeover: !takeover,
        client_no_context_takeover: !takeover,
        ..DeflateParams::default()
    };
    params.negotiated(role, &policy)
}

/// A masked, compressed client frame of `data`.
fn client_frame(data: &[u8]) -> Vec<u8> {
    let mut c = Compressor::new(15, 9);
    let mut z = Vec::new();
    c.compress_message(data, &mut z);
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = encode_header(true, 0b100, OpCode::Binary, z.len() as u64, Some(key))
        .as_bytes()
        .to_vec();
    let start = out.len();
    out.extend_from_slice(&z);
    apply_mask(&mut out[start..], key, 0);
    out
}

fn json(len: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!("{{\"seq\":{i},\"user\":\"u{}\",\"ok\":true}}", i % 97));
        i += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

#[test]
fn deflate_memory_is_bounded_while_reading_and_zero_when_idle() {
    // ---- a bomb against a 1 MiB limit ----
    let limit = 1 << 20;
    let bomb = client_frame(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 100 << 10, "the bomb is {} bytes", bomb.len());
    let config = Config {
        max_message_size: limit,
        ..Config::default()
    };
    for chunk in [bomb.len(), 4096] {
        let mut input = bomb.clone();
        let mut server = Connection::server(config).with_deflate(negotiated(false, Role::Server));
        let mut pool = DeflatePool::new();
        let mut out = Vec::with_capacity(256);
        let base = reset_peak();
        let mut error = None;
        let mut pos = 0;
        'feed: for end in (chunk..input.len() + chunk).step_by(chunk) {
            let end = end.min(input.len());
            while pos < end {
                match server.read_with(&mut input[pos..end], &mut out, &mut pool) {
                    Ok(r) if r.consumed == 0 => break,
                    Ok(r) => pos += r.consumed,
                    Err(e) => {
                        error = Some(e);
                        break 'feed;
                    }
                }
            }
        }
        let peak = PEAK.load(Ordering::Relaxed) - base;
        assert_eq!(
            error,
            Some(Error::MessageTooLarge {
                len: limit as u64 + 1,
                max: limit
            })
        );
        println!("bomb, {chunk}-byte reads: peak {peak} bytes above the start for a {limit}-byte limit");
        assert!(
            peak < (limit + (128 << 10)) as isize,
            "peak {peak} bytes for a limit of {limit}"
        );
    }

    // ---- the zlib objects themselves ----
    let mut z = Vec::new();
    let mut c = Compressor::new(15, 6);
    c.compress_message(&json(2000), &mut z);
    z.extend_from_slice(&TAIL);
    drop(c);
    let mut buf = Vec::with_capacity(4096);
    let before = current();
    let compressor = Compressor::new(15, 6);
    let compressor_bytes = current() - before;
    let before = current();
    let mut decompressor = Decompressor::new(15);
    decompressor
        .inflate::<InflateError>(&z, &mut buf, 1 << 20, &mut |_| Ok(()))
        .unwrap();
    let decompressor_bytes = current() - before;
    println!(
        "zlib-rs compressor (15 bits, level 6): {compressor_bytes} bytes on the heap; decompressor \
         after one message: {decompressor_bytes} bytes"
    );
    drop((compressor, decompressor, buf, z));

    // ---- idle connections ----
    let message = json(2000);
    let frame = client_frame(&message);
    for (takeover, n) in [(false, 1000usize), (true, 100)] {
        let mut pool = DeflatePool::new();
        let mut out = Vec::new();
        let before = current();
        let mut conns: Vec<Connection> = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c =
                Connection::server(Config::default()).with_deflate(negotiated(takeover, Role::Server));
            let mut input = frame.clone();
            match c.read_with(&mut input, &mut out, &mut pool) {
                Ok(r) => assert!(matches!(r.event, Some(Event::Message(_)))),
                Err(e) => panic!("{e}"),
            }
            out.clear();
            c.send_with(MessageKind::Text, &message, &mut out, &mut pool)
                .unwrap();
            assert!(out.len() < message.len() / 2);
            out.clear();
            assert_eq!(c.holds_deflate_state(), takeover);
            conns.push(c);
        }
        let pool_bytes = {
            let with_pool = current();
            drop(pool);
            with_pool - current()
        };
        let per_conn = (current() - before) as f64 / n as f64;
        println!(
            "takeover {takeover}: {per_conn:.0} bytes per idle connection (Connection is {} bytes inline); \
             the shard's pool held {pool_bytes} bytes",
            std::mem::size_of::<Connection>()
        );
        if takeover {
            assert!(per_conn > 100_000.0, "a compressor per connection: {per_conn}");
        } else {
            assert!(per_conn < 1024.0, "{per_conn} bytes per idle connection");
        }
        drop(conns);
    }
}
