//! The Redis bridge in streams mode against a real `redis-server` started here (a missing one
//! fails the test): nodes see the same offsets in the same order, a node that starts wanting a
//! topic late loads its history, a Redis restarted without persistence or flushed shows as a new
//! epoch; and servers with history on give their followers one order at the stream's offsets,
//! resume a follower on a node that loads the topic's history late, and tell followers when
//! Redis lost it.
//!
//! Most tests hand what the bridge reads to a recorder ([`HistorySink`]) to see offsets and
//! epochs directly; the last ones run servers. Every wait is bounded.

#![cfg(feature = "redis")]

mod common;
#[path = "common/follow.rs"]
mod follow;
#[path = "common/redis.rs"]
mod redis_procs;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c10k::bridge::redis::{HistorySink, Mode, RedisBridge};
use c10k::proto::MessageKind;
use c10k::{Bridge, HistoryConfig, Position, ServerConfig};
use follow::{read_stream, recv_text};
use redis_procs::{Redis, fast_limits, redis_command, wait_for};

/// What a bridge handed on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Load {
        topic: String,
        epoch: u64,
        offsets: Vec<u64>,
    },
    At {
        topic: String,
        payload: Vec<u8>,
        at: Position,
    },
    Drop(String),
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Event>>);

impl HistorySink for Recorder {
    fn history_load(&self, topic: &str, epoch: u64, entries: Vec<(u64, MessageKind, Vec<u8>)>) {
        let offsets = entries.iter().map(|e| e.0).collect();
        self.0.lock().unwrap().push(Event::Load {
            topic: topic.to_owned(),
            epoch,
            offsets,
        });
    }

    fn publish_at(&self, topic: &str, _kind: MessageKind, payload: &[u8], at: Position) {
        self.0.lock().unwrap().push(Event::At {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            at,
        });
    }

    fn history_drop(&self, topic: &str) {
        self.0.lock().unwrap().push(Event::Drop(topic.to_owned()));
    }
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// The messages handed on for `topic`, as (position, payload).
    fn delivered(&self, topic: &str) -> Vec<(Position, Vec<u8>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::At {
                    topic: t,
                    payload,
                    at,
                } if t == topic => Some((at, payload)),
                _ => None,
            })
            .collect()
    }

    fn loads(&self, topic: &str) -> Vec<(u64, Vec<u64>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Load {
                    topic: t,
                    epoch,
                    offsets,
                } if t == topic => Some((epoch, offsets)),
                _ => None,
            })
            .collect()
    }
}

fn bridge(url: &str, prefix: &str) -> (Arc<RedisBridge>, Arc<Recorder>) {
    let b = RedisBridge::with_mode(Mode::Streams, url, prefix, fast_limits(50)).unwrap();
    let r = Arc::new(Recorder::default());
    b.start_with(r.clone());
    (b, r)
}

/// Waits until the bridge's topics are subscribed and loaded.
fn ready(b: &RedisBridge, r: &Recorder, topic: &str) {
    wait_for(Duration::from_secs(10), "the topic to load", || {
        b.stats().snapshot().connected && !r.loads(topic).is_empty()
    });
}

#[test]
fn streams_nodes_see_the_same_offsets_in_the_same_order() {
    let redis = Redis::start();
    let (a, ra) = bridge(&redis.url(), "order:");
    let (b, rb) = bridge(&redis.url(), "order:");
    a.subscribe("t");
    b.subscribe("t");
    ready(&a, &ra, "t");
    ready(&b, &rb, "t");
    assert!(a.keeps_history());

    const N: usize = 200;
    for i in 0..N {
        let (from, node) = if i % 2 == 0 { ("a", &a) } else { ("b", &b) };
        node.publish("t", MessageKind::Text, format!("{from}{i}").as_bytes());
    }
    wait_for(Duration::from_secs(10), "every message on both nodes", || {
        ra.delivered("t").len() >= N && rb.delivered("t").len() >= N
    });
    let (da, db) = (ra.delivered("t"), rb.delivered("t"));
    assert_eq!(da, db, "one order on both nodes");
    let offsets: Vec<u64> = da.iter().map(|d| d.0.offset).collect();
    assert_eq!(
        offsets,
        (1..=N as u64).collect::<Vec<_>>(),
        "offsets from the stream ids, no gap"
    );
    let epoch = ra.loads("t")[0].0;
    assert!(da.iter().all(|d| d.0.epoch == epoch));
    assert_eq!(rb.loads("t")[0].0, epoch, "one epoch for both nodes");
    // Each node's own messages came back in Redis's order, once.
    let mut payloads: Vec<_> = da.iter().map(|d| d.1.clone()).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), N);
    for (node, stats) in [(&a, a.stats().snapshot()), (&b, b.stats().snapshot())] {
        assert_eq!(stats.publishes_sent, N as u64 / 2, "{stats:?}");
        assert_eq!(stats.received, N as u64, "{stats:?}");
        node.stop();
    }
}

