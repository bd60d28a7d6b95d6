//! `Utf8Validator`, fed arbitrary bytes in fuzzer-chosen pieces, and `utf8::validate` agree with
//! `std::str::from_utf8` on validity and on the offset of the error; the validator fails no later
//! than the piece holding the byte that makes the input invalid.
//!
//! Input: `[k][k piece sizes][data]` (pieces cycle through the sizes; 0 is an empty piece).
#![no_main]

use c10k::proto::utf8::{Utf8Validator, validate};
use c10k_fuzz::pieces;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&k, data)) = data.split_first() else {
        return;
    };
    let k = usize::from(k % 16).min(data.len());
    let (sizes, data) = data.split_at(k);
    let want = std::str::from_utf8(data);

    assert_eq!(
        validate(data).map_err(|e| e.offset),
        want.map_err(|e| e.valid_up_to() as u64)
    );

    let mut v = Utf8Validator::new();
    let mut fed = 0;
    let mut got = Ok(());
    for piece in pieces(data, sizes) {
        fed += piece.len();
        if let Err(e) = v.feed(piece) {
            got = Err(e.offset);
            break;
        }
        if let Err(e) = want {
            // The byte at valid_up_to + error_len settles it (or the end of the input does).
            if let Some(n) = e.error_len() {
                assert!(
                    fed <= e.valid_up_to() + n,
                    "error not reported after {fed} bytes: {e:?}"
                );
            }
        }
    }
    if got.is_ok() {
        assert_eq!(v.is_complete(), v.finish().is_ok());
        got = v.finish().map_err(|e| e.offset);
    }
    assert_eq!(got, want.map(|_| ()).map_err(|e| e.valid_up_to() as u64));
});
