//! `c10k serve --processes` (a supervisor and its workers) and `c10k bench --processes` (one run
//! spread over load processes), run as a user would run them.

#[path = "common/echo_loop.rs"]
mod echo_loop;
#[cfg(feature = "tls")]
#[path = "../../tests/common/pki.rs"]
mod pki;
#[path = "common/procs.rs"]
mod procs;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use c10k::client::{Client, Received};
use echo_loop::EchoLoop;
use procs::{Serve, bench_text as bench, bench_text_with_fd_limit, fd_hard_limit, with_fd_limit};

/// A supervisor started by a test; dropping it (a test that failed) kills it and its workers, so
/// that nothing outlives the test run.
struct Supervisor(Child);

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            for w in children(self.0.id()) {
                let _ = Command::new("kill").args(["-KILL", &w.to_string()]).status();
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Supervisor {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Supervisor {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts `c10k serve --processes 2 --shards 1` on a free port; returns the supervisor and its URL.
fn supervisor() -> (Supervisor, String) {
    supervisor_with_fd_limit(fd_hard_limit())
}

/// [`supervisor`], the supervisor and its workers limited to `limit` descriptors each.
fn supervisor_with_fd_limit(limit: u64) -> (Supervisor, String) {
    let mut child = Supervisor(
        with_fd_limit(&mut Command::new(env!("CARGO_BIN_EXE_c10k")), limit)
            .args([
                "-q",
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--processes",
                "2",
                "--shards",
                "1",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // Keep reading, so that the supervisor never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    assert!(line.contains("(2 processes x 1 shard, mode echo)"), "{line:?}");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url)
}

/// The pids of a process's children.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

/// Waits until `pid` has `n` children that satisfy `ok`, and returns them.
fn wait_for_children(pid: u32, n: usize, ok: impl Fn(u32) -> bool) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c: Vec<u32> = children(pid).into_iter().filter(|&c| ok(c)).collect();
        if c.len() == n {
            return c;
        }
        assert!(Instant::now() < deadline, "children of {pid}: {c:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sockets a process has open (listeners included).
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Waits for a process to exit, at most `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gone(pid: u32) -> bool {
    // A worker is reaped by its supervisor; once that exited too, nothing is left in /proc.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Opens `n` connections and checks one echo on each.
fn echo_clients(url: &str, n: usize) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let mut c = Client::connect(url).unwrap();
            let text = format!("hello {i}");
            c.send_text(&text).unwrap();
            assert_eq!(c.recv_message().unwrap(), Received::Text(text));
            c
        })
        .collect()
}

/// A number field of the one-line JSON report.
fn field(json: &str, key: &str) -> String {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    json[at + key.len() + 3..]
        .split([',', '}'])
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn serve_processes_answers_echo_from_both_workers_and_drains_on_sigterm() {
    let (mut sup, url) = supervisor();
    let workers = wait_for_children(sup.id(), 2, |_| true);
    let idle: Vec<usize> = workers.iter().map(|&w| sockets(w)).collect();
    // 64 connections: SO_REUSEPORT spreads them by hash, so both workers get some.
    let mut clients = echo_clients(&url, 64);
    let held: Vec<usize> = workers.iter().zip(&idle).map(|(&w, &n)| sockets(w) - n).collect();
    assert_eq!(held.iter().sum::<usize>(), 64, "{held:?}");
    for (&w, &n) in workers.iter().zip(&held) {
        assert!(n > 0, "worker {w} holds no connection");
        let env = std::fs::read_to_string(format!("/proc/{w}/environ")).unwrap();
        assert!(env.contains("C10K_WORKER="), "worker {w} has no C10K_WORKER");
    }

    signal(sup.id(), "-TERM");
    // Each worker drains: its connections get 1001 Going Away.
    for c in &mut clients {
        match c.recv_message() {
            Ok(Received::Close(code, _)) => assert_eq!(u16::from(code), 1001),
            other => panic!("expected a close, got {other:?}"),
        }
    }
    drop(clients);
    let status = wait_exit(&mut sup, Duration::from_secs(20));
    assert!(status.success(), "supervisor exited with {status}");
    assert!(
        workers.iter().all(|&w| gone(w)),
        "workers left behind: {workers:?}"
    );
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port`.
#[cfg(feature = "tls")]
fn listens_on(pid: u32, port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local address, state (0A: listening), inode.
            (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")).then(|| f[9].to_owned())
        })
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| {
                let l = l.to_string_lossy();
                inodes.iter().any(|i| l == format!("socket:[{i}]"))
            })
        })
    })
}

#[cfg(feature = "tls")]
#[test]
fn serve_processes_with_tls_shares_one_tls_port_and_reloads_every_worker_on_sighup() {
    let old = pki::Pki::new("sup-old");
    let new = pki::Pki::new("sup-new");
    let first = old.leaf("first", &["127.0.0.1"]);
    let second = new.leaf("second", &["127.0.0.1"]);
    // The files the server is given, rewritten before the SIGHUP.
    let (cert, key) = (old.dir().join("live.pem"), old.dir().join("live.key"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let mut sup = Supervisor(
        Command::new(env!("CARGO_BIN_EXE_c10k"))
            .args(["serve", "--addr", "127.0.0.1:0", "--tls-addr", "127.0.0.1:0"])
            .args(["--processes", "2", "--shards", "1", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (log_tx, log) = std::sync::mpsc::channel();
    let err = BufReader::new(sup.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            let _ = log_tx.send(line);
        }
    });
    let mut out = BufReader::new(sup.stdout.take().unwrap());
    let (mut tls_line, mut line) = (String::new(), String::new());
    out.read_line(&mut tls_line).unwrap();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    // One TLS line for the supervisor, then its usual line.
    assert!(
        tls_line.starts_with("c10k listening on wss://127.0.0.1:")
            && tls_line.trim_end().ends_with("/ (TLS)"),
        "{tls_line:?}"
    );
    assert!(line.contains("(2 processes x 1 shard, mode echo)"), "{line:?}");
    let url = tls_line.split_whitespace().nth(3).unwrap().to_owned();
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Port 0 was made one port, the same for both workers.
    let workers = wait_for_children(sup.id(), 2, |_| true);
    for &w in &workers {
        assert!(listens_on(w, port), "worker {w} does not listen on {port}");
    }
    let connect = |ca: &std::path::Path, n: &str| {
        procs::bench(&[
            "connect",
            "--url",
            &url,
            "--tls-ca",
            ca.to_str().unwrap(),
            "-c",
            n,
        ])
    };
    let (ok, json) = connect(old.ca(), "20");
    assert!(ok && field(&json, "connected") == "20", "{json}");

    std::fs::copy(&second.cert, &cert).unwrap();
    std::fs::copy(&second.key, &key).unwrap();
    signal(sup.id(), "-HUP");
    // Every worker says it reloaded.
    let mut reloaded = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloaded.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("workers that reloaded: {reloaded:?}"));
        if line.contains("SIGHUP: TLS certificates reloaded") {
            let worker = line
                .split_whitespace()
                .find(|w| w.starts_with("worker="))
                .map(str::to_owned);
            reloaded.insert(worker.unwrap_or_else(|| panic!("no worker in {line:?}")));
        }
    }
    // New handshakes use the new certificate, whichever worker takes them.
    let (ok, json) = connect(new.ca(), "20");
    assert!(ok && field(&json, "connected") == "20", "{json}");
    let (ok, json) = connect(old.ca(), "10");
    assert!(!ok && field(&json, "errors") == "10", "{json}");

    signal(sup.id(), "-TERM");
    let status = wait_exit(&mut sup, Duration::from_secs(20));
    assert!(status.success(), "supervisor exited with {status}");
}

#[test]
fn supervisor_restarts_a_worker_killed_with_sigkill() {
    let (mut sup, url) = supervisor();
    let before = wait_for_children(sup.id(), 2, |_| true);
    signal(before[0], "-KILL");
    // A new pid appears next to the survivor (after the first back-off, 0.5 s).
    let after = wait_for_children(sup.id(), 2, |c| c != before[0]);
    assert!(after.contains(&before[1]), "{before:?} -> {after:?}");
    let new = after.into_iter().find(|&c| c != before[1]).unwrap();
    // Once it listens again (its listener and signal pipe are its idle sockets), both answer.
    let idle = sockets(before[1]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sockets(new) < idle {
        assert!(Instant::now() < deadline, "the new worker {new} never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let clients = echo_clients(&url, 64);
    assert!(sockets(new) > idle, "the new worker {new} holds no connection");
    drop(clients);
    signal(sup.id(), "-TERM");
    let status = wait_exit(&mut sup, Duration::from_secs(20));
    assert!(status.success(), "supervisor exited with {status}");
}

/// The pid of the supervisor's child that is worker `index` (`C10K_WORKER` in its environment).
fn worker_pid(sup: u32, index: usize) -> u32 {
    let var = format!("C10K_WORKER={index}");
    let is_it = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == var.as_bytes()))
    };
    wait_for_children(sup, 1, is_it)[0]
}

/// Waits (at most 20 s) for a line of the server's log that satisfies `ok`, and returns it.
fn wait_log(server: &Serve, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = server.log().into_iter().find(|l| ok(l)) {
            return line;
        }
        assert!(Instant::now() < deadline, "not in the log: {:#?}", server.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number after `(pid ` in a log line.
fn pid_in(line: &str) -> u32 {
    let at = line.find("(pid ").unwrap_or_else(|| panic!("no pid in {line:?}"));
    line[at + 5..]
        .split(')')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

#[test]
fn supervisor_never_gives_up_on_a_crash_looping_worker_while_the_other_serves() {
    const KILLS: u64 = 8;
    const CLIENTS: u64 = 2;
    // Short pauses, so that eight deaths take seconds: 100 ms doubling to 400 ms.
    let pauses = ["100ms", "200ms", "400ms"];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_c10k"));
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--processes",
        "2",
        "--shards",
        "1",
    ])
    .env("C10K_RESTART_BACKOFF", "100ms,400ms");
    let mut sup = Serve::start_command(cmd);
    let echo = EchoLoop::start(&sup.url, CLIENTS as usize);
    let mut pid = worker_pid(sup.pid(), 0);
    let survivor = worker_pid(sup.pid(), 1);
    // Echoes answered between a kill and the dead worker's return.
    let mut answered_while_down = 0;
    for k in 1..=KILLS {
        let before = echo.answered();
        signal(pid, "-KILL");
        let died = wait_log(&sup, |l| l.contains(&format!("worker 0 (pid {pid}) exited")));
        let pause = pauses[(k as usize - 1).min(pauses.len() - 1)];
        assert!(
            died.contains(&format!(
                "death {k} of worker 0, {k} in all; restarting it in {pause}\""
            )),
            "{died}"
        );
        let back = wait_log(&sup, |l| {
            l.contains(&format!("is listening again (deaths of worker 0 so far: {k})"))
        });
        answered_while_down += echo.answered() - before;
        let new = pid_in(&back);
        assert_ne!(new, pid, "{back}");
        assert!(children(sup.pid()).contains(&new), "{back}");
        assert!(
            sup.proc.0.try_wait().unwrap().is_none(),
            "the supervisor exited after {k} deaths"
        );
        pid = new;
    }
    let (answered, refused, failed) = echo.stop();
    eprintln!(
        "{KILLS} kills: {answered} echoes answered ({answered_while_down} while worker 0 was \
         down), {refused} refused, {failed} failed"
    );
    // One worker listens throughout: no connection is ever refused. A kill takes down at most
    // the one connection each client has open (in the dead worker's accept queue, or held by it).
    assert_eq!(refused, 0);
    assert!(failed <= KILLS * CLIENTS, "{failed} failures");
    assert!(answered_while_down > 0);
    assert!(
        children(sup.pid()).contains(&survivor),
        "worker 1 (pid {survivor}) was not left alone"
    );
    // Both workers answer, the last worker 0 too.
    let clients = echo_clients(&sup.url, 64);
    let stats = sup.worker_stats(2);
    for s in &stats {
        assert!(s.get("handshakes") > 0, "{}", s.0);
    }
    drop(clients);
    // The supervisor's own counts, printed on the same SIGUSR1 (in any order with the workers').
    let counts = wait_log(&sup, |l| l.starts_with("c10k supervisor "));
    assert_eq!(
        counts,
        format!(
            "c10k supervisor {{\"workers\":2,\"listening\":2,\"deaths\":{KILLS},\"worker_deaths\":[{KILLS},0]}}"
        )
    );
    sup.terminate();
    let status = sup.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "supervisor exited with {status}");
}

#[test]
fn supervisor_gives_up_when_a_worker_cannot_start() {
    // A listener without SO_REUSEPORT holds the port: no worker can bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_c10k"))
        .args(["serve", "--addr", &addr, "--processes", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("during start-up"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn bench_processes_holds_more_connections_than_one_process_may_over_two_server_processes() {
    // The scaled-down C100k: every process limited to `limit` descriptors (20,000, or this
    // machine's hard limit if lower), so that neither one bench process nor one server process
    // could hold these connections.
    let limit = 20_000.min(fd_hard_limit());
    let connections = (limit * 3 / 2).to_string();
    let (mut sup, url) = supervisor_with_fd_limit(limit);
    let pid = sup.id().to_string();
    let started = Instant::now();
    let (ok, out) = bench_text_with_fd_limit(
        &[
            "hold",
            "--url",
            &url,
            "-c",
            &connections,
            "--processes",
            "2",
            "--duration",
            "1s",
            // Source addresses no other test uses, so that ports in TIME_WAIT from other runs on
            // this machine do not run this one out of ephemeral ports.
            "--source",
            "127.0.1.1,127.0.1.2,127.0.1.3,127.0.1.4",
            "--server-pid",
            &pid,
            "--json",
        ],
        limit,
    );
    let took = started.elapsed();
    assert!(ok, "{out}");
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(field(json, "errors"), "0", "{json}");
    assert_eq!(field(json, "connected"), connections, "{json}");
    assert_eq!(field(json, "peak_concurrent"), connections, "{json}");
    assert_eq!(field(json, "survivors"), connections, "{json}");
    assert_eq!(field(json, "threads"), "2", "{json}");
    assert_ne!(field(json, "server_bytes_per_connection"), "null", "{json}");
    eprintln!(
        "{connections} connections over 2 + 2 processes of {limit} descriptors: {:.1} s in all; \
         server memory {} bytes per connection; handshake latency {}",
        took.as_secs_f64(),
        field(json, "server_bytes_per_connection"),
        &json[json.find("\"handshake_latency\"").unwrap()..][..120]
    );
    signal(sup.id(), "-TERM");
    let status = wait_exit(&mut sup, Duration::from_secs(20));
    assert!(status.success(), "supervisor exited with {status}");
}

#[test]
fn bench_processes_merges_echo_reports_with_exact_latency_counts() {
    let (mut sup, url) = supervisor();
    let pid = sup.id().to_string();
    let (ok, out) = bench(&[
        "echo",
        "--url",
        &url,
        "-c",
        "100",
        "--processes",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--server-pid",
        &pid,
        "--json",
    ]);
    assert!(ok, "{out}");
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(field(json, "errors"), "0", "{json}");
    assert_eq!(field(json, "connected"), "100", "{json}");
    let messages = field(json, "messages");
    assert_ne!(messages, "0", "{json}");
    // Every echo counted in the window is a sample of the merged histogram.
    let latency = &json[json.find("\"latency\":").unwrap()..];
    assert_eq!(field(latency, "count"), messages, "{json}");
    assert_ne!(field(json, "server_cpu_us_per_msg"), "null", "{json}");
    assert!(!json.contains("latency_hist"), "{json}");
    signal(sup.id(), "-TERM");
    assert!(wait_exit(&mut sup, Duration::from_secs(20)).success());
}

#[test]
fn bench_processes_testecho_says_connected_only_for_all_clients_at_once() {
    let (mut sup, url) = supervisor();
    // 2,000 clients, fewer where this machine's descriptor limit would not let two processes
    // (of the bench, of the server) hold them with room to spare.
    let clients = 2000.min(2 * fd_hard_limit().saturating_sub(200)).to_string();
    let (ok, out) = bench(&[
        "testecho",
        "--url",
        &url,
        "-c",
        &clients,
        "--processes",
        "2",
        "--ramp",
        "1s",
        "--delay",
        "200ms",
    ]);
    assert!(ok, "{out}");
    // One line for the whole run, none from the load processes for their own share.
    assert_eq!(out.matches("clients are connected!").count(), 1, "{out}");
    assert!(
        out.contains(&format!("{clients} clients are connected!")),
        "{out}"
    );
    assert!(out.contains(&format!("completed clients   {clients}")), "{out}");
    assert!(out.contains(&format!("peak {clients} at once")), "{out}");
    signal(sup.id(), "-TERM");
    assert!(wait_exit(&mut sup, Duration::from_secs(20)).success());
}

#[test]
fn bench_suggests_processes_past_the_descriptor_limit() {
    // With a limit the test sets (or this machine's, if lower), twice as many connections as
    // descriptors fit in neither one process nor two: three are suggested.
    let limit = 1000.min(fd_hard_limit());
    let c = (2 * limit + 1).to_string();
    for extra in [&[][..], &["--processes", "2"][..]] {
        let mut args = vec!["hold", "--url", "ws://127.0.0.1:9/", "-c", &c];
        args.extend_from_slice(extra);
        let (ok, out) = bench_text_with_fd_limit(&args, limit);
        assert!(!ok);
        assert!(
            out.contains("file descriptor") && out.contains("--processes 3"),
            "{out}"
        );
    }
}
