//! Shared plumbing for the clients under test of c10k's client suite (`c10k check --serve`):
//! the command line, the case list, the URLs, the timeouts and the order of the run. Each
//! client binary supplies only its library's three exchanges ([`SuiteClient`]).
//!
//! The run: fetch the case ids from `BASE/cases` (one text message, ids separated by `\n`), then
//! for each id connect to `BASE/case/ID?agent=AGENT` and echo until the connection ends (30 s
//! at most: then the connection is dropped), then connect to `BASE/done?agent=AGENT`. A case
//! that fails is logged to stderr and the next one runs. Exit status 0 once `/done` was reached,
//! whatever the cases did; 1 if `/cases` could not be fetched or `/done` could not be reached;
//! 2 on bad usage. Progress goes to stdout, one line per case.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

/// How long one case may take before the client drops it and runs the next.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long fetching `/cases`, or the whole `/done` exchange, may take.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// More case ids than any suite has: a longer list is cut, so the run is bounded.
pub const MAX_CASES: usize = 100_000;

/// The message size limit the clients set where their library has one: the suite sends
/// messages up to 16 MiB.
pub const CLIENT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// One library's side of the run. Errors are text, for the log.
pub trait SuiteClient {
    /// Connects to `url` and returns the first text message (the case list), after letting
    /// the library finish the connection as it does.
    fn fetch_cases(&self, url: &str) -> impl Future<Output = Result<String, String>>;

    /// Connects to `url` and sends every text and binary message back as it came until the
    /// connection ends; returns how it ended (for instance `closed 1000`).
    fn echo(&self, url: &str) -> impl Future<Output = Result<String, String>>;

    /// Connects to `url` and lets the checker close. `Err` only when the opening handshake did
    /// not succeed (`/done` was not reached); what happens after it is logged by the caller
    /// through `Ok(Some(..))`.
    fn done(&self, url: &str) -> impl Future<Output = Result<Option<String>, String>>;
}

/// The command line: `PROG ws://HOST:PORT AGENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `ws://HOST:PORT`, without a trailing `/`.
    pub base: String,
    /// The name the client is tested under (sent percent-encoded).
    pub agent: String,
}

/// Parses `ws://HOST:PORT AGENT`; `Err(2)` after printing the usage.
pub fn parse_args(program: &str, args: impl IntoIterator<Item = String>) -> Result<Args, ExitCode> {
    let args: Vec<String> = args.into_iter().collect();
    match args.as_slice() {
        [base, agent] if base.starts_with("ws://") || base.starts_with("wss://") => Ok(Args {
            base: base.trim_end_matches('/').to_string(),
            agent: agent.clone(),
        }),
        _ => {
            eprintln!("usage: {program} ws://HOST:PORT AGENT");
            Err(ExitCode::from(2))
        }
    }
}

/// The ids of a case list, in order; malformed ones (outside `[A-Za-z0-9._-]`) are skipped with
/// a line on stderr, and at most [`MAX_CASES`] are kept.
pub fn case_ids(program: &str, list: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for id in list.split('\n').take(MAX_CASES) {
        let valid = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            ids.push(id.to_string());
        } else if !id.is_empty() {
            eprintln!("{program}: skipping a malformed case id {id:?}");
        }
    }
    ids
}

/// Percent-encodes everything but the unreserved characters of RFC 3986 (as JavaScript's
/// `encodeURIComponent` and Python's `quote(s, safe="")` nearly do).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs the whole suite with `client` on a tokio current-thread runtime; the process's exit
/// status.
pub fn run<C: SuiteClient>(program: &str, client: C) -> ExitCode {
    let args = match parse_args(program, std::env::args().skip(1)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run_suite(program, &client, &args))
}

async fn run_suite<C: SuiteClient>(program: &str, client: &C, args: &Args) -> ExitCode {
    let Args { base, agent } = args;
    let url = format!("{base}/cases");
    let list = match tokio::time::timeout(CONTROL_TIMEOUT, client.fetch_cases(&url)).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => {
            eprintln!("{program}: cannot fetch {base}/cases: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("{program}: cannot fetch {base}/cases: timed out");
            return ExitCode::FAILURE;
        }
    };
    let ids = case_ids(program, &list);
    println!("{} cases", ids.len());
    let agent = percent_encode(agent);
    for id in &ids {
        let url = format!("{base}/case/{id}?agent={agent}");
        match tokio::time::timeout(CASE_TIMEOUT, client.echo(&url)).await {
            Ok(Ok(end)) => println!("case {id}: {end}"),
            Ok(Err(e)) => eprintln!("{program}: case {id}: {e}"),
            Err(_) => eprintln!(
                "{program}: case {id}: no end after {} s, dropped",
                CASE_TIMEOUT.as_secs()
            ),
        }
    }
    let url = format!("{base}/done?agent={agent}");
    match tokio::time::timeout(CONTROL_TIMEOUT, client.done(&url)).await {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(after))) => eprintln!("{program}: /done: {after}"),
        Ok(Err(e)) => {
            eprintln!("{program}: cannot reach {base}/done: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("{program}: cannot reach {base}/done: timed out");
            return ExitCode::FAILURE;
        }
    }
    println!("done");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_parse() {
        let a = parse_args("p", ["ws://127.0.0.1:9/".to_string(), "a b".to_string()]).unwrap();
        assert_eq!(
            a,
            Args {
                base: "ws://127.0.0.1:9".into(),
                agent: "a b".into()
            }
        );
        assert!(parse_args("p", ["127.0.0.1:9".to_string(), "a".to_string()]).is_err());
        assert!(parse_args("p", ["ws://127.0.0.1:9".to_string()]).is_err());
    }

    #[test]
    fn ids_are_checked() {
        assert_eq!(
            case_ids("p", "1.1.1\nx_y-Z\n\nbad/id\n2"),
            ["1.1.1", "x_y-Z", "2"]
        );
        assert!(case_ids("p", "").is_empty());
    }

    #[test]
    fn agents_are_percent_encoded() {
        assert_eq!(percent_encode("ws 8.23/node~x"), "ws%208.23%2Fnode~x");
        assert_eq!(percent_encode("é&="), "%C3%A9%26%3D");
    }
}
