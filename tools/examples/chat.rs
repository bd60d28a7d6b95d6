//! Chat rooms: `cargo run --release --example chat [-- --addr 127.0.0.1:9003 --redis redis://127.0.0.1:6379]`,
//! then open http://127.0.0.1:9003/ in two windows.
//!
//! A client joins the room named by its URL path (`/chat/ROOM`); every message reaches every member
//! of the room. With `--redis`, several chat processes (nodes) share their rooms through Redis.
//! Rooms keep a bounded history, so that the page, which reconnects by itself after a lost
//! connection, gets every message it missed (`?since=EPOCH:OFFSET`, see `c10k_tools::apps`).

use c10k::{Server, ServerConfig};
use c10k_tools::apps::Chat;

fn main() {
    let mut addr = "127.0.0.1:9003".to_owned();
    let mut redis: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--addr", Some(v)) => addr = v,
            ("--redis", Some(v)) => redis = Some(v),
            _ => {
                eprintln!("usage: chat [--addr HOST:PORT] [--redis redis://HOST:PORT]");
                std::process::exit(2);
            }
        }
    }
    let mut config = ServerConfig::default();
    config.addr = addr.parse().unwrap_or_else(|e| {
        eprintln!("chat: --addr: {e}");
        std::process::exit(2)
    });
    config.bridge = redis.map(|url| bridge(&url));
    config.history = Some(c10k::HistoryConfig::default());
    let server = Server::bind(config, |_| Chat).unwrap_or_else(|e| {
        eprintln!("chat: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    println!("chat on http://{}/", server.local_addr());
    if let Err(e) = server.run() {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}

/// The link to the other chat nodes through Redis.
#[cfg(feature = "redis")]
fn bridge(url: &str) -> std::sync::Arc<dyn c10k::bridge::Bridge> {
    c10k::bridge::redis::RedisBridge::new(url, c10k::bridge::redis::DEFAULT_PREFIX).unwrap_or_else(|e| {
        eprintln!("chat: {e}");
        std::process::exit(2)
    })
}

#[cfg(not(feature = "redis"))]
fn bridge(url: &str) -> std::sync::Arc<dyn c10k::bridge::Bridge> {
    eprintln!("chat: --redis {url} needs the `redis` feature");
    std::process::exit(2)
}
