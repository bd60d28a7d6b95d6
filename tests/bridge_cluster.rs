//! The Redis bridge in streams mode on a Redis Cluster started here (three masters with a
//! replica each; a missing `redis-server` or `redis-cli` fails the test): two nodes share 100
//! topics, every message reaches both once and in one order, the commands spread over the
//! masters; a topic's slot moves to another master (MOVED, and Redis ends the subscription) and
//! nothing is lost; after a master is killed its replica takes over and delivery resumes with
//! every message still once and in order (or a new epoch reported). Busy topics on the three
//! masters at once are all taken, offsets one after the other. Every wait is bounded.

#![cfg(feature = "redis")]

#[path = "common/redis.rs"]
mod redis_procs;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c10k::bridge::redis::{HistorySink, Mode, RedisBridge};
use c10k::proto::MessageKind;
use c10k::{Bridge, Position};
use redis_procs::{Cluster, fast_limits, redis_text, wait_for};

const TOPICS: usize = 100;
const BEFORE: usize = 4;

/// A load: the epoch and the offsets.
type Load = (u64, Vec<u64>);
/// A message handed on: its position and payload.
type Delivered = (Position, Vec<u8>);

/// Per topic: the loads and the messages handed on.
#[derive(Debug, Default)]
struct Recorder {
    loads: Mutex<HashMap<String, Vec<Load>>>,
    messages: Mutex<HashMap<String, Vec<Delivered>>>,
}

impl HistorySink for Recorder {
    fn history_load(&self, topic: &str, epoch: u64, entries: Vec<(u64, MessageKind, Vec<u8>)>) {
        let offsets = entries.iter().map(|e| e.0).collect();
        self.loads
            .lock()
            .unwrap()
            .entry(topic.to_owned())
            .or_default()
            .push((epoch, offsets));
    }

    fn publish_at(&self, topic: &str, _kind: MessageKind, payload: &[u8], at: Position) {
        self.messages
            .lock()
            .unwrap()
            .entry(topic.to_owned())
            .or_default()
            .push((at, payload.to_vec()));
    }

    fn history_drop(&self, _topic: &str) {}
}

impl Recorder {
    fn loaded(&self) -> usize {
        self.loads.lock().unwrap().len()
    }

    fn messages(&self, topic: &str) -> Vec<Delivered> {
        self.messages
            .lock()
            .unwrap()
            .get(topic)
            .cloned()
            .unwrap_or_default()
    }
}

/// Topic names, a few with braces and escapes in them (their keys must still share a slot).
fn topic(i: usize) -> String {
    match i {
        0 => "{t0}".to_owned(),
        1 => "t1}".to_owned(),
        2 => "%7D{t2".to_owned(),
        3 => "}{".to_owned(),
        _ => format!("t{i}"),
    }
}

