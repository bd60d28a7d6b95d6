//! A connection's outgoing bytes that the kernel did not take yet.
//!
//! Empty (and unallocated) for almost every connection almost all the time: bytes are written to
//! the socket directly and only a remainder lands here. The queue holds the connection's
//! plaintext, as chunks: owned copies, or frames shared with other queues (a broadcast encoded
//! once). On a plain connection those chunks are the wire bytes, written with one vectored write
//! per call. On a TLS connection they are encrypted only when the socket takes more
//! ([`Seal`]): at most [`SEAL_BATCH`] bytes of records wait in `sealed` at a time, so a slow TLS
//! reader of a large broadcast holds the shared frame and one batch of records, never a whole
//! encrypted copy.
//!
//! A connection whose socket is blocked owes the peer at most one pong in a row
//! ([`WriteQueue::owe_pong`]): a ping that arrives while the previous pong still waits at the tail
//! replaces it (RFC 6455 section 5.5.3 allows answering only the most recent ping).
//!
//! Every change of the bytes it owns is charged to the shard's [`Memory`] (`Kind::Queued`);
//! shared frames are charged to the node once, by [`SharedFrame`].

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

use super::memory::{Kind, Memory, SharedFrame};

/// The most chunks handed to one vectored write.
const MAX_IOV: usize = 64;

/// Small owned chunks are merged up to this size to keep the queue short.
const COALESCE: usize = 16 << 10;

/// Plaintext encrypted per step of a TLS flush: what waits encrypted is at most this much (and
/// its records' overhead).
pub(crate) const SEAL_BATCH: usize = 64 << 10;

/// Encrypts queued plaintext into records, for a transport that has records.
pub(crate) trait Seal {
    /// Appends the records of `plain` to `out`.
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()>;
}

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    /// A frame encoded once and queued for many connections.
    Shared(Arc<SharedFrame>),
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
    /// Wire bytes ready for the socket, written before any chunk: TLS records (of chunks
    /// already encrypted, of handshake messages and alerts).
    sealed: Vec<u8>,
    /// Bytes of `sealed` already written.
    sealed_head: usize,
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written (or encrypted).
    head: usize,
    /// Bytes waiting, sealed and chunks, shared ones included: what the cap is checked against.
    len: usize,
    /// Bytes of `len` this queue owns (not shared frames): what it charges to the shard.
    owned: usize,
    /// The last chunk is a pong not started yet, which the next owed pong replaces.
    pong_tail: bool,
}

impl WriteQueue {
    /// Bytes waiting, frames shared with other queues included.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Bytes this queue owns (its copies and records; not the frames it shares).
    pub(crate) fn owned(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.owned)
    }

    /// Appends a copy of `bytes` (plaintext).
    pub(crate) fn push_copy(&mut self, bytes: &[u8], mem: &mut Memory) {
        if bytes.is_empty() {
            return;
        }
        let p = self.0.get_or_insert_default();
        p.grow(bytes.len(), true, mem);
        p.pong_tail = false;
        if let Some(Chunk::Owned(last)) = p.chunks.back_mut()
            && last.len() + bytes.len() <= COALESCE.max(last.capacity())
        {
            last.extend_from_slice(bytes);
            return;
        }
        p.chunks.push_back(Chunk::Owned(bytes.to_vec()));
    }

    /// Appends a shared frame without copying it.
    pub(crate) fn push_shared(&mut self, frame: &Arc<SharedFrame>) {
        if frame.is_empty() {
            return;
        }
        let p = self.0.get_or_insert_default();
        p.len += frame.len();
        p.pong_tail = false;
        p.chunks.push_back(Chunk::Shared(Arc::clone(frame)));
    }

    /// Appends wire bytes that need no more encoding (TLS records already made), after
    /// everything already sealed and before every queued chunk: records go out in the order they
    /// were made, and no chunk was made into records yet.
    pub(crate) fn push_sealed(&mut self, bytes: &[u8], mem: &mut Memory) {
        if bytes.is_empty() {
            return;
        }
        let p = self.0.get_or_insert_default();
        p.grow(bytes.len(), true, mem);
        p.sealed.extend_from_slice(bytes);
    }

    /// Queues a pong frame, or, when the last chunk is a pong not started yet, replaces it: a
    /// peer that pings faster than it reads is owed one pong, not one per ping.
    pub(crate) fn owe_pong(&mut self, frame: &[u8], mem: &mut Memory) {
        let p = self.0.get_or_insert_default();
        if p.pong_tail
            && (p.chunks.len() > 1 || p.head == 0)
            && let Some(Chunk::Owned(last)) = p.chunks.back_mut()
        {
            let old = last.len();
            last.clear();
            last.extend_from_slice(frame);
            p.len = p.len - old + frame.len();
            p.owned = p.owned - old + frame.len();
            mem.change(Kind::Queued, old, frame.len());
            return;
        }
        p.grow(frame.len(), true, mem);
        p.chunks.push_back(Chunk::Owned(frame.to_vec()));
        p.pong_tail = true;
    }

    /// Writes as much as the socket takes, encrypting chunks with `seal` first when the transport
    /// has records. Returns `Ok(true)` when the queue is empty (and freed: an idle connection
    /// keeps no queue memory).
    pub(crate) fn flush<W: Write>(
        &mut self,
        w: &mut W,
        mut seal: Option<(&mut dyn Seal, &mut Vec<u8>)>,
        mem: &mut Memory,
    ) -> io::Result<bool> {
        let Some(p) = self.0.as_mut() else {
            return Ok(true);
        };
        loop {
            if !p.write_sealed(w, mem)? {
                return Ok(false);
            }
            if p.chunks.is_empty() {
                break;
            }
            match seal.as_mut() {
                None => {
                    if !p.write_chunks(w, mem)? {
                        return Ok(false);
                    }
                }
                Some((sealer, plain)) => {
                    plain.clear();
                    p.take_front(SEAL_BATCH, plain, mem);
                    let at = p.sealed.len();
                    sealer.seal(plain, &mut p.sealed)?;
                    p.grow(p.sealed.len() - at, true, mem);
                }
            }
        }
        debug_assert_eq!((p.len, p.owned), (0, 0));
        self.0 = None;
        Ok(true)
    }

    /// Drops everything (the connection is going away).
    pub(crate) fn clear(&mut self, mem: &mut Memory) {
        if let Some(p) = self.0.take() {
            mem.sub(Kind::Queued, p.owned);
        }
    }
}

