//! `c10k serve --processes P`: a supervisor that runs P worker processes on one address.
//!
//! One process may hold only so many file descriptors; P processes hold P times as many. Each
//! worker is this program run again (never a `fork` of this threaded process) with the same
//! arguments minus `--processes`, the concrete `--addr` (and `--tls-addr`), and the hidden
//! `--worker-index I`; it also finds I in the environment as `C10K_WORKER` (and P as
//! `C10K_WORKERS`). Every worker binds the addresses with SO_REUSEPORT, as the shards of one
//! process already do, so the kernel spreads connections over all the shards of all the workers.
//! The TLS options (`--tls-cert`, `--tls-key`, `--tls-sni`) reach every worker unchanged.
//!
//! The protocol between the supervisor and a worker is the worker's life and its stdout:
//!
//! - With port 0 (`--addr`, and `--tls-addr` likewise), the supervisor first binds a socket to
//!   learn a free port, closes it, and hands the concrete address to every worker (another
//!   program could take the port in between; the workers then fail to bind and the start-up
//!   fails).
//! - A worker is ready when it prints its `c10k listening on ws://...` line (`wss://` when its
//!   main address speaks TLS; with `--tls-addr`, the `c10k listening on wss://TLS_ADDR/ (TLS)`
//!   line comes first). Once all are, the supervisor prints lines of the same shape: the TLS
//!   line if there is one, then `c10k listening on ws://ADDR/ (P processes x N shards, mode
//!   ...)`. A worker that exits before that ends the start-up with an error: a worker that cannot
//!   start once will not start on a retry.
//! - SIGUSR1 is forwarded to every worker that listens, which prints its statistics (relayed like
//!   any line); once the start-up is over, the supervisor then prints its own counts, one line:
//!   `c10k supervisor {"workers":P,"listening":L,"deaths":D,"worker_deaths":[D0,D1,...]}`.
//! - SIGHUP is forwarded to every worker that listens, which reloads its TLS certificates.
//! - SIGINT or SIGTERM is forwarded to every worker, which drains gracefully; the supervisor waits
//!   for them (at most the drain timeout plus a grace period, then SIGKILL) and exits 0 when all
//!   exited cleanly. A second SIGINT or SIGTERM kills the workers and exits at once (130).
//! - A worker that dies otherwise is restarted after a back-off, 0.5 s doubling up to 30 s (back
//!   to 0.5 s once a worker has run for a minute; `C10K_RESTART_BACKOFF=FIRST,MAX` sets the first
//!   and the longest pause, see [`backoff`]). Once started, the supervisor never gives up on the
//!   service: a worker that crashes again and again is restarted again and again, every death is
//!   counted (per worker and in all) and logged with those counts and the pause chosen, and the
//!   other workers serve meanwhile (the kernel hands new connections to the listeners that are
//!   left; those waiting in the dead worker's accept queue, and those it held, are lost). A worker
//!   that is restarting gets no forwarded signal until it says it listens again.
//!
//! Workers run in their own process group, so a Ctrl-C at a terminal reaches the supervisor only
//! (and is forwarded once), and they get SIGTERM from the kernel if the supervisor itself dies.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR1};

mod backoff;

use backoff::Backoff;

/// Time allowed for every worker to say it is listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed beyond the drain timeout for workers to exit after SIGTERM.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// Longest sleep of the supervisor's loop (it wakes earlier for any event).
const TICK: Duration = Duration::from_secs(1);

/// What the supervisor needs to know.
#[derive(Debug)]
pub struct Plan {
    /// Number of workers.
    pub processes: usize,
    /// The address every worker listens on (port 0: a free one, chosen here).
    pub addr: SocketAddr,
    /// The TLS listener's address beside it, if any (port 0: a free one, chosen here).
    pub tls_addr: Option<SocketAddr>,
    /// Each worker's drain timeout, to bound the wait for them.
    pub drain_timeout: Duration,
}

#[derive(Debug)]
enum Event {
    /// A line from a worker's stdout (worker, generation, line).
    Line(usize, u64, String),
    Signal(i32),
}

#[derive(Debug)]
struct Worker {
    index: usize,
    child: Option<Child>,
    generation: u64,
    started: Instant,
    ready: bool,
    backoff: Backoff,
    restart_at: Option<Instant>,
    /// How many times this worker died after the start-up.
    deaths: u64,
}

