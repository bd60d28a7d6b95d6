//! c10k's own client as a client under test for the client suite (`c10k check --serve`).
//!
//! `cargo run --release --example echo_client -- ws://HOST:PORT AGENT`
//!
//! Fetches the case ids from `ws://HOST:PORT/cases`, then for each id connects to
//! `/case/ID?agent=AGENT` and sends every message back as it came (text as text, binary as
//! binary) until the connection ends; then connects to `/done?agent=AGENT`. A case that fails (a
//! refused handshake, a protocol error, a reset, a timeout) is logged to stderr and the next one
//! runs; each case gets 30 s from its connect on, then the connection is dropped. Exits 0 once
//! `/done` was reached, whatever the cases did; 1 if `/cases` could not be fetched or `/done`
//! could not be reached; 2 on bad usage.
//!
//! The client is [`c10k::client::Client`] with [`ClientConfig::default`]: frames and messages up
//! to 16 MiB (the engine's defaults, already the suite's largest message, so nothing is raised),
//! pings answered and a Close answered with the same code by the client itself, a 30 s timeout
//! on connect, reads and writes. One thing is added: permessage-deflate, which the engine
//! implements but the client offers only when asked (`ClientConfig::deflate` is `None` by
//! default), is offered with the engine's default policy ([`DeflateConfig::default`]: no
//! context takeover either way) when the `deflate` feature is on, as it is by default. The
//! Python, Node and browser clients offer it by default too.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use c10k::client::{Client, ClientConfig, ClientError, Received, WsUrl};
use c10k::proto::DeflateConfig;

/// How long one case may take, from its connect on.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long fetching `/cases`, or the `/done` exchange, may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// More ids than any suite has: a longer list is cut, so the run is bounded.
const MAX_CASES: usize = 100_000;

/// Connects to `url` with the time left until `deadline` as the connect timeout, then as the
/// socket's read and write timeouts for the handshake and everything after it.
fn connect(url: &str, config: &ClientConfig, deadline: Instant) -> Result<Client, ClientError> {
    let url = WsUrl::parse(url)?;
    let addr = url.socket_addr()?;
    let stream = TcpStream::connect_timeout(&addr, left(deadline)?)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(left(deadline)?))?;
    stream.set_write_timeout(Some(left(deadline)?))?;
    Client::handshake(stream, &url, config)
}

/// The time until `deadline`; a timeout error once it has passed.
fn left(deadline: Instant) -> Result<Duration, ClientError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ClientError::Io(ErrorKind::TimedOut.into()));
    }
    Ok(left)
}

/// The next thing the server sends, waiting no later than `deadline`.
fn recv(client: &mut Client, deadline: Instant) -> Result<Received, ClientError> {
    client.stream().set_read_timeout(Some(left(deadline)?))?;
    client.recv_message()
}

/// The case list: the first text message of `/cases`.
fn fetch_cases(url: &str, config: &ClientConfig) -> Result<String, ClientError> {
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    let mut client = connect(url, config, deadline)?;
    let mut list = None;
    // Bounded by the deadline; the checker closes after the list.
    loop {
        match recv(&mut client, deadline) {
            Ok(Received::Text(text)) if list.is_none() => list = Some(text),
            Ok(_) => {}
            // What goes wrong after the list came does not matter.
            Err(_) if list.is_some() => break,
            Err(e) => return Err(e),
        }
    }
    list.ok_or(ClientError::Closed)
}

/// One case: echo until the connection ends; how it ended.
fn echo(url: &str, config: &ClientConfig) -> Result<String, ClientError> {
    let deadline = Instant::now() + CASE_TIMEOUT;
    let mut client = connect(url, config, deadline)?;
    let mut end = "ended without a close frame".to_string();
    // Bounded by the deadline: each wait gets only the time left.
    loop {
        match recv(&mut client, deadline) {
            Ok(Received::Text(text)) => client.send_text(&text)?,
            Ok(Received::Binary(data)) => client.send_binary(&data)?,
            // Already answered by the client; the next call says the connection is closed.
            Ok(Received::Close(code, reason)) => end = format!("closed {} {reason:?}", u16::from(code)),
            Ok(_) => {}
            Err(ClientError::Closed) => return Ok(end),
            Err(e) => return Err(e),
        }
    }
}

/// `/done`: `Err` only when the handshake failed; what went wrong after it, if anything.
fn done(url: &str, config: &ClientConfig) -> Result<Option<ClientError>, ClientError> {
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    let mut client = connect(url, config, deadline)?;
    // The checker sends Close 1000, which the client answers.
    loop {
        match recv(&mut client, deadline) {
            Ok(_) => {}
            Err(ClientError::Closed) => return Ok(None),
            Err(e) => return Ok(Some(e)),
        }
    }
}

/// Everything but the unreserved characters of RFC 3986, as `%XX`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn is_case_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (base, agent) = match args.as_slice() {
        [base, agent] if base.starts_with("ws://") || base.starts_with("wss://") => {
            (base.trim_end_matches('/'), percent_encode(agent))
        }
        _ => {
            eprintln!("usage: echo_client ws://HOST:PORT AGENT");
            return ExitCode::from(2);
        }
    };
    let config = ClientConfig {
        // The engine implements permessage-deflate; the client offers it only when asked.
        deflate: Some(DeflateConfig::default()),
        ..ClientConfig::default()
    };
    let list = match fetch_cases(&format!("{base}/cases"), &config) {
        Ok(list) => list,
        Err(e) => {
            eprintln!("echo_client: cannot fetch {base}/cases: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ids = Vec::new();
    for id in list.split('\n').take(MAX_CASES) {
        if is_case_id(id) {
            ids.push(id);
        } else if !id.is_empty() {
            eprintln!("echo_client: skipping a malformed case id {id:?}");
        }
    }
    println!("{} cases", ids.len());
    for id in ids {
        match echo(&format!("{base}/case/{id}?agent={agent}"), &config) {
            Ok(end) => println!("case {id}: {end}"),
            // A read or write timeout, or the deadline itself.
            Err(ClientError::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                eprintln!(
                    "echo_client: case {id}: no end after {} s, dropped",
                    CASE_TIMEOUT.as_secs()
                )
            }
            Err(e) => eprintln!("echo_client: case {id}: {e}"),
        }
    }
    match done(&format!("{base}/done?agent={agent}"), &config) {
        Ok(None) => {}
        Ok(Some(e)) => eprintln!("echo_client: /done: {e}"),
        Err(e) => {
            eprintln!("echo_client: cannot reach {base}/done: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("done");
    ExitCode::SUCCESS
}
