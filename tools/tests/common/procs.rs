//! Helpers for tests that run `c10k serve`, `c10k bench` and other programs as processes: start
//! one and wait until it listens, read its statistics (SIGUSR1 prints them as one JSON line), its
//! log, its descriptors, memory and CPU time from /proc, send it signals, and never leave it
//! behind (dropping a handle kills the process and its children).
//!
//! Included with `#[path = "common/procs.rs"] mod procs;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

#[path = "needs.rs"]
pub mod needs;
#[path = "../../../tests/common/wire.rs"]
mod wire;
#[allow(unused_imports)]
pub use needs::tool;
pub use wire::{frame, try_read_frame};

/// The `c10k` binary of this build.
pub const EXE: &str = env!("CARGO_BIN_EXE_c10k");

/// A binary of an example of either package: tests run from target/<profile>/deps, examples are
/// built into target/<profile>/examples (`cargo build --workspace --examples`, as `.ci/test` does).
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        bin.exists(),
        "the {name} example is not built ({}): run `cargo build --workspace --examples` first",
        bin.display()
    );
    bin
}

/// Whether the full-size versions were asked for (`C10K_FULL_SIZE=1`, see `benches/faults.sh`).
pub fn full_size() -> bool {
    std::env::var("C10K_FULL_SIZE").is_ok_and(|v| v == "1" || v == "true")
}

/// `ci` in a normal test run, `full` under `C10K_FULL_SIZE=1`.
pub fn size<T>(ci: T, full: T) -> T {
    if full_size() { full } else { ci }
}

/// Runs the tests of one file one at a time: they measure processes (CPU, memory, latency) that
/// other tests running at the same time would disturb.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of this process.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// The pids of a process's children.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

/// Open file descriptors of a process.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of a process and its descendants, in bytes.
pub fn rss(pid: u32) -> u64 {
    c10k_tools::loadgen::procfs::sample(Some(pid)).map_or(0, |s| s.rss_bytes)
}

/// CPU time (user + system) of a process and its descendants, in microseconds.
pub fn cpu_us(pid: u32) -> u64 {
    c10k_tools::loadgen::procfs::sample(Some(pid)).map_or(0, |s| s.cpu_us)
}

/// The hard limit on open descriptors of this test process, and so of every process it starts
/// (a process may lower its limit, never raise it past this). Tests derive their sizes from it,
/// or set a lower limit of their own ([`with_fd_limit`]): never from a machine's usual value.
pub fn fd_hard_limit() -> u64 {
    c10k::fd_limits().expect("getrlimit(RLIMIT_NOFILE)").1
}

/// Sets the descriptor limit (soft and hard) of the process `cmd` starts to `limit`, or to the
/// hard limit of this process where that is lower.
pub fn with_fd_limit(cmd: &mut Command, limit: u64) -> &mut Command {
    let limit = limit.min(fd_hard_limit());
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: setrlimit is a plain system call on a value on the
    // stack, and the error is built from the raw errno without allocating.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A free port on 127.0.0.1 (free when asked; another program could take it before it is used).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (with its children) when dropped.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            for c in children(self.0.id()) {
                // SAFETY: kill(2) takes plain integers; a child that exited meanwhile is gone
                // from the list or a zombie nobody else can have been given the pid of.
                unsafe { libc::kill(c as libc::pid_t, libc::SIGKILL) };
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The statistics a server printed for SIGUSR1: `c10k stats {JSON}`.
#[derive(Debug, Clone)]
pub struct Stats(pub String);

impl Stats {
    /// A counter (every key is unique in the line: the reject reasons and close codes under
    /// `rejected` and `closes` included); 0 where the key is absent.
    pub fn get(&self, key: &str) -> u64 {
        json_u64(&self.0, key).unwrap_or(0)
    }

    /// Connections that ended with this close code.
    pub fn closes(&self, code: u16) -> u64 {
        self.get(&code.to_string())
    }
}

/// A number field of a one-line JSON object, by its key (the first occurrence).
pub fn json_u64(json: &str, key: &str) -> Option<u64> {
    json_num(json, key).and_then(|v| v.parse().ok())
}

/// A number field of a one-line JSON object, by its key (the first occurrence).
pub fn json_f64(json: &str, key: &str) -> Option<f64> {
    json_num(json, key).and_then(|v| v.parse().ok())
}

fn json_num<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat)? + pat.len();
    json[at..].split([',', '}']).next().map(str::trim)
}