impl Worker {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

struct Supervisor {
    plan: Plan,
    exe: std::path::PathBuf,
    args: Vec<OsString>,
    workers: Vec<Worker>,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
    /// How many times a worker died after the start-up, all workers together.
    deaths: u64,
}

/// Runs the supervisor until a signal stops it: Ok when every worker exited cleanly. Err when
/// the start-up failed (a worker that exits, or does not say it listens in time) or not every
/// worker drained cleanly; never because workers die once the service has started.
pub fn run(mut plan: Plan) -> Result<(), String> {
    let policy = backoff::Policy::from_env()?;
    plan.addr = concrete(plan.addr)?;
    plan.tls_addr = plan.tls_addr.map(concrete).transpose()?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut args = worker_args(std::env::args_os().skip(1).collect());
    args.extend(["--addr".into(), plan.addr.to_string().into()]);
    if let Some(a) = plan.tls_addr {
        args.extend(["--tls-addr".into(), a.to_string().into()]);
    }
    let (tx, rx) = mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGCHLD, SIGUSR1, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let on_signal = tx.clone();
    std::thread::Builder::new()
        .name("c10k-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if on_signal.send(Event::Signal(sig)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let workers = (0..plan.processes)
        .map(|index| Worker {
            index,
            child: None,
            generation: 0,
            started: Instant::now(),
            ready: false,
            backoff: Backoff::new(policy),
            restart_at: None,
            deaths: 0,
        })
        .collect();
    let mut sup = Supervisor {
        plan,
        exe,
        args,
        workers,
        tx,
        rx,
        deaths: 0,
    };
    for i in 0..sup.workers.len() {
        if let Err(e) = sup.spawn(i) {
            sup.stop_all(SIGTERM);
            return Err(e);
        }
    }
    sup.start_up()?;
    sup.supervise()
}

/// `addr`, or with port 0 a free port found by binding it (and closing it again).
fn concrete(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot find a free port on {addr}: {e}"))?;
    probe.local_addr().map_err(|e| e.to_string())
}

/// The options the supervisor takes out of its own arguments (it passes each worker the
/// concrete addresses instead).
const NOT_FOR_WORKERS: [&str; 3] = ["--processes", "--addr", "--tls-addr"];

/// The supervisor's own arguments made into a worker's: without `--processes`, `--addr` and
/// `--tls-addr` (the caller appends the concrete addresses).
fn worker_args(mut args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.drain(..);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if NOT_FOR_WORKERS.contains(&s.as_ref()) {
            it.next();
        } else if !NOT_FOR_WORKERS
            .iter()
            .any(|o| s.strip_prefix(o).is_some_and(|rest| rest.starts_with('=')))
        {
            out.push(a);
        }
    }
    out
}

impl Supervisor {
    /// Starts worker `i` (again).
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let supervisor = std::process::id();
        let workers = self.workers.len();
        let w = &mut self.workers[i];
        w.generation += 1;
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.args)
            .args(["--worker-index", &i.to_string()])
            .env("C10K_WORKER", i.to_string())
            .env("C10K_WORKERS", workers.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: prctl and getppid are plain system calls that
        // touch no lock and allocate nothing (the error is built from a raw errno, which does not
        // allocate either).
        unsafe {
            cmd.pre_exec(move || {
                // The parent-death signal fires when the thread that forked exits: workers are
                // only ever started from the supervisor's main thread, which lives until the end.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() as u32 != supervisor {
                    // The supervisor died before the signal was armed.
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start worker {i}: {e}"))?;
        let generation = w.generation;
        if let Some(out) = child.stdout.take() {
            let tx = self.tx.clone();
            let reader = std::thread::Builder::new()
                .name(format!("c10k-worker-{i}"))
                .spawn(move || {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(Event::Line(i, generation, line)).is_err() {
                            break;
                        }
                    }
                });
            if let Err(e) = reader {
                // Nobody would hear it say it listens: it goes rather than run unsupervised.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot start a thread for worker {i}: {e}"));
            }
        }
        log::debug!("worker {i} started (pid {})", child.id());
        w.child = Some(child);
        w.started = Instant::now();
        w.ready = false;
        w.restart_at = None;
        Ok(())
    }

    /// Waits until every worker listens, then prints the line scripts wait for (after the TLS
    /// listener's, if there is one).
    fn start_up(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut first_line = None;
        let mut tls_line = None;
        while !self.workers.iter().all(|w| w.ready) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.stop_all(SIGTERM);
                return Err(format!(
                    "the workers did not all start listening within {} s",
                    STARTUP_TIMEOUT.as_secs()
                ));
            }
            match self.rx.recv_timeout(left.min(TICK)) {
                Ok(Event::Line(i, generation, line)) => {
                    let current = generation == self.workers[i].generation;
                    if current && self.is_tls_listening(&line) {
                        tls_line.get_or_insert(line);
                    } else if current && is_listening(&line) {
                        self.workers[i].ready = true;
                        first_line.get_or_insert(line);
                    } else {
                        say(&line);
                    }
                }
                Ok(Event::Signal(SIGCHLD)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Event::Signal(sig @ (SIGUSR1 | SIGHUP))) => self.forward(sig),
                Ok(Event::Signal(sig)) => return self.shut_down(sig),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("lost the signal thread".to_owned()),
            }
            if let Some((i, _, status)) = self.reap().into_iter().next() {
                self.stop_all(SIGTERM);
                return Err(format!("worker {i} {} during start-up", describe(status)));
            }
        }
        if let Some(line) = tls_line {
            say(&line);
        }
        let line = first_line.unwrap_or_default();
        let p = self.workers.len();
        let procs = format!("{p} process{} x ", if p == 1 { "" } else { "es" });
        match line.find('(') {
            Some(at) => say(&format!("{}({procs}{}", &line[..at], &line[at + 1..])),
            None => say(&format!(
                "c10k listening on ws://{}/ ({procs}workers)",
                self.plan.addr
            )),
        }
        Ok(())
    }

