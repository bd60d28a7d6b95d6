//! Every page a server or example serves, used in headless Chromium as a person would use it and
//! checked by what is on the screen (`tests/interop/pages.js`): the echo pages of `c10k serve`
//! and of `examples/echo.rs` (type, send, see the echo in the log), the chat page on two nodes
//! joined by Redis (`c10k serve --mode chat` and the chat example: two people in one room see
//! each other's messages, in order), and the Game of Life page at two sizes (the canvas shows
//! the board of each generation the page names, and the counters agree), and again while its
//! relay keeps dropping connections (cells and the page resume, and no generation has a hole). The echo page also over
//! https from `c10k serve --tls-cert ...`, talking wss, in a browser told to accept the test
//! certificate's key and no other, and refused by a browser not told so. The chat page of
//! `c10k serve --mode chat` reached through a relay that the test cuts: the page reconnects by
//! itself and shows every message sent meanwhile, once, in order, and how many it recovered (or,
//! when the server kept too few, how many may be missing).
//!
//! A page that shows nothing fails its test. A failing run leaves screenshots of its pages in
//! the target directory, under `test-artifacts/`.

#[path = "../../tests/common/pki.rs"]
mod pki;
#[path = "common/procs.rs"]
mod procs;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c10k::client::{Client, Received};

use pki::{Leaf, Pki};
use procs::{Proc, Serve, example, free_port, needs};

