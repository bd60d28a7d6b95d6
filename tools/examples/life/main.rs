//! Distributed Game of Life: one WebSocket client per cell, and a server that relays without
//! knowing the rules.
//!
//! `cargo run --release --example life`, then open http://127.0.0.1:9002/ to watch.
//!
//! The server is c10k's pubsub handler (see `c10k_tools::apps::PubSub`). Each of the N x N cells
//! (`--size N`, 32 by default) is a client of its own (N x N connections from this process, one
//! thread each): it subscribes to the topics of its 8 neighbours (on a torus), publishes `pub cell:X:Y G S` for its state S in
//! generation G, and computes its state in G+1 once it has heard all 8 neighbours for G. Nothing
//! else synchronises the cells: a cell can never be more than one generation ahead of a
//! neighbour. The page (served with the board's size in it) subscribes to every cell and draws
//! each generation once complete.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use c10k::client::{Client, Received};
use c10k::proto::Message;
use c10k::proto::handshake::Request;
use c10k::{ConnId, Ctx, Handler, HttpResponse, Server, ServerConfig};
use c10k_tools::apps::PubSub;

/// The page, with `{{size}}` where the board's size goes.
const PAGE: &str = include_str!("life.html");

/// The pubsub relay, plus the page for a board of this run's size.
struct Relay {
    pubsub: PubSub,
    page: String,
}

impl Handler for Relay {
    type State = ();

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut (), msg: Message<'_>) {
        self.pubsub.on_message(ctx, id, state, msg);
    }

    fn on_http(&mut self, _ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        match req.path() {
            "/" => HttpResponse::html(200, &self.page),
            _ => HttpResponse::not_found(),
        }
    }
}

struct Options {
    addr: String,
    size: usize,
    interval: Duration,
    generations: u64,
    seed: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        addr: "127.0.0.1:9002".into(),
        size: 32,
        interval: Duration::from_millis(200),
        generations: 0,
        seed: 42,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--addr" => o.addr = value()?,
            "--size" => o.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--interval-ms" => {
                o.interval =
                    Duration::from_millis(value()?.parse().map_err(|e| format!("--interval-ms: {e}"))?)
            }
            "--generations" => o.generations = value()?.parse().map_err(|e| format!("--generations: {e}"))?,
            "--seed" => o.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-h" | "--help" => {
                println!(
                    "usage: life [--addr HOST:PORT] [--size N] [--interval-ms MS] [--generations G (0: forever)] [--seed S]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !(3..=64).contains(&o.size) {
        return Err("--size must be between 3 and 64".into());
    }
    Ok(o)
}

/// A random soup with a glider in a corner.
fn initial(size: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut grid: Vec<u8> = (0..size * size)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            u8::from(s.is_multiple_of(3))
        })
        .collect();
    for (x, y) in [(1, 0), (2, 1), (0, 2), (1, 2), (2, 2)] {
        grid[y * size + x] = 1;
    }
    grid
}

/// One cell's life: subscribe to the neighbours, then publish and listen, generation after
/// generation.
fn cell(
    url: &str,
    (x, y, alive): (usize, usize, u8),
    o: &Options,
    ready: &Barrier,
    clock: &OnceLock<Instant>,
) -> Result<(), String> {
    let size = o.size;
    let mut c = Client::connect(url).map_err(|e| e.to_string())?;
    let wrap = |v: usize, d: isize| ((v as isize + d).rem_euclid(size as isize)) as usize;
    let mut neighbours = Vec::with_capacity(8);
    for dy in -1isize..=1 {
        for dx in -1isize..=1 {
            if dx != 0 || dy != 0 {
                neighbours.push((wrap(x, dx), wrap(y, dy)));
            }
        }
    }
    for (nx, ny) in &neighbours {
        c.send_text(&format!("sub cell:{nx}:{ny}"))
            .map_err(|e| e.to_string())?;
    }
    c.send_text("sync ready").map_err(|e| e.to_string())?;
    loop {
        if let Received::Text(t) = c.recv_message().map_err(|e| e.to_string())?
            && t == "sync ready"
        {
            break;
        }
    }
    // Everyone subscribed before anyone publishes generation 0; the first cell past the barrier
    // starts the common clock.
    ready.wait();
    let start = *clock.get_or_init(Instant::now);
    let mut state = alive;
    // Neighbour states heard per generation.
    let mut heard: HashMap<u64, (usize, u8)> = HashMap::new();
    let mut g = 0u64;
    loop {
        let due = start + o.interval * g as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        c.send_text(&format!("pub cell:{x}:{y} {g} {state}"))
            .map_err(|e| e.to_string())?;
        if o.generations != 0 && g + 1 >= o.generations {
            return Ok(());
        }
        while heard.get(&g).is_none_or(|(n, _)| *n < 8) {
            let Received::Text(t) = c.recv_message().map_err(|e| e.to_string())? else {
                continue;
            };
            // "cell:X:Y G S"
            let mut parts = t.split(' ');
            let (Some(_), Some(generation), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(generation), Ok(s)) = (generation.parse::<u64>(), s.parse::<u8>()) else {
                continue;
            };
            let e = heard.entry(generation).or_insert((0, 0));
            e.0 += 1;
            e.1 += s;
        }
        let (_, live) = heard.remove(&g).unwrap_or((8, 0));
        state = u8::from(live == 3 || (state == 1 && live == 2));
        g += 1;
    }
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("life: {e}");
            std::process::exit(2);
        }
    };
    let mut config = ServerConfig::default();
    config.addr = o.addr.parse().unwrap_or_else(|e| {
        eprintln!("life: --addr: {e}");
        std::process::exit(2)
    });
    config.shards = 1;
    // The page watches every cell: one topic each.
    config.max_topics = config.max_topics.max(o.size * o.size);
    let page = PAGE.replace("{{size}}", &o.size.to_string());
    let handle = match Server::bind(config, move |_| Relay {
        pubsub: PubSub,
        page: page.clone(),
    })
    .and_then(Server::start)
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("life: cannot start the server: {e}");
            std::process::exit(1);
        }
    };
    let url = format!("ws://{}/", handle.local_addr());
    println!(
        "life: {0}x{0} cells on {url}; watch at http://{1}/",
        o.size,
        handle.local_addr()
    );
    let grid = initial(o.size, o.seed);
    let o = Arc::new(o);
    let ready = Arc::new(Barrier::new(o.size * o.size));
    let clock = Arc::new(OnceLock::<Instant>::new());
    let mut threads = Vec::new();
    for y in 0..o.size {
        for x in 0..o.size {
            let (o, ready, clock, url) = (
                Arc::clone(&o),
                Arc::clone(&ready),
                Arc::clone(&clock),
                url.clone(),
            );
            let alive = grid[y * o.size + x];
            let t = std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || cell(&url, (x, y, alive), &o, &ready, &clock))
                .expect("spawn a cell thread");
            threads.push(t);
        }
    }
    let mut failed = 0;
    for t in threads {
        if let Ok(Err(e)) | Err(e) = t.join().map_err(|_| "panicked".to_string()) {
            failed += 1;
            if failed == 1 {
                eprintln!("life: a cell failed: {e}");
            }
        }
    }
    handle.shutdown();
    if let Err(e) = handle.join() {
        failed += 1;
        eprintln!("life: the server failed: {e}");
    }
    std::process::exit(i32::from(failed > 0));
}