    /// Restarts workers that die, as often as they die, until a signal.
    fn supervise(&mut self) -> Result<(), String> {
        loop {
            let now = Instant::now();
            let next_restart = self.workers.iter().filter_map(|w| w.restart_at).min();
            let wait = next_restart.map_or(TICK, |t| t.saturating_duration_since(now).min(TICK));
            match self.rx.recv_timeout(wait) {
                Ok(Event::Line(i, generation, line)) => {
                    let tls_line = self.is_tls_listening(&line);
                    let w = &mut self.workers[i];
                    let starting = generation == w.generation && !w.ready;
                    if starting && tls_line {
                        // Said once at the start already.
                    } else if starting && is_listening(&line) {
                        w.ready = true;
                        log::info!(
                            "worker {i} (pid {}) is listening again (deaths of worker {i} so far: {})",
                            w.pid().unwrap_or(0),
                            w.deaths
                        );
                    } else {
                        say(&line);
                    }
                }
                Ok(Event::Signal(SIGCHLD)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Event::Signal(SIGUSR1)) => {
                    self.forward(SIGUSR1);
                    say(&self.counts_line());
                }
                Ok(Event::Signal(SIGHUP)) => self.forward(SIGHUP),
                Ok(Event::Signal(sig)) => return self.shut_down(sig),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("lost the signal thread".to_owned()),
            }
            for (i, pid, status) in self.reap() {
                self.died(i, Some(pid), status);
            }
            let now = Instant::now();
            for i in 0..self.workers.len() {
                if self.workers[i].restart_at.is_some_and(|t| t <= now)
                    && let Err(e) = self.spawn(i)
                {
                    log::error!("{e}");
                    self.died(i, None, None);
                }
            }
        }
    }

    /// Counts a worker's death, logs it with its counts, and plans its restart.
    fn died(&mut self, i: usize, pid: Option<u32>, status: Option<ExitStatus>) {
        self.deaths += 1;
        let total = self.deaths;
        let w = &mut self.workers[i];
        w.deaths += 1;
        // A worker that could not be started or waited for has no time up to go by.
        let up = status.map(|_| w.started.elapsed());
        let pause = w.backoff.on_death(up);
        w.restart_at = Some(Instant::now() + pause);
        let pid = pid.map_or_else(String::new, |p| format!(" (pid {p})"));
        let up = up.map_or_else(String::new, |u| format!(" after {:.1} s up", u.as_secs_f64()));
        log::warn!(
            "worker {i}{pid} {}{up}: death {} of worker {i}, {total} in all; restarting it in {pause:?}",
            describe(status),
            w.deaths
        );
    }

    /// The supervisor's own counts for SIGUSR1: `c10k supervisor {JSON}`.
    fn counts_line(&self) -> String {
        let listening = self.workers.iter().filter(|w| w.ready).count();
        let per_worker: Vec<String> = self.workers.iter().map(|w| w.deaths.to_string()).collect();
        format!(
            "c10k supervisor {{\"workers\":{},\"listening\":{listening},\"deaths\":{},\"worker_deaths\":[{}]}}",
            self.workers.len(),
            self.deaths,
            per_worker.join(",")
        )
    }