/// The object under `key` of a one-line JSON object (e.g. `"latency"`), as text.
pub fn json_object<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":{{");
    let at = json.find(&pat).unwrap_or_else(|| panic!("no {key} in {json}")) + pat.len() - 1;
    let end = json[at..].find('}').unwrap() + at + 1;
    &json[at..end]
}

/// A `c10k serve` (or supervisor) started by a test.
pub struct Serve {
    pub proc: Proc,
    /// `ws://127.0.0.1:PORT/`, or `wss://` when `--addr` speaks TLS (`--tls-cert` without
    /// `--tls-addr`; a `--tls-addr` listener's line goes to the log).
    pub url: String,
    pub addr: SocketAddr,
    stats: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    /// Set when stderr reached its end (every process that could write to it is gone).
    log_done: Arc<AtomicBool>,
}

impl Serve {
    /// `c10k serve --addr 127.0.0.1:0 ARGS...`, waiting until it listens.
    pub fn start(args: &[&str]) -> Self {
        Self::start_on(None, args)
    }

    /// [`Serve::start`] on CPU `cpu` when one is given.
    pub fn start_on(cpu: Option<usize>, args: &[&str]) -> Self {
        let mut cmd = c10k_on(cpu);
        cmd.args(["serve", "--addr", "127.0.0.1:0"]).args(args);
        Self::start_command(cmd)
    }

    /// Like [`Serve::start`], with the descriptor limit (soft and hard) set to `limit` before the
    /// program starts, so that it cannot raise it.
    pub fn start_with_fd_limit(args: &[&str], limit: u64) -> Self {
        let mut cmd = Command::new(EXE);
        cmd.args(["serve", "--addr", "127.0.0.1:0"]).args(args);
        with_fd_limit(&mut cmd, limit);
        Self::start_command(cmd)
    }

