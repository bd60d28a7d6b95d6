//! Interoperability with the peers people really use: the Python `websockets` and Node `ws`
//! clients and headless Chromium against `c10k serve`, and c10k's client against a Python
//! `websockets` server and a tokio-tungstenite server; each pair also with permessage-deflate
//! on where the peer supports it, the server's `deflated` counter (SIGUSR1 statistics) showing
//! that compressed messages really went out. The same peers over wss:// (TLS), each trusting a
//! test CA made here and checking that a client without it refuses the certificate:
//! their clients against `c10k serve --tls-cert ... --tls-key ...`, and c10k's client against
//! their servers. (Chromium over https and wss is in `pages.rs`; a plain request on the TLS port
//! is in the engine's `tests/engine_tls.rs`.)
//!
//! The peers are installed by `.ci/setup` (the README's test command runs it). A missing peer
//! fails its test (see `common/needs.rs` for skipping instead).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use c10k::client::{Client, ClientConfig, ClientError, Received, WsUrl};
use c10k::proto::{CloseCode, DeflateConfig, MessageKind};
use c10k::tls::{Trust, client_config, rustls};
use needs::{needed as peer, node_modules, python, root};
use pki::Pki;

#[path = "common/needs.rs"]
mod needs;
#[path = "../../tests/common/pki.rs"]
mod pki;

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

/// A `c10k serve` process whose stdout stays readable, for its SIGUSR1 statistics.
struct Served {
    server: Server,
    url: String,
    lines: Receiver<String>,
}

