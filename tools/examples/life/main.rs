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
//!
//! The relay keeps a short history of every topic, and cells and the page subscribe with
//! offsets (`sub cell:X:Y @`): when a connection drops, they reconnect and resume each topic
//! after the last message they had (`sub cell:X:Y @EPOCH:OFFSET`), so that no generation has a
//! hole and the board carries on. `--drop-every-ms MS` makes the relay close one connection
//! every MS milliseconds, each in turn (cells and pages), to show it.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use c10k::client::{Client, Received};
use c10k::proto::handshake::Request;
use c10k::proto::{CloseCode, Message};
use c10k::{ConnId, Ctx, Handler, HistoryConfig, HttpResponse, Position, Resume, Server, ServerConfig};
use c10k_tools::apps::{PubSub, parse_position};

/// The page, with `{{size}}` where the board's size goes.
const PAGE: &str = include_str!("life.html");

/// The pubsub relay, plus the page for a board of this run's size.
struct Relay {
    pubsub: PubSub,
    page: String,
    /// `--drop-every-ms`: how often to close a connection, if at all.
    drop_every: Option<Duration>,
    /// The open connections, in the order they opened: each is closed in turn.
    open: Vec<ConnId>,
    /// The next to close, an index into `open`.
    next_drop: usize,
    armed: bool,
}

impl Handler for Relay {
    type State = ();

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _state: &mut (), _req: &Request<'_>) {
        let Some(every) = self.drop_every else { return };
        self.open.push(id);
        if !self.armed {
            self.armed = true;
            ctx.set_timer(every, 0);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut (), msg: Message<'_>) {
        self.pubsub.on_message(ctx, id, state, msg);
    }

    fn on_resume(&mut self, ctx: &mut Ctx<'_>, id: ConnId, state: &mut (), topic: &str, resume: Resume) {
        self.pubsub.on_resume(ctx, id, state, topic, resume);
    }

