//! Authentication by another service, decided later: clients present a bearer token (an
//! `Authorization: Bearer ...` header, or `?token=...` from a browser, which cannot set headers
//! on a WebSocket); the shard leaves the handshake pending while a worker thread asks the
//! authentication service (a small HTTP service this example starts, answering in 20-100 ms);
//! the worker decides through `ServerHandle::decide`:
//!
//! - a good token: 101, and the user's name becomes the connection's state (echoes carry it);
//! - a bad or missing token: 401 with `WWW-Authenticate`;
//! - the service down, too slow for the handshake timeout, or its answer too long: 503.
//!
//! The shard serves its other connections meanwhile. Tokens: `alice-token`, `bob-token`; the
//! example's service answers a token `slow-MS-anything` (401) after MS milliseconds.
//!
//! A storm of handshakes cannot pile up work:
//!
//! - the jobs wait for a worker in a queue of [`DEFAULT_QUEUE`] (`--queue`); when it is full, the
//!   handshake is answered 503 with `Retry-After` at once;
//! - a worker drops a job whose handshake no longer waits (`ServerHandle::is_pending`: decided,
//!   answered 503 at its deadline, or the client left), and answers 503 at once to one with
//!   less than [`MIN_CALL`] left before its deadline;
//! - the whole call (connect, write, read) ends by three quarters of the handshake timeout
//!   after the request came ([`call_deadline`]), and sooner if its handshake stops waiting; the
//!   service's answer is read up to [`ask::MAX_ANSWER_BYTES`]; its socket is closed on every
//!   path;
//! - the token is percent-encoded in the request to the service, so that no token can change
//!   that request.
//!
//! What the queue and the workers turned away is counted on `GET /stats`.
//!
//! `cargo run --release --example auth`, then open http://127.0.0.1:9002/.
//! Options: `--addr ADDR`, `--auth-addr ADDR` (use a running service instead of starting one),
//! `--handshake-timeout-ms N` (default 2000), `--workers N` (default [`DEFAULT_WORKERS`]),
//! `--queue N` (default [`DEFAULT_QUEUE`]).

mod ask;
mod percent;
mod service;

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c10k::proto::{Message, Request};
use c10k::{ConnId, Ctx, Decision, Handler, HttpResponse, Server, ServerConfig, ServerHandle};

use ask::Outcome;

const PAGE: &str = include_str!("auth.html");

/// Worker threads calling the service, one call each at a time.
pub const DEFAULT_WORKERS: usize = 16;
/// Handshakes that may wait for a free worker; past it, 503 at once. A worker gets through
/// about ten calls a second from a service answering in 100 ms, so 16 workers clear this queue
/// within the default handshake timeout (2 s).
pub const DEFAULT_QUEUE: usize = 256;
/// The least time worth a call: a job with less left before its deadline is answered 503
/// without one.
pub const MIN_CALL: Duration = Duration::from_millis(20);

/// One handshake to decide: who asks, with what token, by when, and where to answer.
struct Job {
    id: ConnId,
    token: Vec<u8>,
    deadline: Instant,
    server: ServerHandle,
}

/// The connection's state: the name the authentication service gave for its token.
#[derive(Default)]
struct User(String);

/// What the queue and the workers did, for `GET /stats`.
#[derive(Default)]
struct Counts {
    /// Jobs queued for a worker.
    queued: AtomicU64,
    /// Handshakes answered 503 at once: the queue was full.
    queue_full: AtomicU64,
    /// Jobs dropped before the call: the handshake no longer waited.
    gone: AtomicU64,
    /// Jobs answered 503 without a call: too little time left.
    late: AtomicU64,
    /// Calls made to the service.
    calls: AtomicU64,
    /// Calls given up because their handshake stopped waiting meanwhile.
    abandoned: AtomicU64,
    /// Calls without a usable answer in time (answered 503).
    failed: AtomicU64,
}

impl Counts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, c) in [
            ("queued", &self.queued),
            ("queue_full", &self.queue_full),
            ("gone", &self.gone),
            ("late", &self.late),
            ("calls", &self.calls),
            ("abandoned", &self.abandoned),
            ("failed", &self.failed),
        ] {
            let _ = writeln!(out, "{name} {}", c.load(Ordering::Relaxed));
        }
        out
    }
}

struct Auth {
    jobs: SyncSender<Job>,
    handshake_timeout: Duration,
    counts: Arc<Counts>,
}

impl Handler for Auth {
    type State = User;

