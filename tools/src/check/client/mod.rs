//! The conformance suite for WebSocket CLIENTS: c10k plays the server, one case per connection,
//! and judges what the client under test does (`c10k check --serve ADDR`).
//!
//! ## The URL contract (shared with every client program; do not change it without saying so)
//!
//! The client under test is an echo client that connects once per case.
//!
//! - `ws://ADDR/cases` (WebSocket upgrade): the checker sends ONE text message, the selected case
//!   ids separated by `"\n"` (no trailing newline), then a Close 1000. A plain HTTP `GET /cases`
//!   (no Upgrade) answers `200 text/plain` with the same list.
//! - `ws://ADDR/case/<ID>?agent=<NAME>`: runs case ID against the client named NAME. Case ids use
//!   only `[A-Za-z0-9._-]`; agent names are percent-decoded, at most 64 bytes.
//! - `ws://ADDR/done?agent=<NAME>`: the client says it is finished; the checker answers 101,
//!   sends Close 1000, and counts NAME as done.
//! - A client under test: fetch the list, then for each id connect to `/case/ID?agent=NAME` and
//!   echo every text or binary message back with the same type and payload (answering pings and
//!   closes the way its library does), until the connection ends; a connection that fails (a
//!   refused handshake, a reset) is logged and the next case runs. Then `/done`. Exit 0 once
//!   `/done` was sent, whatever the cases did. Usage of every client program: `PROG
//!   ws://HOST:PORT AGENT`.
//! - Each library runs in its DEFAULT configuration (what its users get), except that message
//!   size limits may be raised to 16 MiB where the library has one.
//!
//! Other paths are answered 404; a case or done URL without a valid `agent=` 400; a request to a
//! case URL that is not a valid client handshake (RFC 6455 4.1) is answered 400 and that case
//! FAILS for that client.
//!
//! ## What is judged
//!
//! Every frame a client sends must be masked (RFC 6455 5.1); one that is not FAILS its case,
//! whatever the case checks. Beyond that each case answers the upgrade (as RFC 6455 4.2.2 says,
//! in an unusual but valid way, agreeing to permessage-deflate, or in a way the client must
//! refuse), sends frames (whole, in chunks, broken on purpose) and waits for the client: an
//! echo, a pong, a Close with a given code, a refusal, the end of TCP. Verdicts are those of the
//! server suite, plus INFO where the RFC leaves the client free (how long it waits for the server
//! to close TCP, whether it takes a 16 MiB message). Each result keeps a transcript of the
//! connection.
//!
//! ```no_run
//! use std::net::TcpListener;
//! use c10k_tools::check::client::{self, ServeOptions};
//!
//! let listener = TcpListener::bind("127.0.0.1:9002").unwrap();
//! let options = ServeOptions { clients: vec!["mine".to_owned()], ..ServeOptions::default() };
//! for report in client::serve(listener, &options) {
//!     println!("{}", report.summary_line());
//! }
//! ```

mod case;
mod cases;
mod conn;
mod deflate;
mod http;
mod peer;
mod report;
mod script;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use case::{CLIENT_BIG_BOUND, CLIENT_BOUND, ClientCase, PlayFn, Played};
pub use conn::{MAX_FRAME, MAX_TRANSCRIPT_LINES, SHOWN_PAYLOAD};
pub use http::{MAX_AGENT, MAX_HEAD};
pub use report::{ClientCaseResult, ClientReport, to_json};

use super::Verdict;
use case::{Plan, sframe};

/// How long the checker waits, after a client answered its Close, before it closes TCP itself
/// in the `close.tcp` cases: a client that closes TCP in that time closed first.
pub const TCP_GRACE: Duration = Duration::from_secs(1);

/// Connections served at the same time; past it a connection is answered 503.
pub const MAX_CONNECTIONS: usize = 64;

/// Distinct agents one run keeps results for; a case URL of one more is answered 503.
pub const MAX_AGENTS: usize = 64;

/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the accept loop looks at the clock and the clients' state.
const POLL: Duration = Duration::from_millis(10);

/// How a `serve` run goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// The cases to run (a pattern as for [`super::matches()`]); all of them for `None`.
    pub cases: Option<String>,
    /// The clients expected: the run ends once every one of them said `/done`. Empty: once the
    /// first client says `/done`.
    pub clients: Vec<String>,
    /// The run ends after this long in any case; clients not done then are reported as such.
    pub wait: Duration,
    /// Multiplies every case's time bound.
    pub timeout_scale: f64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            cases: None,
            clients: Vec::new(),
            wait: Duration::from_secs(600),
            timeout_scale: 1.0,
        }
    }
}

impl ServeOptions {
    /// `bound` times the timeout scale.
    pub fn bound_of(&self, bound: Duration) -> Duration {
        super::Options {
            max_message: None,
            timeout_scale: self.timeout_scale,
        }
        .bound_of(bound)
    }
}

/// Every client case, in running order.
pub fn cases() -> Vec<ClientCase> {
    cases::all()
}