    fn on_close(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, _state: (), _code: CloseCode, _reason: &str) {
        self.open.retain(|o| *o != id);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, _token: u64) {
        let Some(every) = self.drop_every else { return };
        if !self.open.is_empty() {
            self.next_drop %= self.open.len();
            let id = self.open[self.next_drop];
            self.next_drop += 1;
            let _ = ctx.close(id, CloseCode::ServiceRestart, "dropped to show the resume");
        }
        ctx.set_timer(every, 0);
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
    drop_every: Option<Duration>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        addr: "127.0.0.1:9002".into(),
        size: 32,
        interval: Duration::from_millis(200),
        generations: 0,
        seed: 42,
        drop_every: None,
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
            "--drop-every-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("--drop-every-ms: {e}"))?;
                o.drop_every = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "-h" | "--help" => {
                println!(
                    "usage: life [--addr HOST:PORT] [--size N] [--interval-ms MS] [--generations G (0: forever)] [--seed S] [--drop-every-ms MS]"
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

/// The first wait before connecting again after a drop; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A cell gives up when it cannot connect again for this long.
const RETRY_GIVE_UP: Duration = Duration::from_secs(60);

/// A cell's link to the relay: its neighbours' topics and where it is in each, and what it
/// heard of each generation.
struct Link {
    url: String,
    client: Client,
    /// `cell:X:Y` of each neighbour.
    topics: Vec<String>,
    /// The position of the last message of each neighbour's topic (once the first answer came).
    positions: Vec<Option<Position>>,
    /// Per generation: which neighbours were heard (a bit each, so that a state sent again
    /// after a reconnection counts once) and how many of them are alive.
    heard: HashMap<u64, (u8, u8)>,
}

impl Link {
    /// Connects and subscribes to the neighbours, following offsets from now.
    fn open(url: &str, topics: Vec<String>) -> Result<Self, String> {
        let client = Client::connect(url).map_err(|e| e.to_string())?;
        let mut link = Self {
            url: url.to_owned(),
            client,
            positions: vec![None; topics.len()],
            topics,
            heard: HashMap::new(),
        };
        link.subscribe()?;
        Ok(link)
    }

    /// Subscribes to every neighbour: from now, or after the last message had from it.
    fn subscribe(&mut self) -> Result<(), String> {
        for (topic, at) in self.topics.iter().zip(&self.positions) {
            let at = at.map_or_else(String::new, |p| format!("{}:{}", p.epoch, p.offset));
            self.client
                .send_text(&format!("sub {topic} @{at}"))
                .map_err(|e| e.to_string())?;
        }
        self.client.send_text("sync ready").map_err(|e| e.to_string())
    }

    /// Connects again after a drop (at once, then backing off) and resumes every neighbour.
    fn reconnect(&mut self) -> Result<(), String> {
        let (mut wait, since) = (Duration::ZERO, Instant::now());
        loop {
            // Up to half the wait off at random, so that cells dropped together spread out.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            std::thread::sleep(wait.mul_f64(1.0 - f64::from(nanos % 1000) / 2000.0));
            match Client::connect(&self.url) {
                Ok(c) => {
                    self.client = c;
                    if self.subscribe().is_ok() {
                        return Ok(());
                    }
                }
                Err(e) if since.elapsed() > RETRY_GIVE_UP => {
                    return Err(format!("cannot connect again: {e}"));
                }
                Err(_) => {}
            }
            wait = (wait * 2).clamp(RETRY_FIRST, RETRY_MAX);
        }
    }

    /// Sends a text, connecting again first if the connection dropped.
    fn send(&mut self, text: &str) -> Result<(), String> {
        while self.client.send_text(text).is_err() {
            self.reconnect()?;
        }
        Ok(())
    }

    /// Waits for the next text; `None` when the connection dropped (it was connected again).
    fn recv(&mut self) -> Result<Option<String>, String> {
        match self.client.recv_message() {
            Ok(Received::Text(t)) => Ok(Some(t)),
            Ok(Received::Binary(_) | Received::Ping(_) | Received::Pong(_)) => Ok(Some(String::new())),
            Ok(Received::Close(..)) | Err(_) => self.reconnect().map(|()| None),
        }
    }

    /// Takes in what the relay sent: a neighbour's state (`OFFSET cell:X:Y G S`), the answer to a
    /// subscription (`resumed ...`), or the end of the subscriptions (`sync ready`, true).
    /// Generations before `now` are over and not kept.
    fn take(&mut self, text: &str, now: u64) -> Result<bool, String> {
        let words: Vec<&str> = text.split(' ').collect();
        match words[..] {
            ["sync", "ready"] => return Ok(true),
            ["resumed", topic, at, _] => {
                self.set(topic, at, None);
            }
            // The relay no longer has what this cell missed: a generation would wait forever.
            ["lost", topic, _] => return Err(format!("history of {topic} lost: {text}")),
            [offset, topic, generation, state] => {
                let (Ok(offset), Ok(generation), Ok(state)) = (
                    offset.parse::<u64>(),
                    generation.parse::<u64>(),
                    state.parse::<u8>(),
                ) else {
                    return Ok(false);
                };
                let Some(i) = self.set(topic, "", Some(offset)) else {
                    return Ok(false);
                };
                if generation >= now {
                    let (seen, live) = self.heard.entry(generation).or_insert((0, 0));
                    if *seen & (1 << i) == 0 {
                        *seen |= 1 << i;
                        *live += state;
                    }
                }
            }
            ["error", ..] => return Err(format!("the relay says {text:?}")),
            _ => {}
        }
        Ok(false)
    }

    /// Records a neighbour's position (`E:O`), or a new offset in its epoch; its index.
    fn set(&mut self, topic: &str, at: &str, offset: Option<u64>) -> Option<usize> {
        let i = self.topics.iter().position(|t| t == topic)?;
        match (offset, parse_position(at)) {
            (Some(o), _) => {
                if let Some(p) = &mut self.positions[i] {
                    p.offset = o;
                }
            }
            (None, Some(p)) => self.positions[i] = Some(p),
            (None, None) => {}
        }
        Some(i)
    }
}

/// One cell's life: subscribe to the neighbours, then publish and listen, generation after
/// generation; after a dropped connection, connect again and resume.
fn cell(
    url: &str,
    (x, y, alive): (usize, usize, u8),
    o: &Options,
    ready: &Barrier,
    clock: &OnceLock<Instant>,
) -> Result<(), String> {
    let size = o.size;
    let wrap = |v: usize, d: isize| ((v as isize + d).rem_euclid(size as isize)) as usize;
    let mut topics = Vec::with_capacity(8);
    for dy in -1isize..=1 {
        for dx in -1isize..=1 {
            if dx != 0 || dy != 0 {
                topics.push(format!("cell:{}:{}", wrap(x, dx), wrap(y, dy)));
            }
        }
    }
    let mut link = Link::open(url, topics)?;
    loop {
        if let Some(t) = link.recv()?
            && link.take(&t, 0)?
        {
            break;
        }
    }
    // Everyone subscribed before anyone publishes generation 0; the first cell past the barrier
    // starts the common clock.
    ready.wait();
    let start = *clock.get_or_init(Instant::now);
    let mut state = alive;
    let mut g = 0u64;
    loop {
        let due = start + o.interval * g as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mine = format!("pub cell:{x}:{y} {g} {state}");
        link.send(&mine)?;
        if o.generations != 0 && g + 1 >= o.generations {
            return Ok(());
        }
        while link.heard.get(&g).is_none_or(|(seen, _)| seen.count_ones() < 8) {
            match link.recv()? {
                Some(t) => {
                    link.take(&t, g)?;
                }
                // Whether the state sent before the drop reached the relay is not known: send
                // it again (neighbours count it once).
                None => link.send(&mine)?,
            }
        }
        let (_, live) = link.heard.remove(&g).unwrap_or((0xff, 0));
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
    // Enough for a connection to come back after several seconds away.
    config.history = Some(HistoryConfig::default());
    let page = PAGE.replace("{{size}}", &o.size.to_string());
    let drop_every = o.drop_every;
    let handle = match Server::bind(config, move |_| Relay {
        pubsub: PubSub,
        page: page.clone(),
        drop_every,
        open: Vec::new(),
        next_drop: 0,
        armed: false,
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
