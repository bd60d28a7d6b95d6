//! Interoperability with the peers people really use: the Python `websockets` and Node `ws`
//! clients and headless Chromium against `c10k serve`, and c10k's client against a Python
//! `websockets` server and a tokio-tungstenite server.
//!
//! The peers are installed by `.ci/setup` (the README's test command runs it). Outside CI a missing
//! peer skips its test with a message; under `CI=true` it is a failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use c10k::client::{Client, ClientConfig, Received};
use c10k::proto::{CloseCode, MessageKind};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `path` exists; a missing peer fails under CI and skips otherwise.
fn peer(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    let msg = format!("{what} is missing ({}): run .ci/setup", path.display());
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

fn node_modules() -> PathBuf {
    root().join("tests/interop/node_modules")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process and waits for a stdout line containing `ready`.
fn spawn(cmd: &mut Command, ready: &str) -> (Server, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "process exited before {ready:?}"
        );
        if line.contains(ready) {
            break;
        }
    }
    (Server(child), line)
}

fn c10k_serve(extra: &[&str]) -> (Server, String) {
    let (s, line) = spawn(
        Command::new(env!("CARGO_BIN_EXE_c10k"))
            .args(["-q", "serve", "--addr", "127.0.0.1:0"])
            .args(extra),
        "ws://",
    );
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap()
        .to_owned();
    (s, url)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_script(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "peer script failed:\n{text}");
    assert!(text.contains("all passed"), "{text}");
}

#[test]
fn python_websockets_client_against_c10k_serve() {
    if !peer(&python(), "the Python websockets venv") {
        return;
    }
    let (_server, url) = c10k_serve(&[]);
    run_script(
        Command::new(python())
            .arg(root().join("tests/interop/client.py"))
            .arg(&url),
    );
}

#[test]
fn node_ws_client_against_c10k_serve() {
    if !peer(&node_modules().join("ws"), "the Node ws package") {
        return;
    }
    let (_server, url) = c10k_serve(&[]);
    run_script(
        Command::new("node")
            .arg(root().join("tests/interop/client.js"))
            .arg(&url),
    );
}

#[test]
fn chromium_runs_the_served_page_against_c10k_serve() {
    if !peer(Path::new("/usr/bin/chromium"), "Chromium")
        || !peer(
            &node_modules().join("playwright-core"),
            "the Node playwright-core package",
        )
    {
        return;
    }
    let (_server, url) = c10k_serve(&[]);
    let page = url.replacen("ws://", "http://", 1);
    run_script(
        Command::new("node")
            .arg(root().join("tests/interop/browser.js"))
            .arg(&page),
    );
}

/// The exchange c10k's client runs against a third-party echo server.
fn exercise_client(url: &str) {
    let mut c = Client::connect_with(url, &ClientConfig::default()).unwrap();
    c.send_text("hello").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("hello".into()));
    c.send_text("κόσμε 𝄞").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("κόσμε 𝄞".into()));
    c.send_binary(&[0, 1, 2, 255]).unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Binary(vec![0, 1, 2, 255]));
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
    c.send_binary(&big).unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Binary(big));
    c.send_fragmented(MessageKind::Text, "fragmented".as_bytes(), 3)
        .unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("fragmented".into()));
    c.ping(b"are you there").unwrap();
    loop {
        match c.recv().unwrap() {
            Received::Pong(p) => {
                assert_eq!(p, b"are you there");
                break;
            }
            Received::Ping(_) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    for i in 0..100 {
        c.send_text(&format!("m{i}")).unwrap();
    }
    for i in 0..100 {
        assert_eq!(c.recv_message().unwrap(), Received::Text(format!("m{i}")));
    }
    c.close(CloseCode::Application(4000), "bye").unwrap();
    match c.recv_message().unwrap() {
        Received::Close(code, _) => assert_eq!(code, CloseCode::Application(4000)),
        other => panic!("expected the close echo, got {other:?}"),
    }
    assert!(c.connection().is_closed());
}

#[test]
fn c10k_client_against_python_websockets_server() {
    if !peer(&python(), "the Python websockets venv") {
        return;
    }
    let port = free_port();
    let (_server, _) = spawn(
        Command::new(python())
            .arg(root().join("tests/interop/echo_server.py"))
            .arg(port.to_string()),
        "listening",
    );
    exercise_client(&format!("ws://127.0.0.1:{port}/"));
}

#[test]
fn c10k_client_against_tokio_tungstenite_server() {
    let bin = root().join("benches/peers/target/release/peer-tungstenite");
    if !peer(&bin, "the tokio-tungstenite peer server") {
        return;
    }
    let port = free_port();
    let (_server, _) = spawn(
        Command::new(&bin).args(["--addr", &format!("127.0.0.1:{port}")]),
        "listening",
    );
    exercise_client(&format!("ws://127.0.0.1:{port}/"));
}