/// `cmdstat_evalsha` calls on the Redis at `port`.
fn evalsha_calls(port: u16) -> u64 {
    let info = redis_text(port, &["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The test's nodes: each a bridge and what it handed on; stopped when dropped (a failed test
/// leaves no thread retrying a cluster that is gone).
struct Nodes(Vec<(Arc<RedisBridge>, Arc<Recorder>)>);

impl std::ops::Deref for Nodes {
    type Target = [(Arc<RedisBridge>, Arc<Recorder>)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (b, _) in &self.0 {
            b.stop();
        }
    }
}

/// Waits (20 s at most) until every node has at least `want` messages of every topic; past
/// that, a panic with what each node has, its counters, and each Redis node's state and log.
fn wait_messages(cluster: &mut Cluster, nodes: &Nodes, what: &str, want: usize) {
    let end = Instant::now() + Duration::from_secs(20);
    let done = || {
        nodes
            .iter()
            .all(|(_, r)| (0..TOPICS).all(|i| r.messages(&topic(i)).len() >= want))
    };
    while !done() {
        if Instant::now() >= end {
            let short: Vec<usize> = nodes
                .iter()
                .map(|(_, r)| {
                    (0..TOPICS)
                        .filter(|&i| r.messages(&topic(i)).len() < want)
                        .count()
                })
                .collect();
            let stats: Vec<_> = nodes.iter().map(|(b, _)| b.stats().snapshot()).collect();
            panic!(
                "timed out waiting for {what}: topics short per node {short:?}; {stats:#?}\n{}",
                cluster.report()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Per node and topic: each message once, offsets rising within an epoch; and where both nodes
/// have a position, the same message there.
fn check_once_in_order(nodes: &[&Recorder]) {
    for i in 0..TOPICS {
        let t = topic(i);
        let mut at: HashMap<Position, Vec<u8>> = HashMap::new();
        for r in nodes {
            let got = r.messages(&t);
            let mut payloads = HashSet::new();
            for w in got.windows(2) {
                if w[0].0.epoch == w[1].0.epoch {
                    assert!(
                        w[0].0.offset < w[1].0.offset,
                        "{t}: {:?} then {:?}",
                        w[0].0,
                        w[1].0
                    );
                }
            }
            for (pos, payload) in got {
                assert!(payloads.insert(payload.clone()), "{t}: {payload:?} twice");
                if let Some(other) = at.insert(pos, payload.clone()) {
                    assert_eq!(other, payload, "{t} at {pos:?}: the nodes disagree");
                }
            }
        }
    }
}

#[test]
fn cluster_streams_deliver_once_in_order_spread_over_masters_and_survive_a_failover() {
    let _ = log::set_logger(&Stderr);
    log::set_max_level(log::LevelFilter::Info);
    let mut cluster = Cluster::start();
    let url = cluster.url();
    // Replies may take a while on a loaded machine (twelve Redis servers, two tests): a
    // publish that timed out would be counted lost, and this test wants every one. A killed
    // master's connections fail at once whatever the timeout.
    let mut limits = fast_limits(100);
    limits.io_timeout = Duration::from_secs(2);
    let mut nodes = Nodes(Vec::new());
    for _ in 0..2 {
        let b = RedisBridge::with_mode(Mode::Streams, &url, "cl:", limits).unwrap();
        assert!(b.is_cluster());
        let r = Arc::new(Recorder::default());
        b.start_with(r.clone());
        for i in 0..TOPICS {
            b.subscribe(&topic(i));
        }
        nodes.0.push((b, r));
    }
    for (b, r) in nodes.iter() {
        let end = Instant::now() + Duration::from_secs(20);
        while r.loaded() < TOPICS || !b.stats().snapshot().connected {
            let s = b.stats().snapshot();
            assert!(
                Instant::now() < end,
                "{} of {TOPICS} topics loaded: {s:?}",
                r.loaded()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let calls_before: Vec<u64> = masters.iter().map(|&p| evalsha_calls(p)).collect();
    for k in 0..BEFORE {
        for i in 0..TOPICS {
            let (b, _) = &nodes[(i + k) % 2];
            b.publish(&topic(i), MessageKind::Text, format!("before {i} {k}").as_bytes());
        }
    }
    wait_messages(&mut cluster, &nodes, "every message on both nodes", BEFORE);
    for i in 0..TOPICS {
        let (a, b) = (nodes[0].1.messages(&topic(i)), nodes[1].1.messages(&topic(i)));
        assert_eq!(a, b, "one order on both nodes");
        let offsets: Vec<u64> = a.iter().map(|m| m.0.offset).collect();
        assert_eq!(offsets, (1..=BEFORE as u64).collect::<Vec<_>>());
    }
    // Publishes and reads went to the master of each topic's slot: spread over the three.
    let calls: Vec<u64> = masters
        .iter()
        .zip(&calls_before)
        .map(|(&p, before)| evalsha_calls(p) - before)
        .collect();
    let total: u64 = calls.iter().sum();
    assert!(total >= (2 * TOPICS * BEFORE / 2) as u64, "{calls:?}");
    for c in &calls {
        assert!(*c * 6 >= total && *c * 3 <= total * 2, "uneven: {calls:?}");
    }

    // A topic's slot moves to another master under the nodes' feet (keys and all): publishes
    // are redirected (MOVED), the subscriptions follow the slot; still every message once, in
    // order.
    let moved = topic(5);
    let key = format!("cl:{{{moved}}}:s");
    let from = cluster.owner(&masters, &key);
    let to = *masters.iter().find(|&&m| m != from).unwrap();
    cluster.move_slot(&key, from, to, &masters);
    for k in BEFORE..2 * BEFORE {
        for i in 0..TOPICS {
            let (b, _) = &nodes[(i + k) % 2];
            b.publish(&topic(i), MessageKind::Text, format!("moved {i} {k}").as_bytes());
        }
    }
    wait_messages(&mut cluster, &nodes, "every message after the move", 2 * BEFORE);
    check_once_in_order(&[&nodes[0].1, &nodes[1].1]);

    // A master dies; its replica takes over.
    let victim = masters[0];
    let node = cluster.nodes.iter_mut().find(|n| n.port == victim).unwrap();
    node.kill();
    let alive = masters[1];
    wait_for(Duration::from_secs(30), "a replica to take over", || {
        redis_text(alive, &["CLUSTER", "INFO"]).contains("cluster_state:ok") && cluster.masters().len() == 3
    });

    // Delivery resumes on every topic (publishes during the failover may be lost: they are
    // counted, never delivered twice).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut k = 0;
    loop {
        let done = nodes.iter().all(|(_, r)| {
            (0..TOPICS).all(|i| r.messages(&topic(i)).iter().any(|m| m.1.starts_with(b"after ")))
        });
        if done {
            break;
        }
        if Instant::now() >= deadline {
            let resumed: Vec<usize> = nodes
                .iter()
                .map(|(_, r)| {
                    (0..TOPICS)
                        .filter(|&i| r.messages(&topic(i)).iter().any(|m| m.1.starts_with(b"after ")))
                        .count()
                })
                .collect();
            let stats: Vec<_> = nodes.iter().map(|(b, _)| b.stats().snapshot()).collect();
            panic!("delivery did not resume on every topic: {resumed:?} of {TOPICS}; {stats:#?}");
        }
        for i in 0..TOPICS {
            let (b, _) = &nodes[(i + k) % 2];
            b.publish(&topic(i), MessageKind::Text, format!("after {i} {k}").as_bytes());
        }
        k += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the last ones arrive, then compare.
    wait_for(Duration::from_secs(10), "the publish queues to empty", || {
        nodes.iter().all(|(b, _)| b.stats().snapshot().queue_depth == 0)
    });
    std::thread::sleep(Duration::from_millis(500));
    check_once_in_order(&[&nodes[0].1, &nodes[1].1]);
    for (b, r) in nodes.iter() {
        let s = b.stats().snapshot();
        // Without a new epoch, no message of the topics was skipped: offsets run on from 1.
        if s.epoch_changes == 0 {
            for i in 0..TOPICS {
                let offsets: Vec<u64> = r.messages(&topic(i)).iter().map(|m| m.0.offset).collect();
                let expected: Vec<u64> = (1..=offsets.len() as u64).collect();
                assert_eq!(offsets, expected, "{} on a node: {s:?}", topic(i));
            }
        }
    }
}

/// Busy topics on all three masters at once: each subscription connection gets its share of
/// the subscriber's time. One that a busier connection starved fell behind its stream until
/// Redis trimmed what it had not taken yet (a short history here), and the node was handed a
/// jump in offsets (its followers told they lost messages that were waiting in the bridge's
/// buffers). Every message comes, offsets one after the other; and the first connection to
/// each master is no reconnection.
#[test]
fn busy_topics_on_every_master_are_all_taken_with_no_jump() {
    let _ = log::set_logger(&Stderr);
    log::set_max_level(log::LevelFilter::Info);
    let cluster = Cluster::start();
    let url = cluster.url();
    // Their slots fall on the three masters that `redis-cli --cluster create` makes.
    let topics = ["t2", "t5", "t8"];
    let masters = cluster.masters();
    let mut owners: Vec<u16> = topics
        .iter()
        .map(|t| cluster.owner(&masters, &format!("sp:{{{t}}}")))
        .collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), 3, "one topic on each master");
    let mut limits = fast_limits(100);
    limits.keepalive = Duration::from_millis(100);
    let sub = RedisBridge::with_mode(Mode::Streams, &url, "sp:", limits).unwrap();
    let r = Arc::new(Recorder::default());
    sub.start_with(r.clone());
    for t in topics {
        sub.subscribe(t);
    }
    let publisher = RedisBridge::with_mode(Mode::Streams, &url, "sp:", limits).unwrap();
    publisher.start_with(Arc::new(Recorder::default()));
    wait_for(Duration::from_secs(20), "the topics loaded", || {
        r.loaded() == topics.len() && sub.stats().snapshot().connected
    });

    // About 3,000 messages a second per topic for 1.5 s: the history (100) holds some 30 ms.
    let (start, mut sent) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_millis(1500) {
        for _ in 0..3 {
            for t in topics {
                publisher.publish(t, MessageKind::Text, format!("{t} {sent}").as_bytes());
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = topics
            .iter()
            .all(|t| r.messages(t).last().is_some_and(|m| m.0.offset >= sent));
        if done {
            break;
        }
        let s = sub.stats().snapshot();
        let got: Vec<u64> = topics
            .iter()
            .map(|t| r.messages(t).last().map_or(0, |m| m.0.offset))
            .collect();
        let p = publisher.stats().snapshot();
        assert!(
            Instant::now() < deadline,
            "{got:?} of {sent}: {s:?}; publisher {p:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = sub.stats().snapshot();
    for t in topics {
        let loads = r.loads.lock().unwrap().get(t).cloned().unwrap_or_default();
        assert_eq!(loads.len(), 1, "{t}: loaded once: {s:?}");
        let mut last = loads[0].1.last().copied().unwrap_or(0);
        for (at, _) in r.messages(t) {
            assert_eq!(at.epoch, loads[0].0, "{t}");
            assert_eq!(at.offset, last + 1, "{t}: a jump: {s:?}");
            last = at.offset;
        }
    }
    assert_eq!((s.gaps, s.epoch_changes, s.history_loads), (0, 0, 3), "{s:?}");
    assert_eq!(s.reconnects, 0, "three masters, three first connections: {s:?}");
    sub.stop();
    publisher.stop();
}

/// The bridge's log on stderr (shown when the test fails).
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        if r.level() <= log::Level::Info {
            eprintln!("{:?} {} {}", Instant::now(), r.level(), r.args());
        }
    }
    fn flush(&self) {}
}
