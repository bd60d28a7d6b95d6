//! What a connection's bytes travel on, under its [`Transport`](super::transport::Transport): a
//! TCP socket, or (feature `testing`) an in-memory pipe that [`crate::testing`] drives with a
//! virtual clock. Everything above reads and writes a [`Socket`] and never asks which.
//!
//! Without the feature the enum has one variant: it is the TCP socket, with no tag and no branch.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// A connection's byte stream.
#[derive(Debug)]
pub(crate) enum Socket {
    /// A TCP socket, registered with the shard's poll.
    Tcp(TcpStream),
    /// One end of an in-memory pipe; its readiness comes from the pipe, not from a poll.
    #[cfg(feature = "testing")]
    Memory(Box<super::pipe::ServerEnd>),
}

impl Socket {
    /// Registers the socket for readable and writable readiness, edge-triggered, as `token`.
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Self::Tcp(s) => registry.register(s, token, Interest::READABLE | Interest::WRITABLE),
            #[cfg(feature = "testing")]
            Self::Memory(_) => Ok(()),
        }
    }

    /// Takes the socket out of the poll (before it is dropped).
    pub(crate) fn deregister(&mut self, registry: &Registry) {
        match self {
            Self::Tcp(s) => {
                let _ = registry.deregister(s);
            }
            #[cfg(feature = "testing")]
            Self::Memory(_) => {}
        }
    }

    /// The address of the peer (for an in-memory pipe, the one the test gave it).
    pub(crate) fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Tcp(s) => s.peer_addr().ok(),
            #[cfg(feature = "testing")]
            Self::Memory(p) => Some(p.peer()),
        }
    }

    /// Shuts the write side: the peer reads what was written, then the end of the stream.
    pub(crate) fn shutdown_write(&mut self) {
        match self {
            Self::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            #[cfg(feature = "testing")]
            Self::Memory(p) => p.shutdown_write(),
        }
    }
}

impl Read for Socket {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            #[cfg(feature = "testing")]
            Self::Memory(p) => p.read(buf),
        }
    }
}

impl Write for Socket {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            #[cfg(feature = "testing")]
            Self::Memory(p) => p.write(buf),
        }
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write_vectored(bufs),
            #[cfg(feature = "testing")]
            Self::Memory(p) => p.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