/// A node that follows a busy topic (a message at least every millisecond) still subscribes to,
/// and loads, a topic it starts wanting meanwhile: the live messages never keep the subscriber
/// from its other work.
#[test]
fn streams_node_loads_a_new_topic_while_another_never_goes_quiet() {
    let redis = Redis::start();
    let (a, ra) = bridge(&redis.url(), "busy:");
    let (b, _rb) = bridge(&redis.url(), "busy:");
    a.subscribe("busy");
    ready(&a, &ra, "busy");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = std::thread::spawn({
        let (b, stop) = (Arc::clone(&b), Arc::clone(&stop));
        move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                b.publish("busy", MessageKind::Text, b"x");
                std::thread::yield_now();
            }
        }
    });
    wait_for(Duration::from_secs(10), "the busy topic to flow", || {
        ra.delivered("busy").len() > 500
    });
    a.subscribe("new");
    // A few milliseconds when the subscriber takes turns; a subscriber held by the busy topic
    // loads it only when that goes quiet for a moment (seconds here, never under real load).
    wait_for(
        Duration::from_secs(3),
        "the new topic to load while the busy one flows",
        || !ra.loads("new").is_empty(),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap();
    a.stop();
    b.stop();
}

#[test]
fn streams_node_that_wants_a_topic_late_loads_its_history() {
    let redis = Redis::start();
    let (a, ra) = bridge(&redis.url(), "late:");
    a.subscribe("room");
    ready(&a, &ra, "room");
    for i in 0..80 {
        a.publish("room", MessageKind::Binary, &[i]);
    }
    wait_for(Duration::from_secs(10), "A's messages", || {
        ra.delivered("room").len() == 80
    });

    let (b, rb) = bridge(&redis.url(), "late:");
    b.subscribe("room");
    ready(&b, &rb, "room");
    let (epoch, offsets) = rb.loads("room")[0].clone();
    assert_eq!(epoch, ra.loads("room")[0].0);
    // The newest `history_len` (50) at least (MAXLEN ~ may keep more in Redis; a load reads 50).
    assert_eq!(offsets, (31..=80).collect::<Vec<u64>>());

    b.publish("room", MessageKind::Text, b"after");
    wait_for(Duration::from_secs(10), "the next message on both", || {
        ra.delivered("room").len() == 81 && rb.delivered("room").len() == 1
    });
    assert_eq!(rb.delivered("room")[0].0, Position { epoch, offset: 81 });
    assert_eq!(ra.delivered("room")[80], rb.delivered("room")[0]);

    // Not wanted any more: unsubscribed, history dropped.
    b.unsubscribe("room");
    wait_for(Duration::from_secs(5), "the drop", || {
        rb.events().contains(&Event::Drop("room".into()))
    });
    a.publish("room", MessageKind::Text, b"unseen by b");
    wait_for(Duration::from_secs(10), "A's message", || {
        ra.delivered("room").len() == 82
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(rb.delivered("room").len(), 1, "b no longer follows the topic");
    a.stop();
    b.stop();
}

#[test]
fn streams_redis_restarted_without_persistence_gives_a_new_epoch() {
    let mut redis = Redis::start();
    let (a, ra) = bridge(&redis.url(), "restart:");
    let (b, rb) = bridge(&redis.url(), "restart:");
    a.subscribe("t");
    b.subscribe("t");
    ready(&a, &ra, "t");
    ready(&b, &rb, "t");
    for i in 0..5 {
        a.publish("t", MessageKind::Binary, &[i]);
    }
    wait_for(Duration::from_secs(10), "the first messages", || {
        rb.delivered("t").len() == 5
    });
    let first = ra.loads("t")[0].0;

    redis.restart();
    // The bridges reconnect, subscribe again and find a new epoch.
    for r in [&ra, &rb] {
        wait_for(Duration::from_secs(10), "a load in a new epoch", || {
            r.loads("t").iter().any(|l| l.0 != first)
        });
    }
    let second = ra.loads("t").last().unwrap().0;
    assert_eq!(
        rb.loads("t").last().unwrap().0,
        second,
        "both nodes found the same new epoch"
    );
    assert!(a.stats().snapshot().epoch_changes >= 1);
    wait_for(Duration::from_secs(10), "the bridges to be connected", || {
        a.stats().snapshot().connected && b.stats().snapshot().connected
    });
    // Publishes that Redis takes from now on count from 1 in the new epoch.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rb.delivered("t").iter().all(|d| d.0.epoch != second) {
        assert!(Instant::now() < deadline, "nothing delivered in the new epoch");
        a.publish("t", MessageKind::Text, b"new");
        std::thread::sleep(Duration::from_millis(50));
    }
    let new: Vec<u64> = rb
        .delivered("t")
        .iter()
        .filter(|d| d.0.epoch == second)
        .map(|d| d.0.offset)
        .collect();
    assert_eq!(new[0], 1, "{new:?}");
    a.stop();
    b.stop();
}

#[test]
fn streams_flushall_under_a_live_subscription_is_noticed_on_the_keepalive() {
    let redis = Redis::start();
    let (a, ra) = bridge(&redis.url(), "flush:");
    a.subscribe("t");
    ready(&a, &ra, "t");
    a.publish("t", MessageKind::Text, b"one");
    wait_for(Duration::from_secs(10), "the message", || {
        ra.delivered("t").len() == 1
    });
    let first = ra.loads("t")[0].0;
    assert_eq!(redis_command(redis.port, &["FLUSHALL"]), "+OK");
    // No reconnection, no publish: the periodic check finds the epoch gone.
    wait_for(Duration::from_secs(10), "a new epoch", || {
        ra.loads("t").iter().any(|l| l.0 != first)
    });
    let s = a.stats().snapshot();
    assert_eq!((s.epoch_changes, s.reconnects), (1, 0), "{s:?}");
    a.stop();
}

#[test]
fn streams_history_that_went_backwards_gets_a_new_epoch() {
    let redis = Redis::start();
    let (a, ra) = bridge(&redis.url(), "back:");
    a.subscribe("t");
    ready(&a, &ra, "t");
    for i in 0..5 {
        a.publish("t", MessageKind::Binary, &[i]);
    }
    wait_for(Duration::from_secs(10), "the messages", || {
        ra.delivered("t").len() == 5
    });
    let first = ra.loads("t")[0].0;
    // As after a failover that lost writes a node had seen: Redis's last offset is behind.
    assert_eq!(
        redis_command(redis.port, &["HSET", "back:{t}:m", "last", "2"]),
        ":0"
    );
    wait_for(Duration::from_secs(10), "a new epoch", || {
        ra.loads("t").iter().any(|l| l.0 != first)
    });
    let second = ra.loads("t").last().unwrap().0;
    a.publish("t", MessageKind::Text, b"next");
    wait_for(Duration::from_secs(10), "the next message", || {
        ra.delivered("t").len() == 6
    });
    assert_eq!(
        ra.delivered("t")[5].0,
        Position {
            epoch: second,
            offset: 1
        },
        "no offset names two messages"
    );
    a.stop();
}

#[test]
fn streams_hung_redis_never_blocks_a_publisher_and_the_queue_stays_bounded() {
    // A Redis that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let mut limits = fast_limits(50);
    limits.max_queued_messages = 64;
    limits.io_timeout = Duration::from_millis(300);
    let b = RedisBridge::with_mode(Mode::Streams, &url, "hung:", limits).unwrap();
    let r = Arc::new(Recorder::default());
    b.start_with(r.clone());
    b.subscribe("t");
    const N: u64 = 2000;
    let started = Instant::now();
    for i in 0..N {
        b.publish("t", MessageKind::Text, format!("m{i}").as_bytes());
    }
    // Publishing only queues (or drops): it never waits for Redis.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    wait_for(Duration::from_secs(10), "every publish accounted for", || {
        let s = b.stats().snapshot();
        s.queue_depth == 0 && s.publishes_lost + s.dropped_queue_full == N
    });
    let s = b.stats().snapshot();
    assert!(s.queue_peak <= 64, "{s:?}");
    assert_eq!(s.publishes_sent, 0, "{s:?}");
    wait_for(Duration::from_secs(10), "the silence noticed", || {
        b.stats().snapshot().timeouts >= 2
    });
    assert!(!b.stats().snapshot().connected);
    assert!(r.events().is_empty(), "nothing handed on");
    b.stop();
}

