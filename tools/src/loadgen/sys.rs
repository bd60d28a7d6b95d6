//! Operating-system details of the load generator: the only user of socket2 in the tools.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A non-blocking TCP connection attempt to `addr`, optionally from a source address, with
/// TCP_NODELAY if `nodelay`.
///
/// With a source address, IP_BIND_ADDRESS_NO_PORT lets the kernel pick the port at connect time
/// for the full 4-tuple, so that 127.0.0.2, 127.0.0.3, ... each bring a fresh range of ephemeral
/// ports towards the same server.
pub(crate) fn connect(
    addr: SocketAddr,
    source: Option<SocketAddr>,
    nodelay: bool,
) -> io::Result<mio::net::TcpStream> {
    connect_with(addr, source, nodelay, None)
}

/// [`connect`], with a receive buffer of `rcvbuf` bytes if given: set before the connect, so
/// that the window the kernel offers the peer stays that small (a reader that falls behind).
pub(crate) fn connect_with(
    addr: SocketAddr,
    source: Option<SocketAddr>,
    nodelay: bool,
    rcvbuf: Option<usize>,
) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(n) = rcvbuf {
        socket.set_recv_buffer_size(n)?;
    }
    if let Some(src) = source {
        set_bind_address_no_port(&socket)?;
        socket.bind(&SockAddr::from(src))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// Sends signal `sig` to process `pid` (the server, to drain it; a supervisor's worker).
///
/// The caller must know that `pid` still names the process it means: its own child not yet
/// waited for, or a process it was told to measure.
pub fn signal(pid: u32, sig: i32) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::other(format!("no such process id: {pid}")))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of this process.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_bind_address_no_port(socket: &Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the descriptor is a valid open socket for the duration of the call, and the option
    // value is a live c_int whose exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_from_a_chosen_source_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = connect(
            l.local_addr().unwrap(),
            Some("127.0.0.2:0".parse().unwrap()),
            true,
        )
        .unwrap();
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.2");
        drop(s);
    }

    #[test]
    fn signal_terminates_a_process_and_refuses_one_that_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        signal(child.id(), libc::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        // Reaped: the pid names no process (pids are not reused this fast).
        assert_eq!(
            signal(child.id(), 0).unwrap_err().raw_os_error(),
            Some(libc::ESRCH)
        );
        assert!(signal(u32::MAX, 0).is_err());
    }
}
