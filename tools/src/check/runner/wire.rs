//! The byte stream of one script's connection: plain TCP (`ws://`) or TLS over it (`wss://`).
//!
//! The opening handshake reads and writes it directly; once the connection is open, the
//! transport writes on it and its reader thread takes the server's bytes from a [`Source`]. Every
//! read and write is held to the script's deadline. The plain stream is the socket itself, with
//! nothing in between; TLS is in [`super::tls`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

use super::transport::Rx;

/// A connection's byte stream.
pub(super) enum Wire {
    /// `ws://`: the socket.
    Plain(TcpStream),
    /// `wss://`: TLS over the socket.
    #[cfg(feature = "tls")]
    Tls(super::tls::Session),
}

impl Wire {
    /// Writes all of `bytes` before `deadline`.
    pub(super) fn write_until(&self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        match self {
            Self::Plain(s) => write_until(s, bytes, deadline),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.write_until(bytes, deadline),
        }
    }

    /// Reads what the server sent (at most `buf.len()` bytes), waiting until `deadline`;
    /// `Ok(0)` when the server closed. Only while no reader thread runs.
    pub(super) fn read_until(&self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        match self {
            Self::Plain(s) => read_until(s, buf, deadline),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.read_until(buf, deadline),
        }
    }

    /// What the reader thread reads from.
    pub(super) fn source(&self) -> io::Result<Box<dyn Source>> {
        match self {
            Self::Plain(s) => Ok(Box::new(PlainSource {
                stream: s.try_clone()?,
                chunk: vec![0u8; 64 << 10],
            })),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Ok(Box::new(s.source()?)),
        }
    }

    /// Sends what the reader thread's side left to send (TLS alerts and key update replies; a
    /// plain stream has none).
    pub(super) fn flush(&self, deadline: Instant) -> io::Result<()> {
        match self {
            Self::Plain(_) => {
                let _ = deadline;
                Ok(())
            }
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.write_until(&[], deadline),
        }
    }

    /// Ends the connection (TLS: close_notify first, if it can go out at once). A reader thread
    /// blocked on the socket wakes up.
    pub(super) fn close(&self) {
        match self {
            Self::Plain(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.close(),
        }
    }
}

/// Where the reader thread's bytes come from: the socket, or the records decrypted from it.
pub(super) trait Source: Send {
    /// Appends what the server sent next to `buf`, waiting for it.
    fn fill(&mut self, buf: &mut Vec<u8>) -> Fill;
}

/// What one [`Source::fill`] did besides appending bytes.
pub(super) struct Fill {
    /// Records wait to be sent (a TLS alert, a key update reply): the writer's side sends them.
    pub(super) flush: bool,
    /// The stream ended (only when no bytes were appended this time).
    pub(super) end: Option<Rx>,
}

impl Fill {
    pub(super) const MORE: Fill = Fill {
        flush: false,
        end: None,
    };

    pub(super) fn end(rx: Rx) -> Self {
        Self {
            flush: false,
            end: Some(rx),
        }
    }
}

/// The plain stream's source: the socket itself.
struct PlainSource {
    stream: TcpStream,
    chunk: Vec<u8>,
}

impl Source for PlainSource {
    fn fill(&mut self, buf: &mut Vec<u8>) -> Fill {
        match self.stream.read(&mut self.chunk) {
            Ok(0) => Fill::end(Rx::Eof),
            Ok(n) => {
                buf.extend_from_slice(&self.chunk[..n]);
                Fill::MORE
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Fill::MORE,
            Err(e) => Fill::end(Rx::Reset(e.kind().to_string())),
        }
    }
}

/// Writes all of `bytes` on the socket before `deadline`.
pub(super) fn write_until(mut stream: &TcpStream, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_write_timeout(Some(left))?;
    stream.write_all(bytes)
}

/// Reads from the socket, waiting until `deadline`.
pub(super) fn read_until(mut stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Whether a read or write error is the deadline passing.
pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