    /// Collects the workers that have exited: (index, pid, status).
    fn reap(&mut self) -> Vec<(usize, u32, Option<ExitStatus>)> {
        let mut out = Vec::new();
        for w in &mut self.workers {
            let Some(child) = w.child.as_mut() else { continue };
            let pid = child.id();
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    w.child = None;
                    w.ready = false;
                    out.push((w.index, pid, Some(status)));
                }
                Err(e) => {
                    log::error!("worker {}: cannot wait for it: {e}", w.index);
                    w.child = None;
                    w.ready = false;
                    out.push((w.index, pid, None));
                }
            }
        }
        out
    }

    /// Forwards `sig` to every worker, waits for them to drain and exit, and says how it went.
    fn shut_down(&mut self, sig: i32) -> Result<(), String> {
        log::info!(
            "signal {sig}: stopping {} workers (again to exit at once)",
            self.live()
        );
        let clean = self.stop_all(sig);
        if clean {
            Ok(())
        } else {
            Err("not every worker exited cleanly".to_owned())
        }
    }

    /// Whether `line` is a worker's line about its TLS listener beside the main one
    /// (`--tls-addr`), which comes before the line that says it is ready.
    fn is_tls_listening(&self, line: &str) -> bool {
        self.plan
            .tls_addr
            .is_some_and(|a| line.starts_with(&format!("c10k listening on wss://{a}/ ")))
    }

    /// Passes a signal on to every worker that is listening (SIGUSR1: each prints its
    /// statistics, and the line comes back through its stdout; SIGHUP: each reloads its TLS
    /// certificates). One still starting may not have its handlers yet, and the signal's default
    /// action would end it; it reads the certificate files as they are when it starts anyway.
    fn forward(&self, sig: i32) {
        for w in self.workers.iter().filter(|w| w.ready) {
            if let Some(pid) = w.pid() {
                signal(pid, sig);
            }
        }
    }

    fn live(&self) -> usize {
        self.workers.iter().filter(|w| w.child.is_some()).count()
    }

    /// Sends `sig` to every live worker and waits for all of them (a second SIGINT or SIGTERM
    /// kills them and exits at once; past the drain timeout and a grace period, SIGKILL).
    /// Returns whether every worker exited with status 0.
    fn stop_all(&mut self, sig: i32) -> bool {
        for w in &mut self.workers {
            w.restart_at = None;
            if let Some(pid) = w.pid() {
                signal(pid, sig);
            }
        }
        let deadline = Instant::now() + self.plan.drain_timeout + EXIT_GRACE;
        let mut clean = true;
        while self.live() > 0 {
            for (i, _, status) in self.reap() {
                match status {
                    Some(s) if s.success() => log::debug!("worker {i} exited"),
                    other => {
                        clean = false;
                        log::warn!("worker {i} {}", describe(other));
                    }
                }
            }
            if self.live() == 0 {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!("workers still running after the drain timeout: killing them");
                self.kill_all();
                return false;
            }
            match self.rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(Event::Signal(SIGINT | SIGTERM)) => {
                    log::warn!("signal again: killing the workers");
                    self.kill_all();
                    std::process::exit(130);
                }
                Ok(Event::Line(_, _, line)) => say(&line),
                Ok(Event::Signal(_)) | Err(_) => {}
            }
        }
        clean
    }

    fn kill_all(&mut self) {
        for w in &mut self.workers {
            if let Some(mut child) = w.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Writes a line on stdout; a reader that went away is not a reason to stop serving.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// How a worker ended, for the logs.
fn describe(status: Option<ExitStatus>) -> String {
    status.map_or("could not be started or waited for".to_owned(), |s| {
        format!("exited ({s})")
    })
}

/// Whether `line` is a worker's line that says it listens (on its main address, plain or TLS).
fn is_listening(line: &str) -> bool {
    line.starts_with("c10k listening on ws://") || line.starts_with("c10k listening on wss://")
}

/// Sends `sig` to a worker that has not been reaped yet (so its pid cannot belong to anyone else).
fn signal(pid: u32, sig: i32) {
    if let Err(e) = c10k_tools::loadgen::signal(pid, sig) {
        log::debug!("kill({pid}, {sig}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn worker_args_drop_processes_and_addr_in_both_spellings() {
        let args: Vec<OsString> = [
            "-q",
            "serve",
            "--processes",
            "2",
            "--addr=127.0.0.1:0",
            "--shards",
            "1",
            "--processes=3",
            "--addr",
            "127.0.0.1:0",
            "--tls-addr",
            "127.0.0.1:0",
            "--tls-addr=127.0.0.1:0",
            "--tls-cert",
            "c.pem",
            "--pin",
            "--addressed",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(
            strs(&worker_args(args)),
            [
                "-q",
                "serve",
                "--shards",
                "1",
                "--tls-cert",
                "c.pem",
                "--pin",
                "--addressed"
            ]
        );
    }
}
