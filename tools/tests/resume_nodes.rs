//! Nothing lost across a reconnect, with everything real: redis-server (keeping nothing on
//! disk), three `c10k serve --mode pubsub` nodes sharing topics through Redis Streams, HAProxy
//! in front. A publisher sends numbered messages at 1,000 a second to a topic that 300
//! subscribers follow, spread over the nodes; meanwhile one node is killed (SIGKILL) and HAProxy
//! is restarted, so every subscriber loses its connection at least once, reconnects through
//! HAProxy (to another node, for some) and resumes from the last offset it saw. Each must end
//! with every message exactly once and in order; the test prints the longest time a subscriber
//! went without a message. Then Redis restarts without its data: every subscriber is told that
//! the topic's history was lost (a new epoch), and follows the new one.

#[path = "common/nodes.rs"]
mod nodes;
#[path = "common/procs.rs"]
mod procs;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use c10k::Position;
use c10k::client::{Client, ClientConfig, Received};
use nodes::{haproxy, node, redis};
use procs::needs::tool;
use procs::{Proc, free_port, size};

const SUBSCRIBERS: usize = 300;
/// Messages a second.
const RATE: u64 = 1000;
const TOPIC: &str = "ticks";

fn connect(front: u16, id: usize, deadline: Instant) -> Client {
    let url = format!("ws://127.0.0.1:{front}/?client={id}");
    let config = ClientConfig {
        // Messages come every millisecond: a second of silence is a dead connection.
        timeout: Some(Duration::from_secs(1)),
        ..ClientConfig::default()
    };
    loop {
        match Client::connect_with(&url, &config) {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "subscriber {id} cannot connect: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    /// The numbers of the messages, in the order they came.
    numbers: Vec<u64>,
    /// Where it is in the topic's stream.
    at: Position,
    reconnects: u32,
    /// The longest time without a message.
    longest_gap: Duration,
    /// `lost` answers: the positions they gave.
    lost: Vec<Position>,
}

/// An answer or a delivery of the pubsub protocol, on a subscription that follows offsets.
enum Line {
    /// `OFFSET TOPIC PAYLOAD`
    Delivery(u64, String),
    /// `resumed TOPIC EPOCH:OFFSET N`
    Resumed(Position),
    /// `lost TOPIC EPOCH:OFFSET`
    Lost(Position),
}

fn parse(text: &str) -> Line {
    let mut words = text.splitn(3, ' ');
    let (Some(first), Some(topic), Some(rest)) = (words.next(), words.next(), words.next()) else {
        panic!("malformed {text:?}");
    };
    assert_eq!(topic, TOPIC, "{text}");
    let position = |s: &str| s.split(' ').next().unwrap().parse().unwrap();
    match first {
        "resumed" => Line::Resumed(position(rest)),
        "lost" => Line::Lost(position(rest)),
        offset => Line::Delivery(
            offset.parse().unwrap_or_else(|_| panic!("malformed {text:?}")),
            rest.to_owned(),
        ),
    }
}

/// Follows the topic until message `last` came (or `until` says stop), reconnecting and
/// resuming whenever the connection drops.
fn follow(front: u16, id: usize, until: impl Fn(&Seen) -> bool, deadline: Instant, seen: &mut Seen) {
    let mut client: Option<Client> = None;
    let mut last_message = Instant::now();
    while !until(seen) {
        assert!(
            Instant::now() < deadline,
            "subscriber {id} ran out of time: {seen:?}"
        );
        let c = match client.as_mut() {
            Some(c) => c,
            None => {
                let mut c = connect(front, id, deadline);
                let since = if seen.at.epoch == 0 {
                    "@".to_owned()
                } else {
                    seen.reconnects += 1;
                    format!("@{}", seen.at)
                };
                if c.send_text(&format!("sub {TOPIC} {since}")).is_err() {
                    continue;
                }
                client.insert(c)
            }
        };
        let text = match c.recv_message() {
            Ok(Received::Text(t)) => t,
            Ok(_) => continue,
            Err(_) => {
                client = None;
                continue;
            }
        };
        match parse(&text) {
            Line::Delivery(offset, payload) => {
                assert_eq!(
                    offset,
                    seen.at.offset + 1,
                    "subscriber {id}: a gap or a duplicate at {text:?}"
                );
                seen.at.offset = offset;
                seen.numbers.push(payload.parse().unwrap());
                let now = Instant::now();
                seen.longest_gap = seen.longest_gap.max(now - last_message);
                last_message = now;
            }
            Line::Resumed(at) => {
                if seen.at.epoch != 0 {
                    assert_eq!(at.epoch, seen.at.epoch, "subscriber {id}: {text}");
                }
                seen.at = at;
            }
            Line::Lost(at) => {
                seen.lost.push(at);
                seen.at = at;
            }
        }
    }
}

#[test]
fn subscribers_resume_across_a_killed_node_and_a_balancer_restart_and_hear_of_a_lost_history() {
    let (Some(redis_bin), Some(haproxy_bin)) = (tool("redis-server"), tool("haproxy")) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("c10k-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis_port = free_port();
    let mut redis_proc = Some(redis(&redis_bin, redis_port));
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let node_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Option<Proc>> = node_ports
        .iter()
        .map(|&p| {
            Some(node(
                p,
                &[
                    "--mode",
                    "pubsub",
                    "--redis",
                    &redis_url,
                    "--redis-streams",
                    // 30 s of messages at RATE, in each node and in the Redis stream. A
                    // subscriber is away for one to six seconds here (HAProxy restarting and
                    // checking its servers again, on a busy machine): the history must cover the
                    // longest time away, or the resume is answered `lost`, which fails the test.
                    "--history-messages",
                    "30000",
                    "--redis-history",
                    "30000",
                ],
            ))
        })
        .collect();
    let front = free_port();
    let mut lb = Some(haproxy(&haproxy_bin, front, &node_ports, &dir));

    let seconds = size(6, 30);
    let total = RATE * seconds;
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    let started = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|id| {
            let started = Arc::clone(&started);
            std::thread::spawn(move || {
                let mut seen = Seen::default();
                follow(front, id, |s| s.at.epoch != 0, deadline, &mut seen);
                started.wait();
                follow(
                    front,
                    id,
                    |s| s.numbers.last() == Some(&(total - 1)),
                    deadline,
                    &mut seen,
                );
                seen
            })
        })
        .collect();
    started.wait();

    // The publisher talks to node 0 directly, which lives: a publish is fire-and-forget.
    let publish_to = format!("ws://127.0.0.1:{}/", node_ports[0]);
    let publisher = std::thread::spawn({
        move || {
            let mut c = Client::connect(&publish_to).unwrap();
            let start = Instant::now();
            for n in 0..total {
                let due = start + Duration::from_micros(n * 1_000_000 / RATE);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                c.send_text(&format!("pub {TOPIC} {n}")).unwrap();
            }
            c
        }
    });
    let third = Duration::from_millis(seconds * 1000 / 3);
    std::thread::sleep(third);
    // SIGKILL: no drain, no close frames.
    nodes[1] = None;
    std::thread::sleep(third);
    drop(lb.take());
    lb = Some(haproxy(&haproxy_bin, front, &node_ports, &dir));
    let publisher_client = publisher.join().unwrap();

    let mut seen: Vec<Seen> = subscribers.into_iter().map(|t| t.join().unwrap()).collect();
    let mut longest = Duration::ZERO;
    for (id, s) in seen.iter().enumerate() {
        let expected: Vec<u64> = (0..total).collect();
        assert!(
            s.numbers == expected,
            "subscriber {id}: {} messages, not 0..{total} once each in order",
            s.numbers.len()
        );
        assert!(
            s.lost.is_empty(),
            "subscriber {id} was told of a loss: {:?}",
            s.lost
        );
        assert!(s.reconnects >= 1, "subscriber {id} never lost its connection");
        longest = longest.max(s.longest_gap);
    }
    let moved = seen.iter().filter(|s| s.reconnects >= 2).count();
    println!(
        "{SUBSCRIBERS} subscribers x {total} messages: 0 lost, 0 duplicated; \
         {moved} reconnected more than once; longest time without a message: {longest:?}"
    );

    // Redis restarts with nothing: every subscriber hears that the history was lost.
    let epoch = seen[0].at.epoch;
    drop(redis_proc.take());
    let _redis_again = redis(&redis_bin, redis_port);
    let mut c = publisher_client;
    let told: Vec<_> = seen
        .drain(..)
        .enumerate()
        .map(|(id, mut s)| {
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                follow(
                    front,
                    id,
                    |s| !s.lost.is_empty() && s.at.offset >= 3,
                    deadline,
                    &mut s,
                );
                s
            })
        })
        .collect();
    // Publish until every subscriber heard of the new epoch and got 3 messages of it.
    let end = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while told.iter().any(|t| !t.is_finished()) {
        assert!(
            Instant::now() < end,
            "subscribers were not told of the new epoch in time"
        );
        let _ = c.send_text(&format!("pub {TOPIC} {n}"));
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    for (id, t) in told.into_iter().enumerate() {
        let s = t.join().unwrap();
        let lost = s.lost[0];
        assert_ne!(lost.epoch, epoch, "subscriber {id}: the epoch changed");
    }
    drop((lb, nodes));
    let _ = std::fs::remove_dir_all(&dir);
}
