//! The conformance suite over TLS (`c10k check wss://...`): every pinned case runs and passes
//! against `c10k serve --tls-cert --tls-key` (a test CA made here); the report says the run was
//! over TLS, in text and JSON; the URL's host name is the SNI and an IP address sends none; an
//! untrusted certificate, a plain server on a wss:// URL and a TLS server on a ws:// URL are each
//! one clear line; a server that drops TCP without close_notify has closed (as for browsers),
//! and records that do not decrypt are garbage; replay files, which c10k fuzz's driver plays over
//! ws:// only, are SKIPPED with the reason.

#![cfg(feature = "tls")]

#[path = "common/cases.rs"]
mod cases;
#[path = "../../tests/common/pki.rs"]
mod pki;
#[path = "common/procs.rs"]
mod procs;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use c10k::proto::handshake::accept_key;
use c10k::tls::rustls;
use c10k::tls::{Trust, client_config};
use c10k_tools::check::{self, CaseResult, Options, Target, Verdict};
use cases::{assert_whole_suite_passed, failures};
use pki::{Leaf, Pki};
use procs::{EXE, Serve};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// `c10k serve` speaking TLS on its address, with a certificate for `localhost` and 127.0.0.1
/// from a CA made here.
fn serve_tls(tag: &str, extra: &[&str]) -> (Serve, Pki) {
    let pki = Pki::new(tag);
    let leaf = pki.leaf("leaf", &["localhost", "127.0.0.1"]);
    let server = Serve::start(&tls_args(&leaf, extra));
    assert!(server.url.starts_with("wss://"), "{}", server.url);
    (server, pki)
}

fn tls_args<'a>(leaf: &'a Leaf, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-q",
        "--tls-cert",
        leaf.cert.to_str().unwrap(),
        "--tls-key",
        leaf.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

fn wss_target(url: &str, ca: &Path) -> Target {
    Target::parse_with_tls(url, Some(client_config(Trust::CaFile(ca)).unwrap())).unwrap()
}

