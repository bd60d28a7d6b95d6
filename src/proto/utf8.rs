//! Incremental UTF-8 validation of text messages (RFC 6455 sections 5.6 and 8.1).
//!
//! A text message may arrive in many frames and each frame in many reads; a code point may be
//! split anywhere. [`Utf8Validator`] is fed the pieces in order and fails at the first piece that
//! contains a byte which cannot begin or continue a valid sequence, long before the message ends.
//! It holds at most 3 bytes of an unfinished code point between pieces.
//!
//! The bulk validation is SIMD code from `simdutf8` (chosen at run time from the CPU's features):
//! its fast `basic` check runs first, and only a piece that fails it is checked again with the
//! `compat` API, which says where the error is and whether the piece merely ends inside a sequence.

use simdutf8::{basic, compat};

/// The longest UTF-8 sequence.
const MAX_SEQ: usize = 4;

/// Validates a byte stream as UTF-8, piece by piece.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8Validator {
    /// Bytes of a code point that the last piece ended inside of.
    partial: [u8; MAX_SEQ],
    /// How many bytes of `partial` are used (0..=3).
    partial_len: u8,
    /// Bytes fed so far, to report error positions.
    seen: u64,
}

/// Where a stream stopped being UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error {
    /// Offset from the start of the stream of the first byte of the invalid sequence.
    pub offset: u64,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub const fn new() -> Self {
        Self {
            partial: [0; MAX_SEQ],
            partial_len: 0,
            seen: 0,
        }
    }

    /// Validates the next piece of the stream.
    ///
    /// Succeeds if everything fed so far is valid UTF-8 or a prefix of it; fails as soon as it is not.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), Utf8Error> {
        let start = self.seen;
        self.seen += piece.len() as u64;
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let take = (MAX_SEQ - have).min(piece.len());
            self.partial[have..have + take].copy_from_slice(&piece[..take]);
            let window = &self.partial[..have + take];
            let used = match compat::from_utf8(window) {
                // The window holds the whole sequence and then more valid bytes: the sequence is
                // complete, whatever follows it is checked with the rest of the piece.
                Ok(_) => take,
                Err(e) if e.valid_up_to() > 0 => e.valid_up_to() - have,
                Err(e) if e.error_len().is_none() => {
                    // Still inside the same sequence, and the piece is used up.
                    self.partial_len = window.len() as u8;
                    return Ok(());
                }
                Err(_) => {
                    return Err(Utf8Error {
                        offset: start - have as u64,
                    });
                }
            };
            self.partial_len = 0;
            piece = &piece[used..];
            return self.feed_fresh(piece, start + used as u64);
        }
        self.feed_fresh(piece, start)
    }

    /// Checks that the stream did not end inside a code point.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        if self.partial_len > 0 {
            return Err(Utf8Error {
                offset: self.seen - u64::from(self.partial_len),
            });
        }
        Ok(())
    }

    /// Forgets the stream: ready for the next message.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Whether the stream so far ends on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    fn feed_fresh(&mut self, piece: &[u8], start: u64) -> Result<(), Utf8Error> {
        if basic::from_utf8(piece).is_ok() {
            return Ok(());
        }
        match compat::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                None => {
                    let tail = &piece[e.valid_up_to()..];
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.partial_len = tail.len() as u8;
                    Ok(())
                }
                Some(_) => Err(Utf8Error {
                    offset: start + e.valid_up_to() as u64,
                }),
            },
        }
    }
}

/// Validates a whole buffer at once (the common case of a message in one piece) and returns it
/// as the `&str` it is, so that the caller needs no second check and no `unsafe`.
#[inline]
pub fn validate(buf: &[u8]) -> Result<&str, Utf8Error> {
    if let Ok(s) = basic::from_utf8(buf) {
        return Ok(s);
    }
    compat::from_utf8(buf).map_err(|e| Utf8Error {
        offset: e.valid_up_to() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed_in_pieces(data: &[u8], cuts: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut last = 0;
        for &c in cuts {
            v.feed(&data[last..c])?;
            last = c;
        }
        v.feed(&data[last..])?;
        v.finish()
    }

    #[test]
    fn code_point_split_across_pieces_is_valid() {
        let s = "κόσμε 𝄞 €".as_bytes();
        for cut in 0..=s.len() {
            assert_eq!(fed_in_pieces(s, &[cut]), Ok(()), "cut {cut}");
        }
        let every: Vec<usize> = (1..s.len()).collect();
        assert_eq!(fed_in_pieces(s, &every), Ok(()));
    }

    #[test]
    fn invalid_byte_fails_in_its_piece_not_at_the_end() {
        let mut v = Utf8Validator::new();
        v.feed(b"hello ").unwrap();
        let e = v.feed(&[b'a', 0xff, b'b']).unwrap_err();
        assert_eq!(e.offset, 7);
    }

    #[test]
    fn impossible_prefix_fails_before_the_sequence_completes() {
        // F4 90 would be above U+10FFFF: fail on the second byte, not at the end.
        let mut v = Utf8Validator::new();
        v.feed(&[0xf4]).unwrap();
        assert!(v.feed(&[0x90]).is_err());
        // ED A0 starts a surrogate.
        let mut v = Utf8Validator::new();
        v.feed(&[0xed]).unwrap();
        assert!(v.feed(&[0xa0]).is_err());
        // E0 80 starts an overlong form.
        let mut v = Utf8Validator::new();
        v.feed(&[0xe0]).unwrap();
        assert!(v.feed(&[0x80]).is_err());
    }

    #[test]
    fn truncated_sequence_fails_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(&[b'a', 0xe2, 0x82]).unwrap();
        assert_eq!(v.finish(), Err(Utf8Error { offset: 1 }));
    }

    #[test]
    fn partial_then_invalid_continuation_reports_sequence_start() {
        let mut v = Utf8Validator::new();
        v.feed(&[b'x', b'y', 0xe2]).unwrap();
        assert_eq!(v.feed(&[0x41]), Err(Utf8Error { offset: 2 }));
    }

    #[test]
    fn partial_completed_then_more_data() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xe2, 0x82]).unwrap();
        v.feed(&[0xac, b'a', b'b', 0xf0, 0x9d]).unwrap();
        v.feed(&[0x84, 0x9e]).unwrap();
        v.finish().unwrap();
        v.feed(&[0xff]).unwrap_err();
    }

    #[test]
    fn agrees_with_std_on_known_cases() {
        let cases: &[&[u8]] = &[
            b"",
            b"plain ascii",
            &[0xc0, 0x80],
            &[0xc1, 0xbf],
            &[0xe0, 0x9f, 0xbf],
            &[0xed, 0xbf, 0xbf],
            &[0xf4, 0x90, 0x80, 0x80],
            &[0xf5, 0x80, 0x80, 0x80],
            &[0xf0, 0x90, 0x80],
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
        ];
        for data in cases {
            let want = std::str::from_utf8(data).map_err(|e| e.valid_up_to() as u64);
            for cut in 0..=data.len() {
                let got = fed_in_pieces(data, &[cut]).map_err(|e| e.offset);
                assert_eq!(got.is_ok(), want.is_ok(), "{data:x?} cut {cut}");
                if let (Err(g), Err(w)) = (got, want) {
                    assert_eq!(g, w, "{data:x?} cut {cut}");
                }
            }
            assert_eq!(validate(data).is_ok(), want.is_ok());
            if let Ok(s) = validate(data) {
                assert_eq!(s.as_bytes(), *data);
                assert_eq!(s.as_ptr(), data.as_ptr(), "the input itself, not a copy");
            }
        }
    }
}
