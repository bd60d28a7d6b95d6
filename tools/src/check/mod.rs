//! A conformance suite for any WebSocket echo server, written from RFC 6455.
//!
//! The checker is a client that runs numbered cases against an echo server, each on a fresh TCP
//! connection (TLS over it for a `wss://` target: [`Target::parse_with_tls`]; the cases are the
//! same, their bytes go out as TLS records). It writes raw bytes — frames built with the core's [`encode_header`] and
//! [`apply_mask`], or deliberately broken ones — and judges what the server does: echo, close
//! with a code, drop the connection, answer with an HTTP status, or nothing within the case's
//! time bound. Every case ends with a [`Verdict`]:
//!
//! - **PASS**: what the RFC asks for.
//! - **NON-STRICT**: allowed, but not the best answer: the connection dropped without a Close
//!   frame where the RFC says to fail it with one, an acceptable close code other than the one for
//!   the error, an HTTP error status other than the one the RFC names.
//! - **FAIL**: the server accepted what it must reject, answered wrongly, or did not answer.
//! - **SKIPPED**: the case could not run (the server declined permessage-deflate, which the
//!   case needs): neither passed nor failed.
//!
//! ```text
//!  cases() ──► [Case] ──select──► run() ──► for each case: plan(target) ──► [Script]
//!                                             │ one fresh connection per script
//!                                             ▼
//!                       runner: open (upgrade or raw request) ─► steps (write, expect, ...)
//!                               reader thread: socket ─► frames ─► judged against the step
//!                                             ▼
//!                                  CaseResult ──► Report (text lines or one JSON object)
//! ```
//!
//! The cases are grouped by the RFC's sections ([`Group`]): framing, ping/pong, reserved bits
//! and opcodes, fragmentation, UTF-8, limits, the closing handshake, the opening handshake, and
//! permessage-deflate (RFC 7692, whose sections read `rfc7692.N`). Case ids are `group.sub.n`;
//! [`matches()`] selects them by id or RFC section, as a prefix or a glob.
//!
//! The permessage-deflate cases offer the extension; a server may decline it (RFC 7692 allows
//! that), and then the cases that need it do not run: their verdict is SKIPPED, counted as such
//! in the summary line. When it is agreed, the checker
//! compresses what it sends as agreed and inflates what the server sends with its own inflater,
//! checking every compressed reply: RSV1 on the first frame of a data message only, the
//! `00 00 ff ff` tail removed, data that inflates, the echo byte for byte.
//!
//! ```no_run
//! use c10k_tools::check::{self, Options, Target};
//!
//! let target = Target::parse("ws://127.0.0.1:9001/").unwrap();
//! let options = Options { max_message: Some(1 << 20), ..Options::default() };
//! let cases = check::select(check::cases(&options), Some("utf8.*"));
//! let report = check::run(&target, &cases, &options, |r| println!("{} {}", r.verdict, r.id));
//! println!("{}", report.summary_line());
//! ```
//!
//! The same groups, turned around, make the suite for WebSocket CLIENTS ([`client`], `c10k check
//! --serve ADDR`): there the checker is the server, and the client under test echoes.
//!
//! [`encode_header`]: c10k::proto::frame::encode_header
//! [`apply_mask`]: c10k::proto::mask::apply_mask

mod case;
mod cases;
pub mod client;
mod deflate;
pub mod html;
mod probe;
mod regress;
mod report;
mod runner;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use case::{BIG_BOUND, Case, DEFAULT_BOUND, Group};
pub use probe::probe;
pub use regress::{REGRESSION_BOUND, regression_files, regression_id, run_regression};
pub(crate) use report::string as json_string;
pub use report::{CaseResult, Counts, Report};

use c10k::client::{ClientError, WsUrl};

/// How many connections of one case run at the same time (cases with many connections, like
/// the close code ranges).
const PARALLEL_RUNS: usize = 8;

/// What the checker knows about the server, and how patient it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The server's message size limit, if known: the limit cases run only when it is given,
    /// and echo cases above it expect 1009 instead.
    pub max_message: Option<usize>,
    /// Multiplies every case's time bound.
    pub timeout_scale: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_message: None,
            timeout_scale: 1.0,
        }
    }
}

impl Options {
    /// The bound of one connection of `case`.
    pub fn bound(&self, case: &Case) -> Duration {
        self.bound_of(case.bound)
    }

    /// `bound` times the timeout scale.
    pub fn bound_of(&self, bound: Duration) -> Duration {
        let scale = if self.timeout_scale.is_finite() && self.timeout_scale > 0.0 {
            self.timeout_scale
        } else {
            1.0
        };
        bound.mul_f64(scale)
    }
}

/// The server under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The `Host` header field value.
    pub host: String,
    /// The request target (path and query).
    pub path: String,
    /// For `wss://`: the TLS client settings and the server's name; `None` for `ws://`.
    #[cfg(feature = "tls")]
    pub tls: Option<TargetTls>,
}

