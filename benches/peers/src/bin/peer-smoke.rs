//! Runs the smoke checks against a running peer server.
//!
//!   peer-smoke echo HOST:PORT        # peer-tungstenite, peer-fastwebsockets, or any echo server
//!   peer-smoke broadcast HOST:PORT   # peer-broadcast-tungstenite
//!   peer-smoke echo HOST:PORT --tls-ca CA.pem   # the same over wss, and the TLS checks
//!
//! With `--tls-ca`, the server's certificate must be issued by a CA in that PEM file and be
//! valid for HOST. Prints `ok` and exits 0 when every check passes; prints the failing check
//! and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use c10k_peers::smoke::{self, Target};

const USAGE: &str = "usage: peer-smoke echo|broadcast HOST:PORT [--tls-ca FILE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, hostport, ca) = match args.as_slice() {
        [m, a] => (m, a, None),
        [m, a, flag, ca] if flag == "--tls-ca" => (m, a, Some(PathBuf::from(ca))),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if mode != "echo" && mode != "broadcast" {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let addr = match c10k_peers::resolve(hostport) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("peer-smoke: bad address {hostport:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let target = match &ca {
        None => Target::ws(addr),
        Some(ca) => {
            // The name the certificate must carry: HOST, without the brackets of an IPv6 address.
            let host = hostport.rsplit_once(':').map_or(hostport.as_str(), |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            match Target::wss(addr, host, ca) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("peer-smoke: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tls = ca.is_some();
    let result = rt.block_on(async move {
        match mode.as_str() {
            "echo" => smoke::echo_checks(&target).await?,
            _ => smoke::broadcast_checks(&target).await?,
        }
        if tls {
            smoke::tls_checks(&target).await?;
        }
        Ok::<_, String>(())
    });
    match result {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("peer-smoke: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
