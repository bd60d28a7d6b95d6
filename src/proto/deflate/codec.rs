//! The permessage-deflate transform: zlib state (raw DEFLATE through flate2's zlib-rs backend),
//! compressing a whole message, inflating a message piece by piece under a size cap, and the
//! lending of state between a [`DeflatePool`] and a connection.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{DeflatePool, MAX_WINDOW_BITS, Negotiated};
use crate::proto::error::Error;
use crate::proto::frame::{MAX_HEADER_LEN, OpCode, encode_header};
use crate::proto::mask::apply_mask;

/// The last four bytes of a sync flush (an empty stored block): removed from every compressed
/// message on send, appended on receive (RFC 7692 section 7.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The RSV1 bit in the 3-bit RSV1 RSV2 RSV3 value of a frame header: "compressed".
pub(crate) const RSV1: u8 = 0b100;

/// The first reservation for an inflated message; it then doubles, up to the message limit.
const INFLATE_FIRST_RESERVE: usize = 1024;

/// The most the first reservation grows to in proportion to the compressed input.
const INFLATE_MAX_FIRST_RESERVE: usize = 64 << 10;

/// zlib's smallest raw DEFLATE window. A window of 8 is compressed with 9, whose matches reach at
/// most 2^9 - 262 = 250 bytes back, so the output is valid for a 256-byte window; decompressing
/// with a larger window than the peer's accepts everything the peer can send.
const ZLIB_MIN_WINDOW_BITS: u8 = 9;