/// Keeps the cases that `pattern` selects (all of them for `None`): a comma-separated list of
/// ids, RFC sections, prefixes ending at a dot, or globs, as [`super::matches()`] reads them.
pub fn select(cases: Vec<ClientCase>, pattern: Option<&str>) -> Vec<ClientCase> {
    match pattern {
        None => cases,
        Some(p) => cases
            .into_iter()
            .filter(|c| {
                p.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .any(|p| super::matches_one(p, &c.id) || super::matches_one(p, c.section))
            })
            .collect(),
    }
}

/// One agent's state during a run.
#[derive(Debug, Default)]
struct Agent {
    done: bool,
    results: BTreeMap<String, ClientCaseResult>,
}

/// What the connection threads share.
struct Shared {
    cases: Vec<ClientCase>,
    ids: String,
    options: ServeOptions,
    /// Agents in the order they were first seen.
    agents: Mutex<Vec<(String, Agent)>>,
    live: AtomicUsize,
}

impl Shared {
    /// Runs `f` on the agent's state, adding the agent if there is room.
    fn with_agent<T>(&self, name: &str, f: impl FnOnce(&mut Agent) -> T) -> Option<T> {
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, a)) = agents.iter_mut().find(|(n, _)| n == name) {
            return Some(f(a));
        }
        if agents.len() >= MAX_AGENTS {
            return None;
        }
        agents.push((name.to_owned(), Agent::default()));
        agents.last_mut().map(|(_, a)| f(a))
    }

    fn finished(&self) -> bool {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if self.options.clients.is_empty() {
            agents.iter().any(|(_, a)| a.done)
        } else {
            self.options
                .clients
                .iter()
                .all(|c| agents.iter().any(|(n, a)| n == c && a.done))
        }
    }
}

/// Serves the selected cases on `listener` until the clients are done (see
/// [`ServeOptions::clients`]) or [`ServeOptions::wait`] passed; returns one report per client:
/// the named clients first, in their order, then any other agent seen, in the order of its
/// first request.
pub fn serve(listener: TcpListener, options: &ServeOptions) -> Vec<ClientReport> {
    serve_cases(listener, select(cases(), options.cases.as_deref()), options)
}

/// Serves `cases` (rather than the suite's, [`ServeOptions::cases`] aside) as [`serve`] does:
/// how `c10k fuzz --serve` serves its sequences.
pub fn serve_cases(
    listener: TcpListener,
    cases: Vec<ClientCase>,
    options: &ServeOptions,
) -> Vec<ClientReport> {
    let ids = cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join("\n");
    let shared = Arc::new(Shared {
        cases,
        ids,
        options: options.clone(),
        agents: Mutex::new(Vec::new()),
        live: AtomicUsize::new(0),
    });
    let until = Instant::now() + options.wait;
    // Non-blocking, so that the loop sees the clock and the clients' state between accepts.
    let _ = listener.set_nonblocking(true);
    while !shared.finished() && Instant::now() < until {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if shared.live.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    http::plain(&mut stream, 503, http::phrase(503), "too many connections\n");
                    continue;
                }
                shared.live.fetch_add(1, Ordering::SeqCst);
                let mine = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("check-client".to_owned())
                    .spawn(move || {
                        handle(stream, &mine);
                        mine.live.fetch_sub(1, Ordering::SeqCst);
                    });
                // No thread: the connection was dropped with the closure.
                if spawned.is_err() {
                    shared.live.fetch_sub(1, Ordering::SeqCst);
                }
            }
            // WouldBlock, or an error of one connection (aborted, out of descriptors): again
            // after a pause.
            Err(_) => std::thread::sleep(POLL),
        }
    }
    // Cases still running end within their bounds.
    let longest = shared
        .cases
        .iter()
        .map(|c| options.bound_of(c.bound))
        .max()
        .unwrap_or_default();
    let grace = Instant::now() + longest * 3 + TCP_GRACE;
    while shared.live.load(Ordering::SeqCst) > 0 && Instant::now() < grace {
        std::thread::sleep(POLL);
    }
    reports(&shared)
}

fn reports(shared: &Shared) -> Vec<ClientReport> {
    let mut agents = std::mem::take(&mut *shared.agents.lock().unwrap_or_else(|e| e.into_inner()));
    let mut order: Vec<(String, Agent)> = Vec::new();
    for name in &shared.options.clients {
        let agent = match agents.iter().position(|(n, _)| n == name) {
            Some(i) => agents.remove(i).1,
            None => Agent::default(),
        };
        order.push((name.clone(), agent));
    }
    order.extend(agents);
    order
        .into_iter()
        .map(|(agent, mut state)| ClientReport {
            agent,
            done: state.done,
            results: shared
                .cases
                .iter()
                .map(|c| {
                    state
                        .results
                        .remove(&c.id)
                        .unwrap_or_else(|| ClientCaseResult::not_run(c))
                })
                .collect(),
        })
        .collect()
}