fn check_cli(args: &[&str]) -> Output {
    Command::new(EXE).arg("check").args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_case_passes_over_wss_against_c10k_serve_with_tls() {
    let (server, pki) = serve_tls("check-all", &["--max-message", "1048576"]);
    let target = wss_target(&format!("wss://localhost:{}/", server.addr.port()), pki.ca());
    let options = Options {
        max_message: Some(1 << 20),
        ..Options::default()
    };
    let report = check::run(&target, &check::cases(&options), &options, |_| {});
    let stats = server.stats();
    drop(server);
    let line = report.summary_line();
    assert_whole_suite_passed(&report.results, &line);
    // It was TLS, every connection of it, and the report says so.
    assert_eq!(report.target, target.url());
    assert!(report.target.starts_with("wss://localhost:"), "{}", report.target);
    let agreed = report.tls.clone().expect("the report says what TLS was agreed");
    assert!(
        agreed.starts_with("TLS 1.3, TLS13_") && agreed.ends_with("ALPN http/1.1"),
        "{agreed}"
    );
    assert!(
        report.notes.iter().any(|n| n.starts_with("over TLS (TLS 1.3")),
        "{:?}",
        report.notes
    );
    assert!(report.to_json().contains(&format!("\"tls\":\"{agreed}\"")));
    assert!(
        stats.get("tls_handshakes") > report.results.len() as u64,
        "{}",
        stats.0
    );
}

#[test]
fn framing_echoes_16_mib_over_wss_when_no_limit_is_given() {
    let (server, pki) = serve_tls("check-16mib", &[]);
    let target = wss_target(&format!("wss://localhost:{}/", server.addr.port()), pki.ca());
    let options = Options::default();
    let cases = check::select(check::cases(&options), Some("framing.1,framing.2"));
    let report = check::run(&target, &cases, &options, |_| {});
    drop(server);
    let line = report.summary_line();
    assert!(
        report.results.iter().any(|r| r.description.contains("16 MiB")),
        "{line}"
    );
    let bad = failures(&report.results);
    assert!(bad.is_empty(), "{line}\n{bad}");
}

#[test]
fn the_cli_says_the_run_was_over_tls_in_text_and_json() {
    let (server, pki) = serve_tls("check-cli", &[]);
    let url = format!("wss://localhost:{}/", server.addr.port());
    let ca = pki.ca().to_str().unwrap();
    let out = check_cli(&[&url, "--tls-ca", ca, "--cases", "ping.1,close.1.1", "--json"]);
    let json = text(&out.stdout);
    assert!(out.status.success(), "{json}{}", text(&out.stderr));
    assert!(
        json.starts_with(&format!("{{\"target\":\"{url}\",\"tls\":\"TLS 1.3, ")),
        "{json}"
    );
    assert!(
        json.contains("\"summary\":{\"total\":11,\"pass\":11,\"skipped\":0,\"non_strict\":0,\"fail\":0,"),
        "{json}"
    );
    let out = check_cli(&[&url, "--insecure", "--cases", "close.2.2"]);
    let lines = text(&out.stdout);
    assert!(out.status.success(), "{lines}{}", text(&out.stderr));
    let last = lines.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("1 cases: 1 PASS, 0 SKIPPED, 0 NON-STRICT, 0 FAIL against wss://localhost:")
            && last.contains(" over TLS 1.3, "),
        "{lines}"
    );
    assert!(lines.contains("note: over TLS (TLS 1.3"), "{lines}");
    // Plain runs say nothing of TLS.
    let plain = Serve::start(&["-q"]);
    let out = check_cli(&[&plain.url, "--cases", "ping.1.1", "--json"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("\"tls\":null,"),
        "{}",
        text(&out.stdout)
    );
}

/// An error before any case: exit status 1, one line on stderr that says `what`, nothing on
/// stdout.
fn one_line_error(args: &[&str], what: &str) {
    let out = check_cli(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}{}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("c10k: ") && err.contains(what), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
}

#[test]
fn wrong_trust_and_wrong_schemes_are_one_clear_line() {
    let (server, _pki) = serve_tls("check-errors", &[]);
    let port = server.addr.port();
    let wss = format!("wss://localhost:{port}/");
    // A certificate from a CA the checker was not told to trust.
    let other = Pki::new("check-other-ca");
    one_line_error(
        &[&wss, "--tls-ca", other.ca().to_str().unwrap()],
        // (Both test CAs have the same name: the refusal is the signature's.)
        "the server's certificate was refused (invalid peer certificate: ",
    );
    one_line_error(&[&wss], "wss:// needs --tls-ca FILE or --insecure");
    // A TLS server on a ws:// URL.
    one_line_error(
        &[&format!("ws://localhost:{port}/")],
        &format!("the server at 127.0.0.1:{port} speaks TLS: use a wss:// URL"),
    );
    // A plain server on a wss:// URL.
    let plain = Serve::start(&["-q"]);
    one_line_error(
        &[&format!("wss://localhost:{}/", plain.addr.port()), "--insecure"],
        "the server answered the TLS ClientHello with plain HTTP (\"HTTP/1.1 400 Bad Request\"): it \
         does not speak TLS on this port",
    );
    // Nothing listening.
    let free = procs::free_port();
    one_line_error(
        &[&format!("wss://localhost:{free}/"), "--insecure"],
        "cannot connect",
    );
}

#[test]
fn sni_is_the_url_host_name_and_an_ip_address_sends_none() {
    let pki = Pki::new("check-sni");
    // Only a client that asks for `localhost` by SNI gets a certificate valid for it.
    let default = pki.leaf("default", &["default.test"]);
    let named = pki.leaf("named", &["localhost", "127.0.0.1"]);
    let sni = format!("localhost={},{}", named.cert.display(), named.key.display());
    let server = Serve::start(&tls_args(&default, &["--tls-sni", &sni]));
    let port = server.addr.port();
    let by_name = wss_target(&format!("wss://localhost:{port}/"), pki.ca());
    let agreed = check::probe(&by_name, Duration::from_secs(10)).unwrap();
    assert!(agreed.is_some_and(|a| a.starts_with("TLS 1.3")));
    let by_address = wss_target(&format!("wss://127.0.0.1:{port}/"), pki.ca());
    let err = check::probe(&by_address, Duration::from_secs(10)).unwrap_err();
    assert!(
        err.contains("certificate was refused") && err.contains("default.test"),
        "{err}"
    );
    // A case's connections do the same.
    let options = Options::default();
    let cases = check::select(check::cases(&options), Some("ping.1.1"));
    let r = check::run(&by_address, &cases, &options, |_| {});
    assert_eq!(r.results[0].verdict, Verdict::Fail, "{}", r.results[0].line());
    assert!(
        r.results[0].reason.contains("certificate was refused"),
        "{}",
        r.results[0].line()
    );
    let r = check::run(&by_name, &cases, &options, |_| {});
    assert_eq!(r.results[0].verdict, Verdict::Pass, "{}", r.results[0].line());
}

#[test]
fn replay_files_are_skipped_over_tls_with_the_reason() {
    let (server, pki) = serve_tls("check-replay", &[]);
    let dir = pki.dir().join("replays");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("one.replay"), "not run over TLS\n").unwrap();
    let url = format!("wss://localhost:{}/", server.addr.port());
    let out = check_cli(&[&url, "--insecure", "--regressions", dir.to_str().unwrap()]);
    let lines = text(&out.stdout);
    assert!(out.status.success(), "{lines}{}", text(&out.stderr));
    assert!(lines.contains("SKIPPED    regress.one"), "{lines}");
    assert!(lines.contains("c10k fuzz, which speaks ws:// only"), "{lines}");
    assert!(
        lines.contains("1 cases: 0 PASS, 1 SKIPPED, 0 NON-STRICT, 0 FAIL"),
        "{lines}"
    );
}

