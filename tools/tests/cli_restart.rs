//! `c10k serve`'s restart on SIGUSR2, as an operator runs it: the process starts itself again
//! on the same listening sockets and drains once the new one serves. A client loop across the
//! restart is never refused, and the old process's open connections get 1001 Going Away.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use c10k::client::{Client, ClientConfig, Received};
use c10k::proto::CloseCode;

/// Processes started by the test, killed when it ends however it ends: the first server, and
/// the one that replaced it (not the test's child: its pid comes from the log).
struct Servers {
    first: Child,
    next: Option<u32>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.first.kill();
        let _ = self.first.wait();
        if let Some(pid) = self.next {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// A WebSocket handshake on a new connection; `Err` says how it failed.
fn handshake(addr: SocketAddr) -> Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if head.starts_with(b"HTTP/1.1 101") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&head).into_owned())
    }
}

#[test]
fn a_restart_on_sigusr2_refuses_no_connection_and_sends_the_old_ones_1001() {
    let mut first = Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args(["serve", "--addr", "127.0.0.1:0", "--shards", "2"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = (first.stdout.take().unwrap(), first.stderr.take().unwrap());
    let mut servers = Servers { first, next: None };
    // Both processes write to these pipes: read them to the end, line by line.
    let (lines, heard) = mpsc::channel::<String>();
    let relay = |pipe: Box<dyn Read + Send>, tx: mpsc::Sender<String>| {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        })
    };
    relay(Box::new(out), lines.clone());
    relay(Box::new(err), lines);
    let wait_for = |what: &str| -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let line = heard
                .recv_timeout(end.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no line with {what:?}"));
            if line.contains(what) {
                return line;
            }
        }
    };
    let line = wait_for("c10k listening on ws://");
    let addr: SocketAddr = line
        .split("ws://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("ws://{addr}/");
    // Connections the old process holds through the restart.
    let config = ClientConfig {
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    let mut old: Vec<Client> = (0..20)
        .map(|_| Client::connect_with(&url, &config).unwrap())
        .collect();
    for (i, c) in old.iter_mut().enumerate() {
        c.send_text(&format!("hello {i}")).unwrap();
        assert_eq!(c.recv().unwrap(), Received::Text(format!("hello {i}")));
    }
    // The client loop: 5,000 handshakes, before, during and after the restart.
    let pid = servers.first.id();
    let (at_half, half) = mpsc::channel::<()>();
    let (go_on, resume) = mpsc::channel::<()>();
    let looper = std::thread::spawn(move || {
        let mut failures = Vec::new();
        for i in 0..5000 {
            if i == 1000 {
                Command::new("kill")
                    .args(["-USR2", &pid.to_string()])
                    .status()
                    .unwrap();
            }
            if i == 2500 {
                // Wait until the old process is gone: the rest go to the new one alone.
                at_half.send(()).unwrap();
                resume.recv().unwrap();
            }
            if let Err(e) = handshake(addr) {
                failures.push((i, e));
            }
        }
        failures
    });
    let line = wait_for("restart: process");
    let next: u32 = line
        .split("restart: process ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    servers.next = Some(next);
    // The old process's connections are told to go, and it exits cleanly.
    for c in &mut old {
        loop {
            match c.recv().unwrap() {
                Received::Close(code, _) => {
                    assert_eq!(code, CloseCode::GoingAway);
                    break;
                }
                Received::Text(_) | Received::Binary(_) | Received::Ping(_) | Received::Pong(_) => {}
            }
        }
    }
    half.recv_timeout(Duration::from_secs(60)).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = servers.first.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "the old process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    go_on.send(()).unwrap();
    let failures = looper.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} of 5,000 handshakes failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    // The new process serves, on the same address.
    let mut c = Client::connect_with(&url, &config).unwrap();
    c.send_text("after").unwrap();
    assert_eq!(c.recv().unwrap(), Received::Text("after".into()));
    Command::new("kill")
        .args(["-TERM", &next.to_string()])
        .status()
        .unwrap();
}

#[test]
fn started_with_a_socket_from_systemd_it_serves_on_that_socket() {
    use std::os::fd::AsRawFd;
    // What systemd's socket activation does: a listening socket at descriptor 3, LISTEN_FDS=1
    // and LISTEN_PID naming the process (the shell's pid, kept by `exec`).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    socket2::SockRef::from(&listener).set_cloexec(false).unwrap();
    let fd = listener.as_raw_fd();
    let dup = if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd} {fd}<&-; ")
    };
    let script =
        format!("{dup}export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" serve --addr 127.0.0.1:0 --shards 2");
    let child = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_c10k")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut servers = Servers {
        first: child,
        next: None,
    };
    let mut out = BufReader::new(servers.first.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    assert!(
        line.contains(&format!("ws://{addr}/")),
        "not on the socket it was given: {line}"
    );
    // The test keeps its own descriptor of the socket: it accepts nothing, the server does.
    let config = ClientConfig {
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    for i in 0..20 {
        let mut c = Client::connect_with(&format!("ws://{addr}/"), &config).unwrap();
        c.send_text(&format!("activated {i}")).unwrap();
        assert_eq!(c.recv().unwrap(), Received::Text(format!("activated {i}")));
    }
    drop(servers);
}
