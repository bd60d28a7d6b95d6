//! Several nodes behind a load balancer, sharing chat rooms through Redis — everything real and
//! started by the test: redis-server, three `c10k serve --mode chat --redis` nodes, and HAProxy in
//! front with sticky balancing. 300 clients in 10 rooms chat; every message reaches every member
//! of its room exactly once, in per-sender order. Then a node is killed (its clients reconnect
//! through HAProxy to the others and carry on), then Redis restarts (the bridges recover).

#[path = "common/nodes.rs"]
mod nodes;
#[path = "common/procs.rs"]
mod procs;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use c10k::client::{Client, ClientConfig, Received};
use nodes::{haproxy, redis};
use procs::needs::tool;
use procs::{Proc, free_port};

const CLIENTS: usize = 300;
const ROOMS: usize = 10;
const MESSAGES: usize = 10;

/// Subscriber counts of the rooms' channels in Redis (one subscription per node with members).
fn room_subscriptions(redis_cli: &str, port: u16) -> Vec<u32> {
    let mut cmd = Command::new(redis_cli);
    cmd.args(["-p", &port.to_string(), "PUBSUB", "NUMSUB"]);
    for r in 0..ROOMS {
        cmd.arg(format!("c10k:room:r{r}"));
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .skip(1)
        .step_by(2)
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_subscriptions(redis_cli: &str, port: u16, want: u32) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let subs = room_subscriptions(redis_cli, port);
        if subs.len() == ROOMS && subs.iter().all(|&n| n == want) {
            return;
        }
        assert!(
            Instant::now() < end,
            "room subscriptions in Redis: {subs:?}, want {want} each"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn connect(front: u16, id: usize) -> Client {
    let url = format!("ws://127.0.0.1:{front}/chat/r{}?client={id}", id % ROOMS);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let config = ClientConfig {
            timeout: Some(Duration::from_secs(10)),
            ..ClientConfig::default()
        };
        match Client::connect_with(&url, &config) {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < end, "client {id} cannot connect: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One round: every client sends MESSAGES, then reads until it has every message of its room
/// (its own included): exactly once each, in per-sender order.
fn round(c: &mut Client, id: usize, tag: &str, members: usize) -> Result<(), String> {
    for n in 0..MESSAGES {
        c.send_text(&format!("{tag} {id} {n}"))
            .map_err(|e| e.to_string())?;
    }
    let mut next: HashMap<usize, usize> = HashMap::new();
    let want = members * MESSAGES;
    let mut got = 0;
    while got < want {
        let t = match c
            .recv_message()
            .map_err(|e| format!("client {id}: {e} after {got}/{want}"))?
        {
            Received::Text(t) => t,
            other => return Err(format!("client {id}: unexpected {other:?}")),
        };
        let mut parts = t.split(' ');
        let (Some(tg), Some(from), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("client {id}: malformed {t:?}"));
        };
        if tg != tag {
            return Err(format!("client {id}: message from another round: {t:?}"));
        }
        let (from, n): (usize, usize) = (from.parse().unwrap(), n.parse().unwrap());
        if from % ROOMS != id % ROOMS {
            return Err(format!("client {id}: message from another room: {t:?}"));
        }
        let e = next.entry(from).or_default();
        if *e != n {
            return Err(format!(
                "client {id}: from {from}: got {n}, expected {} (duplicate or out of order)",
                *e
            ));
        }
        *e += 1;
        got += 1;
    }
    Ok(())
}

#[test]
fn chat_across_three_nodes_behind_haproxy_survives_a_node_and_a_redis_restart() {
    let (Some(redis_bin), Some(redis_cli), Some(haproxy_bin)) =
        (tool("redis-server"), tool("redis-cli"), tool("haproxy"))
    else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("c10k-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis_port = free_port();
    let mut redis_proc = Some(redis(&redis_bin, redis_port));
    let node_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let mut nodes: Vec<Option<Proc>> = node_ports
        .iter()
        .map(|&p| Some(nodes::node(p, &["--mode", "chat", "--redis", &redis_url])))
        .collect();
    let front = free_port();
    let _lb = haproxy(&haproxy_bin, front, &node_ports, &dir);

    // Connect in order: round robin puts client i on node i % 3, so every room has members on
    // every node; the stick table keeps a client on its node.
    let clients: Vec<Arc<Mutex<Client>>> = (0..CLIENTS)
        .map(|i| Arc::new(Mutex::new(connect(front, i))))
        .collect();
    wait_subscriptions(&redis_cli, redis_port, 3);
    let members = CLIENTS / ROOMS;

    let run_round = |tag: &str, clients: &[Arc<Mutex<Client>>]| {
        let barrier = Arc::new(Barrier::new(clients.len()));
        let threads: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(id, c)| {
                let (c, b, tag) = (Arc::clone(c), Arc::clone(&barrier), tag.to_owned());
                std::thread::spawn(move || {
                    b.wait();
                    round(&mut c.lock().unwrap(), id, &tag, members)
                })
            })
            .collect();
        let errors: Vec<String> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap().err())
            .collect();
        assert!(
            errors.is_empty(),
            "round {tag}: {} clients failed, first: {}",
            errors.len(),
            errors[0]
        );
    };
    run_round("first", &clients);

    // A node dies: its clients notice (the connection drops) and reconnect through HAProxy.
    nodes[1] = None;
    let victims: Vec<usize> = (0..CLIENTS).filter(|i| i % 3 == 1).collect();
    for &id in &victims {
        let mut c = clients[id].lock().unwrap();
        let dropped = c.ping(b"alive?").is_err() || !matches!(c.recv(), Ok(Received::Pong(_)));
        assert!(dropped, "client {id} should have lost its node");
        *c = connect(front, id);
    }
    wait_subscriptions(&redis_cli, redis_port, 2);
    run_round("after-node-loss", &clients);

    // Redis restarts: the bridges reconnect and subscribe again.
    drop(redis_proc.take());
    std::thread::sleep(Duration::from_millis(300));
    let _redis_again = redis(&redis_bin, redis_port);
    wait_subscriptions(&redis_cli, redis_port, 2);
    run_round("after-redis-restart", &clients);

    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}
