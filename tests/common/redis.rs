//! Real Redis servers for the bridge's tests: one `redis-server` without persistence, or a
//! Redis Cluster of three masters with a replica each, in a temporary directory. A missing
//! `redis-server` or `redis-cli` fails the test (`.ci/setup` installs them). Every wait is
//! bounded; the processes are killed when dropped.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A program from the usual places; a panic saying how to get it if it is missing.
pub fn tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!(
        "{name} is missing (not in /usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin): `.ci/setup` installs it"
    );
}

/// Waits until `ok`, polling every 20 ms; a panic naming `what` after `within`.
pub fn wait_for(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One command to the Redis on `port`; its reply's first line (`+OK`, `:3`, `$5`...).
pub fn redis_command(port: u16, args: &[&str]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

/// One command to the Redis on `port`; its whole reply as bytes read until it stops coming
/// (for `INFO`, `CLUSTER INFO`: one bulk string).
pub fn redis_text(port: u16, args: &[&str]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) if !out.is_empty() || Instant::now() > end => break,
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `redis-server` on a free port of loopback, without persistence.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    dir: Option<PathBuf>,
}

impl Redis {
    pub fn start() -> Self {
        Self::spawn(free_port(), Vec::new(), None)
    }

    fn spawn(port: u16, extra: Vec<String>, dir: Option<PathBuf>) -> Self {
        let mut cmd = Command::new(tool("redis-server"));
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(&extra)
        .stdout(Stdio::null());
        if let Some(d) = &dir {
            cmd.current_dir(d);
        }
        let child = cmd.spawn().unwrap();
        let r = Self {
            child: Some(child),
            port,
            args: extra,
            dir,
        };
        wait_for(Duration::from_secs(10), "redis-server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts an empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let fresh = Self::spawn(self.port, self.args.clone(), self.dir.clone());
        *self = fresh;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster: three masters with one replica each.
pub struct Cluster {
    pub nodes: Vec<Redis>,
    dir: PathBuf,
}

impl Cluster {
    pub fn start() -> Self {
        // One directory per cluster, never shared: a cluster node whose directory is removed
        // exits at its next config save (two tests of one binary run side by side).
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("c10k-cluster-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        for i in 0..6 {
            let port = free_port();
            let extra = vec![
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                format!("nodes-{i}-{port}.conf"),
                "--cluster-node-timeout".to_owned(),
                "1000".to_owned(),
                "--logfile".to_owned(),
                format!("node-{i}-{port}.log"),
            ];
            nodes.push(Redis::spawn(port, extra, Some(dir.clone())));
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let out = Command::new(tool("redis-cli"))
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = Self { nodes, dir };
        for n in &c.nodes {
            wait_for(Duration::from_secs(20), "cluster_state:ok on every node", || {
                redis_text(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        c
    }

    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://{}", addrs.join(","))
    }

    /// Each node: its port, whether it runs, and the last lines of its log (for a failure's
    /// message: a node that exited says why there).
    pub fn report(&mut self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let state = match n.child.as_mut().map(|c| c.try_wait()) {
                None => "killed by the test".to_owned(),
                Some(Ok(None)) => "running".to_owned(),
                Some(Ok(Some(status))) => format!("EXITED ({status})"),
                Some(Err(e)) => format!("unknown ({e})"),
            };
            let log = std::fs::read_to_string(self.dir.join(format!("node-{i}-{}.log", n.port)))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(4).collect();
            out += &format!("node {} ({}):\n", n.port, state);
            for l in tail.into_iter().rev() {
                out += &format!("    {l}\n");
            }
        }
        out
    }

    /// The ports of the nodes that say they are masters now (and are alive).
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .filter(|n| redis_text(n.port, &["ROLE"]).contains("master"))
            .map(|n| n.port)
            .collect()
    }
}

impl Cluster {
    /// The master (of `masters`) that owns `key`'s slot.
    pub fn owner(&self, masters: &[u16], key: &str) -> u16 {
        *masters
            .iter()
            .find(|&&p| redis_command(p, &["EXISTS", key]).starts_with(':'))
            .unwrap_or_else(|| panic!("no master owns {key}"))
    }

    /// Moves `key`'s slot, with its keys, from master `from` to master `to`, as `redis-cli
    /// --cluster reshard` does, and tells every master in `masters`.
    pub fn move_slot(&self, key: &str, from: u16, to: u16, masters: &[u16]) {
        let slot = redis_command(from, &["CLUSTER", "KEYSLOT", key])
            .trim_start_matches(':')
            .to_owned();
        let id = |port: u16| {
            redis_text(port, &["CLUSTER", "MYID"])
                .lines()
                .nth(1)
                .unwrap_or_default()
                .to_owned()
        };
        let (from_id, to_id) = (id(from), id(to));
        assert_eq!(
            redis_command(to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]),
            "+OK"
        );
        assert_eq!(
            redis_command(from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]),
            "+OK"
        );
        let keys = redis_text(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "1000"]);
        let keys: Vec<&str> = keys.lines().filter(|l| !l.starts_with(['*', '$'])).collect();
        if !keys.is_empty() {
            let port = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            assert_eq!(redis_command(from, &args), "+OK");
        }
        for &m in masters {
            assert_eq!(
                redis_command(m, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]),
                "+OK"
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bridge's bounds small enough to reach and its timeouts short enough to pass in a test,
/// keeping `history_len` messages per topic.
pub fn fast_limits(history_len: usize) -> c10k::bridge::redis::RedisLimits {
    let mut l = c10k::bridge::redis::RedisLimits::default();
    l.connect_timeout = Duration::from_millis(500);
    l.io_timeout = Duration::from_millis(500);
    l.keepalive = Duration::from_millis(200);
    l.backoff_min = Duration::from_millis(50);
    l.backoff_max = Duration::from_millis(300);
    l.history_len = history_len;
    l
}
