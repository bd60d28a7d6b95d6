//! Payload masking (RFC 6455 section 5.3): XOR with a 4-byte key, the hottest loop of a server.
//!
//! [`apply_mask`] works in place on any slice, at any alignment, and continues a mask from any
//! offset into the payload, so a frame that arrives over several reads is unmasked piece by piece.
//! It is safe code: the slice is viewed as 128-byte blocks (`as_chunks_mut`) and each block is
//! XORed as sixteen `u64` words with the key repeated, which the compiler turns into eight 16-byte
//! vector operations (SSE2, the x86-64 baseline) per block. On a long slice the blocks start at a
//! 32-byte boundary of memory (the bytes before it go one at a time, with the key turned to match):
//! a payload follows a 2- to 14-byte frame header and is rarely aligned, and with vectors that
//! straddle cache lines the loop ran at a half to three quarters of its aligned speed (`unmask`
//! in `benches/proto.rs`). What is left after the blocks goes as `u64` words, then bytes.
//! [`apply_mask_scalar`] is the byte-at-a-time reference it is tested and fuzzed against.

/// XORs `buf` with the mask `key`, as if `buf` started `offset` bytes into the masked payload.
///
/// Applying the same key and offset twice restores the input. Returns nothing: the offset for the
/// next piece of the same payload is `offset + buf.len()`.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = rotate(key, offset);
    let mut buf = buf;
    if buf.len() >= ALIGN_FROM {
        // At most 31 bytes up to the boundary; the key turns by as many.
        let (head, rest) = buf.split_at_mut(buf.as_ptr().align_offset(ALIGN));
        xor_bytes(head, key);
        key = rotate(key, head.len());
        buf = rest;
    }
    let word = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let (blocks, tail) = buf.as_chunks_mut::<BLOCK>();
    for block in blocks {
        xor_words(block, word);
    }
    // Blocks and words are multiples of 4 bytes long, so the tail and its bytes start at key
    // phase 0.
    let (words, bytes) = tail.as_chunks_mut::<8>();
    for w in words {
        *w = (u64::from_ne_bytes(*w) ^ word).to_ne_bytes();
    }
    xor_bytes(bytes, key);
}

/// Bytes XORed in one iteration of the main loop: eight 16-byte vectors with the baseline SSE2.
/// Shorter blocks left the compiler to unroll less, and were slower on 16 KiB.
const BLOCK: usize = 128;

/// The memory boundary the blocks start at: a 16-byte vector never straddles a cache line from
/// there, nor would a 32-byte one.
const ALIGN: usize = 32;

/// From this length on, the blocks are aligned first: below it, the bytes before the boundary
/// would be a large share of the work.
const ALIGN_FROM: usize = BLOCK;

#[inline(always)]
fn xor_words(block: &mut [u8; BLOCK], word: u64) {
    let (words, _) = block.as_chunks_mut::<8>();
    for w in words {
        *w = (u64::from_ne_bytes(*w) ^ word).to_ne_bytes();
    }
}

/// The reference implementation: one byte at a time, `buf[i] ^= key[(offset + i) % 4]`.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        // Wrapping: only the offset modulo 4 matters, and it must not overflow near `usize::MAX`.
        *b ^= key[offset.wrapping_add(i) & 3];
    }
}

/// The key as seen from `offset` bytes into the payload.
#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut k = u32::from_be_bytes(key);
    k = k.rotate_left(8 * (offset & 3) as u32);
    k.to_be_bytes()
}

#[inline]
fn xor_bytes(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_5_7_masked_hello() {
        // "Hello" masked with 37 fa 21 3d.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn agrees_with_scalar_at_every_alignment_offset_and_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..16 {
            for len in [0, 1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 100, 257] {
                for offset in 0..8 {
                    // In place in the shared buffer: a copy would start wherever the allocator
                    // puts it.
                    let mut a = data.clone();
                    let mut b = data.clone();
                    apply_mask(&mut a[start..start + len], key, offset);
                    apply_mask_scalar(&mut b[start..start + len], key, offset);
                    assert_eq!(a, b, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn scalar_agrees_at_an_offset_near_usize_max() {
        // Found by the `mask` fuzz target: `offset + i` overflowed in the reference implementation.
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..70u8).collect();
        for offset in [usize::MAX - 2, usize::MAX] {
            let mut a = data.clone();
            let mut b = data.clone();
            apply_mask(&mut a, key, offset);
            apply_mask_scalar(&mut b, key, offset);
            assert_eq!(a, b, "offset {offset}");
        }
    }

    #[test]
    fn agrees_with_scalar_for_every_distance_to_the_block_boundary() {
        // Long slices starting at each of 64 addresses: every length of the unaligned head.
        let key = [0x9a, 0xbc, 0xde, 0xf0];
        let data: Vec<u8> = (0..1200u32).map(|i| (i * 13 + 1) as u8).collect();
        for start in 0..64 {
            for len in [ALIGN_FROM - 1, ALIGN_FROM, ALIGN_FROM + 1, 200, 1000] {
                for offset in 0..4 {
                    // In place in the shared buffer: a copy would start wherever the allocator
                    // puts it.
                    let mut a = data.clone();
                    let mut b = data.clone();
                    apply_mask(&mut a[start..start + len], key, offset);
                    apply_mask_scalar(&mut b[start..start + len], key, offset);
                    assert_eq!(a, b, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn split_payload_unmasks_like_whole() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for cut in [1, 2, 3, 5, 33, 500, 999] {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(parts, whole, "cut {cut}");
        }
    }
}
