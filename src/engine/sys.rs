//! Operating-system details: the only user of socket2 and of raw system calls in the engine
//! (and, through it, in the client and the bridges).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT, so that every shard binds
/// its own socket to the same address and the kernel spreads new connections over them; and
/// TCP_NODELAY, which the sockets it accepts inherit (one system call less per connection).
pub(crate) fn listener(addr: SocketAddr, backlog: i32) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(backlog)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// A listening socket this process did not bind, made ready for a shard: non-blocking.
pub(crate) fn adopt_listener(l: &std::net::TcpListener) -> io::Result<mio::net::TcpListener> {
    let l = l.try_clone()?;
    l.set_nonblocking(true)?;
    Ok(mio::net::TcpListener::from_std(l))
}

/// Another descriptor of a shard's listening socket (the same socket and accept queue), to
/// hand to another process.
pub(crate) fn share_listener(l: &mio::net::TcpListener) -> io::Result<std::net::TcpListener> {
    Ok(socket2::SockRef::from(l).try_clone()?.into())
}

/// Whether `fd` survives an `exec` (a descriptor handed to the next program) or not.
pub(crate) fn keep_across_exec(fd: &impl std::os::fd::AsFd, keep: bool) -> io::Result<()> {
    socket2::SockRef::from(fd).set_cloexec(!keep)
}

/// Takes descriptor `fd`, which the program that started this process handed to it, as a
/// socket of this process: checked to be an open socket, of the `listening` state asked for
/// (a listening TCP socket, or any connected socket such as a Unix one), and made close-on-exec
/// so that it goes no further. On a failed check it is left as it was, not closed.
pub(crate) fn adopt_fd(fd: std::os::fd::RawFd, listening: bool) -> io::Result<Socket> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is stdio"),
        ));
    }
    // SAFETY: F_GETFD reads the descriptor's flags and has no memory-safety preconditions; it
    // fails with EBADF when `fd` is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("descriptor {fd}: {}", io::Error::last_os_error()),
        ));
    }
    // SAFETY: `fd` is open (checked above) and was handed to this process to own by the
    // protocol that named it (socket activation or a hand-over, see `handover.rs`), which this
    // process follows once: the callers take each variable at most once per process, so no
    // other owner of `fd` exists here. A check that fails below gives the descriptor back
    // (`into_raw_fd`) instead of closing it.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let checked = (|| {
        let ty = socket.r#type()?;
        if ty != Type::STREAM {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a stream socket"));
        }
        if listening {
            if !socket.is_listener()? {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a listening socket",
                ));
            }
            let domain = socket.domain()?;
            if domain != Domain::IPV4 && domain != Domain::IPV6 {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a TCP socket"));
            }
        }
        socket.set_cloexec(true)
    })();
    match checked {
        Ok(()) => Ok(socket),
        Err(e) => {
            let _ = socket.into_raw_fd();
            Err(io::Error::new(e.kind(), format!("descriptor {fd}: {e}")))
        }
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

/// Fills `buf` from the kernel's CSPRNG (getrandom(2)), for masking keys, handshake nonces and
/// node ids. Blocks only before the kernel's generator is first seeded, early at boot.
pub(crate) fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable slice of bytes that
        // the call fills at most `rest.len()` of.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// Blocks at least this large are mapped on their own by the C library's allocator once
/// [`release_memory_promptly`] ran: their memory goes back to the system when they are freed.
pub const PROMPT_RELEASE_FROM: usize = 128 << 10;

/// Asks the C library's allocator to give freed memory back to the system promptly, so that the
/// memory a server held for peers that are gone (messages being assembled, write queues) does
/// not stay in the process for good. glibc's malloc maps each block from 128 KiB up on its own,
/// but raises that threshold to the largest block freed so far (up to 32 MiB): after one
/// 16 MiB message the buffers of every later one come from its heaps, which it keeps. This fixes
/// the threshold at [`PROMPT_RELEASE_FROM`] (and with it the trim threshold). Call it once at
/// start, before the server runs (`c10k serve` does). A no-op with other C libraries.
pub fn release_memory_promptly() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt changes two settings of glibc's allocator and has no memory-safety
    // preconditions; it is called with valid parameters and values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, PROMPT_RELEASE_FROM as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, (2 * PROMPT_RELEASE_FROM) as libc::c_int);
    }
}

/// Gives the free memory at the top of the allocator's heaps back to the system (glibc), after
/// the shard freed much at once (it closed the largest holders for memory). A no-op with other
/// C libraries.
pub(crate) fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim walks glibc's own heaps; it has no memory-safety preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The machine's physical memory, in bytes.
pub(crate) fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf reads a system setting; it has no memory-safety preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| pages as u64 * size as u64)
}

/// The memory limit of this process's control group and its ancestors (cgroup v2 `memory.max`,
/// or v1 `memory.limit_in_bytes`), the smallest one; `None` when there is none.
pub(crate) fn cgroup_memory_limit() -> Option<u64> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut limit: Option<u64> = None;
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (root, file) = match controllers {
            "" => ("/sys/fs/cgroup", "memory.max"),
            c if c.split(',').any(|c| c == "memory") => ("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
            _ => continue,
        };
        // The group's own limit and every ancestor's: the tightest applies.
        let mut dir = std::path::PathBuf::from(format!("{root}{path}"));
        loop {
            if let Some(v) = std::fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                // "max" (v2) does not parse; v1 says "no limit" with a number near 2^63.
                .filter(|&v| v < 1 << 60)
            {
                limit = Some(limit.map_or(v, |l| l.min(v)));
            }
            if dir.as_os_str().len() <= root.len() || !dir.pop() {
                break;
            }
        }
    }
    limit
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
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let l = listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let accepted = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert!(
            accepted.nodelay().unwrap(),
            "the engine relies on it and sets it no more"
        );
    }

    #[test]
    fn memory_sizes_are_readable_and_plausible() {
        let m = physical_memory().unwrap();
        assert!(m >= 64 << 20, "{m}");
        if let Some(g) = cgroup_memory_limit() {
            assert!(g > 0);
        }
    }

    #[test]
    fn fd_limits_are_readable() {
        let (soft, hard) = fd_limits().unwrap();
        assert!(soft <= hard);
        assert!(soft > 0);
    }

    #[test]
    fn random_bytes_fill_the_whole_buffer_and_differ() {
        let mut a = [0u8; 300];
        let mut b = [0u8; 300];
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        // 300 bytes that are all zero after a fill would be a 2^-2400 event.
        assert!(a.iter().any(|&x| x != 0));
        assert!(a[280..].iter().any(|&x| x != 0), "the tail is filled too");
    }
}
