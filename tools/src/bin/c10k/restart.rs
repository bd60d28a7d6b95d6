//! `c10k serve` on sockets it did not bind, and its restart without a refused connection.
//!
//! - Started by systemd with sockets (`ListenStream=` in a socket unit, `LISTEN_FDS`), or by the
//!   process it replaces, it serves on those sockets instead of binding `--addr`.
//! - On SIGUSR2 it starts this program again with the same arguments, handing it its listening
//!   sockets (`c10k::handover`); once the new process says it is ready, this one drains: it
//!   stops accepting and sends its connections 1001 Going Away, and their clients reconnect to
//!   the new process. A new process that fails to start (or is not ready within
//!   [`READY_TIMEOUT`]) is stopped, and this one serves on.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use c10k::handover::{self, start_successor};
use c10k::{Handler, Server, ServerConfig};

/// Time the new process has to say it is ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The server on the sockets handed to this process, if any, else on `config.addr`.
pub(crate) fn bind<H, F>(config: ServerConfig, factory: F) -> std::io::Result<Server<H>>
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let inherited = handover::inherited_listeners()?;
    if !inherited.is_empty() {
        log::info!(
            "serving on {} listening socket{} handed to this process",
            inherited.len(),
            if inherited.len() == 1 { "" } else { "s" }
        );
    }
    Server::from_listeners(config, inherited, factory)
}

/// Starts this program again on `listeners` and waits until it is ready. Err (the new process
/// stopped) if it is not.
pub(crate) fn start_next(listeners: &[TcpListener]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = Command::new(exe);
    command.args(std::env::args_os().skip(1));
    let mut next = start_successor(command, listeners).map_err(|e| format!("cannot start it: {e}"))?;
    let pid = next.child().id();
    match next.wait_ready(READY_TIMEOUT) {
        Ok(()) => {
            log::info!("restart: process {pid} serves on the same sockets; draining this one");
            Ok(())
        }
        Err(e) => {
            let _ = next.child().kill();
            let _ = next.child().wait();
            Err(format!("process {pid}: {e}"))
        }
    }
}
