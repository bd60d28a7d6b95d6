//! A connection's outgoing bytes that the kernel did not take yet.
//!
//! Empty (and unallocated) for almost every connection almost all the time: bytes are written to
//! the socket directly and only a remainder lands here. Chunks are either owned copies or shared
//! buffers (a broadcast frame encoded once for many connections); they are written with one
//! vectored write per call.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// The most chunks handed to one vectored write.
const MAX_IOV: usize = 64;

/// Small owned chunks are merged up to this size to keep the queue short.
const COALESCE: usize = 16 << 10;

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    /// A frame encoded once and queued for many connections.
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Owned(v) => v,
            Self::Shared(a) => a,
        }
    }
}

/// A connection's queue: one pointer, and nothing on the heap, while empty.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue(Option<Box<Pending>>);

/// What a non-empty queue holds.
#[derive(Debug, Default)]
struct Pending {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    head: usize,
    len: usize,
}

impl WriteQueue {
    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Appends a copy of `bytes`.
    pub(crate) fn push_copy(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let p = self.0.get_or_insert_default();
        p.len += bytes.len();
        if let Some(Chunk::Owned(last)) = p.chunks.back_mut()
            && last.len() + bytes.len() <= COALESCE.max(last.capacity())
        {
            last.extend_from_slice(bytes);
            return;
        }
        p.chunks.push_back(Chunk::Owned(bytes.to_vec()));
    }

    /// Appends a shared buffer without copying it.
    pub(crate) fn push_shared(&mut self, bytes: &Arc<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        let p = self.0.get_or_insert_default();
        p.len += bytes.len();
        p.chunks.push_back(Chunk::Shared(Arc::clone(bytes)));
    }

    /// Writes as much as the socket takes. Returns `Ok(true)` when the queue is empty (and
    /// freed: an idle connection keeps no queue memory).
    pub(crate) fn flush<W: Write>(&mut self, w: &mut W) -> io::Result<bool> {
        let Some(p) = self.0.as_mut() else {
            return Ok(true);
        };
        while p.len > 0 {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (i, c) in p.chunks.iter().take(MAX_IOV).enumerate() {
                let b = c.bytes();
                iov[i] = IoSlice::new(if i == 0 { &b[p.head..] } else { b });
                n += 1;
            }
            match w.write_vectored(&iov[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => p.consume(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.0 = None;
        Ok(true)
    }

    /// Drops everything (the connection is going away).
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
}

impl Pending {
    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else { break };
            let left = front.bytes().len() - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.head = 0;
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call, then would block.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
        calls: usize,
        max_calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls == self.max_calls {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.limit - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.limit {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_across_owned_and_shared_chunks() {
        let mut q = WriteQueue::default();
        q.push_copy(b"hello ");
        q.push_copy(&[b'x'; 20000]);
        q.push_shared(&Arc::from(&b"shared "[..]));
        q.push_copy(b"world");
        assert_eq!(q.len(), 20018);
        let mut w = Trickle {
            got: Vec::new(),
            limit: 4,
            calls: 0,
            max_calls: 2,
        };
        assert!(!q.flush(&mut w).unwrap());
        assert_eq!(q.len(), 20010);
        w.max_calls = usize::MAX;
        assert!(q.flush(&mut w).unwrap());
        let mut want = b"hello ".to_vec();
        want.extend_from_slice(&[b'x'; 20000]);
        want.extend_from_slice(b"shared world");
        assert_eq!(w.got, want);
        assert!(q.is_empty());
        assert!(q.0.is_none(), "an emptied queue is freed");
        assert_eq!(std::mem::size_of::<WriteQueue>(), std::mem::size_of::<usize>());
    }
}
