//! Shared plumbing for the peer servers: command line, listening socket, accept loop and
//! shutdown on SIGINT/SIGTERM. Each binary supplies only its per-connection handler.
//!
//! Every server runs on a tokio current-thread runtime (one core), binds with `SO_REUSEADDR`
//! and a backlog of 4096, sets `TCP_NODELAY` on accepted sockets, prints exactly one line
//! `listening on ADDR` to stdout once it accepts connections, and logs nothing per message.

pub mod smoke;

use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Listen backlog for every peer server.
pub const BACKLOG: u32 = 4096;

/// Largest message (and frame) every peer accepts: 64 MiB, comfortably above the 16 MiB
/// that the large-message benchmarks send.
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Parses `--addr HOST:PORT` (or `--addr=HOST:PORT`) from the process arguments.
///
/// Returns `Err(exit code)` after printing usage for `--help` or a bad argument.
pub fn parse_addr(program: &str, default_addr: &str) -> Result<SocketAddr, ExitCode> {
    parse_addr_from(program, default_addr, std::env::args().skip(1))
}

fn parse_addr_from(
    program: &str,
    default_addr: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<SocketAddr, ExitCode> {
    let usage = format!("usage: {program} [--addr HOST:PORT]   (default {default_addr})");
    let mut addr = default_addr.to_string();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{usage}");
            return Err(ExitCode::SUCCESS);
        } else if arg == "--addr" {
            match args.next() {
                Some(v) => addr = v,
                None => {
                    eprintln!("{program}: --addr needs a value\n{usage}");
                    return Err(ExitCode::from(2));
                }
            }
        } else if let Some(v) = arg.strip_prefix("--addr=") {
            addr = v.to_string();
        } else {
            eprintln!("{program}: unknown argument {arg:?}\n{usage}");
            return Err(ExitCode::from(2));
        }
    }
    resolve(&addr).map_err(|e| {
        eprintln!("{program}: bad address {addr:?}: {e}");
        ExitCode::from(2)
    })
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

/// Runs a peer server: parses `--addr`, builds a current-thread runtime, binds, prints
/// `listening on ADDR`, and spawns `handle(stream)` for every accepted connection until
/// SIGINT/SIGTERM, then returns (dropping the runtime ends every connection task).
pub fn serve<F, Fut>(program: &str, default_addr: &str, mut handle: F) -> ExitCode
where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let addr = match parse_addr(program, default_addr) {
        Ok(a) => a,
        Err(code) => return code,
    };
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
                        tokio::spawn(handle(stream));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn addr_default_and_overrides() {
        let a = parse_addr_from("p", "127.0.0.1:9002", args(&[])).unwrap();
        assert_eq!(a, "127.0.0.1:9002".parse().unwrap());
        let a = parse_addr_from("p", "127.0.0.1:9002", args(&["--addr", "0.0.0.0:1234"])).unwrap();
        assert_eq!(a, "0.0.0.0:1234".parse().unwrap());
        let a = parse_addr_from("p", "127.0.0.1:9002", args(&["--addr=[::1]:80"])).unwrap();
        assert_eq!(a, "[::1]:80".parse().unwrap());
        assert!(parse_addr_from("p", "127.0.0.1:9002", args(&["--addr"])).is_err());
        assert!(parse_addr_from("p", "127.0.0.1:9002", args(&["--bogus"])).is_err());
        assert!(parse_addr_from("p", "127.0.0.1:9002", args(&["--addr", "nope"])).is_err());
    }
}
