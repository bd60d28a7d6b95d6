//! Starts each peer server on a free port, runs the smoke checks against it, then stops it
//! with SIGTERM (or SIGINT) and expects a clean exit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(exe: &str) -> Server {
        let mut child = Command::new(exe)
            .args(["--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {exe}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{exe}: unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    /// Sends `signal` and expects exit status 0 within a few seconds.
    fn stop(mut self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit after {signal}: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s of {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(checks: impl Future<Output = c10k_peers::smoke::Result>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Err(e) = rt.block_on(checks) {
        panic!("{e}");
    }
}

#[test]
fn tungstenite_echo() {
    let s = Server::start(env!("CARGO_BIN_EXE_peer-tungstenite"));
    run(c10k_peers::smoke::echo_checks(s.addr));
    s.stop("-TERM");
}

#[test]
fn fastwebsockets_echo() {
    let s = Server::start(env!("CARGO_BIN_EXE_peer-fastwebsockets"));
    run(c10k_peers::smoke::echo_checks(s.addr));
    s.stop("-INT");
}

#[test]
fn broadcast_fan_out() {
    let s = Server::start(env!("CARGO_BIN_EXE_peer-broadcast-tungstenite"));
    run(c10k_peers::smoke::broadcast_checks(s.addr));
    s.stop("-TERM");
}