/// How a `wss://` target is reached: every connection runs a TLS handshake with these settings
/// before the WebSocket opening handshake.
#[cfg(feature = "tls")]
#[derive(Debug, Clone)]
pub struct TargetTls {
    /// The client settings (whom to trust: see [`c10k::tls::client_config`]).
    pub config: std::sync::Arc<rustls::ClientConfig>,
    /// The name the certificate must have, sent as SNI when it is a DNS name (an IP address is
    /// not sent, as RFC 6066 3 says).
    pub name: rustls::pki_types::ServerName<'static>,
}

impl Target {
    /// Parses and resolves a `ws://host:port/path` URL. A `wss://` URL needs TLS settings:
    /// [`Target::parse_with_tls`].
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let parsed = WsUrl::parse(url)?;
        if parsed.secure {
            return Err(ClientError::Url(format!(
                "{url:?}: a wss:// URL needs TLS settings ({})",
                if cfg!(feature = "tls") {
                    "Target::parse_with_tls"
                } else {
                    "the tls feature"
                }
            )));
        }
        Self::resolve(&parsed)
    }

    /// Parses and resolves a `ws://` or `wss://` URL; `tls` (required for `wss://`, refused
    /// for `ws://`) says whom a `wss://` target's certificate must be trusted by.
    #[cfg(feature = "tls")]
    pub fn parse_with_tls(
        url: &str,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Self, ClientError> {
        let parsed = WsUrl::parse(url)?;
        let mut target = Self::resolve(&parsed)?;
        target.tls = match (parsed.secure, tls) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(ClientError::Url(format!(
                    "{url:?}: a ws:// URL takes no TLS settings"
                )));
            }
            (true, None) => {
                return Err(ClientError::Url(format!(
                    "{url:?}: a wss:// URL needs TLS settings"
                )));
            }
            (true, Some(config)) => {
                let host = parsed.host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| ClientError::Url(format!("{url:?}: {host}: {e}")))?;
                Some(TargetTls { config, name })
            }
        };
        Ok(target)
    }

    fn resolve(url: &WsUrl) -> Result<Self, ClientError> {
        Ok(Self {
            addr: url.socket_addr()?,
            host: url.host_header(),
            path: url.target.clone(),
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Whether the target is reached over TLS (`wss://`).
    #[cfg(feature = "tls")]
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the target is reached over TLS (`wss://`): never without the `tls` feature.
    #[cfg(not(feature = "tls"))]
    pub fn is_tls(&self) -> bool {
        false
    }

    /// The URL, for reports.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.is_tls() { "wss" } else { "ws" },
            self.host,
            self.path
        )
    }
}

/// A case's verdict. Ordered from best to worst: the verdict of a case that opens several
/// connections is the worst of theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// What the RFC asks for.
    Pass,
    /// Informational: what the peer did where the RFC leaves it free (how long a client waits
    /// before closing TCP itself, whether a 16 MiB message is echoed or refused). No judgment.
    Info,
    /// Not run: the server declined an extension the case needs, which it may do. Neither passed
    /// nor failed.
    Skipped,
    /// Allowed, not ideal.
    NonStrict,
    /// Wrong.
    Fail,
}

impl Verdict {
    /// `PASS`, `INFO`, `SKIPPED`, `NON-STRICT` or `FAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Info => "INFO",
            Verdict::Skipped => "SKIPPED",
            Verdict::NonStrict => "NON-STRICT",
            Verdict::Fail => "FAIL",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Every case, in running order, for a server described by `options`.
pub fn cases(options: &Options) -> Vec<Case> {
    cases::all(options).0
}

/// Notes about cases that were left out (the limit cases without `max_message`).
pub fn notes(options: &Options) -> Vec<String> {
    cases::all(options).1
}

/// Keeps the cases that `pattern` selects (all of them for `None`); see [`matches()`].
pub fn select(cases: Vec<Case>, pattern: Option<&str>) -> Vec<Case> {
    match pattern {
        None => cases,
        Some(p) => cases.into_iter().filter(|c| matches(p, c)).collect(),
    }
}

/// Whether `pattern` selects `case`.
///
/// The pattern is a comma-separated list; each item selects the cases whose id or RFC section
/// it matches, either as a glob (`*` for any run of characters, `?` for one) or as a prefix that
/// ends at a dot: `utf8` and `utf8.2` select `utf8.2.14`, `5.*` selects every case of RFC
/// section 5, `*.1` the first case of every subgroup.
pub fn matches(pattern: &str, case: &Case) -> bool {
    pattern
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| matches_one(p, &case.id) || matches_one(p, case.section))
}

pub(crate) fn matches_one(pattern: &str, name: &str) -> bool {
    if pattern.contains(['*', '?']) {
        return glob(pattern.as_bytes(), name.as_bytes());
    }
    name == pattern
        || name
            .strip_prefix(pattern)
            .is_some_and(|rest| rest.starts_with('.') || pattern.ends_with('.'))
}

