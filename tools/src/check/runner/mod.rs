//! Runs scripts on raw TCP connections and judges what the server does.
//!
//! Each script gets a fresh connection and one deadline (the case's bound times the timeout
//! scale). A reader thread turns the server's bytes into frames (decoded with the core's
//! `decode_header`) and hands them over with their arrival time, so that writing never waits on
//! reading: a server may answer while a 16 MiB message is still going out. Everything the server
//! can do — echo, close with a code, drop the connection, answer HTTP, send garbage, stay silent —
//! is an outcome to classify; nothing it does makes the checker panic.
//!
//! One concern per file, in the order a script meets them:
//!
//! - [`wire`]: the connection's byte stream, plain TCP or TLS over it, with the deadline every
//!   read and write is held to;
//! - [`tls`]: the TLS handshake, and one TLS connection shared by the writer and the reader
//!   thread (`wss://`);
//! - [`handshake`]: the opening handshake (a standard upgrade, a raw request, or an upgrade that
//!   offers permessage-deflate) and the verdicts on the server's HTTP answer;
//! - [`transport`]: the stream for writing, the reader thread, and writes split at byte
//!   positions;
//! - [`script`]: the interpreter of a script's steps (write, send, expect, close, fail);
//! - [`transcript`]: the frames written and received, with their times, for reports;
//! - [`verdict`]: what happened compared with what the case expects, and how it is described.

mod handshake;
mod script;
#[cfg(feature = "tls")]
mod tls;
pub(crate) mod transcript;
mod transport;
mod verdict;
mod wire;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::check::Target;
use crate::check::Verdict;
use crate::check::case::{Open, Script};
use script::Interpreter;
use transcript::Transcript;
use transport::Transport;
use wire::Wire;

/// The outcome of one script.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub label: String,
    pub verdict: Verdict,
    /// Why the verdict is not PASS (the first reason of the worst kind).
    pub reason: String,
    /// What the server did, step by step.
    pub observed: Vec<String>,
    /// The longest time the server took to answer after the last byte sent before the answer.
    pub took: Duration,
    /// Why the script's steps did not run although nothing went wrong (the server declined an
    /// extension they need, which it may do).
    pub skipped: Option<String>,
    /// The frames written and received, with their times since the case started.
    pub transcript: Transcript,
}

impl Run {
    fn new(label: &str, started: Instant) -> Self {
        Self {
            transcript: Transcript::new(started),
            label: label.to_owned(),
            verdict: Verdict::Pass,
            reason: String::new(),
            observed: Vec::new(),
            took: Duration::ZERO,
            skipped: None,
        }
    }

    fn judge(&mut self, verdict: Verdict, why: impl Into<String>) {
        if verdict > self.verdict {
            self.verdict = verdict;
            self.reason = why.into();
        }
    }

    fn non_strict(&mut self, why: impl Into<String>) {
        self.judge(Verdict::NonStrict, why);
    }

    fn fail(&mut self, why: impl Into<String>) {
        self.judge(Verdict::Fail, why);
    }

    fn saw(&mut self, what: impl Into<String>) {
        let what = what.into();
        if self.observed.last() != Some(&what) {
            self.observed.push(what);
        }
    }
}

/// Runs one script against the target within `bound`; its transcript's times count from
/// `started`, the case's start.
pub(crate) fn run_script(target: &Target, script: &Script, bound: Duration, started: Instant) -> Run {
    let mut run = Run::new(&script.label, started);
    let deadline = Instant::now() + bound;
    let stream = match TcpStream::connect_timeout(&target.addr, bound) {
        Ok(s) => {
            run.transcript.note(Instant::now(), || "TCP connected".to_owned());
            s
        }
        Err(e) => {
            run.transcript
                .note(Instant::now(), || format!("TCP connect failed: {e}"));
            run.fail(format!("cannot connect to {}: {e}", target.addr));
            run.saw(format!("could not be reached ({})", e.kind()));
            return run;
        }
    };
    let _ = stream.set_nodelay(true);
    let wire = match open_wire(target, stream, deadline) {
        Ok(w) => w,
        Err(why) => {
            run.saw(why.clone());
            run.fail(why);
            return run;
        }
    };
    let Some((leftover, codec)) = handshake::open(target, &script.open, &wire, deadline, &mut run) else {
        wire.close();
        return run;
    };
    if matches!(script.open, Open::Deflate { requires: true, .. }) && codec.is_none() {
        run.skipped = Some(
            "the server declined permessage-deflate, which RFC 7692 allows: the steps that need it \
             did not run"
                .to_owned(),
        );
        wire.close();
        return run;
    }
    let transport = match Transport::start(wire, leftover, deadline) {
        Ok(t) => t,
        Err(e) => {
            run.fail(format!("cannot start reading: {e}"));
            return run;
        }
    };
    let mut interpreter = Interpreter::new(transport, codec);
    for step in &script.steps {
        if interpreter.ended() || run.verdict == Verdict::Fail {
            break;
        }
        interpreter.step(step, &mut run);
    }
    interpreter.finish();
    run
}

/// The connection's byte stream: the socket itself, or TLS over it after a handshake (whose
/// failure is why the script cannot run).
fn open_wire(target: &Target, stream: TcpStream, deadline: Instant) -> Result<Wire, String> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &target.tls {
        return tls::connect(stream, tls, deadline).map(Wire::Tls);
    }
    let _ = (target, deadline);
    Ok(Wire::Plain(stream))
}

/// The agreed TLS parameters of a connection to `target` (`None` for `ws://`), or why there
/// are none: one TLS handshake, for reports and for a clear error before a run.
pub(crate) fn tls_session(target: &Target, within: Duration) -> Result<Option<String>, String> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &target.tls {
        let deadline = Instant::now() + within;
        let stream = TcpStream::connect_timeout(&target.addr, within)
            .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
        let _ = stream.set_nodelay(true);
        let session = tls::connect(stream, tls, deadline)?;
        let agreed = session.describe();
        session.close();
        return Ok(Some(agreed));
    }
    let _ = (target, within);
    Ok(None)
}

/// Whether the server at `target`'s address speaks TLS (answers a ClientHello with TLS records).
#[cfg(feature = "tls")]
pub(crate) fn speaks_tls(target: &Target, within: Duration) -> bool {
    tls::answers_tls(target.addr, within)
}

/// Whether the server at `target`'s address speaks TLS: not known without the `tls` feature.
#[cfg(not(feature = "tls"))]
pub(crate) fn speaks_tls(_: &Target, _: Duration) -> bool {
    false
}

/// A duration for humans: `0.4 ms`, `12 ms`, `2.5 s`.
pub(crate) fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}
