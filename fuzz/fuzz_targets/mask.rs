//! `apply_mask` (block-wise) agrees with `apply_mask_scalar` (byte-wise) for any key, payload
//! offset, sub-slice start (alignment) and length.
//!
//! Input: `[key: 4][offset: 8, little-endian][start: 1][len: 2, little-endian][data]`.
#![no_main]

use c10k::proto::mask::{apply_mask, apply_mask_scalar};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, data)) = data.split_first_chunk::<15>() else {
        return;
    };
    let key = [head[0], head[1], head[2], head[3]];
    let offset = u64::from_le_bytes(head[4..12].try_into().unwrap()) as usize;
    let start = usize::from(head[12] % 64).min(data.len());
    let len = usize::from(u16::from_le_bytes([head[13], head[14]])).min(data.len() - start);
    let mut fast = data.to_vec();
    let mut slow = data.to_vec();
    apply_mask(&mut fast[start..start + len], key, offset);
    apply_mask_scalar(&mut slow[start..start + len], key, offset);
    assert_eq!(fast, slow);
    // Masking twice restores the input.
    apply_mask(&mut fast[start..start + len], key, offset);
    assert_eq!(fast, data);
});
