//! Before a run: whether the server can be reached the way the URL says. When it cannot, one
//! line says why (nothing listens, the certificate is refused, TLS on one side only) instead of
//! every case failing for the same reason.

use std::net::TcpStream;
use std::time::Duration;

use super::case::{Open, Script};
use super::{Target, Verdict, runner};

/// Connects to `target` once. For `wss://`, runs a TLS handshake and returns what was agreed
/// (version, cipher suite, ALPN). For `ws://`, runs a standard upgrade; when it is not accepted
/// and the server answers a TLS ClientHello, that is the error (the URL should be `wss://`).
/// An upgrade refused for any other reason is no error here: the cases judge it.
pub fn probe(target: &Target, within: Duration) -> Result<Option<String>, String> {
    if target.is_tls() {
        return runner::tls_session(target, within);
    }
    drop(
        TcpStream::connect_timeout(&target.addr, within)
            .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?,
    );
    let upgrade = Script {
        label: String::new(),
        open: Open::Standard,
        steps: Vec::new(),
    };
    let run = runner::run_script(target, &upgrade, within, std::time::Instant::now());
    if run.verdict != Verdict::Pass && runner::speaks_tls(target, within) {
        return Err(format!(
            "the server at {} speaks TLS: use a wss:// URL (the plain upgrade got: {})",
            target.addr,
            run.observed.join("; ")
        ));
    }
    Ok(None)
}
