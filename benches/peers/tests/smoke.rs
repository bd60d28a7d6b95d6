//! Starts each peer server on a free port, runs the smoke checks against it, then stops it
//! with SIGTERM (or SIGINT) and expects a clean exit. The wss tests start the servers with a
//! certificate made here (a test CA and an ECDSA P-256 leaf it signs) and check over TLS with
//! a client that verifies it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c10k_peers::smoke::Target;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A test CA and a server certificate it signed for `localhost` and `127.0.0.1`, as PEM files
/// in a directory of their own (removed on drop).
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("c10k-peers-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own, so that another test CA is another issuer.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("c10k-peers test CA {tag}"));
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }

    /// The server's command-line flags for this certificate.
    fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(exe: &str) -> Server {
        Server::start_with(exe, &[])
    }

    fn start_with(exe: &str, extra: &[String]) -> Server {
        let mut child = Command::new(exe)
            .args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {exe}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{exe}: unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    /// Sends `signal` and expects exit status 0 within a few seconds.
    fn stop(mut self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit after {signal}: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s of {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(checks: impl Future<Output = c10k_peers::smoke::Result>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Err(e) = rt.block_on(checks) {
        panic!("{e}");
    }
}

/// Over wss with the certificate of `pki`: the whole echo check list and the TLS checks, then
/// a client that trusts another CA is refused (so the certificate really is verified) and a
/// plain ws client gets no WebSocket.
fn wss_echo(exe: &str, signal: &str) {
    let pki = Pki::new(&format!("wss-{}", exe.rsplit('/').next().unwrap()));
    let other = Pki::new(&format!("other-{}", exe.rsplit('/').next().unwrap()));
    let s = Server::start_with(exe, &pki.flags());
    let target = Target::wss(s.addr, "127.0.0.1", &pki.ca).unwrap();
    run(async {
        c10k_peers::smoke::echo_checks(&target).await?;
        c10k_peers::smoke::tls_checks(&target).await?;
        // By name too: the certificate carries localhost as well as 127.0.0.1.
        let by_name = Target::wss(s.addr, "localhost", &pki.ca)?;
        c10k_peers::smoke::tls_checks(&by_name).await?;
        let untrusted = Target::wss(s.addr, "127.0.0.1", &other.ca)?;
        match c10k_peers::smoke::connect(&untrusted).await {
            Err(e) if e.contains("invalid peer certificate") && e.contains("UnknownIssuer") => {}
            Err(e) => return Err(format!("untrusted CA: unexpected error {e}")),
            Ok(_) => return Err("a client trusting another CA connected".into()),
        }
        let wrong_name = Target::wss(s.addr, "example.com", &pki.ca)?;
        match c10k_peers::smoke::connect(&wrong_name).await {
            Err(e) if e.contains("certificate not valid for name \"example.com\"") => {}
            Err(e) => return Err(format!("wrong name: unexpected error {e}")),
            Ok(_) => return Err("a certificate for another name was accepted".into()),
        }
        if c10k_peers::smoke::connect(&Target::ws(s.addr)).await.is_ok() {
            return Err("a plain ws client got a WebSocket from the wss server".into());
        }
        Ok(())
    });
    s.stop(signal);
}

#[test]
fn tungstenite_echo() {
    let s = Server::start(env!("CARGO_BIN_EXE_peer-tungstenite"));
    run(c10k_peers::smoke::echo_checks(&Target::ws(s.addr)));
    s.stop("-TERM");
}

#[test]
fn fastwebsockets_echo() {
    let s = Server::start(env!("CARGO_BIN_EXE_peer-fastwebsockets"));
    run(c10k_peers::smoke::echo_checks(&Target::ws(s.addr)));
    s.stop("-INT");
}

#[test]
fn broadcast_fan_out() {
    let s = Server::start(env!("CARGO_BIN_EXE_peer-broadcast-tungstenite"));
    run(c10k_peers::smoke::broadcast_checks(&Target::ws(s.addr)));
    s.stop("-TERM");
}

#[test]
fn tungstenite_wss_echo() {
    wss_echo(env!("CARGO_BIN_EXE_peer-tungstenite"), "-TERM");
}

#[test]
fn fastwebsockets_wss_echo() {
    wss_echo(env!("CARGO_BIN_EXE_peer-fastwebsockets"), "-INT");
}

#[test]
fn broadcast_fan_out_over_wss() {
    let pki = Pki::new("wss-broadcast");
    let s = Server::start_with(env!("CARGO_BIN_EXE_peer-broadcast-tungstenite"), &pki.flags());
    let target = Target::wss(s.addr, "127.0.0.1", &pki.ca).unwrap();
    run(c10k_peers::smoke::broadcast_checks(&target));
    s.stop("-TERM");
}

/// The smoke program itself, over wss, against a server started here.
#[test]
fn peer_smoke_over_wss() {
    let pki = Pki::new("wss-smoke");
    let s = Server::start_with(env!("CARGO_BIN_EXE_peer-tungstenite"), &pki.flags());
    let out = Command::new(env!("CARGO_BIN_EXE_peer-smoke"))
        .args([
            "echo",
            &s.addr.to_string(),
            "--tls-ca",
            &pki.ca.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "peer-smoke: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop("-TERM");
}

/// A certificate or key that cannot be read is a start-up error that names the file (status 2,
/// before anything listens), and so is --tls-cert without --tls-key.
#[test]
fn unreadable_tls_files_stop_the_start() {
    let pki = Pki::new("bad-files");
    let missing = pki.dir.join("missing.pem").display().to_string();
    let cert = pki.cert.display().to_string();
    for exe in [
        env!("CARGO_BIN_EXE_peer-tungstenite"),
        env!("CARGO_BIN_EXE_peer-fastwebsockets"),
        env!("CARGO_BIN_EXE_peer-broadcast-tungstenite"),
    ] {
        for (args, expect) in [
            (vec!["--tls-cert", &cert, "--tls-key", &missing], missing.as_str()),
            (vec!["--tls-cert", &missing, "--tls-key", &cert], missing.as_str()),
            (vec!["--tls-key", &cert, "--tls-cert", &cert], "no private key"),
            (vec!["--tls-cert", &cert], "--tls-cert needs --tls-key"),
        ] {
            let mut child = Command::new(exe)
                .args(["--addr", "127.0.0.1:0"])
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "{exe} {args:?}: still running after 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            let (mut out, mut err) = (String::new(), String::new());
            child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            assert_eq!(status.code(), Some(2), "{exe} {args:?}: {status}, {err}");
            assert!(out.is_empty(), "{exe} {args:?} printed {out:?}");
            assert!(
                err.contains(expect),
                "{exe} {args:?}: {err:?} does not mention {expect:?}"
            );
        }
    }
}