impl Served {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_c10k"))
            .args(["-q", "serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let server = Server(child);
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("c10k serve did not print its address");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("ws://") || w.starts_with("wss://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Self { server, url, lines }
    }

    /// One counter of the server's statistics (SIGUSR1 prints them as `c10k stats {JSON}`).
    fn stat(&self, name: &str) -> u64 {
        // SAFETY: kill(2) with a valid signal on the pid of a child this test started and has
        // not reaped.
        let rc = unsafe { libc::kill(self.server.0.id() as libc::pid_t, libc::SIGUSR1) };
        assert_eq!(rc, 0, "cannot signal c10k serve");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("no statistics line from c10k serve");
            let Some(json) = line.strip_prefix("c10k stats ") else {
                continue;
            };
            let key = format!("\"{name}\":");
            let at = json.find(&key).unwrap_or_else(|| panic!("no {name} in {json}")) + key.len();
            let digits: String = json[at..].chars().take_while(char::is_ascii_digit).collect();
            return digits.parse().unwrap();
        }
    }
}

/// Runs a peer script with compression against `c10k serve`, then checks that the server
/// compressed messages (its replies to the peer's compressed ones).
fn compressed_exchange(script: &mut Command) {
    let served = Served::start(&[]);
    run_script(script.arg(&served.url).arg("--compression"));
    let deflated = served.stat("deflated");
    assert!(deflated > 0, "c10k serve compressed no message");
    println!("c10k serve compressed {deflated} messages");
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
fn python_websockets_client_with_compression_against_c10k_serve() {
    if !peer(&python(), "the Python websockets venv") {
        return;
    }
    compressed_exchange(Command::new(python()).arg(root().join("tests/interop/client.py")));
}

#[test]
fn node_ws_client_with_compression_against_c10k_serve() {
    if !peer(&node_modules().join("ws"), "the Node ws package") {
        return;
    }
    compressed_exchange(Command::new("node").arg(root().join("tests/interop/client.js")));
}

#[test]
fn chromium_runs_the_served_page_against_c10k_serve() {
    if !needs::browser() {
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

#[test]
fn chromium_exchanges_compressed_messages_with_c10k_serve() {
    if !needs::browser() {
        return;
    }
    let served = Served::start(&[]);
    let page = served.url.replacen("ws://", "http://", 1);
    run_script(
        Command::new("node")
            .arg(root().join("tests/interop/browser.js"))
            .arg(&page)
            .arg("--compression"),
    );
    assert!(served.stat("deflated") > 0, "c10k serve compressed no message");
}

/// The exchange c10k's client runs against a third-party echo server.
fn exercise_client(url: &str) {
    exercise_client_with(url, &ClientConfig::default(), CloseCode::Application(4000));
}

/// About `n` bytes of JSON-like text.
fn json_text(n: usize) -> String {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user-{}\",\"event\":\"update\",\"ok\":true}},",
            i % 97
        ));
        i += 1;
    }
    s.truncate(n);
    s
}

/// The exchange, ended by a close with `close` that the server must echo.
fn exercise_client_with(url: &str, config: &ClientConfig, close: CloseCode) {
    let mut c = Client::connect_with(url, config).unwrap();
    if config.deflate.is_some() {
        let agreed = c.deflate().expect("the server declined permessage-deflate");
        println!("agreed: {agreed}");
        for n in [1 << 10, 64 << 10, 1 << 20] {
            let text = json_text(n);
            c.send_text(&text).unwrap();
            assert_eq!(c.recv_message().unwrap(), Received::Text(text));
        }
    }
    c.send_text("hello").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("hello".into()));
    c.send_text("κόσμε 𝄞").unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text("κόσμε 𝄞".into()));
    c.send_binary(&[0, 1, 2, 255]).unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Binary(vec![0, 1, 2, 255]));
    for n in [16u32 << 10, 1 << 20] {
        let big: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
        c.send_binary(&big).unwrap();
        assert_eq!(c.recv_message().unwrap(), Received::Binary(big));
        let text = json_text(n as usize);
        c.send_text(&text).unwrap();
        assert_eq!(c.recv_message().unwrap(), Received::Text(text));
    }
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
    c.close(close, "bye").unwrap();
    match c.recv_message().unwrap() {
        Received::Close(code, _) => assert_eq!(code, close),
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
fn c10k_client_with_compression_against_python_websockets_server() {
    if !peer(&python(), "the Python websockets venv") {
        return;
    }
    let port = free_port();
    let (_server, _) = spawn(
        Command::new(python())
            .arg(root().join("tests/interop/echo_server.py"))
            .arg(port.to_string())
            .arg("--compression"),
        "listening",
    );
    let config = ClientConfig {
        deflate: Some(DeflateConfig::default()),
        ..ClientConfig::default()
    };
    exercise_client_with(
        &format!("ws://127.0.0.1:{port}/"),
        &config,
        CloseCode::Application(4000),
    );
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

// ---- over TLS (wss://) ----

/// A path as a command-line argument.
fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// Runs a peer client script over wss:// against `c10k serve --tls-cert ... --tls-key ...` (TLS
/// on its one address, a certificate for 127.0.0.1 and localhost signed by a test CA), the
/// script trusting that CA with `--ca`. Then, on the server's side: every WebSocket handshake came
/// over a completed TLS handshake and none other did (the script's refused connections did not
/// finish theirs), and connections ended with a clean 1000.
fn wss_exchange(script: &mut Command) {
    let pki = Pki::new("interop-client");
    let leaf = pki.leaf("server", &["localhost", "127.0.0.1"]);
    let served = Served::start(&["--tls-cert", arg(&leaf.cert), "--tls-key", arg(&leaf.key)]);
    assert!(served.url.starts_with("wss://"), "{}", served.url);
    run_script(script.arg(&served.url).arg("--ca").arg(pki.ca()));
    let tls = served.stat("tls_handshakes");
    let ws = served.stat("handshakes");
    assert!(ws >= 200, "{ws} WebSocket handshakes");
    assert_eq!(tls, ws, "TLS handshakes against WebSocket handshakes");
    assert!(served.stat("1000") >= 1, "no connection ended with 1000");
}

#[test]
fn python_websockets_client_over_wss_against_c10k_serve() {
    if !peer(&python(), "the Python websockets venv") {
        return;
    }
    wss_exchange(Command::new(python()).arg(root().join("tests/interop/client.py")));
}

#[test]
fn node_ws_client_over_wss_against_c10k_serve() {
    if !peer(&node_modules().join("ws"), "the Node ws package") {
        return;
    }
    wss_exchange(Command::new("node").arg(root().join("tests/interop/client.js")));
}

/// Client settings for wss:// that trust the CA in `ca`.
fn trusting(ca: &Path) -> ClientConfig {
    ClientConfig {
        tls: Some(client_config(Trust::CaFile(ca)).unwrap()),
        ..ClientConfig::default()
    }
}

/// Whether a connect failed on the server's certificate (rustls refused it).
fn refused_certificate(r: Result<Client, ClientError>) -> bool {
    match r {
        Err(ClientError::Io(e)) => matches!(
            e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
            Some(rustls::Error::InvalidCertificate(_))
        ),
        _ => false,
    }
}

/// c10k's client over wss:// against a peer echo server started by `cmd PORT --tls CERT KEY`
/// (a certificate for 127.0.0.1 and localhost signed by a test CA): refused when trusting another
/// CA or expecting another name, then the exchange of the plaintext tests, closed with 1000.
fn client_over_wss(cmd: &mut Command) {
    let pki = Pki::new("interop-server");
    let leaf = pki.leaf("server", &["localhost", "127.0.0.1"]);
    let port = free_port();
    let (_server, _) = spawn(
        cmd.arg(port.to_string())
            .arg("--tls")
            .arg(&leaf.cert)
            .arg(&leaf.key),
        "listening",
    );
    let url = format!("wss://127.0.0.1:{port}/");
    let stranger = Pki::new("interop-stranger");
    let r = Client::connect_with(&url, &trusting(stranger.ca()));
    assert!(
        refused_certificate(r),
        "a certificate of an untrusted CA was not refused"
    );
    let other_name = WsUrl::parse(&format!("wss://other.test:{port}/")).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let r = Client::handshake(tcp, &other_name, &trusting(pki.ca()));
    assert!(
        refused_certificate(r),
        "a certificate for another name was not refused"
    );
    exercise_client_with(&url, &trusting(pki.ca()), CloseCode::Normal);
}

#[test]
fn c10k_client_over_wss_against_python_websockets_server() {
    if !peer(&python(), "the Python websockets venv") {
        return;
    }
    client_over_wss(Command::new(python()).arg(root().join("tests/interop/echo_server.py")));
}

#[test]
fn c10k_client_over_wss_against_node_ws_server() {
    if !peer(&node_modules().join("ws"), "the Node ws package") {
        return;
    }
    client_over_wss(Command::new("node").arg(root().join("tests/interop/echo_server.js")));
}
