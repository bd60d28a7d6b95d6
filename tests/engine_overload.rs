//! The limits of a whole shard or server: its memory budget (stop accepting, then close the
//! largest holders with 1013), connections in their handshake, connections per client address,
//! and what other threads may queue for a shard. Each at its edge, with its answer.

mod common;

use std::io::Write;
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use c10k::proto::Message;
use c10k::{ConnId, Ctx, Handler, RejectReason};
use common::*;

#[cfg(feature = "deflate")]
/// Opens a connection that negotiates permessage-deflate.
fn deflate_open(addr: std::net::SocketAddr) -> TcpStream {
    let offer = String::from_utf8(UPGRADE.to_vec()).unwrap().replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    );
    let mut s = raw(addr);
    s.write_all(offer.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.contains("permessage-deflate"), "{head}");
    s
}

#[cfg(feature = "deflate")]
/// The first frame (not final, RSV1) of a compressed message that inflates to `len` zeros: a
/// few KiB on the wire, `len` bytes in the server's assembly buffer.
fn bomb_start(len: usize) -> Vec<u8> {
    let mut zlib = c10k::proto::deflate::Compressor::new(15, 9);
    let mut payload = Vec::new();
    zlib.compress_message(&vec![0u8; len], &mut payload);
    let mut f = frame(false, 0x2, &payload);
    f[0] |= 0x40;
    f
}

/// What a server holds for one compressed message of `len` bytes held open (its buffer grows
/// by doubling as it inflates, so it holds more than `len`): measured on a server of its own.
#[cfg(feature = "deflate")]
fn held_by(len: usize) -> u64 {
    let mut config = quick_config();
    config.protocol.max_message_size = 32 << 20;
    config.deflate = Some(c10k::proto::DeflateConfig::default());
    let h = start(config, |_| Echo);
    let mut s = deflate_open(h.local_addr());
    s.write_all(&bomb_start(len)).unwrap();
    let mut last = 0;
    let held = wait_stats(&h, Duration::from_secs(10), |st| {
        let now = st.memory.total();
        let settled = now >= len as u64 && now == last;
        last = now;
        settled
    })
    .memory
    .total();
    drop(s);
    stop(&h);
    held
}

#[cfg(feature = "deflate")]
#[test]
fn over_its_budget_a_shard_closes_the_largest_holder_with_1013_and_keeps_the_others() {
    let mut config = quick_config();
    // Two messages fit under the mark where accepting stops; a third goes past the budget.
    let (small_len, large_len, third_len) = (256 << 10, 5 << 20, 3 << 20);
    let (small_held, large_held) = (held_by(small_len), held_by(large_len));
    let all = small_held + large_held + held_by(third_len);
    config.memory_budget = (all / 100 * 95) as usize;
    assert!(
        (small_held + large_held) * 100 < all / 100 * 95 * 85,
        "{small_held} {large_held} {all}"
    );
    config.protocol.max_message_size = 32 << 20;
    config.deflate = Some(c10k::proto::DeflateConfig::default());
    let h = start(config, |_| Echo);
    let mut small = deflate_open(h.local_addr());
    small.write_all(&bomb_start(256 << 10)).unwrap();
    wait_stats(&h, Duration::from_secs(5), |s| s.memory.messages >= 256 << 10);
    let mut large = deflate_open(h.local_addr());
    large.write_all(&bomb_start(5 << 20)).unwrap();
    let held = wait_stats(&h, Duration::from_secs(5), |s| {
        s.memory.messages >= (5 << 20) + (256 << 10)
    });
    assert_eq!(held.overload_pauses, 0, "{:?}", held.memory);
    // One more message does not fit: the largest holder goes, not the small one nor the new one.
    let mut third = deflate_open(h.local_addr());
    third.write_all(&bomb_start(third_len)).unwrap();
    let st = wait_stats(&h, Duration::from_secs(5), |s| s.overload_closes >= 1);
    assert!(st.memory.total() <= st.memory.budget, "{:?}", st.memory);
    assert_eq!(read_close_code(&mut large), 1013);
    // The others finish their messages and get them back.
    for s in [&mut small, &mut third] {
        s.write_all(&frame(true, 0x0, &[])).unwrap();
        let (fin, op, p) = read_frame(s);
        assert!(
            fin && op == 0x2,
            "{fin} {op} {:?} {:?}",
            &p[..p.len().min(40)],
            h.stats().memory
        );
    }
    let st = wait_stats(&h, Duration::from_secs(5), |s| s.memory.messages == 0);
    assert_eq!(st.overload_closes, 1);
    assert!(st.overload_pauses >= 1, "accepting stopped on the way");
    // Memory came back: new connections are accepted again.
    drop(raw_open(h.local_addr()));
    stop(&h);
}

