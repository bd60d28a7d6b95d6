//! An in-memory byte pipe in place of a TCP socket (feature `testing`): the server's end is a
//! [`Socket::Memory`](super::socket::Socket::Memory) in the connection, the client's end is held
//! by [`crate::testing`]. It behaves as a non-blocking socket does under edge-triggered polling:
//! a read with nothing there would block; a write takes what fits in the peer's window and
//! would block past it; new bytes (or the peer's FIN) make a readable edge, and room made by
//! the peer reading after a write had found the pipe full makes a writable edge.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes the server may write that the client has not taken, unless the test says otherwise: a
/// socket buffer's worth.
pub(crate) const DEFAULT_WINDOW: usize = 256 << 10;

#[derive(Debug)]
struct State {
    /// Written by the client, not yet read by the server.
    to_server: VecDeque<u8>,
    /// The client shut its write side: the server reads the end of the stream after the bytes.
    client_fin: bool,
    /// The client reset the connection: the server's reads and writes fail.
    reset: bool,
    /// Written by the server, not yet taken by the client.
    to_client: Vec<u8>,
    /// The most `to_client` may hold.
    window: usize,
    /// The server shut its write side (or let go of its end).
    server_fin: bool,
    /// The server let go of its end: the connection is gone from the shard.
    server_gone: bool,
    /// New input (or the end of it) since the server was last told.
    read_edge: bool,
    /// A server write found the pipe full: room made since is told as a writable edge.
    write_edge: bool,
    /// The client closes its side as soon as the server has closed its own, as a well-behaved
    /// client does once it reads the end of the stream.
    fin_after_server: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A test that panicked while holding it poisoned nothing worth refusing.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client's end of a pipe.
#[derive(Debug, Clone)]
pub(crate) struct Pipe(Arc<Mutex<State>>);

/// The server's end of a pipe: what the connection reads and writes, and the client's address.
#[derive(Debug)]
pub(crate) struct ServerEnd(Arc<Mutex<State>>, std::net::SocketAddr);

/// What the poll would say about a server end now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The client's side is closed (FIN or reset).
    pub(crate) read_closed: bool,
}

impl Pipe {
    /// A new pipe from a client at `peer`: the client's end and the server's.
    pub(crate) fn new(peer: std::net::SocketAddr) -> (Self, ServerEnd) {
        let state = Arc::new(Mutex::new(State {
            to_server: VecDeque::new(),
            client_fin: false,
            reset: false,
            to_client: Vec::new(),
            window: DEFAULT_WINDOW,
            server_fin: false,
            server_gone: false,
            read_edge: false,
            write_edge: false,
            fin_after_server: true,
        }));
        (Self(Arc::clone(&state)), ServerEnd(state, peer))
    }

    /// The client writes (nothing after its FIN or a reset).
    pub(crate) fn write(&self, bytes: &[u8]) {
        let mut s = lock(&self.0);
        if s.client_fin || s.reset || bytes.is_empty() {
            return;
        }
        s.to_server.extend(bytes);
        s.read_edge = true;
    }

    /// The client shuts its write side.
    pub(crate) fn fin(&self) {
        let mut s = lock(&self.0);
        s.client_fin = true;
        s.read_edge = true;
    }

    /// The client resets the connection: what was not read is lost.
    pub(crate) fn reset(&self) {
        let mut s = lock(&self.0);
        s.reset = true;
        s.to_server.clear();
        s.read_edge = true;
    }

    /// Whether the client closes its side as soon as the server has closed its own.
    pub(crate) fn set_fin_after_server(&self, on: bool) {
        lock(&self.0).fin_after_server = on;
    }

    /// Takes what the server wrote, at most `max` bytes.
    pub(crate) fn take(&self, max: usize) -> Vec<u8> {
        let mut s = lock(&self.0);
        let n = max.min(s.to_client.len());
        s.to_client.drain(..n).collect()
    }

    /// Bytes the server wrote that the client has not taken.
    pub(crate) fn unread(&self) -> usize {
        lock(&self.0).to_client.len()
    }

    /// Sets how much the server may write before the client takes it.
    pub(crate) fn set_window(&self, bytes: usize) {
        lock(&self.0).window = bytes;
    }

    /// The server shut its write side: after what is unread, the client reads the end.
    pub(crate) fn server_finished(&self) -> bool {
        lock(&self.0).server_fin
    }

    /// The server let go of this connection.
    pub(crate) fn server_gone(&self) -> bool {
        lock(&self.0).server_gone
    }

    /// The edges due to the server end, cleared as they are told.
    pub(crate) fn readiness(&self) -> Option<Readiness> {
        let mut s = lock(&self.0);
        if s.server_gone {
            return None;
        }
        let readable = std::mem::take(&mut s.read_edge);
        let writable = s.write_edge && (s.to_client.len() < s.window || s.reset);
        if writable {
            s.write_edge = false;
        }
        (readable || writable).then_some(Readiness {
            readable,
            writable,
            read_closed: s.client_fin || s.reset,
        })
    }
}

impl ServerEnd {
    pub(crate) fn peer(&self) -> std::net::SocketAddr {
        self.1
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = lock(&self.0);
        if s.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if s.to_server.is_empty() {
            return if s.client_fin {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(s.to_server.len());
        for (dst, src) in buf.iter_mut().zip(s.to_server.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }

    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut s = lock(&self.0);
        if s.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if s.server_fin {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let mut room = s.window.saturating_sub(s.to_client.len());
        if room == 0 && want > 0 {
            s.write_edge = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut written = 0;
        for b in bufs {
            let n = b.len().min(room);
            s.to_client.extend_from_slice(&b[..n]);
            written += n;
            room -= n;
        }
        if written < want {
            s.write_edge = true;
        }
        Ok(written)
    }

    pub(crate) fn shutdown_write(&mut self) {
        let mut s = lock(&self.0);
        s.server_fin = true;
        if s.fin_after_server {
            s.client_fin = true;
            s.read_edge = true;
        }
    }
}

impl Drop for ServerEnd {
    fn drop(&mut self) {
        let mut s = lock(&self.0);
        s.server_fin = true;
        s.server_gone = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_blocks_past_its_window_and_tells_the_room_made_as_an_edge() {
        let (client, mut server) = Pipe::new("127.0.0.1:1".parse().unwrap());
        client.set_fin_after_server(false);
        client.set_window(4);
        assert_eq!(server.write(b"abcdef").unwrap(), 4);
        assert_eq!(server.write(b"x").unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(client.readiness(), None, "no room yet: no edge");
        assert_eq!(client.take(2), b"ab");
        let r = client.readiness().unwrap();
        assert!(r.writable && !r.readable);
        assert_eq!(client.readiness(), None, "an edge is told once");
        client.write(b"hi");
        client.fin();
        let r = client.readiness().unwrap();
        assert!(r.readable && r.read_closed);
        let mut buf = [0u8; 8];
        assert_eq!(server.read(&mut buf).unwrap(), 2);
        assert_eq!(server.read(&mut buf).unwrap(), 0, "then the end of the stream");
        drop(server);
        assert!(client.server_gone() && client.server_finished());
    }

    #[test]
    fn a_reset_fails_the_server_end() {
        let (client, mut server) = Pipe::new("127.0.0.1:1".parse().unwrap());
        client.write(b"lost");
        client.reset();
        let mut buf = [0u8; 8];
        assert_eq!(
            server.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
        assert!(server.write(b"x").is_err());
    }
}
