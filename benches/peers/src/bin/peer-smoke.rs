//! Runs the smoke checks against a running peer server.
//!
//!   peer-smoke echo ADDR        # peer-tungstenite, peer-fastwebsockets, or any echo server
//!   peer-smoke broadcast ADDR   # peer-broadcast-tungstenite
//!
//! Prints `ok` and exits 0 when every check passes; prints the failing check and exits 1.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, addr) = match args.as_slice() {
        [m, a] if m == "echo" || m == "broadcast" => (m.clone(), a.clone()),
        _ => {
            eprintln!("usage: peer-smoke echo|broadcast HOST:PORT");
            return ExitCode::from(2);
        }
    };
    let addr = match c10k_peers::resolve(&addr) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("peer-smoke: bad address {addr:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async move {
        match mode.as_str() {
            "echo" => c10k_peers::smoke::echo_checks(addr).await,
            _ => c10k_peers::smoke::broadcast_checks(addr).await,
        }
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
