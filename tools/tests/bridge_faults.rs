//! The Redis bridge when Redis misbehaves: a Redis that accepts and never answers, a real
//! `redis-server` stopped with SIGSTOP and resumed with SIGCONT, a Redis that answers every
//! command 100 ms late, and payloads past the message size limit in both directions.
//!
//! The servers run in this process (the bridge's counters are read directly), except the last
//! tests, which run `c10k serve --redis` (pub/sub, then streams mode: two processes share one
//! order) and read the counters that SIGUSR1 prints. Every wait is bounded, and so is every loop.

#[path = "common/procs.rs"]
mod procs;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c10k::bridge::redis::{BridgeCounts, RedisBridge, RedisLimits};
use c10k::client::{Client, ClientConfig, ClientError, Received};
use c10k::{Server, ServerConfig, ServerHandle};
use c10k_tools::apps::PubSub;
use procs::{Serve, signal, tool};

/// Bounds small enough to reach in a test, timeouts short enough to pass in one.
fn fast_limits() -> RedisLimits {
    let mut l = RedisLimits::default();
    l.max_queued_messages = 64;
    l.max_queued_bytes = 16 << 10;
    l.connect_timeout = Duration::from_millis(500);
    l.io_timeout = Duration::from_millis(300);
    l.keepalive = Duration::from_millis(200);
    l.backoff_min = Duration::from_millis(50);
    l.backoff_max = Duration::from_millis(400);
    l
}

/// A pubsub server in this process (one shard), bridged through Redis at `url`.
fn node(url: &str, prefix: &str, limits: RedisLimits) -> (ServerHandle, Arc<RedisBridge>) {
    let bridge = RedisBridge::with_limits(url, prefix, limits).unwrap();
    let mut config = ServerConfig::default();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.shards = 1;
    config.ping_interval = None;
    config.drain_timeout = Duration::from_millis(500);
    config.bridge = Some(bridge.clone());
    let h = Server::bind(config, |_| PubSub).unwrap().start().unwrap();
    (h, bridge)
}

fn shut(h: &ServerHandle, b: &RedisBridge) {
    h.shutdown();
    h.join().expect("a shard failed");
    b.stop();
}

/// A client whose reads give up after 100 ms (see [`recv_text`] for longer waits).
fn client(addr: std::net::SocketAddr) -> Client {
    let config = ClientConfig {
        timeout: Some(Duration::from_millis(100)),
        ..ClientConfig::default()
    };
    Client::connect_with(&format!("ws://{addr}/"), &config).unwrap()
}

/// The next text message within `within`; `None` if none came.
fn recv_text(c: &mut Client, within: Duration) -> Option<String> {
    let end = Instant::now() + within;
    loop {
        match c.recv_message() {
            Ok(Received::Text(t)) => return Some(t),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= end {
                    return None;
                }
            }
            Err(e) => panic!("client: {e}"),
        }
    }
}

/// Sends a command and waits for the answer to a `sync` after it: the shard has handled it.
fn command(c: &mut Client, cmd: &str) {
    c.send_text(cmd).unwrap();
    sync(c);
}

fn sync(c: &mut Client) {
    c.send_text("sync s").unwrap();
    assert_eq!(
        recv_text(c, Duration::from_secs(10)).as_deref(),
        Some("sync s"),
        "the shard did not answer"
    );
}