/// `*` and `?` globbing, iterative with one backtrack point.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Runs one case: each of its scripts on a fresh connection (several at a time when there are
/// many), and combines their outcomes.
pub fn run_case(target: &Target, case: &Case, options: &Options) -> CaseResult {
    let started = Instant::now();
    let bound = options.bound(case);
    let scripts = (case.plan)(target);
    let runs: Vec<runner::Run> = if scripts.len() <= 1 {
        scripts
            .iter()
            .map(|s| runner::run_script(target, s, bound, started))
            .collect()
    } else {
        // After a FAIL the case's verdict is known: no more connections are started, so that a
        // server that does not answer costs a few bounds, not thousands.
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let out = Mutex::new(Vec::with_capacity(scripts.len()));
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL_RUNS.min(scripts.len()) {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(script) = scripts.get(i) else {
                            return;
                        };
                        let run = runner::run_script(target, script, bound, started);
                        if run.verdict == Verdict::Fail {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if let Ok(mut out) = out.lock() {
                            out.push((i, run));
                        }
                    }
                });
            }
        });
        let mut runs = out.into_inner().unwrap_or_else(|e| e.into_inner());
        runs.sort_by_key(|(i, _)| *i);
        runs.into_iter().map(|(_, r)| r).collect()
    };
    report::combine(case, runs, scripts.len(), started.elapsed())
}

/// Runs `cases` in order; `on_result` sees each result as soon as it is known.
pub fn run(
    target: &Target,
    cases: &[Case],
    options: &Options,
    mut on_result: impl FnMut(&CaseResult),
) -> Report {
    let started = Instant::now();
    // Over TLS, what was agreed goes in the report, from one handshake of its own.
    let tls = target
        .is_tls()
        .then(|| match probe(target, options.bound_of(DEFAULT_BOUND)) {
            Ok(agreed) => agreed.unwrap_or_else(|| "TLS".to_owned()),
            Err(e) => format!("TLS (a first handshake failed: {e})"),
        });
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let r = run_case(target, case, options);
        on_result(&r);
        results.push(r);
    }
    let mut notes = notes(options);
    let skipped = results.iter().filter(|r| r.verdict == Verdict::Skipped).count();
    if skipped > 0 {
        notes.push(format!(
            "deflate: {skipped} case{} SKIPPED: the server declined permessage-deflate, which RFC \
             7692 allows, and {} the extension",
            if skipped == 1 { " was" } else { "s were" },
            if skipped == 1 { "it needs" } else { "they need" }
        ));
    }
    if let Some(agreed) = &tls {
        notes.push(format!(
            "over TLS ({agreed}): every connection ran a TLS handshake before its opening \
             handshake; the server's close_notify, or a TCP FIN without one, is the server closing \
             the connection, as browsers take it"
        ));
    }
    Report {
        target: target.url(),
        tls,
        results,
        notes,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_and_question_marks() {
        assert!(glob(b"5.*", b"5.5.2"));
        assert!(glob(b"utf8.*", b"utf8.2.14"));
        assert!(glob(b"*.1", b"close.3.1"));
        assert!(glob(b"u?f8.*.1", b"utf8.9.1"));
        assert!(!glob(b"5.*", b"4.2.1"));
        assert!(!glob(b"utf8.*", b"utf8"));
        assert!(glob(b"*", b""));
    }

    #[test]
    fn prefixes_end_at_a_dot() {
        assert!(matches_one("utf8", "utf8.2.14"));
        assert!(matches_one("utf8.2", "utf8.2.14"));
        assert!(!matches_one("utf8.1", "utf8.10.1"));
        assert!(matches_one("utf8.1.", "utf8.1.3"));
        assert!(matches_one("5", "5.5.2"));
    }

    #[test]
    fn case_ids_are_unique_and_there_are_hundreds() {
        let options = Options {
            max_message: Some(1 << 20),
            ..Options::default()
        };
        let all = cases(&options);
        let mut ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        // The list itself is pinned by tools/tests/check_cases.txt (tests/check_suite.rs).
        assert!(all.len() >= 300, "{}", all.len());
        for group in Group::ALL {
            assert!(all.iter().any(|c| c.group == group), "{group}");
        }
    }

    #[test]
    fn limit_cases_need_the_limit() {
        let without = cases(&Options::default());
        assert!(without.iter().all(|c| c.group != Group::Limits));
        assert!(!notes(&Options::default()).is_empty());
    }

    #[test]
    fn selection_by_section_and_id() {
        let all = cases(&Options::default());
        let utf8 = select(all.clone(), Some("utf8.*"));
        assert!(!utf8.is_empty() && utf8.iter().all(|c| c.group == Group::Utf8));
        let handshake = select(all.clone(), Some("4.*"));
        assert!(!handshake.is_empty() && handshake.iter().all(|c| c.section.starts_with("4.")));
        let two = select(all, Some("framing.1.1, ping.1.1"));
        assert_eq!(two.len(), 2);
    }
}
