//! Listening sockets a server did not bind itself: systemd's socket activation, and a restart
//! that hands the old process's listening sockets to the new one, so that no connection is
//! refused while one program replaces the other.
//!
//! # A restart without a refused connection
//!
//! 1. The old process takes the listening sockets of its server before it runs it
//!    ([`Server::listeners`]) and, when told to restart, starts the new program with them
//!    ([`start_successor`]): the same sockets, with their accept queues, so that a connection
//!    that arrives meanwhile waits in a queue whichever process takes it.
//! 2. The new process takes them ([`inherited_listeners`]), builds its server on them
//!    ([`Server::from_listeners`]), starts it, and says so ([`tell_predecessor_ready`]).
//! 3. The old process, told ([`Successor::wait_ready`]), shuts down gracefully
//!    ([`ServerHandle::shutdown`]): it stops accepting, answers the handshakes it had begun,
//!    and sends its open connections 1001 Going Away, so that their clients reconnect (to the
//!    new process). A successor that fails to start is reported and the old process serves on.
//!
//! Binding the address again with SO_REUSEPORT in the new process and draining the old one
//! would not do: each socket of a reuse-port group has its own accept queue, and the
//! connections waiting in the queue of a socket that closes are reset.
//!
//! `c10k serve` does all this on SIGUSR2, and takes sockets from systemd (`ListenStream=` in a
//! socket unit) when it is started with them.
//!
//! [`Server::listeners`]: crate::Server::listeners
//! [`Server::from_listeners`]: crate::Server::from_listeners
//! [`ServerHandle::shutdown`]: crate::ServerHandle::shutdown

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::engine::sys;

/// The variable through which a process hands its listening sockets to its successor:
/// `PPID:READY:FD,FD...`, the old process's id, the descriptor on which to say it is ready, and
/// the listening sockets' descriptors.
pub const HANDOVER_VAR: &str = "C10K_HANDOVER";

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The byte a successor sends when it is ready.
const READY: u8 = b'R';

/// Whether the listening sockets handed to this process were taken already (at most once).
static LISTENERS_TAKEN: AtomicBool = AtomicBool::new(false);
/// Whether the predecessor was told already (at most once).
static READY_TOLD: AtomicBool = AtomicBool::new(false);

/// What the hand-over variable says, if it is meant for this process (its parent's).
fn handover() -> Option<(RawFd, Vec<RawFd>)> {
    let value = std::env::var(HANDOVER_VAR).ok()?;
    let mut parts = value.splitn(3, ':');
    let ppid: u32 = parts.next()?.parse().ok()?;
    if ppid != std::os::unix::process::parent_id() {
        return None;
    }
    let ready = parts.next()?.parse().ok()?;
    let fds = parts
        .next()?
        .split(',')
        .map(|f| f.parse().ok())
        .collect::<Option<Vec<RawFd>>>()?;
    Some((ready, fds))
}

/// The descriptors systemd's socket activation passes this process, if any (`LISTEN_PID` must
/// be this process).
fn socket_activation() -> Option<Vec<RawFd>> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    let n: RawFd = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    Some((LISTEN_FDS_START..LISTEN_FDS_START + n.clamp(0, 1024)).collect())
}

/// The listening sockets handed to this process: by systemd's socket activation (`LISTEN_PID`,
/// `LISTEN_FDS`), or by the process it replaces ([`HANDOVER_VAR`]); empty when there are none.
/// Taken once: a second call returns none. Each descriptor is checked to be a listening TCP
/// socket (an error names the one that is not) and made close-on-exec.
pub fn inherited_listeners() -> io::Result<Vec<TcpListener>> {
    let fds = match socket_activation().or_else(|| handover().map(|(_, fds)| fds)) {
        Some(fds) if !fds.is_empty() => fds,
        _ => return Ok(Vec::new()),
    };
    if LISTENERS_TAKEN.swap(true, Ordering::AcqRel) {
        return Ok(Vec::new());
    }
    fds.into_iter()
        .map(|fd| sys::adopt_fd(fd, true).map(TcpListener::from))
        .collect()
}

/// Tells the process this one replaces that it is ready (its server listens): that process
/// then shuts down. `Ok(false)` when no process handed its sockets over. At most once.
pub fn tell_predecessor_ready() -> io::Result<bool> {
    let Some((ready, _)) = handover() else {
        return Ok(false);
    };
    if READY_TOLD.swap(true, Ordering::AcqRel) {
        return Ok(false);
    }
    let mut stream = UnixStream::from(OwnedFd::from(sys::adopt_fd(ready, false)?));
    stream.write_all(&[READY])?;
    Ok(true)
}

/// A successor started by [`start_successor`].
#[derive(Debug)]
pub struct Successor {
    child: Child,
    ready: UnixStream,
}

/// Starts `command` (the new program) as the successor of this process, handing it
/// `listeners` (see [`HANDOVER_VAR`]): they stay open here too until this process closes them.
/// Only the descriptors named are inherited.
pub fn start_successor(mut command: Command, listeners: &[TcpListener]) -> io::Result<Successor> {
    let (ours, theirs) = UnixStream::pair()?;
    let fds: Vec<String> = listeners.iter().map(|l| l.as_raw_fd().to_string()).collect();
    command.env(
        HANDOVER_VAR,
        format!("{}:{}:{}", std::process::id(), theirs.as_raw_fd(), fds.join(",")),
    );
    // Inherited across the `exec` of this one spawn only: close-on-exec again right after.
    sys::keep_across_exec(&theirs, true)?;
    for l in listeners {
        sys::keep_across_exec(l, true)?;
    }
    let spawned = command.spawn();
    for l in listeners {
        sys::keep_across_exec(l, false)?;
    }
    drop(theirs);
    Ok(Successor {
        child: spawned?,
        ready: ours,
    })
}

impl Successor {
    /// Waits until the successor says it is ready, at most `timeout`. An error if it exits (or
    /// closes the channel) first, or says nothing in time: this process should serve on.
    pub fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        self.ready
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut byte = [0u8; 1];
        match self.ready.read(&mut byte) {
            Ok(1) if byte[0] == READY => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the successor ended before it was ready",
            )),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Err(
                io::Error::new(io::ErrorKind::TimedOut, "the successor was not ready in time"),
            ),
            Err(e) => Err(e),
        }
    }

    /// The successor's process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}
