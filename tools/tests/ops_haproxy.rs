//! Behind HAProxy: two `c10k serve` processes on two ports, HAProxy in front with 2 s client,
//! server and tunnel timeouts. The server's pings (every 0.5 s of silence) keep an idle client
//! connected through it far longer than its timeout; without pings HAProxy drops the same client
//! after about 2 s.
//!
//! HAProxy is a Debian package that `.ci/setup` installs; a missing one fails the tests (see
//! `common/needs.rs` for skipping them instead).

#[path = "common/procs.rs"]
mod procs;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use c10k::client::{Client, ClientConfig, ClientError, Received};
use procs::*;

/// HAProxy's idle timeouts (client, server, tunnel).
const LB_TIMEOUT: Duration = Duration::from_secs(2);

/// Two servers with `ping_interval` and HAProxy in front of them; returns the URL through HAProxy
/// and what must live as long as the test.
fn setup(name: &str, ping_interval: &str) -> Option<(String, Vec<Serve>, Proc, PathBuf)> {
    let bin = tool("haproxy")?;
    let servers: Vec<Serve> = (0..2)
        .map(|_| Serve::start(&["-q", "--shards", "1", "--ping-interval", ping_interval]))
        .collect();
    let dir = std::env::temp_dir().join(format!("c10k-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let front = free_port();
    let t = format!("{}s", LB_TIMEOUT.as_secs());
    let backends: String = servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("    server s{i} {}\n", s.addr))
        .collect();
    let cfg = format!(
        "global\n    maxconn 1000\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client {t}\n    timeout server {t}\n    timeout tunnel {t}\n\
         frontend ws\n    bind 127.0.0.1:{front}\n    default_backend servers\n\
         backend servers\n    balance roundrobin\n{backends}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let lb = Proc::spawn(
        Command::new(bin)
            .args(["-f", path.to_str().unwrap(), "-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", front)).is_err() {
        assert!(Instant::now() < end, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((format!("ws://127.0.0.1:{front}/"), servers, lb, dir))
}

fn connect(url: &str) -> Client {
    let config = ClientConfig {
        timeout: Some(Duration::from_secs(10)),
        ..ClientConfig::default()
    };
    Client::connect_with(url, &config).unwrap()
}

fn echo(c: &mut Client, text: &str) {
    c.send_text(text).unwrap();
    assert_eq!(c.recv_message().unwrap(), Received::Text(text.to_owned()));
}

/// With pings every 0.5 s, idle clients (one on each server; reading answers the pings) stay
/// connected through HAProxy for three times its timeout, and still echo.
#[test]
fn server_pings_keep_idle_clients_through_haproxy_past_its_timeout() {
    let Some((url, servers, _lb, dir)) = setup("haproxy-pings", "500ms") else {
        return;
    };
    // Round robin: one client on each server.
    let mut clients: Vec<Client> = (0..2).map(|_| connect(&url)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        echo(c, &format!("hello {i}"));
    }
    let held = 3 * LB_TIMEOUT;
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                let until = Instant::now() + held;
                let mut pings = 0;
                while Instant::now() < until {
                    match c.recv() {
                        Ok(Received::Ping(_)) => pings += 1,
                        other => panic!("client {i}: {other:?} after {pings} pings"),
                    }
                }
                (c, pings)
            })
        })
        .collect();
    let mut clients = Vec::new();
    for (i, t) in threads.into_iter().enumerate() {
        let (mut c, pings) = t.join().unwrap();
        eprintln!(
            "client {i}: {pings} pings in {} s through haproxy",
            held.as_secs()
        );
        assert!(pings >= 6, "client {i}: {pings} pings");
        echo(&mut c, &format!("still here {i}"));
        clients.push(c);
    }
    // Both servers had a client, and dropped none.
    for s in &servers {
        let st = s.stats();
        assert_eq!(st.get("connections_open"), 1, "{}", st.0);
        assert_eq!(st.get("pong_timeouts"), 0, "{}", st.0);
    }
    for mut c in clients {
        c.close(c10k::proto::CloseCode::Normal, "").unwrap();
        while c.recv().is_ok() {}
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without pings, the same idle client is dropped by HAProxy after about its timeout.
#[test]
fn without_pings_haproxy_drops_an_idle_client_after_its_timeout() {
    let Some((url, _servers, _lb, dir)) = setup("haproxy-nopings", "0") else {
        return;
    };
    let mut c = connect(&url);
    echo(&mut c, "hello");
    let idle = Instant::now();
    let end = c.recv();
    let after = idle.elapsed();
    eprintln!(
        "idle client dropped by haproxy after {} ms: {end:?}",
        after.as_millis()
    );
    assert!(
        matches!(end, Err(ClientError::Closed | ClientError::Io(_))),
        "{end:?}"
    );
    if let Err(ClientError::Io(e)) = &end {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "not dropped within 10 s: {e}"
        );
    }
    assert!(
        after >= LB_TIMEOUT - Duration::from_millis(100) && after < LB_TIMEOUT + Duration::from_secs(3),
        "dropped after {after:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