#[cfg(feature = "deflate")]
#[test]
fn near_its_budget_a_shard_stops_accepting_and_a_second_later_closes_the_holder_to_accept_again() {
    let mut config = quick_config();
    // One message held open takes 90% of the budget: past the 85% mark, under the whole.
    let held = held_by(3 << 20);
    config.memory_budget = (held / 90 * 100) as usize;
    config.protocol.max_message_size = 32 << 20;
    config.deflate = Some(c10k::proto::DeflateConfig::default());
    let h = start(config, |_| Echo);
    let mut holder = deflate_open(h.local_addr());
    holder.write_all(&bomb_start(3 << 20)).unwrap();
    wait_stats(&h, Duration::from_secs(5), |s| s.overload_pauses == 1);
    let paused = std::time::Instant::now();
    // The kernel completes the TCP handshake (the backlog), but no 101 comes.
    let mut waiting = raw(h.local_addr());
    waiting.write_all(UPGRADE).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(
        std::io::Read::read(&mut waiting, &mut b).is_err(),
        "no answer while not accepting"
    );
    assert_eq!(h.stats().accepted, 1);
    // Held on to for a second: the holder is closed so that the shard accepts again.
    assert_eq!(read_close_code(&mut holder), 1013);
    assert!(
        paused.elapsed() >= Duration::from_millis(900),
        "{:?}",
        paused.elapsed()
    );
    waiting.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = read_head(&mut waiting);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let st = wait_stats(&h, Duration::from_secs(5), |s| s.memory.messages == 0);
    assert_eq!(st.overload_closes, 1);
    stop(&h);
}

#[test]
fn a_shard_holds_its_most_handshakes_and_answers_one_more_503_at_once() {
    let mut config = quick_config();
    config.max_handshakes = 3;
    let h = start(config, |_| Echo);
    let silent: Vec<TcpStream> = (0..3).map(|_| raw(h.local_addr())).collect();
    wait_stats(&h, Duration::from_secs(5), |s| s.handshaking == 3);
    let mut refused = raw(h.local_addr());
    let head = read_head(&mut refused);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("Retry-After: 1"), "{head}");
    drop(refused);
    drop(silent);
    wait_no_sockets(&h);
    // Room again.
    drop(raw_open(h.local_addr()));
    let st = h.stats();
    assert_eq!(st.rejected.get(&RejectReason::Busy), Some(&1));
    stop(&h);
}

#[test]
fn connections_per_client_address_are_capped_with_503() {
    let mut config = quick_config();
    config.shards = 2;
    config.max_connections_per_address = Some(2);
    let h = start(config, |_| Echo);
    let two: IpAddr = "127.0.0.2".parse().unwrap();
    let open_from = |ip: IpAddr| {
        let mut s = raw_from(h.local_addr(), ip);
        s.write_all(UPGRADE).unwrap();
        let head = read_head(&mut s);
        (s, head)
    };
    let (a, head) = open_from(two);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (_b, head) = open_from(two);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Both shards count for the address.
    let (_, head) = open_from(two);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let (_c, head) = open_from("127.0.0.3".parse().unwrap());
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "another address is not limited: {head}"
    );
    drop(a);
    wait_stats(&h, Duration::from_secs(5), |s| s.connections_open == 2);
    let (_d, head) = open_from(two);
    assert!(head.starts_with("HTTP/1.1 101"), "a place came free: {head}");
    assert_eq!(h.stats().rejected.get(&RejectReason::AddressLimit), Some(&1));
    stop(&h);
}

/// Blocks its shard for a while on "sleep", so that other threads' sends wait in its inbox;
/// says the id of the connection that opened.
struct Sleepy(std::sync::mpsc::Sender<ConnId>);

impl Handler for Sleepy {
    type State = ();

    fn on_open(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), _req: &c10k::proto::Request<'_>) {
        let _ = self.0.send(id);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &mut (), msg: Message<'_>) {
        if msg.as_bytes() == b"sleep" {
            std::thread::sleep(Duration::from_millis(500));
        }
        let _ = ctx.send(id, msg.kind(), msg.as_bytes());
    }
}

#[test]
fn sends_from_other_threads_past_the_inbox_bound_are_refused_and_counted() {
    let mut config = quick_config();
    config.max_inbox_bytes = 64 << 10;
    let (tx, rx) = std::sync::mpsc::channel();
    let h = start(config, move |_| Sleepy(tx.clone()));
    let mut ws = client(h.local_addr());
    let id = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    ws.send(tungstenite::Message::text("sleep")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // 100 sends of 1 KiB (each charged with its bookkeeping) against a 64 KiB inbox.
    let accepted = (0..100)
        .filter(|_| {
            h.send(id, c10k::proto::MessageKind::Binary, vec![9; 1024])
                .is_ok()
        })
        .count();
    assert!((50..64).contains(&accepted), "{accepted} accepted");
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("sleep"));
    for _ in 0..accepted {
        assert_eq!(ws.read().unwrap().into_data().len(), 1024);
    }
    let st = h.stats();
    assert_eq!(st.inbox_drops, (100 - accepted) as u64);
    assert_eq!(st.memory.inbox, 0);
    stop(&h);
}