impl Pending {
    fn grow(&mut self, n: usize, owned: bool, mem: &mut Memory) {
        self.len += n;
        if owned {
            self.owned += n;
            mem.add(Kind::Queued, n);
        }
    }

    fn shrink(&mut self, n: usize, owned: usize, mem: &mut Memory) {
        self.len -= n;
        self.owned -= owned;
        mem.sub(Kind::Queued, owned);
    }

    /// Writes what is sealed. True when all of it was written.
    fn write_sealed<W: Write>(&mut self, w: &mut W, mem: &mut Memory) -> io::Result<bool> {
        while self.sealed_head < self.sealed.len() {
            match w.write(&self.sealed[self.sealed_head..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sealed_head += n;
                    self.shrink(n, n, mem);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !self.sealed.is_empty() {
            self.sealed_head = 0;
            self.sealed.clear();
            if self.sealed.capacity() > SEAL_BATCH * 2 {
                // A large remainder once is no reason to keep its buffer.
                self.sealed = Vec::new();
            }
        }
        Ok(true)
    }

    /// Writes the chunks as they are (plain transport). True when all were written.
    fn write_chunks<W: Write>(&mut self, w: &mut W, mem: &mut Memory) -> io::Result<bool> {
        while !self.chunks.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (i, c) in self.chunks.iter().take(MAX_IOV).enumerate() {
                let b = c.bytes();
                iov[i] = IoSlice::new(if i == 0 { &b[self.head..] } else { b });
                n += 1;
            }
            match w.write_vectored(&iov[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.consume(written, mem),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Moves up to `max` bytes from the front chunks into `out` (to be encrypted).
    fn take_front(&mut self, max: usize, out: &mut Vec<u8>, mem: &mut Memory) {
        let mut taken = 0;
        for c in &self.chunks {
            let b = &c.bytes()[if taken == 0 { self.head } else { 0 }..];
            let n = b.len().min(max - taken);
            out.extend_from_slice(&b[..n]);
            taken += n;
            if taken == max {
                break;
            }
        }
        self.consume(taken, mem);
    }

    /// `n` bytes of the front chunks left the queue.
    fn consume(&mut self, mut n: usize, mem: &mut Memory) {
        let mut owned = 0;
        let total = n;
        while n > 0 {
            let Some(front) = self.chunks.front() else { break };
            let left = front.bytes().len() - self.head;
            let is_owned = matches!(front, Chunk::Owned(_));
            if n < left {
                self.head += n;
                owned += if is_owned { n } else { 0 };
                break;
            }
            n -= left;
            owned += if is_owned { left } else { 0 };
            self.head = 0;
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            self.pong_tail = false;
        }
        self.shrink(total, owned, mem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::memory::Gauge;

    /// A writer that takes at most `limit` bytes per call, then would block.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
        calls: usize,
        max_calls: usize,
    }

    impl Trickle {
        fn new(limit: usize, max_calls: usize) -> Self {
            Self {
                got: Vec::new(),
                limit,
                calls: 0,
                max_calls,
            }
        }
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

    /// "Encrypts" by framing each call's plaintext as `[len][bytes]`.
    struct Brackets(usize);

    impl Seal for Brackets {
        fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
            self.0 += 1;
            out.push(plain.len().min(255) as u8);
            out.extend_from_slice(plain);
            Ok(())
        }
    }

    fn setup() -> (Memory, Arc<Gauge>) {
        let gauge = Arc::new(Gauge::default());
        (Memory::new(1 << 30, Arc::clone(&gauge), Arc::default(), 1), gauge)
    }

    #[test]
    fn partial_writes_keep_order_across_owned_and_shared_chunks() {
        let (mut mem, gauge) = setup();
        let mut q = WriteQueue::default();
        q.push_copy(b"hello ", &mut mem);
        q.push_copy(&[b'x'; 20000], &mut mem);
        q.push_shared(&SharedFrame::new(Box::from(&b"shared "[..]), &gauge));
        q.push_copy(b"world", &mut mem);
        assert_eq!(q.len(), 20018);
        assert_eq!(mem.held(Kind::Queued), 20011, "the shared frame is the node's");
        let mut w = Trickle::new(4, 2);
        assert!(!q.flush(&mut w, None, &mut mem).unwrap());
        assert_eq!(q.len(), 20010);
        assert_eq!(mem.held(Kind::Queued), 20003);
        w.max_calls = usize::MAX;
        assert!(q.flush(&mut w, None, &mut mem).unwrap());
        let mut want = b"hello ".to_vec();
        want.extend_from_slice(&[b'x'; 20000]);
        want.extend_from_slice(b"shared world");
        assert_eq!(w.got, want);
        assert!(q.is_empty());
        assert!(q.0.is_none(), "an emptied queue is freed");
        assert_eq!(mem.held(Kind::Queued), 0);
        assert_eq!(gauge.bytes(), 0, "the shared frame went with its last reference");
        assert_eq!(std::mem::size_of::<WriteQueue>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn consecutive_owed_pongs_collapse_into_the_latest_one() {
        let (mut mem, _) = setup();
        let mut q = WriteQueue::default();
        q.push_copy(b"data", &mut mem);
        for i in 0..1000u32 {
            q.owe_pong(&i.to_be_bytes(), &mut mem);
        }
        assert_eq!(q.len(), 8, "one pong owed, the latest");
        q.push_copy(b"more", &mut mem);
        q.owe_pong(b"p", &mut mem);
        q.owe_pong(b"q", &mut mem);
        assert_eq!(mem.held(Kind::Queued), 13);
        let mut w = Trickle::new(100, usize::MAX);
        assert!(q.flush(&mut w, None, &mut mem).unwrap());
        let mut want = b"data".to_vec();
        want.extend_from_slice(&999u32.to_be_bytes());
        want.extend_from_slice(b"moreq");
        assert_eq!(w.got, want);
        assert_eq!(mem.held(Kind::Queued), 0);
    }

    #[test]
    fn a_pong_being_written_is_not_replaced() {
        let (mut mem, _) = setup();
        let mut q = WriteQueue::default();
        q.owe_pong(b"abcd", &mut mem);
        let mut w = Trickle::new(2, 1);
        assert!(!q.flush(&mut w, None, &mut mem).unwrap());
        q.owe_pong(b"XY", &mut mem);
        w.max_calls = usize::MAX;
        assert!(q.flush(&mut w, None, &mut mem).unwrap());
        assert_eq!(w.got, b"abcdXY");
    }

    #[test]
    fn a_tls_flush_encrypts_in_batches_only_what_the_socket_takes() {
        let (mut mem, gauge) = setup();
        let frame = SharedFrame::new(vec![9u8; 1 << 20].into_boxed_slice(), &gauge);
        let mut q = WriteQueue::default();
        q.push_sealed(b"HS", &mut mem);
        q.push_shared(&frame);
        let mut sealer = Brackets(0);
        let mut plain = Vec::new();
        let mut w = Trickle::new(10_000, 3);
        assert!(
            !q.flush(&mut w, Some((&mut sealer, &mut plain)), &mut mem)
                .unwrap()
        );
        // 30,000 bytes went out: the 2 sealed first, then records of one batch.
        assert_eq!(&w.got[..3], b"HS\xff");
        assert_eq!(sealer.0, 1, "one batch encrypted, not the whole frame");
        assert!(mem.held(Kind::Queued) <= SEAL_BATCH as u64 + 1);
        w.max_calls = usize::MAX;
        assert!(
            q.flush(&mut w, Some((&mut sealer, &mut plain)), &mut mem)
                .unwrap()
        );
        assert_eq!(sealer.0, 16);
        assert_eq!(w.got.len(), 2 + (1 << 20) + 16);
        assert_eq!(mem.held(Kind::Queued), 0);
        drop(frame);
        assert_eq!(gauge.bytes(), 0);
    }

    #[test]
    fn clearing_releases_what_the_queue_owned() {
        let (mut mem, _) = setup();
        let mut q = WriteQueue::default();
        q.push_copy(&[1; 5000], &mut mem);
        q.push_sealed(&[2; 70], &mut mem);
        assert_eq!(mem.held(Kind::Queued), 5070);
        q.clear(&mut mem);
        assert_eq!(mem.held(Kind::Queued), 0);
        assert!(q.is_empty());
    }
}