/// Serves one connection: reads its head, routes it, answers.
fn handle(mut stream: TcpStream, shared: &Shared) {
    let start = Instant::now();
    let head = match http::read_head(&mut stream, start + HEAD_TIMEOUT) {
        Ok(h) => h,
        Err((0, _)) => return,
        Err((status, why)) => return http::plain(&mut stream, status, http::phrase(status), &why),
    };
    let (target, upgrade) = match http::target_of(&head.bytes) {
        Ok(t) => t,
        Err(why) => return http::plain(&mut stream, 400, http::phrase(400), &format!("{why}\n")),
    };
    let route = match http::route(&target) {
        Ok(r) => r,
        Err(why) => return http::plain(&mut stream, 400, http::phrase(400), &format!("{why}\n")),
    };
    match route {
        http::Route::Unknown(why) => http::plain(
            &mut stream,
            404,
            http::phrase(404),
            &format!("{why}: try /cases, /case/ID?agent=NAME, /done?agent=NAME\n"),
        ),
        http::Route::Cases if !upgrade => {
            http::plain(&mut stream, 200, http::phrase(200), &shared.ids);
        }
        http::Route::Cases => match http::check_handshake(&head.bytes) {
            Ok(offer) => {
                let text = sframe(true, 0, 0x1, shared.ids.as_bytes());
                upgrade_and_close(&mut stream, &offer, &text);
            }
            Err(why) => http::plain(&mut stream, 400, http::phrase(400), &format!("{why}\n")),
        },
        http::Route::Done { agent } => {
            // Only a valid request says it: a broken upgrade is answered 400 and counts for
            // nothing.
            let offer = match upgrade.then(|| http::check_handshake(&head.bytes)) {
                Some(Err(why)) => {
                    return http::plain(&mut stream, 400, http::phrase(400), &format!("{why}\n"));
                }
                Some(Ok(offer)) => Some(offer),
                None => None,
            };
            if shared.with_agent(&agent, |a| a.done = true).is_none() {
                return http::plain(&mut stream, 503, http::phrase(503), "too many agents\n");
            }
            match offer {
                Some(offer) => upgrade_and_close(&mut stream, &offer, &[]),
                None => http::plain(&mut stream, 200, http::phrase(200), "done\n"),
            }
        }
        http::Route::Case { id, agent } => {
            let Some(case) = shared.cases.iter().find(|c| c.id == id) else {
                let why = format!("no case {id:?} in this run (see /cases)\n");
                return http::plain(&mut stream, 404, http::phrase(404), &why);
            };
            run_case(stream, head, case, &agent, shared, start);
        }
    }
}

/// Answers a valid upgrade with 101, writes `frames`, then a Close 1000, and waits a little for
/// the client's Close.
fn upgrade_and_close(stream: &mut TcpStream, offer: &http::Offer, frames: &[u8]) {
    let mut out = http::accept(offer, None);
    out.extend_from_slice(frames);
    out.extend_from_slice(&case::sclose(1000, b""));
    let _ = stream.set_write_timeout(Some(HEAD_TIMEOUT));
    if stream.write_all(&out).is_ok() {
        let _ = stream.set_read_timeout(Some(TCP_GRACE));
        let mut sink = [0u8; 256];
        let _ = stream.read(&mut sink);
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn run_case(
    mut stream: TcpStream,
    head: http::Head,
    case: &ClientCase,
    agent: &str,
    shared: &Shared,
    start: Instant,
) {
    if shared.with_agent(agent, |_| ()).is_none() {
        return http::plain(&mut stream, 503, http::phrase(503), "too many agents\n");
    }
    let outcome = match http::check_handshake(&head.bytes) {
        Ok(offer) => {
            let bound = shared.options.bound_of(case.bound);
            match &case.plan {
                Plan::Script(script) => {
                    script::run(stream, head.leftover, &offer, bound, start, script.as_ref())
                }
                Plan::Played(play) => {
                    let p = play(stream, &head.bytes, bound);
                    script::Outcome {
                        verdict: p.verdict,
                        reason: p.reason,
                        observed: p.observed,
                        transcript: p.transcript,
                    }
                }
            }
        }
        Err(why) => {
            http::plain(&mut stream, 400, http::phrase(400), &format!("{why}\n"));
            let first = head.bytes.split(|&b| b == b'\r').next().unwrap_or_default();
            script::Outcome {
                verdict: Verdict::Fail,
                reason: format!(
                    "sent a request that is not a valid client handshake ({why}); a client must \
                     send a valid upgrade (RFC 6455 4.1)"
                ),
                observed: "sent an invalid upgrade request".to_owned(),
                transcript: vec![
                    format!("+0.000 ms  < {}", String::from_utf8_lossy(first)),
                    format!("> 400 Bad Request: {why}"),
                ],
            }
        }
    };
    let result = ClientCaseResult {
        id: case.id.clone(),
        group: case.group,
        section: case.section,
        description: case.description.clone(),
        sent: case.sent.clone(),
        observed: outcome.observed,
        verdict: outcome.verdict,
        reason: outcome.reason,
        transcript: outcome.transcript,
        elapsed: start.elapsed(),
    };
    shared.with_agent(agent, |a| a.results.insert(case.id.clone(), result));
}