// ---- a fake TLS server ----

/// What the fake does with the first frame after the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fake {
    /// Closes TCP without close_notify (and without a Close frame).
    DropWithoutCloseNotify,
    /// Sends an application data record that does not decrypt.
    BadRecord,
}

/// A TLS server (a certificate for 127.0.0.1 from `pki`) that accepts the upgrade, then does
/// `mode` on the first frame; its `wss://` URL.
fn fake_tls(pki: &Pki, mode: Fake) -> String {
    let leaf = pki.leaf("fake", &["127.0.0.1"]);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&leaf.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            thread::spawn(move || serve_fake(config, tcp, mode));
        }
    });
    format!("wss://{addr}/")
}

fn serve_fake(config: Arc<rustls::ServerConfig>, tcp: TcpStream, mode: Fake) -> Option<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let conn = rustls::ServerConnection::new(config).ok()?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).ok()?;
        head.push(b[0]);
    }
    let head = text(&head);
    let key = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| v.trim().to_owned())
    })?;
    let mut resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".to_vec();
    resp.extend_from_slice(&accept_key(key.as_bytes()));
    resp.extend_from_slice(b"\r\n\r\n");
    s.write_all(&resp).ok()?;
    s.flush().ok()?;
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    match mode {
        // A FIN with no close_notify before it (rustls sends nothing unless asked); what the
        // checker still sends is read, so that the end is a FIN and not a reset.
        Fake::DropWithoutCloseNotify => {
            s.sock.shutdown(Shutdown::Write).ok()?;
            let _ = std::io::copy(&mut s.sock, &mut std::io::sink());
        }
        Fake::BadRecord => {
            let mut junk = vec![0x17, 0x03, 0x03, 0x00, 0x40];
            junk.extend([0x5a; 64]);
            s.sock.write_all(&junk).ok()?;
            thread::sleep(Duration::from_millis(300));
        }
    }
    Some(())
}

fn fast_over(url: &str, ca: &Path, pattern: &str) -> Vec<CaseResult> {
    let options = Options {
        max_message: Some(1 << 20),
        timeout_scale: 0.3,
    };
    let cases = check::select(check::cases(&options), Some(pattern));
    let report = check::run(&wss_target(url, ca), &cases, &options, |_| {});
    assert!(!report.results.is_empty(), "{pattern} selects nothing");
    report.results
}

#[test]
fn a_fin_without_close_notify_is_a_close_and_bad_records_are_garbage() {
    let pki = Pki::new("check-fake");
    // As over ws://: dropping the connection on a protocol error is NON-STRICT, on an echo FAIL.
    let url = fake_tls(&pki, Fake::DropWithoutCloseNotify);
    for r in fast_over(&url, pki.ca(), "reserved.1.1,utf8.2.1") {
        assert_eq!(r.verdict, Verdict::NonStrict, "{}", r.line());
        assert!(
            r.observed
                .contains("dropped the connection without a Close frame"),
            "{}",
            r.line()
        );
    }
    for r in fast_over(&url, pki.ca(), "framing.1.1") {
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.line());
        assert!(r.reason.contains("the connection was dropped"), "{}", r.line());
    }
    let url = fake_tls(&pki, Fake::BadRecord);
    for r in fast_over(&url, pki.ca(), "framing.1.1,reserved.1.1") {
        assert_eq!(r.verdict, Verdict::Fail, "{}", r.line());
        assert!(
            r.reason.contains("sent TLS records that are not valid"),
            "{}",
            r.line()
        );
    }
}
