//! Topics and broadcast within a node: subscribe, publish across shards, order, cleanup,
//! back-pressure of slow subscribers.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use c10k::client::{Client, Received};
use c10k::proto::MessageKind;
use c10k_tools::apps::{Chat, PubSub};
use common::*;

fn pubsub_client(addr: std::net::SocketAddr, path: &str) -> Client {
    Client::connect(&format!("ws://{addr}{path}")).unwrap()
}

/// Sends `sync` and waits for its answer: every earlier command has taken effect.
fn sync(c: &mut Client) {
    c.send_text("sync x").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("sync x".into()));
}

#[test]
fn publish_reaches_subscribers_on_every_shard_and_only_them() {
    let mut config = quick_config();
    config.shards = 2;
    let h = start(config, |_| PubSub);
    let addr = h.local_addr();
    // Enough connections that both shards get subscribers.
    let mut subs: Vec<Client> = (0..16).map(|_| pubsub_client(addr, "/")).collect();
    for s in &mut subs {
        s.send_text("sub news").unwrap();
        sync(s);
    }
    let mut other = pubsub_client(addr, "/");
    other.send_text("sub sports").unwrap();
    sync(&mut other);
    let st = h.stats();
    assert_eq!(st.topics, 3, "news on both shards and sports: {st:?}");

    let mut publisher = pubsub_client(addr, "/");
    publisher.send_text("pub news hello").unwrap();
    for s in &mut subs {
        assert_eq!(s.recv_message().unwrap(), Received::Text("news hello".into()));
    }
    // The sports subscriber got nothing: its next message is the answer to this sync.
    sync(&mut other);
    assert_eq!(h.stats().deliveries, 16);
    stop(&h);
}

#[test]
fn messages_from_one_publisher_arrive_in_order_across_shards() {
    let mut config = quick_config();
    config.shards = 2;
    let h = start(config, |_| PubSub);
    let addr = h.local_addr();
    let mut subs: Vec<Client> = (0..8).map(|_| pubsub_client(addr, "/")).collect();
    for s in &mut subs {
        s.send_text("sub t").unwrap();
        sync(s);
    }
    let mut publisher = pubsub_client(addr, "/");
    for i in 0..500 {
        publisher.send_text(&format!("pub t {i}")).unwrap();
    }
    for s in &mut subs {
        for i in 0..500 {
            assert_eq!(s.recv_message().unwrap(), Received::Text(format!("t {i}")));
        }
    }
    stop(&h);
}

#[test]
fn subscriptions_end_when_connections_close_on_every_path() {
    let h = start(quick_config(), |_| PubSub);
    let addr = h.local_addr();
    // A clean close, a reset, and an unsubscribe.
    let mut a = pubsub_client(addr, "/");
    a.send_text("sub x").unwrap();
    a.send_text("sub y").unwrap();
    sync(&mut a);
    let mut b = raw_open(addr);
    b.write_all(&frame(true, 0x1, b"sub x")).unwrap();
    let mut c = pubsub_client(addr, "/");
    c.send_text("sub z").unwrap();
    sync(&mut c);
    wait_stats(&h, Duration::from_secs(5), |s| s.topics == 3);
    a.close(c10k::proto::CloseCode::Normal, "").unwrap();
    let _ = a.recv();
    reset(b);
    c.send_text("unsub z").unwrap();
    sync(&mut c);
    c.send_text("unsub z").unwrap();
    sync(&mut c);
    let s = wait_stats(&h, Duration::from_secs(5), |s| {
        s.topics == 0 && s.connections_open == 1
    });
    assert_eq!(s.topics, 0);
    // A publish to a topic nobody wants anymore reaches nobody.
    c.send_text("pub x nobody").unwrap();
    sync(&mut c);
    assert_eq!(h.stats().deliveries, 0);
    stop(&h);
}