    fn on_handshake(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &Request<'_>) -> Decision<User> {
        let Some(token) = token(req) else {
            return unauthorized("a bearer token is required\n", "Bearer realm=\"c10k\"");
        };
        let job = Job {
            id,
            token,
            deadline: call_deadline(Instant::now(), self.handshake_timeout),
            server: ctx.server(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {
                Counts::add(&self.counts.queued);
                Decision::Pending
            }
            Err(TrySendError::Full(_)) => {
                Counts::add(&self.counts.queue_full);
                unavailable()
            }
            Err(TrySendError::Disconnected(_)) => unavailable(),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, user: &mut User, msg: Message<'_>) {
        let reply = format!("{}: {}", user.0, String::from_utf8_lossy(msg.as_bytes()));
        let _ = ctx.send_text(id, &reply);
    }

    fn on_http(&mut self, _ctx: &mut Ctx<'_>, req: &Request<'_>) -> HttpResponse {
        match req.path() {
            "/" => HttpResponse::html(200, PAGE),
            "/stats" => HttpResponse::text(200, &self.counts.render()),
            _ => HttpResponse::not_found(),
        }
    }
}

/// When the call for a request that came at `now` must be over: three quarters of the
/// handshake timeout later. The shard's deadline counts from the accept, a little earlier, so
/// the last quarter is the margin for the decision to reach the shard; a client that was slow
/// to send its request is answered 503 by the shard first, and the call, seeing that its
/// handshake no longer waits, ends then.
fn call_deadline(now: Instant, handshake_timeout: Duration) -> Instant {
    now + handshake_timeout / 4 * 3
}

/// The bearer token of a request: the `Authorization` header, else the `token` query parameter
/// (percent-decoded, as a browser's `encodeURIComponent` wrote it).
fn token(req: &Request<'_>) -> Option<Vec<u8>> {
    let header = req
        .header("authorization")
        .and_then(|v| v.strip_prefix(b"Bearer "))
        .map(<[u8]>::to_vec);
    let token = header.or_else(|| req.query().and_then(|q| percent::query_param(q, "token")))?;
    Some(token.trim_ascii().to_vec()).filter(|t| !t.is_empty())
}

fn unauthorized(body: &str, challenge: &str) -> Decision<User> {
    Decision::reject(401, body).with_header("WWW-Authenticate", challenge)
}

fn unavailable() -> Decision<User> {
    Decision::reject(503, "authentication service unavailable\n").with_header("Retry-After", "1")
}

/// A worker: takes jobs until the queue is gone, calls the service for those still waiting.
fn work(service: SocketAddr, queue: &Mutex<mpsc::Receiver<Job>>, counts: &Counts) {
    loop {
        let Ok(job) = queue.lock().map_err(drop).and_then(|q| q.recv().map_err(drop)) else {
            return;
        };
        if !job.server.is_pending(job.id) {
            Counts::add(&counts.gone);
            continue;
        }
        if job.deadline.saturating_duration_since(Instant::now()) < MIN_CALL {
            Counts::add(&counts.late);
            job.server.decide(job.id, unavailable());
            continue;
        }
        Counts::add(&counts.calls);
        let decision = match ask::ask(service, &job.token, &job.server, job.id, job.deadline) {
            Outcome::Answer(200, name) => {
                Decision::accept_with(User(String::from_utf8_lossy(&name).into_owned()))
            }
            Outcome::Answer(401, _) => unauthorized(
                "invalid token\n",
                "Bearer realm=\"c10k\", error=\"invalid_token\"",
            ),
            Outcome::Abandoned => {
                Counts::add(&counts.abandoned);
                continue;
            }
            Outcome::Answer(..) | Outcome::Failed => {
                Counts::add(&counts.failed);
                unavailable()
            }
        };
        job.server.decide(job.id, decision);
    }
}

fn main() -> std::io::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:9002".parse().unwrap();
    let mut auth_addr: Option<SocketAddr> = None;
    let mut handshake_ms = 2000;
    let mut workers = DEFAULT_WORKERS;
    let mut queue_len = DEFAULT_QUEUE;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        let bad = |e: &dyn std::fmt::Display| -> ! {
            eprintln!("auth: {a} {v:?}: {e}");
            std::process::exit(2)
        };
        match a.as_str() {
            "--addr" => addr = v.parse().unwrap_or_else(|e| bad(&e)),
            "--auth-addr" => auth_addr = Some(v.parse().unwrap_or_else(|e| bad(&e))),
            "--handshake-timeout-ms" => handshake_ms = v.parse().unwrap_or_else(|e| bad(&e)),
            "--workers" => match v.parse() {
                Ok(0) => bad(&"at least one worker"),
                Ok(n) => workers = n,
                Err(e) => bad(&e),
            },
            "--queue" => queue_len = v.parse().unwrap_or_else(|e| bad(&e)),
            _ => bad(&"unknown option (--addr, --auth-addr, --handshake-timeout-ms, --workers, --queue)"),
        }
    }
    let service = match auth_addr {
        Some(a) => a,
        None => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let a = listener.local_addr()?;
            std::thread::spawn(move || service::serve(listener));
            a
        }
    };
    // Workers that call the service: a blocking call each, never on a shard's thread.
    let (jobs, queue) = mpsc::sync_channel::<Job>(queue_len);
    let queue = Arc::new(Mutex::new(queue));
    let counts = Arc::new(Counts::default());
    for _ in 0..workers {
        let (queue, counts) = (Arc::clone(&queue), Arc::clone(&counts));
        std::thread::spawn(move || work(service, &queue, &counts));
    }
    let mut config = ServerConfig::default();
    config.addr = addr;
    config.handshake_timeout = Duration::from_millis(handshake_ms);
    let handshake_timeout = config.handshake_timeout;
    let server = Server::bind(config, move |_shard| Auth {
        jobs: jobs.clone(),
        handshake_timeout,
        counts: Arc::clone(&counts),
    })?;
    println!(
        "auth: listening on ws://{}/ (authentication service on {service})",
        server.local_addr()
    );
    server.run()
}