/// Waits until the bridge's counters satisfy `pred`; panics with the last ones otherwise.
fn wait_bridge(b: &RedisBridge, within: Duration, pred: impl Fn(&BridgeCounts) -> bool) -> BridgeCounts {
    let end = Instant::now() + within;
    loop {
        let s = b.stats().snapshot();
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < end, "bridge counters never got there: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `f` holds, for at most `within`.
fn wait_for(within: Duration, what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A message as another node would publish it (node id, kind 1 = text, payload).
fn envelope(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0xab; 16];
    v.push(1);
    v.extend_from_slice(payload);
    v
}

// ---- a Redis stand-in ----

/// One connection to the fake: its writing half and its subscriptions.
struct FakeConn {
    writer: Arc<Mutex<TcpStream>>,
    channels: HashSet<Vec<u8>>,
}

#[derive(Default)]
struct FakeState {
    accepted: AtomicUsize,
    pings: AtomicUsize,
    conns: Mutex<Vec<FakeConn>>,
    published: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    /// Connections of a fake that never answers, held open.
    held: Mutex<Vec<TcpStream>>,
}

/// A Redis on loopback that never answers (`delay` `None`), or answers every command after
/// `delay`: SUBSCRIBE, UNSUBSCRIBE, PING and PUBLISH, as Redis does in RESP2.
struct Fake {
    port: u16,
    state: Arc<FakeState>,
}

impl Fake {
    fn start(delay: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(FakeState::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                st.accepted.fetch_add(1, Ordering::SeqCst);
                match delay {
                    None => st.held.lock().unwrap().push(stream),
                    Some(d) => {
                        let st = Arc::clone(&st);
                        std::thread::spawn(move || serve_fake(&st, stream, d));
                    }
                }
            }
        });
        Self { port, state }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    fn pings(&self) -> usize {
        self.state.pings.load(Ordering::SeqCst)
    }

    fn subscribed(&self, channel: &str) -> bool {
        let conns = self.state.conns.lock().unwrap();
        conns.iter().any(|c| c.channels.contains(channel.as_bytes()))
    }

    fn published(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.state.published.lock().unwrap().clone()
    }

    /// Sends a pub/sub message to every connection subscribed to `channel`.
    fn push(&self, channel: &str, payload: &[u8]) {
        let mut msg = format!(
            "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n",
            channel.len(),
            payload.len()
        )
        .into_bytes();
        msg.extend_from_slice(payload);
        msg.extend_from_slice(b"\r\n");
        let conns = self.state.conns.lock().unwrap();
        for c in conns.iter().filter(|c| c.channels.contains(channel.as_bytes())) {
            c.writer.lock().unwrap().write_all(&msg).unwrap();
        }
    }
}

/// Answers one connection's commands, each after `delay`.
fn serve_fake(st: &FakeState, stream: TcpStream, delay: Duration) {
    let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
    let index = {
        let mut conns = st.conns.lock().unwrap();
        conns.push(FakeConn {
            writer: Arc::clone(&writer),
            channels: HashSet::new(),
        });
        conns.len() - 1
    };
    let mut reader = BufReader::new(stream);
    while let Some(args) = read_command(&mut reader) {
        std::thread::sleep(delay);
        let mut reply = Vec::new();
        let verb = args[0].to_ascii_uppercase();
        let mut conns = st.conns.lock().unwrap();
        let channels = &mut conns[index].channels;
        match &verb[..] {
            b"SUBSCRIBE" | b"UNSUBSCRIBE" => {
                for ch in &args[1..] {
                    if verb == b"SUBSCRIBE" {
                        channels.insert(ch.clone());
                    } else {
                        channels.remove(ch);
                    }
                    let kind = String::from_utf8_lossy(&verb).to_lowercase();
                    reply.extend_from_slice(
                        format!("*3\r\n${}\r\n{kind}\r\n${}\r\n", kind.len(), ch.len()).as_bytes(),
                    );
                    reply.extend_from_slice(ch);
                    reply.extend_from_slice(format!("\r\n:{}\r\n", channels.len()).as_bytes());
                }
            }
            b"PING" => {
                st.pings.fetch_add(1, Ordering::SeqCst);
                if channels.is_empty() {
                    reply.extend_from_slice(b"+PONG\r\n");
                } else {
                    reply.extend_from_slice(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
                }
            }
            b"PUBLISH" => {
                st.published
                    .lock()
                    .unwrap()
                    .push((args[1].clone(), args[2].clone()));
                reply.extend_from_slice(b":0\r\n");
            }
            _ => reply.extend_from_slice(b"-ERR unknown command\r\n"),
        }
        drop(conns);
        if writer.lock().unwrap().write_all(&reply).is_err() {
            return;
        }
    }
}

/// One command (an array of bulk strings); `None` at the end of the connection.
fn read_command(r: &mut impl BufRead) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let n: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    (0..n)
        .map(|_| {
            line.clear();
            r.read_line(&mut line).ok()?;
            let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
            let mut arg = vec![0; len + 2];
            r.read_exact(&mut arg).ok()?;
            arg.truncate(len);
            Some(arg)
        })
        .collect()
}

// ---- a real redis-server ----

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_server(bin: &str) -> (Redis, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let redis = Redis(child);
    wait_for(Duration::from_secs(10), "redis-server to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (redis, port)
}

// ---- the tests ----

#[test]
fn hung_redis_never_blocks_a_shard_and_its_publish_queue_stays_bounded() {
    let fake = Fake::start(None);
    let limits = fast_limits();
    let (h, bridge) = node(&fake.url(), "hung:", limits);
    let mut sub = client(h.local_addr());
    command(&mut sub, "sub t");
    let mut publisher = client(h.local_addr());

    const N: u64 = 2000;
    for i in 0..N {
        publisher.send_text(&format!("pub t {i}")).unwrap();
    }
    // The shard handled every publish (each one handed to the bridge) and still answers.
    sync(&mut publisher);
    for i in 0..N {
        assert_eq!(
            recv_text(&mut sub, Duration::from_secs(10)),
            Some(format!("t {i}"))
        );
    }

    // Every publish is accounted for: none reached Redis, each was lost (no answer in time, or
    // dropped during the back-off) or refused by the full queue, which never held more than
    // its bounds.
    let s = wait_bridge(&bridge, Duration::from_secs(10), |s| {
        s.queue_depth == 0 && s.publishes_lost + s.dropped_queue_full == N
    });
    assert_eq!(s.publishes_sent, 0, "{s:?}");
    assert!(
        s.dropped_queue_full > 0,
        "the queue filled while a batch waited: {s:?}"
    );
    assert!(s.queue_peak <= limits.max_queued_messages as u64, "{s:?}");
    assert!(s.queue_peak_bytes <= limits.max_queued_bytes as u64, "{s:?}");
    assert_eq!(s.queue_bytes, 0);

    // Both connections were given up for silence and made again, with back-off: a few
    // connections, not a storm.
    let s = wait_bridge(&bridge, Duration::from_secs(10), |s| {
        s.timeouts >= 3 && s.reconnects >= 2
    });
    assert!(!s.connected);
    let accepted = fake.accepted();
    assert!(
        (3..=60).contains(&accepted),
        "{accepted} connections to a Redis that never answers"
    );
    shut(&h, &bridge);
}

#[test]
fn stopped_redis_drops_and_counts_then_delivery_resumes_after_sigcont() {
    let Some(bin) = tool("redis-server") else {
        return;
    };
    let (redis, port) = redis_server(&bin);
    let url = format!("redis://127.0.0.1:{port}");
    let limits = fast_limits();
    let (ha, a) = node(&url, "stop:", limits);
    let (hb, b) = node(&url, "stop:", limits);
    let mut sub_b = client(hb.local_addr());
    command(&mut sub_b, "sub t");
    let mut pub_a = client(ha.local_addr());

    // Across nodes: A's publish reaches B's subscriber (once B's subscription is in Redis).
    let mut across = |tag: &str, pub_a: &mut Client| {
        for i in 0..200 {
            pub_a.send_text(&format!("pub t {tag} {i}")).unwrap();
            while let Some(t) = recv_text(&mut sub_b, Duration::from_millis(50)) {
                if t.starts_with(&format!("t {tag} ")) {
                    return;
                }
            }
        }
        panic!("no {tag} message crossed from A to B");
    };
    across("before", &mut pub_a);

    let mut sub_a = client(ha.local_addr());
    command(&mut sub_a, "sub t");
    wait_bridge(&a, Duration::from_secs(10), |s| s.queue_depth == 0);
    let before = a.stats().snapshot();
    signal(redis.0.id(), libc::SIGSTOP);

    const N: u64 = 2000;
    for i in 0..N {
        pub_a.send_text(&format!("pub t burst {i}")).unwrap();
    }
    sync(&mut pub_a);
    for i in 0..N {
        assert_eq!(
            recv_text(&mut sub_a, Duration::from_secs(10)),
            Some(format!("t burst {i}")),
            "delivery within the node does not wait for Redis"
        );
    }
    let s = wait_bridge(&a, Duration::from_secs(10), |s| {
        s.queue_depth == 0
            && (s.publishes_lost - before.publishes_lost) + (s.dropped_queue_full - before.dropped_queue_full)
                == N
    });
    assert_eq!(s.publishes_sent, before.publishes_sent, "{s:?}");
    assert!(
        s.timeouts > before.timeouts,
        "A's publisher gave up on the stopped Redis: {s:?}"
    );
    assert!(s.queue_peak <= limits.max_queued_messages as u64, "{s:?}");
    assert!(s.queue_peak_bytes <= limits.max_queued_bytes as u64, "{s:?}");
    // B's subscription was quiet: its keepalive found Redis silent.
    wait_bridge(&b, Duration::from_secs(10), |s| s.timeouts >= 1 && !s.connected);

    signal(redis.0.id(), libc::SIGCONT);
    across("after", &mut pub_a);
    let s = wait_bridge(&b, Duration::from_secs(10), |s| s.connected);
    assert!(s.reconnects >= 1, "{s:?}");
    shut(&ha, &a);
    shut(&hb, &b);
    drop(redis);
}

#[test]
fn slow_subscribe_replies_cause_no_reconnect() {
    let fake = Fake::start(Some(Duration::from_millis(100)));
    let mut limits = fast_limits();
    limits.io_timeout = Duration::from_secs(2);
    let (h, bridge) = node(&fake.url(), "slow:", limits);
    let mut sub = client(h.local_addr());
    command(&mut sub, "sub t");
    wait_for(Duration::from_secs(5), "the subscription", || {
        fake.subscribed("slow:t")
    });
    fake.push("slow:t", &envelope(b"t hello"));
    assert_eq!(
        recv_text(&mut sub, Duration::from_secs(5)).as_deref(),
        Some("t hello")
    );

    // More slow replies: subscription changes, and the keepalive's pings on a quiet connection.
    for _ in 0..3 {
        command(&mut sub, "sub u");
        wait_for(Duration::from_secs(5), "SUBSCRIBE u", || {
            fake.subscribed("slow:u")
        });
        command(&mut sub, "unsub u");
        wait_for(Duration::from_secs(5), "UNSUBSCRIBE u", || {
            !fake.subscribed("slow:u")
        });
    }
    wait_for(Duration::from_secs(10), "four pings", || fake.pings() >= 4);
    fake.push("slow:t", &envelope(b"t still"));
    assert_eq!(
        recv_text(&mut sub, Duration::from_secs(5)).as_deref(),
        Some("t still")
    );

    let s = bridge.stats().snapshot();
    assert_eq!((s.reconnects, s.timeouts), (0, 0), "{s:?}");
    assert!(s.connected);
    assert_eq!(fake.accepted(), 1, "one subscription connection, never replaced");
    shut(&h, &bridge);
}

#[test]
fn oversized_payloads_are_dropped_both_ways_and_counted() {
    let fake = Fake::start(Some(Duration::ZERO));
    let mut limits = fast_limits();
    limits.max_message_size = 1000;
    let (h, bridge) = node(&fake.url(), "big:", limits);
    let mut sub = client(h.local_addr());
    command(&mut sub, "sub t");
    wait_for(Duration::from_secs(5), "the subscription", || {
        fake.subscribed("big:t")
    });

    // In: skipped as it arrives; the message after it is delivered.
    let big = format!("t {}", "x".repeat(2000));
    fake.push("big:t", &envelope(big.as_bytes()));
    fake.push("big:t", &envelope(b"t small-in"));
    assert_eq!(
        recv_text(&mut sub, Duration::from_secs(5)).as_deref(),
        Some("t small-in")
    );
    let s = bridge.stats().snapshot();
    assert_eq!((s.dropped_too_large_in, s.received), (1, 1), "{s:?}");

    // Out: delivered on this node, never sent to Redis.
    let mut publisher = client(h.local_addr());
    publisher.send_text(&format!("pub {big}")).unwrap();
    publisher.send_text("pub t small-out").unwrap();
    assert_eq!(recv_text(&mut sub, Duration::from_secs(5)), Some(big));
    assert_eq!(
        recv_text(&mut sub, Duration::from_secs(5)).as_deref(),
        Some("t small-out")
    );
    let s = wait_bridge(&bridge, Duration::from_secs(5), |s| s.publishes_sent == 1);
    assert_eq!(s.dropped_too_large_out, 1, "{s:?}");
    let published = fake.published();
    assert_eq!(published.len(), 1, "only the small one reached Redis");
    assert_eq!(published[0].0, b"big:t");
    assert_eq!(&published[0].1[16..], b"\x01t small-out");
    shut(&h, &bridge);
}

#[test]
fn serve_gives_the_bridge_its_message_limit_and_prints_its_counters_on_sigusr1() {
    let fake = Fake::start(Some(Duration::ZERO));
    let serve = Serve::start(&[
        "-q",
        "--mode",
        "pubsub",
        "--shards",
        "1",
        "--max-message",
        "1000",
        "--redis",
        &fake.url(),
    ]);
    let mut sub = client(serve.addr);
    command(&mut sub, "sub t");
    wait_for(Duration::from_secs(10), "the subscription", || {
        fake.subscribed("c10k:t")
    });
    fake.push("c10k:t", &envelope(format!("t {}", "x".repeat(1000)).as_bytes()));
    fake.push("c10k:t", &envelope(b"t fits"));
    assert_eq!(
        recv_text(&mut sub, Duration::from_secs(5)).as_deref(),
        Some("t fits")
    );
    let st = serve.wait_stats(Duration::from_secs(10), |s| s.get("dropped_too_large_in") == 1);
    assert!(st.0.contains("\"bridge\":{"), "{}", st.0);
    assert_eq!(st.get("received"), 1, "{}", st.0);
    assert_eq!(st.get("connected"), 1, "{}", st.0);
}

#[test]
fn serve_redis_streams_gives_two_processes_one_order() {
    let Some(bin) = tool("redis-server") else {
        return;
    };
    let (_redis, port) = redis_server(&bin);
    let url = format!("redis://127.0.0.1:{port}");
    let args = [
        "-q",
        "--mode",
        "pubsub",
        "--shards",
        "1",
        "--redis",
        &url,
        "--redis-streams",
    ];
    let nodes = [Serve::start(&args), Serve::start(&args)];
    let mut subs: Vec<Client> = nodes.iter().map(|n| client(n.addr)).collect();
    for s in &mut subs {
        command(s, "sub t");
    }
    // Each node subscribed in Redis and loaded the topic (empty) before anything is published.
    for n in &nodes {
        n.wait_stats(Duration::from_secs(10), |s| {
            s.get("history_loads") == 1 && s.get("connected") == 1
        });
    }
    let mut pubs: Vec<Client> = nodes.iter().map(|n| client(n.addr)).collect();
    const N: usize = 50;
    for i in 0..N {
        pubs[i % 2].send_text(&format!("pub t {i}")).unwrap();
    }
    let seen: Vec<Vec<String>> = subs
        .iter_mut()
        .map(|s| {
            (0..N)
                .map(|_| recv_text(s, Duration::from_secs(10)).expect("every message"))
                .collect()
        })
        .collect();
    assert_eq!(seen[0], seen[1], "one order on both processes");
    let mut all = seen[0].clone();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), N, "each message once");
}
