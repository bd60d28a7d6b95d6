//! Payload masking (RFC 6455 section 5.3): XOR with a 4-byte key, the hottest loop of a server.
//!
//! [`apply_mask`] works in place on any slice, at any alignment, and continues a mask from any
//! offset into the payload, so a frame that arrives over several reads is unmasked piece by piece.
//! It is safe code: the slice is viewed as 32-byte blocks (`as_chunks_mut`) and each block is XORed
//! as four `u64` words with the key repeated, which the compiler turns into vector instructions; the
//! few bytes left over go one at a time. [`apply_mask_scalar`] is the byte-at-a-time reference it
//! is tested and fuzzed against.

/// XORs `buf` with the mask `key`, as if `buf` started `offset` bytes into the masked payload.
///
/// Applying the same key and offset twice restores the input. Returns nothing: the offset for the
/// next piece of the same payload is `offset + buf.len()`.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    if buf.len() < 32 {
        return xor_bytes(buf, key);
    }
    let word = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let (blocks, tail) = buf.as_chunks_mut::<32>();
    for block in blocks {
        let (words, _) = block.as_chunks_mut::<8>();
        for w in words {
            *w = (u64::from_ne_bytes(*w) ^ word).to_ne_bytes();
        }
    }
    // Blocks are multiples of 4 bytes long, so the tail starts at key phase 0.
    xor_bytes(tail, key);
}

/// The reference implementation: one byte at a time, `buf[i] ^= key[(offset + i) % 4]`.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
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
                    let mut a = data[start..start + len].to_vec();
                    let mut b = a.clone();
                    apply_mask(&mut a, key, offset);
                    apply_mask_scalar(&mut b, key, offset);
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
