//! Running one of the examples' own binaries (built next to the tests by `cargo build
//! --examples`, as `.ci/test` does first) on a free port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running example; killed when dropped.
pub struct Example {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts example `name` on `127.0.0.1:0` with `args`, and reads the address it listens on
/// from its first line (`NAME: listening on ws://ADDR/ ...`).
pub fn start(name: &str, args: &[&str]) -> Example {
    let mut bin: PathBuf = std::env::current_exe().unwrap();
    bin.pop();
    if bin.ends_with("deps") {
        bin.pop();
    }
    let bin = bin.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --examples`",
        bin.display()
    );
    let mut child = Command::new(bin)
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("ws://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Example { child, addr }
}