    /// Starts a `c10k serve` command line (with a concrete or 0 port) and waits for its
    /// listening line; stdout and stderr are read here.
    pub fn start_command(mut cmd: Command) -> Self {
        let mut proc = Proc::spawn(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let err = proc.0.stderr.take().unwrap();
        let err_log = Arc::clone(&log);
        let log_done = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&log_done);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                err_log.lock().unwrap().push(line);
            }
            done.store(true, Ordering::Release);
        });
        let (stats_tx, stats) = mpsc::channel();
        let (line_tx, lines) = mpsc::channel();
        let out = proc.0.stdout.take().unwrap();
        let out_log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(json) = line.strip_prefix("c10k stats ") {
                    let _ = stats_tx.send(json.to_owned());
                } else if (line.starts_with("c10k listening on ws://")
                    || line.starts_with("c10k listening on wss://"))
                    && !line.ends_with("(TLS)")
                {
                    let _ = line_tx.send(line);
                } else {
                    out_log.lock().unwrap().push(line);
                }
            }
        });
        let line = match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => panic!("c10k serve did not start listening: {:?}", log.lock().unwrap()),
        };
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("ws://") || w.starts_with("wss://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        let addr = url
            .split_once("://")
            .unwrap()
            .1
            .trim_end_matches('/')
            .parse()
            .unwrap();
        Self {
            proc,
            url,
            addr,
            stats,
            log,
            log_done,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The statistics of a single server process (summed over its shards).
    pub fn stats(&self) -> Stats {
        self.worker_stats(1).pop().unwrap()
    }

    /// The statistics of each of `n` processes: a single server (1) or a supervisor's workers.
    pub fn worker_stats(&self, n: usize) -> Vec<Stats> {
        while self.stats.try_recv().is_ok() {}
        signal(self.pid(), libc::SIGUSR1);
        (0..n)
            .map(|_| {
                Stats(
                    self.stats
                        .recv_timeout(Duration::from_secs(10))
                        .expect("no statistics line after SIGUSR1"),
                )
            })
            .collect()
    }

    /// Waits until the statistics satisfy `pred`; panics with the last ones otherwise.
    pub fn wait_stats(&self, timeout: Duration, mut pred: impl FnMut(&Stats) -> bool) -> Stats {
        let end = Instant::now() + timeout;
        loop {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "statistics never reached the expected state: {}",
                s.0
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every line the process wrote on stderr (and stdout lines other than its listening line
    /// and statistics) so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        signal(self.pid(), libc::SIGTERM);
    }

    /// After the process exited: waits until its last log lines are read (at most 5 s: a
    /// worker still holding the pipe is not waited for).
    pub fn wait_log_end(&self) {
        let end = Instant::now() + Duration::from_secs(5);
        while !self.log_done.load(Ordering::Acquire) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to exit, at most `limit` (then it is killed and the test fails).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.proc.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} did not exit within {limit:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The `c10k` program, run on CPU `cpu` only when one is given (through `taskset`, so that the
/// process and every thread it starts stay there).
pub fn c10k_on(cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string(), EXE]);
            cmd
        }
        None => Command::new(EXE),
    }
}

/// Runs `c10k bench ARGS...` to the end as a user would; returns whether it succeeded and all it
/// printed (stdout, then stderr).
pub fn bench_text(args: &[&str]) -> (bool, String) {
    bench_text_with(Command::new(EXE), args)
}

/// [`bench_text`] with the descriptor limit of [`with_fd_limit`].
pub fn bench_text_with_fd_limit(args: &[&str], limit: u64) -> (bool, String) {
    let mut cmd = Command::new(EXE);
    with_fd_limit(&mut cmd, limit);
    bench_text_with(cmd, args)
}

fn bench_text_with(mut cmd: Command, args: &[&str]) -> (bool, String) {
    let out = cmd.arg("bench").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `c10k bench ARGS... --json` to the end; returns its JSON report and whether it succeeded.
pub fn bench(args: &[&str]) -> (bool, String) {
    bench_on(None, args)
}

/// [`bench`] on CPU `cpu` when one is given.
pub fn bench_on(cpu: Option<usize>, args: &[&str]) -> (bool, String) {
    let out = c10k_on(cpu)
        .args(["-q", "bench"])
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no report from c10k bench {args:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_owned();
    (out.status.success(), json)
}

/// Starts `c10k bench ARGS... --json` in the background.
pub fn bench_in_background(args: &[&str]) -> Proc {
    bench_in_background_on(None, args)
}

/// [`bench_in_background`] on CPU `cpu` when one is given.
pub fn bench_in_background_on(cpu: Option<usize>, args: &[&str]) -> Proc {
    Proc::spawn(
        c10k_on(cpu)
            .args(["-q", "bench"])
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped()),
    )
}

/// Waits for a background `c10k bench` and returns its JSON report and whether it succeeded.
pub fn bench_report(mut p: Proc, limit: Duration) -> (bool, String) {
    let mut out = p.0.stdout.take().unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "c10k bench did not end within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    let json = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report from c10k bench: {text}"))
        .to_owned();
    (status.success(), json)
}

// ---- raw WebSocket clients ----

/// A valid upgrade request.
pub const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A TCP connection from a chosen source address (127.0.0.x brings its own ephemeral ports),
/// with a receive buffer of `rcvbuf` bytes if given (set before connecting, so that the window
/// stays small), and a read timeout.
pub fn connect_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
    rcvbuf: Option<usize>,
) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if let Some(n) = rcvbuf {
        socket.set_recv_buffer_size(n)?;
    }
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect_timeout(&addr.into(), Duration::from_secs(10))?;
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Reads an HTTP response head (up to the blank line), from a server that sends nothing after
/// it until it hears from the client again (an error if it does).
pub fn read_head(s: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 512];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b)? {
            0 => break,
            n => head.extend_from_slice(&b[..n]),
        }
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n")
            && end + 4 != head.len()
        {
            return Err(std::io::Error::other(format!(
                "bytes after the response head: {:?}",
                String::from_utf8_lossy(&head)
            )));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Sends the upgrade request and checks the 101.
pub fn handshake(s: &mut TcpStream) -> std::io::Result<()> {
    s.write_all(UPGRADE)?;
    let head = read_head(s)?;
    if head.starts_with("HTTP/1.1 101") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("no 101: {head:?}")))
    }
}

/// A masked Close frame with a code.
pub fn close_frame(code: u16) -> Vec<u8> {
    frame(true, 0x8, &code.to_be_bytes())
}

/// Reads one unmasked server frame: (opcode, payload).
pub fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    try_read_frame(s).map(|(_, opcode, payload)| (opcode, payload))
}

/// Whether the peer closed the connection: EOF (or a reset) before any other byte.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Closes a connection with a reset (RST) instead of a FIN.
pub fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}
