//! Operating-system details: the only user of socket2 and of raw system calls in the engine.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT, so that every shard binds
/// its own socket to the same address and the kernel spreads new connections over them.
pub(crate) fn listener(addr: SocketAddr, backlog: i32) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(backlog)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// A non-blocking TCP connection attempt to `addr`, optionally from a source address.
///
/// With a source address, IP_BIND_ADDRESS_NO_PORT lets the kernel pick the port at connect time
/// for the full 4-tuple, so that 127.0.0.2, 127.0.0.3, ... each bring a fresh range of ephemeral
/// ports towards the same server.
pub fn connect(addr: SocketAddr, source: Option<SocketAddr>) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_tcp_nodelay(true)?;
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

/// Pins the calling thread to one CPU.
pub(crate) fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set; CPU_SET writes inside
    // it (it ignores out-of-range CPUs); the pointer and size passed describe that live value.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The number of CPUs this process may run on.
pub(crate) fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The soft and hard limits on open file descriptors.
pub fn fd_limits() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the live rlimit value passed by pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc == 0 {
        Ok((lim.rlim_cur, lim.rlim_max))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft limit on open file descriptors to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let (_, hard) = fd_limits()?;
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the live rlimit value passed by pointer.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc == 0 {
        Ok(hard)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an accept error means the process or system ran out of descriptors (or memory).
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether an accept error concerns only the one connection being accepted (it was reset or
/// aborted before we got to it): skip it and go on accepting.
pub(crate) fn is_per_connection_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::ECONNRESET | libc::EPERM | libc::EPROTO)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_listeners_share_a_port() {
        let a = listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = a.local_addr().unwrap();
        let b = listener(addr, 16).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
    }

    #[test]
    fn fd_limits_are_readable() {
        let (soft, hard) = fd_limits().unwrap();
        assert!(soft <= hard);
        assert!(soft > 0);
    }

    #[test]
    fn connect_from_a_chosen_source_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = connect(l.local_addr().unwrap(), Some("127.0.0.2:0".parse().unwrap())).unwrap();
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.2");
        drop(s);
    }
}