/// One browser at a time: the pages' tests are checked against time limits that several
/// browsers at once on a small machine would stretch.
fn one_browser() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts an example and returns it with the first `http://` or `ws://` address of its first
/// line on stdout, as an `http://` URL.
fn start_example(name: &str, args: &[&str]) -> (Proc, String) {
    let mut p = Proc::spawn(
        Command::new(example(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(p.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ws://").or_else(|| w.strip_prefix("http://")))
        .unwrap_or_else(|| panic!("the {name} example printed no address: {line:?}"))
        .trim_end_matches(['/', ';']);
    (p, format!("http://{addr}/"))
}

/// Runs `pages.js MODE ARGS...`; the test fails unless every check passed. Screenshots of a
/// failure go to `<target>/test-artifacts/<shots>-N.png`.
fn run_pages(mode: &str, args: &[&str], shots: &str) {
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    let out = Command::new("node")
        .arg(needs::root().join("tests/interop/pages.js"))
        .arg(mode)
        .args(args)
        .arg(artifacts.join(shots))
        .output()
        .expect("cannot run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success() && text.contains("all passed"),
        "the {mode} page failed (screenshots under {}):\n{text}",
        artifacts.display()
    );
}

/// Runs `pages.js MODE ARGS...` as [`run_pages`] does, and hands each line it prints to `talk`,
/// whose answer (if any) is written to the script's stdin as one line: for pages whose check
/// needs the test to act in the middle (cut a connection, send messages).
fn run_pages_talking(mode: &str, args: &[&str], shots: &str, mut talk: impl FnMut(&str) -> Option<String>) {
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    let mut node = Proc::spawn(
        Command::new("node")
            .arg(needs::root().join("tests/interop/pages.js"))
            .arg(mode)
            .args(args)
            .arg(artifacts.join(shots))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut stdin = node.0.stdin.take().unwrap();
    let mut stderr = node.0.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut text = String::new();
    for line in BufReader::new(node.0.stdout.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        println!("{line}");
        if let Some(answer) = talk(&line) {
            // A script that already ended cannot be told; its output says why.
            let _ = writeln!(stdin, "{answer}").and_then(|()| stdin.flush());
        }
        text.push_str(&line);
        text.push('\n');
    }
    let status = node.0.wait().unwrap();
    text.push_str(&errors.join().unwrap_or_default());
    assert!(
        status.success() && text.contains("all passed"),
        "the {mode} page failed (screenshots under {}):\n{text}",
        artifacts.display()
    );
}

/// A TCP relay to `target` that the test can cut: what the page sees as the server going away.
/// While held, it accepts and at once closes every new connection (the page's reconnections
/// fail); released, it relays again.
struct CutRelay {
    addr: SocketAddr,
    inner: Arc<Mutex<Cuts>>,
    stop: Arc<AtomicBool>,
}

/// The relay's connections (both ends of each), and whether new ones are refused.
#[derive(Default)]
struct Cuts {
    held: bool,
    open: Vec<TcpStream>,
}

impl CutRelay {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Cuts::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (cuts, stopped) = (Arc::clone(&inner), Arc::clone(&stop));
        std::thread::spawn(move || {
            for page in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(page) = page else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let mut cuts = cuts.lock().unwrap();
                if cuts.held {
                    // Dropped: both closed.
                    continue;
                }
                for (from, to) in [(&page, &server), (&server, &page)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
                cuts.open.extend([page, server]);
            }
        });
        Self { addr, inner, stop }
    }

    /// Closes every relayed connection, both ways, and refuses new ones until [`release`].
    fn cut(&self) {
        let mut cuts = self.inner.lock().unwrap();
        cuts.held = true;
        for s in cuts.open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Relays new connections again.
    fn release(&self) {
        self.inner.lock().unwrap().held = false;
    }
}

impl Drop for CutRelay {
    fn drop(&mut self) {
        self.cut();
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// The chat page of `c10k serve --mode chat ARGS` through a relay: the test cuts the page's
/// connection, another member sends `missed` messages, then the page may connect again; the
/// page checks what it shows (`pages.js resume`), `lost` when the server cannot keep them all.
fn chat_resume(args: &[&str], missed: usize, lost: bool, shots: &str) {
    if !needs::browser() {
        return;
    }
    let _one = one_browser();
    let node = Serve::start(&[&["-q", "--mode", "chat", "--shards", "1"], args].concat());
    let relay = CutRelay::start(node.addr);
    let page = format!("http://{}/", relay.addr);
    let room = format!("resume{}", std::process::id());
    let mut carol = Client::connect(&format!("{}chat/{room}", node.url)).unwrap();
    carol
        .stream()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let count = missed.to_string();
    let mut check = vec![page.as_str(), &room, &count];
    if lost {
        check.push("lost");
    }
    run_pages_talking("resume", &check, shots, |line| match line {
        // The page is in the room and saw its own message: its connection goes away.
        "cut?" => {
            relay.cut();
            Some("cut".into())
        }
        // The page shows that it lost it. Meanwhile, another member speaks: once carol's
        // messages come back to her, they are in the room's history.
        "send?" => {
            for i in 1..=missed {
                carol.send_text(&format!("carol: missed {i}")).unwrap();
            }
            let mut back = 0;
            while back < missed {
                match carol.recv_message() {
                    Ok(Received::Text(t)) if t.starts_with("carol: missed") => back += 1,
                    Ok(_) => {}
                    Err(e) => panic!("carol's messages did not come back: {e}"),
                }
            }
            relay.release();
            Some("sent".into())
        }
        _ => None,
    });
}

#[test]
fn chat_page_reconnects_by_itself_and_shows_every_message_missed_once_in_order() {
    // History is on by default in chat mode.
    chat_resume(&[], 5, false, "chat_resume");
}

#[test]
fn chat_page_says_how_many_messages_may_be_missing_when_the_history_is_too_short() {
    chat_resume(&["--history-messages", "3"], 5, true, "chat_resume_lost");
}

fn redis(bin: &str) -> (Proc, u16) {
    let port = free_port();
    let p = Proc::spawn(
        Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null()),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (p, port)
}

#[test]
fn echo_page_of_c10k_serve_shows_the_echo_of_what_is_typed() {
    if !needs::browser() {
        return;
    }
    let _one = one_browser();
    let server = Serve::start(&["-q"]);
    let page = server.url.replacen("ws://", "http://", 1);
    run_pages("echo", &[&page], "echo_serve");
}

/// `c10k serve` speaking TLS on its address (https and wss) with a certificate for 127.0.0.1 and
/// localhost signed by a test CA; returns the page's `https://` URL too.
fn serve_tls(pki: &Pki) -> (Serve, Leaf, String) {
    let leaf = pki.leaf("server", &["localhost", "127.0.0.1"]);
    let cert = leaf.cert.to_str().unwrap();
    let key = leaf.key.to_str().unwrap();
    let server = Serve::start(&["-q", "--tls-cert", cert, "--tls-key", key]);
    assert!(server.url.starts_with("wss://"), "{}", server.url);
    let page = server.url.replacen("wss://", "https://", 1);
    (server, leaf, page)
}

#[test]
fn echo_page_over_https_talks_wss_in_a_browser_that_accepts_the_test_certificate() {
    if !needs::browser() {
        return;
    }
    let _one = one_browser();
    let pki = Pki::new("pages-tls");
    let (server, leaf, page) = serve_tls(&pki);
    let cert = leaf.cert.to_str().unwrap();
    run_pages("echo", &[&page, "--trust-cert", cert], "echo_serve_tls");
    // The page came over TLS, and so did its socket: one WebSocket handshake, on a TLS one.
    let stats = server.stats();
    assert_eq!(stats.get("handshakes"), 1, "{}", stats.0);
    assert!(stats.get("tls_handshakes") >= 2, "{}", stats.0);
}

#[test]
fn echo_page_over_https_is_refused_by_a_browser_not_told_to_accept_the_certificate() {
    if !needs::browser() {
        return;
    }
    let _one = one_browser();
    let pki = Pki::new("pages-tls-refused");
    let (server, _leaf, page) = serve_tls(&pki);
    // No trust at all, then trust in another key of the same CA: both refused.
    run_pages("refused", &[&page], "echo_serve_tls_untrusted");
    let other = pki.leaf("other", &["localhost", "127.0.0.1"]);
    let cert = other.cert.to_str().unwrap();
    run_pages(
        "refused",
        &[&page, "--trust-cert", cert],
        "echo_serve_tls_other_key",
    );
    let stats = server.stats();
    assert_eq!(stats.get("tls_handshakes"), 0, "{}", stats.0);
    assert_eq!(stats.get("handshakes"), 0, "{}", stats.0);
    assert_eq!(stats.get("http_requests"), 0, "{}", stats.0);
}

#[test]
fn echo_example_page_shows_the_echo_of_what_is_typed() {
    if !needs::browser() {
        return;
    }
    let _one = one_browser();
    let (_server, page) = start_example("echo", &["127.0.0.1:0"]);
    run_pages("echo", &[&page], "echo_example");
}

#[test]
fn chat_pages_on_two_nodes_joined_by_redis_see_each_others_messages_in_order() {
    let Some(redis_server) = needs::tool("redis-server") else {
        return;
    };
    if !needs::browser() {
        return;
    }
    let _one = one_browser();
    let (_redis, port) = redis(&redis_server);
    let redis_url = format!("redis://127.0.0.1:{port}");
    // One node is `c10k serve --mode chat`, the other the chat example: both serve the page.
    let node1 = Serve::start(&["-q", "--mode", "chat", "--shards", "1", "--redis", &redis_url]);
    let page1 = node1.url.replacen("ws://", "http://", 1);
    let (_node2, page2) = start_example("chat", &["--addr", "127.0.0.1:0", "--redis", &redis_url]);
    run_pages("chat", &[&page1, &page2], "chat_two_nodes");
}

/// The Life example at `size`, its page checked for `generations` generations. The seed is one
/// whose board stays alive and keeps changing for thousands of generations (never empty, never still in the first 2,000), so that a blank or
/// frozen canvas cannot pass. With `drop_every_ms`, the relay closes one connection after
/// another (cells and the page) all along, and the page must also have reconnected `resumes`
/// times: the board goes on, every generation right, only if each resume left no hole.
fn life(size: usize, seed: u64, generations: usize, drops: Option<(u64, usize)>) {
    if !needs::browser() {
        return;
    }
    let _one = one_browser();
    let seed = seed.to_string();
    let size = size.to_string();
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--size",
        &size,
        "--seed",
        &seed,
        "--interval-ms",
        "150",
    ];
    let every = drops.map(|(ms, _)| ms.to_string());
    if let Some(ms) = &every {
        args.extend(["--drop-every-ms", ms]);
    }
    let (_server, page) = start_example("life", &args);
    let generations = generations.to_string();
    let resumes = drops.map(|(_, n)| n.to_string());
    let mut check = vec![page.as_str(), &size, &seed, &generations];
    check.extend(resumes.as_deref());
    let shots = format!("life_size_{size}{}", if drops.is_some() { "_drops" } else { "" });
    run_pages("life", &check, &shots);
}

#[test]
fn life_page_draws_each_generation_of_an_8_by_8_board() {
    life(8, 44, 6, None);
}

#[test]
fn life_page_draws_each_generation_of_a_20_by_20_board() {
    life(20, 4, 6, None);
}

#[test]
fn life_board_goes_on_without_a_hole_while_cells_and_the_page_are_dropped_and_resume() {
    // 65 connections, one dropped every 40 ms: each about every 2.6 s, the page included.
    life(8, 44, 30, Some((40, 2)));
}