/// A raw DEFLATE compressor with its window and level.
pub struct Compressor {
    inner: Compress,
    window_bits: u8,
    level: u32,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("window_bits", &self.window_bits)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor with a window of 2^`window_bits` bytes (8 to 15; 8 works as 9) at `level`
    /// (0-9).
    pub fn new(window_bits: u8, level: u32) -> Self {
        let window_bits = window_bits.clamp(ZLIB_MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        let level = level.min(9);
        Self {
            inner: Compress::new_with_window_bits(Compression::new(level), false, window_bits),
            window_bits,
            level,
        }
    }

    /// Whether this compressor was made for `window_bits` and `level` (as clamped by `new`).
    pub(super) fn matches(&self, window_bits: u8, level: u32) -> bool {
        self.window_bits == window_bits.clamp(ZLIB_MIN_WINDOW_BITS, MAX_WINDOW_BITS)
            && self.level == level.min(9)
    }

    /// Compresses a whole message onto the end of `out` and removes the final `00 00 ff ff`:
    /// the payload of a compressed message (RFC 7692 section 7.2.1). The context is kept: call
    /// [`Compressor::reset`] between messages unless context takeover was agreed.
    pub fn compress_message(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        // DEFLATE's worst case is a few bytes per 16 KiB stored block above the input.
        out.reserve(payload.len() + payload.len() / 4096 * 5 + 16);
        let mut input = payload;
        let mut stalled = 0;
        loop {
            let (before_in, before_out) = (self.inner.total_in(), out.len());
            // A compressor in a valid state fails only without room to write.
            let status = self.inner.compress_vec(input, out, FlushCompress::Sync);
            let used = (self.inner.total_in() - before_in) as usize;
            input = &input[used..];
            // The flush is complete when all input is taken and room is left over.
            if input.is_empty() && out.len() < out.capacity() && status.is_ok() {
                break;
            }
            if used == 0 && out.len() == before_out {
                stalled += 1;
                if stalled > 2 {
                    break;
                }
            } else {
                stalled = 0;
            }
            out.reserve((out.capacity() / 2).max(64));
        }
        debug_assert!(out[start..].ends_with(&TAIL));
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
    }

    /// Forgets the context: the next message is compressed on its own.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

/// A raw DEFLATE decompressor for one direction of one connection.
pub struct Decompressor {
    inner: Decompress,
    window_bits: u8,
    /// The stream ended with a final block (BFINAL): what follows in the message is ignored.
    ended: bool,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("window_bits", &self.window_bits)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Compressed bytes inflated at a time by [`Decompressor::inflate_some`], at most (less when its
/// allowance is small).
pub const INFLATE_PIECE: usize = 1024;

/// DEFLATE's largest ratio: one byte of input makes at most this many bytes of output.
const MAX_RATIO: usize = 1032;

/// Where an inflated stream stands after [`Decompressor::inflate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inflated {
    /// All input was used; more may come.
    More,
    /// The stream ended with a final block: nothing more is inflated until a reset.
    End,
}

/// Why [`Decompressor::inflate`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The input is not valid DEFLATE data (RFC 7692 section 8: fail the connection; 1007).
    Invalid,
    /// The output would grow past the cap (1009). Nothing past the cap was allocated.
    TooLarge {
        /// The output size reached: one byte over the cap.
        len: u64,
    },
}

impl Decompressor {
    /// A decompressor for a peer that compresses with a window of up to 2^`window_bits` bytes.
    pub fn new(window_bits: u8) -> Self {
        let window_bits = window_bits.clamp(ZLIB_MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        Self {
            inner: Decompress::new_with_window_bits(false, window_bits),
            window_bits,
            ended: false,
        }
    }

    /// Forgets the context: the next message is inflated on its own.
    pub fn reset(&mut self) {
        self.inner.reset(false);
        self.ended = false;
    }

    /// Whether the stream ended with a final block.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// [`Decompressor::inflate`], making about `out` bytes of output at most: `input` is fed a
    /// piece at a time (of `INFLATE_PIECE` bytes, or less for a small allowance: one piece
    /// makes at most 1,032 times its size, DEFLATE's largest ratio), and once `out` bytes were
    /// made the rest is left. Returns how the stream stands and how much of `input` was used
    /// (all of it, unless the output allowance ran out first: present the rest again). The
    /// output of one call stays within `out` plus one piece's worth (at most a mebibyte, about
    /// `out` for an allowance under one).
    pub fn inflate_some<E: From<InflateError>>(
        &mut self,
        input: &[u8],
        buf: &mut Vec<u8>,
        max: usize,
        out: usize,
        on_output: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(Inflated, usize), E> {
        let start = buf.len();
        let mut used = 0;
        // Pieces small enough that one of them cannot go far past the allowance.
        let piece = (out / MAX_RATIO).clamp(64, INFLATE_PIECE);
        for piece in input.chunks(piece) {
            if used > 0 && buf.len() - start >= out {
                return Ok((Inflated::More, used));
            }
            let state = self.inflate(piece, buf, max, on_output)?;
            used += piece.len();
            if state == Inflated::End {
                return Ok((Inflated::End, used));
            }
        }
        Ok((Inflated::More, used))
    }

    /// Inflates `input` onto the end of `buf`, which never grows past `max` bytes: the output
    /// is written straight into `buf`'s spare room, which is reserved step by step (doubling,
    /// up to `max`), and output that would go past `max` fails with
    /// [`InflateError::TooLarge`] before anything more is reserved. `on_output` is shown each
    /// newly inflated piece as soon as it is there (to validate text as it grows) and may stop
    /// the work with an error.
    pub fn inflate<E: From<InflateError>>(
        &mut self,
        mut input: &[u8],
        buf: &mut Vec<u8>,
        max: usize,
        on_output: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Inflated, E> {
        if self.ended {
            return Ok(Inflated::End);
        }
        if buf.capacity() == buf.len() && buf.len() < max {
            let first = (input.len() * 4).clamp(INFLATE_FIRST_RESERVE, INFLATE_MAX_FIRST_RESERVE);
            let target = (buf.len() + first).min(max);
            buf.reserve_exact(target - buf.len());
        }
        loop {
            if buf.len() == buf.capacity() {
                if buf.len() >= max {
                    // At the cap: one more byte of output fails the message.
                    let mut probe = [0u8; 1];
                    let (used, made, status) = self.step(input, &mut probe);
                    // A byte made before an error in the same call came first in the stream.
                    if made > 0 {
                        return Err(InflateError::TooLarge {
                            len: buf.len() as u64 + 1,
                        }
                        .into());
                    }
                    let status = status?;
                    input = &input[used..];
                    if status == Status::StreamEnd {
                        self.ended = true;
                        return Ok(Inflated::End);
                    }
                    if used == 0 {
                        return Ok(Inflated::More);
                    }
                    continue;
                }
                let target = (buf.capacity() * 2).max(buf.len() + 1).min(max);
                buf.reserve_exact(target - buf.len());
            }
            let start = buf.len();
            let before_in = self.inner.total_in();
            let result = self.inner.decompress_vec(input, buf, FlushDecompress::None);
            // What was inflated before an error is shown first, so that the first fault in
            // stream order is the one reported, however the input was cut.
            if buf.len() > start {
                on_output(&buf[start..])?;
            }
            let status = result.map_err(|_| InflateError::Invalid)?;
            let used = (self.inner.total_in() - before_in) as usize;
            input = &input[used..];
            if status == Status::StreamEnd {
                self.ended = true;
                return Ok(Inflated::End);
            }
            if buf.len() < buf.capacity() {
                // Room was left: zlib stopped for want of input.
                if input.is_empty() {
                    return Ok(Inflated::More);
                }
                if used == 0 && buf.len() == start {
                    // Input and room, yet no progress: not a stream zlib can continue.
                    return Err(InflateError::Invalid.into());
                }
            }
        }
    }

    /// One call into zlib with a slice as output: input used, output made (also when the call
    /// then failed), and the status.
    fn step(&mut self, input: &[u8], output: &mut [u8]) -> (usize, usize, Result<Status, InflateError>) {
        let (before_in, before_out) = (self.inner.total_in(), self.inner.total_out());
        let status = self
            .inner
            .decompress(input, output, FlushDecompress::None)
            .map_err(|_| InflateError::Invalid);
        (
            (self.inner.total_in() - before_in) as usize,
            (self.inner.total_out() - before_out) as usize,
            status,
        )
    }
}

impl From<InflateError> for Error {
    fn from(e: InflateError) -> Self {
        match e {
            InflateError::Invalid => Error::InvalidCompressedData,
            InflateError::TooLarge { len } => Error::MessageTooLarge { len, max: 0 },
        }
    }
}

/// Encodes a whole server frame (unmasked, FIN, RSV1) carrying `payload` compressed with a
/// compressor of the pool, reset afterwards: a frame that can be sent to every peer that agreed
/// to permessage-deflate with this window and level and without server context takeover (for
/// broadcasts). Appends to `out`.
pub fn compress_frame(
    opcode: OpCode,
    payload: &[u8],
    window_bits: u8,
    level: u32,
    pool: &mut DeflatePool,
    out: &mut Vec<u8>,
) {
    let mut c = pool.take_compressor(window_bits, level);
    write_compressed(&mut c, opcode, payload, None, out);
    pool.give_compressor(c);
    pool.compressed += 1;
}

/// Appends one frame of `payload` compressed by `c` to `out`, masked with `mask` if given: the
/// compressed bytes go after a gap as long as the longest header, then move back to meet the
/// header once its length is known.
fn write_compressed(
    c: &mut Compressor,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.resize(start + MAX_HEADER_LEN, 0);
    c.compress_message(payload, out);
    let len = out.len() - start - MAX_HEADER_LEN;
    let header = encode_header(true, RSV1, opcode, len as u64, mask);
    let h = header.as_bytes().len();
    out.copy_within(start + MAX_HEADER_LEN.., start + h);
    out.truncate(start + h + len);
    out[start..start + h].copy_from_slice(header.as_bytes());
    if let Some(key) = mask {
        apply_mask(&mut out[start + h..], key, 0);
    }
}

/// The permessage-deflate state of one connection (boxed in the connection, so that a connection
/// without the extension pays one pointer).
pub(crate) struct DeflateState {
    pub(crate) negotiated: Negotiated,
    /// Owned for the connection's life with context takeover; otherwise borrowed per message.
    compressor: Option<Box<Compressor>>,
    /// Owned with the peer's context takeover; otherwise borrowed from the pool for the message
    /// being received, and given back when it ends.
    decompressor: Option<Box<Decompressor>>,
    /// The message being received is compressed.
    pub(crate) inflating: bool,
}

impl std::fmt::Debug for DeflateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateState")
            .field("negotiated", &self.negotiated)
            .field("compressor", &self.compressor.is_some())
            .field("decompressor", &self.decompressor.is_some())
            .field("inflating", &self.inflating)
            .finish()
    }
}

impl DeflateState {
    pub(crate) fn new(negotiated: Negotiated) -> Self {
        Self {
            negotiated,
            compressor: None,
            decompressor: None,
            inflating: false,
        }
    }

    /// Whether a message of `len` bytes is sent compressed.
    pub(crate) fn compresses(&self, len: usize) -> bool {
        len >= self.negotiated.threshold
    }

    /// Whether any zlib state is held now.
    pub(crate) fn holds_state(&self) -> bool {
        self.compressor.is_some() || self.decompressor.is_some()
    }

    /// Bytes of zlib state held now, as estimated by [`super::COMPRESSOR_BYTES`] and
    /// [`super::DECOMPRESSOR_BYTES`].
    pub(crate) fn held(&self) -> usize {
        usize::from(self.compressor.is_some()) * super::COMPRESSOR_BYTES
            + usize::from(self.decompressor.is_some()) * super::DECOMPRESSOR_BYTES
    }

    /// Starts receiving a compressed message: borrows a decompressor unless one is owned.
    pub(crate) fn begin_message(&mut self, pool: &mut DeflatePool) {
        self.inflating = true;
        if self.decompressor.is_none() {
            self.decompressor = Some(if self.negotiated.decompress_context_takeover {
                Box::new(Decompressor::new(self.negotiated.decompress_window_bits))
            } else {
                pool.take_decompressor()
            });
        }
    }

    /// Inflates a piece of the compressed message onto `buf`, making about `out` bytes at most
    /// (see [`Decompressor::inflate_some`]); returns how much of `input` was used.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        buf: &mut Vec<u8>,
        max: usize,
        out: usize,
        on_output: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<usize, Error> {
        let d = self
            .decompressor
            .get_or_insert_with(|| Box::new(Decompressor::new(MAX_WINDOW_BITS)));
        d.inflate_some(input, buf, max, out, on_output)
            .map(|(_, used)| used)
            .map_err(|e| match e {
                Error::MessageTooLarge { len, .. } => Error::MessageTooLarge { len, max },
                e => e,
            })
    }

    /// The message is over (complete, abandoned or failed): gives the decompressor back unless
    /// the context is kept, in which case a stream that ended with a final block is reset.
    pub(crate) fn end_message(&mut self, pool: &mut DeflatePool) {
        self.inflating = false;
        if self.negotiated.decompress_context_takeover {
            if let Some(d) = self.decompressor.as_mut()
                && d.ended()
            {
                d.reset();
            }
        } else if let Some(d) = self.decompressor.take() {
            pool.give_decompressor(d);
        }
    }

    /// Drops what a failed or closed connection will never use again (a borrowed decompressor
    /// goes back to the pool).
    pub(crate) fn release(&mut self, pool: &mut DeflatePool) {
        self.inflating = false;
        self.compressor = None;
        if let Some(d) = self.decompressor.take()
            && !self.negotiated.decompress_context_takeover
        {
            pool.give_decompressor(d);
        }
    }

    /// Appends one frame of `payload`, compressed, to `out` (masked with `mask` if given), or
    /// returns false without writing when compressing without context takeover did not make it
    /// shorter (the caller then sends it plain, RSV1 clear).
    pub(crate) fn write_message(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        mask: Option<[u8; 4]>,
        out: &mut Vec<u8>,
        pool: &mut DeflatePool,
    ) -> bool {
        let n = self.negotiated;
        pool.compressed += 1;
        if n.compress_context_takeover {
            let c = self
                .compressor
                .get_or_insert_with(|| Box::new(Compressor::new(n.compress_window_bits, n.level)));
            write_compressed(c, opcode, payload, mask, out);
            return true;
        }
        let mut c = pool.take_compressor(n.compress_window_bits, n.level);
        let start = out.len();
        write_compressed(&mut c, opcode, payload, mask, out);
        pool.give_compressor(c);
        if out.len() - start
            >= payload.len()
                + encode_header(true, 0, opcode, payload.len() as u64, mask)
                    .as_bytes()
                    .len()
        {
            out.truncate(start);
            pool.compressed -= 1;
            return false;
        }
        true
    }

    /// Compresses `payload` into a new buffer (no framing), for a message sent in several frames.
    pub(crate) fn compress(&mut self, payload: &[u8], pool: &mut DeflatePool) -> Vec<u8> {
        let n = self.negotiated;
        pool.compressed += 1;
        let mut out = Vec::new();
        if n.compress_context_takeover {
            let c = self
                .compressor
                .get_or_insert_with(|| Box::new(Compressor::new(n.compress_window_bits, n.level)));
            c.compress_message(payload, &mut out);
        } else {
            let mut c = pool.take_compressor(n.compress_window_bits, n.level);
            c.compress_message(payload, &mut out);
            pool.give_compressor(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(d: &mut Decompressor, data: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
        let mut buf = Vec::new();
        d.inflate::<InflateError>(data, &mut buf, max, &mut |_| Ok(()))?;
        d.inflate::<InflateError>(&TAIL, &mut buf, max, &mut |_| Ok(()))?;
        Ok(buf)
    }

    fn json(len: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut i = 0;
        while s.len() < len {
            s.push_str(&format!(
                "{{\"id\":{i},\"name\":\"user{}\",\"active\":{}}},",
                i % 17,
                i % 2 == 0
            ));
            i += 1;
        }
        s.truncate(len);
        s.into_bytes()
    }

    #[test]
    fn rfc_7692_hello_examples() {
        // Section 7.2.3 (examples): "Hello" compressed, one frame.
        let mut d = Decompressor::new(15);
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(&mut d, &hello, 1 << 20).unwrap(), b"Hello");
        // With context takeover, the second "Hello" refers to the first.
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(inflate_all(&mut d, &second, 1 << 20).unwrap(), b"Hello");
        // A stored (uncompressed) block.
        let mut d = Decompressor::new(15);
        let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        assert_eq!(inflate_all(&mut d, &stored, 1 << 20).unwrap(), b"Hello");
        // A final block (BFINAL) and nothing after.
        let mut d = Decompressor::new(15);
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(&mut d, &fin, 1 << 20).unwrap(), b"Hello");
        assert!(d.ended());
        // The empty message compresses to a single 0x00.
        let mut c = Compressor::new(15, 6);
        let mut out = Vec::new();
        c.compress_message(b"", &mut out);
        assert_eq!(out, [0x00]);
        let mut d = Decompressor::new(15);
        assert_eq!(inflate_all(&mut d, &out, 1 << 20).unwrap(), b"");
    }

    #[test]
    fn compress_then_inflate_round_trips_at_many_sizes_and_windows() {
        for bits in [8, 9, 10, 12, 15] {
            for takeover in [false, true] {
                let mut c = Compressor::new(bits, 6);
                let mut d = Decompressor::new(bits);
                for len in [0, 1, 5, 63, 64, 100, 1000, 4096, 70_000, 300_000] {
                    let data = json(len);
                    let mut z = Vec::new();
                    c.compress_message(&data, &mut z);
                    assert!(!z.ends_with(&TAIL) || z.len() < 4 || len == 0);
                    let back = inflate_all(&mut d, &z, 1 << 20).unwrap();
                    assert_eq!(back, data, "bits {bits} len {len} takeover {takeover}");
                    if !takeover {
                        c.reset();
                        d.reset();
                    }
                }
            }
        }
    }

    #[test]
    fn window_8_output_stays_within_256_bytes() {
        // Every match distance of zlib's window 9 is at most 250: check by decoding with a
        // window of 9 bits (the smallest zlib has) data whose repeats are 300 bytes apart.
        let block: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let data: Vec<u8> = block.iter().cycle().take(30_000).copied().collect();
        let mut c = Compressor::new(8, 9);
        let mut z = Vec::new();
        c.compress_message(&data, &mut z);
        let mut d = Decompressor::new(8);
        assert_eq!(inflate_all(&mut d, &z, 1 << 20).unwrap(), data);
    }

    #[test]
    fn inflate_stops_at_the_cap_without_reserving_past_it() {
        let data = vec![b'a'; 1 << 20];
        let mut c = Compressor::new(15, 9);
        let mut z = Vec::new();
        c.compress_message(&data, &mut z);
        assert!(
            z.len() < 2048,
            "1 MiB of one byte compresses to {} bytes",
            z.len()
        );
        for max in [0, 1, 1000, 4096, 65_535, (1 << 20) - 1] {
            let mut d = Decompressor::new(15);
            let mut buf = Vec::new();
            let r = d.inflate::<InflateError>(&z, &mut buf, max, &mut |_| Ok(()));
            assert_eq!(
                r,
                Err(InflateError::TooLarge { len: max as u64 + 1 }),
                "cap {max}"
            );
            assert!(
                buf.capacity() <= max,
                "capacity {} over the cap {max}",
                buf.capacity()
            );
        }
        // Exactly at the cap is fine.
        let mut d = Decompressor::new(15);
        assert_eq!(inflate_all(&mut d, &z, 1 << 20).unwrap().len(), 1 << 20);
    }

    #[test]
    fn inflate_fed_byte_by_byte_equals_whole() {
        let data = json(5000);
        let mut c = Compressor::new(15, 6);
        let mut z = Vec::new();
        c.compress_message(&data, &mut z);
        z.extend_from_slice(&TAIL);
        let mut d = Decompressor::new(15);
        let mut buf = Vec::new();
        let mut pieces = 0;
        for b in z.chunks(1) {
            d.inflate::<InflateError>(b, &mut buf, 1 << 20, &mut |p| {
                assert!(!p.is_empty());
                pieces += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(buf, data);
        assert!(pieces > 1);
    }

    #[test]
    fn invalid_data_is_an_error() {
        for bad in [
            &[0xff, 0xff, 0xff][..],
            &[0x07],
            &[0x06],
            &[0x00, 0x05, 0x00, 0x00, 0x00, 0x48],
        ] {
            let mut d = Decompressor::new(15);
            assert_eq!(
                inflate_all(&mut d, bad, 1 << 20),
                Err(InflateError::Invalid),
                "{bad:x?}"
            );
        }
        // A distance too far back for an empty window.
        let mut d = Decompressor::new(15);
        assert_eq!(
            inflate_all(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00], 1 << 20),
            Err(InflateError::Invalid)
        );
    }
}
