//! Shared plumbing for the peer servers: command line, listening socket, accept loop, TLS
//! (wss) and shutdown on SIGINT/SIGTERM. Each binary supplies only its per-connection
//! [`Handler`].
//!
//! Every server runs on a tokio current-thread runtime (one core), binds with `SO_REUSEADDR`
//! and a backlog of 4096, sets `TCP_NODELAY` on accepted sockets, prints exactly one line
//! `listening on ADDR` to stdout once it accepts connections, and logs nothing per message.
//! With `--tls-cert FILE --tls-key FILE` it speaks wss on the same address instead of ws: each
//! accepted socket's task does the TLS handshake (tokio-rustls, see [`tls`]) and then runs the
//! same handler over the TLS stream.
//!
//! [`client`] is the same for the clients under test of c10k's client suite.

pub mod client;
pub mod smoke;
pub mod tls;

use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

pub use tls::TlsFiles;

/// Listen backlog for every peer server.
pub const BACKLOG: u32 = 4096;

/// Largest message (and frame) every peer accepts: 64 MiB, comfortably above the 16 MiB
/// that the large-message benchmarks send.
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// A stream a handler can serve: a TCP socket, or a TLS stream over one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// What a peer server does with each accepted connection, plain or TLS alike.
pub trait Handler: Send + Sync + 'static {
    /// Serves one connection until it ends. `tls` says whether `stream` is a TLS stream, for a
    /// library whose own TLS example sets something differently.
    fn handle<S: Stream>(&self, stream: S, tls: bool) -> impl Future<Output = ()> + Send + 'static;
}

/// The command line of a peer server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--addr HOST:PORT`.
    pub addr: SocketAddr,
    /// `--tls-cert FILE --tls-key FILE`: serve wss instead of ws.
    pub tls: Option<TlsFiles>,
}

/// Parses the process arguments: `--addr HOST:PORT` (or `--addr=HOST:PORT`), and
/// `--tls-cert FILE --tls-key FILE` (both or neither).
///
/// Returns `Err(exit code)` after printing usage for `--help` or a bad argument.
pub fn parse_options(program: &str, default_addr: &str) -> Result<Options, ExitCode> {
    parse_options_from(program, default_addr, std::env::args().skip(1))
}

fn parse_options_from(
    program: &str,
    default_addr: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<Options, ExitCode> {
    let usage = format!(
        "usage: {program} [--addr HOST:PORT] [--tls-cert FILE --tls-key FILE]\n  \
         --addr      where to listen (default {default_addr})\n  \
         --tls-cert  certificate chain, PEM (leaf first): serve wss instead of ws\n  \
         --tls-key   its private key, PEM (PKCS#8, RSA or EC)"
    );
    let bad = |why: String| {
        eprintln!("{program}: {why}\n{usage}");
        ExitCode::from(2)
    };
    let mut addr = default_addr.to_string();
    let (mut cert, mut key) = (None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if name == "-h" || name == "--help" {
            println!("{usage}");
            return Err(ExitCode::SUCCESS);
        }
        let slot = match name.as_str() {
            "--addr" => None,
            "--tls-cert" => Some(&mut cert),
            "--tls-key" => Some(&mut key),
            _ => return Err(bad(format!("unknown argument {arg:?}"))),
        };
        let Some(value) = inline.or_else(|| args.next()) else {
            return Err(bad(format!("{name} needs a value")));
        };
        match slot {
            None => addr = value,
            Some(slot) => *slot = Some(std::path::PathBuf::from(value)),
        }
    }
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => return Err(bad("--tls-cert needs --tls-key".into())),
        (None, Some(_)) => return Err(bad("--tls-key needs --tls-cert".into())),
    };
    let addr = resolve(&addr).map_err(|e| {
        eprintln!("{program}: bad address {addr:?}: {e}");
        ExitCode::from(2)
    })?;
    Ok(Options { addr, tls })
}

/// Resolves `HOST:PORT` to its first socket address (`localhost:9002` works too).
pub fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}

/// Binds a listener with `SO_REUSEADDR` and a backlog of [`BACKLOG`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Installs SIGINT and SIGTERM handlers now (must run inside the runtime) and returns a
/// future that resolves when either signal arrives.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

/// Runs a peer server: parses the command line, builds a current-thread runtime, binds,
/// prints `listening on ADDR`, and spawns `handler.handle(stream)` for every accepted
/// connection (after the TLS handshake, in the connection's task, with `--tls-cert`) until
/// SIGINT/SIGTERM, then returns (dropping the runtime ends every connection task).
pub fn serve<H: Handler>(program: &str, default_addr: &str, handler: H) -> ExitCode {
    let options = match parse_options(program, default_addr) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let acceptor = match options.tls.as_ref().map(tls::acceptor).transpose() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{program}: TLS: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = options.addr;
    let handler = Arc::new(handler);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build tokio runtime");
    rt.block_on(async move {
        let listener = match listen(addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{program}: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().unwrap_or(addr);
        // Handlers go in before readiness is announced, so a signal sent as soon as the
        // line is seen is always handled (and never kills the process the default way).
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {local}");
            let _ = out.flush();
        }
        loop {
            tokio::select! {
                _ = &mut shutdown => return ExitCode::SUCCESS,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        spawn(stream, &handler, acceptor.as_ref());
                    }
                    Err(e) => {
                        // Out of descriptors and the like: back off briefly instead of spinning.
                        eprintln!("{program}: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
    })
}

/// One task per connection: the handler over the socket, or over TLS once the handshake is
/// done (a failed handshake just ends the task, as a failed WebSocket upgrade does).
fn spawn<H: Handler>(stream: TcpStream, handler: &Arc<H>, acceptor: Option<&tokio_rustls::TlsAcceptor>) {
    match acceptor {
        None => {
            tokio::spawn(handler.handle(stream, false));
        }
        Some(acceptor) => {
            let accept = acceptor.accept(stream);
            let handler = Arc::clone(handler);
            tokio::spawn(async move {
                if let Ok(stream) = accept.await {
                    handler.handle(stream, true).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Options, ExitCode> {
        parse_options_from("p", "127.0.0.1:9002", v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn addr_default_and_overrides() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.addr, "127.0.0.1:9002".parse().unwrap());
        assert_eq!(a.tls, None);
        let a = parse(&["--addr", "0.0.0.0:1234"]).unwrap();
        assert_eq!(a.addr, "0.0.0.0:1234".parse().unwrap());
        let a = parse(&["--addr=[::1]:80"]).unwrap();
        assert_eq!(a.addr, "[::1]:80".parse().unwrap());
        assert!(parse(&["--addr"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--addr", "nope"]).is_err());
    }

    #[test]
    fn tls_needs_both_files() {
        let a = parse(&["--tls-cert", "c.pem", "--addr", "127.0.0.1:1", "--tls-key=k.pem"]).unwrap();
        assert_eq!(a.addr, "127.0.0.1:1".parse().unwrap());
        assert_eq!(
            a.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
        assert!(parse(&["--tls-cert"]).is_err());
        assert!(parse(&["--tls-certs=c.pem"]).is_err());
    }
}