/// A server with history on (or off), bridged through Redis in streams mode.
fn server(url: &str, prefix: &str, history: bool) -> (c10k::ServerHandle, Arc<RedisBridge>) {
    let b = RedisBridge::with_mode(Mode::Streams, url, prefix, fast_limits(50)).unwrap();
    let mut config = ServerConfig::default();
    config.shards = 2;
    config.ping_interval = None;
    config.drain_timeout = Duration::from_millis(200);
    config.history = history.then(HistoryConfig::default);
    config.bridge = Some(b.clone());
    (common::start(config, |_| follow::Topics), b)
}

#[test]
fn streams_servers_give_followers_one_order_and_a_late_node_resumes_from_redis() {
    let mut redis = Redis::start();
    let (ha, a) = server(&redis.url(), "servers:", true);
    let (hb, b) = server(&redis.url(), "servers:", true);
    let mut fa = common::client(ha.local_addr());
    fa.send(tungstenite::Message::text("follow t now")).unwrap();
    let answer = recv_text(&mut fa);
    let start: Position = answer.split(' ').nth(2).unwrap().parse().unwrap();
    assert_eq!(
        (answer.split(' ').nth(3), start.offset),
        (Some("0"), 0),
        "{answer}"
    );

    // Publishers on both nodes; A's follower sees every message at the stream's offsets.
    const N: usize = 40;
    let mut pubs = [common::client(ha.local_addr()), common::client(hb.local_addr())];
    for i in 0..N {
        pubs[i % 2]
            .send(tungstenite::Message::text(format!("pub t m{i}")))
            .unwrap();
    }
    let seen = read_stream(&mut fa, 0, N);
    let mut payloads: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), N, "each message once");

    // A follower on B, which never wanted the topic, resumes from offset 10: B loads the
    // topic's history from Redis and replays what came after.
    let mut fb = common::client(hb.local_addr());
    fb.send(tungstenite::Message::text(format!("follow t {}:10", start.epoch)))
        .unwrap();
    let replayed = read_stream(&mut fb, 10, N - 10);
    assert_eq!(replayed, seen[10..], "the same messages at the same offsets");
    assert_eq!(
        recv_text(&mut fb),
        format!("resumed t {}:{N} {}", start.epoch, N - 10)
    );

    // Redis restarts without persistence: the followers are told their history was lost, and
    // delivery goes on in the new epoch.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    let lost = loop {
        assert!(
            Instant::now() < deadline,
            "no loss reported after Redis restarted"
        );
        pubs[0].send(tungstenite::Message::text("pub t after")).unwrap();
        let _ = fa.get_ref().set_read_timeout(Some(Duration::from_millis(200)));
        match fa.read() {
            Ok(tungstenite::Message::Text(t)) if t.starts_with("lost t ") => break t.to_string(),
            _ => {}
        }
    };
    let at: Position = lost.split(' ').nth(2).unwrap().parse().unwrap();
    assert_ne!(at.epoch, start.epoch, "{lost}");
    assert!(a.stats().snapshot().epoch_changes >= 1);
    for (h, b) in [(&ha, &a), (&hb, &b)] {
        common::stop(h);
        b.stop();
    }
}

#[test]
fn streams_server_without_history_delivers_its_own_publishes_once() {
    let redis = Redis::start();
    let (h, b) = server(&redis.url(), "nohistory:", false);
    let mut sub = common::client(h.local_addr());
    sub.send(tungstenite::Message::text("sub t")).unwrap();
    wait_for(Duration::from_secs(10), "the topic to be subscribed", || {
        let s = b.stats().snapshot();
        s.connected && s.history_loads == 1
    });
    for i in 0..20 {
        sub.send(tungstenite::Message::text(format!("pub t m{i}")))
            .unwrap();
    }
    for i in 0..20 {
        assert_eq!(recv_text(&mut sub), format!("m{i}"));
    }
    wait_for(Duration::from_secs(10), "the echoes", || {
        b.stats().snapshot().own_echoes == 20
    });
    sub.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(sub.read().is_err(), "nothing twice");
    common::stop(&h);
    b.stop();
}