#[test]
fn a_slow_subscriber_is_closed_by_policy_and_does_not_hold_the_others_back() {
    let mut config = quick_config();
    config.max_queued_bytes = 64 << 10;
    let h = start(config, |_| PubSub);
    let addr = h.local_addr();
    // A subscriber that never reads.
    let mut slow = raw_open(addr);
    slow.write_all(&frame(true, 0x1, b"sub feed")).unwrap();
    let mut fast = pubsub_client(addr, "/");
    fast.send_text("sub feed").unwrap();
    sync(&mut fast);
    wait_stats(&h, Duration::from_secs(5), |s| {
        s.topics == 1 && s.connections_open == 2
    });
    // Publish until the policy closes the slow one (the kernel's socket buffers absorb a few
    // megabytes first), bounded at 60 MB; then an end marker. The publisher stays within 1,000
    // messages of what the fast subscriber has read, so that a loaded machine that starves this
    // test's reader cannot make the fast subscriber slow too.
    let h2 = h.clone();
    let got = Arc::new(AtomicUsize::new(0));
    let read = Arc::clone(&got);
    let publisher = std::thread::spawn(move || {
        let mut p = pubsub_client(addr, "/");
        let payload = "x".repeat(1000);
        let mut sent = 0;
        while sent < 60_000 {
            for _ in 0..500 {
                p.send_text(&format!("pub feed {sent} {payload}")).unwrap();
                sent += 1;
            }
            if h2.stats().backpressure_closes >= 1 {
                break;
            }
            let waited = Instant::now();
            while read.load(Ordering::Relaxed) + 1000 < sent && waited.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        p.send_text("pub feed end").unwrap();
        sent
    });
    let mut i = 0;
    loop {
        match fast.recv_message().unwrap() {
            Received::Text(t) if t == "feed end" => break,
            Received::Text(t) => assert!(t.starts_with(&format!("feed {i} ")), "message {i}: {}", &t[..20]),
            other => panic!("{other:?}"),
        }
        i += 1;
        got.store(i, Ordering::Relaxed);
    }
    let sent = publisher.join().unwrap();
    assert_eq!(i, sent, "the fast subscriber got every message");
    // The publisher's connection goes when its thread ends, the slow one when the policy's Close
    // goes unanswered: wait for at most the fast one and one of them.
    let s = wait_stats(&h, Duration::from_secs(10), |s| s.connections_open <= 2);
    assert_eq!(
        s.backpressure_closes, 1,
        "only the slow subscriber was closed: {s:?}"
    );
    stop(&h);
}

#[test]
fn chat_rooms_relay_to_every_member_including_the_sender() {
    let mut config = quick_config();
    config.shards = 2;
    let h = start(config, |_| Chat);
    let addr = h.local_addr();
    let mut red: Vec<Client> = (0..4).map(|_| pubsub_client(addr, "/chat/red")).collect();
    let mut blue = pubsub_client(addr, "/chat/blue");
    wait_stats(&h, Duration::from_secs(5), |s| s.connections_open == 5);
    red[0].send_text("hello red").unwrap();
    red[1].send(MessageKind::Binary, &[1, 2, 3]).unwrap();
    for c in &mut red {
        let mut got = vec![c.recv_message().unwrap(), c.recv_message().unwrap()];
        got.sort_by_key(|m| format!("{m:?}"));
        assert!(got.contains(&Received::Text("hello red".into())), "{got:?}");
        assert!(got.contains(&Received::Binary(vec![1, 2, 3])), "{got:?}");
    }
    blue.send_text("only blue").unwrap();
    assert_eq!(blue.recv_message().unwrap(), Received::Text("only blue".into()));
    stop(&h);
}

#[test]
fn handle_publish_from_another_thread_reaches_subscribers() {
    let h = start(
        {
            let mut c = quick_config();
            c.shards = 2;
            c
        },
        |_| PubSub,
    );
    let addr = h.local_addr();
    let mut subs: Vec<Client> = (0..6).map(|_| pubsub_client(addr, "/")).collect();
    for s in &mut subs {
        s.send_text("sub alerts").unwrap();
        sync(s);
    }
    let h2 = h.clone();
    std::thread::spawn(move || h2.publish("alerts", MessageKind::Text, b"from afar"))
        .join()
        .unwrap();
    for s in &mut subs {
        assert_eq!(s.recv_message().unwrap(), Received::Text("from afar".into()));
    }
    stop(&h);
}

#[test]
fn pubsub_answers_bad_commands_precisely() {
    let h = start(quick_config(), |_| PubSub);
    let mut c = pubsub_client(h.local_addr(), "/");
    for (cmd, want) in [
        ("hello", "error unknown command"),
        ("sub ", "error bad topic name"),
        ("sub a b", "error bad position"),
        ("sub a @x", "error bad position"),
        // This server keeps no history: no offsets.
        ("sub a @", "error no history"),
        ("pub onlytopic", "error usage"),
    ] {
        c.send_text(cmd).unwrap();
        match c.recv_message().unwrap() {
            Received::Text(t) => assert!(t.starts_with(want), "{cmd:?} -> {t:?}"),
            other => panic!("{other:?}"),
        }
    }
    c.send_binary(b"sub x").unwrap();
    match c.recv_message().unwrap() {
        Received::Close(code, _) => assert_eq!(code.as_u16(), 1003),
        other => panic!("{other:?}"),
    }
    stop(&h);
}
