//! The frames the attackers send, built from the protocol core's header encoding and masking:
//! any opcode, FIN and RSV bits, and any announced length, including those a well-behaved client
//! never sends (a first fragment for ever alone, 2^63 bytes announced).

use c10k::proto::frame::{OpCode, encode_header};
use c10k::proto::mask::apply_mask;

/// Masking keys for the attackers: xorshift64*. A load generator needs keys that vary, not keys
/// an observer cannot guess (see [`crate::loadgen`]).
#[derive(Debug, Clone)]
pub(crate) struct Keys(u64);

impl Keys {
    /// A generator seeded from `seed` (any value).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A fresh masking key.
    pub(crate) fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }
}

/// Appends one masked frame carrying `payload` to `out`.
pub(crate) fn push_frame(
    out: &mut Vec<u8>,
    keys: &mut Keys,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &[u8],
) {
    let mask = keys.mask();
    out.extend_from_slice(encode_header(fin, rsv, opcode, payload.len() as u64, Some(mask)).as_bytes());
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// Appends a masked frame header announcing `len` payload bytes, and returns its key: the
/// payload, sent later in pieces, is masked with [`mask_piece`].
pub(crate) fn push_header(
    out: &mut Vec<u8>,
    keys: &mut Keys,
    fin: bool,
    opcode: OpCode,
    len: u64,
) -> [u8; 4] {
    let mask = keys.mask();
    out.extend_from_slice(encode_header(fin, 0, opcode, len, Some(mask)).as_bytes());
    mask
}

/// Appends `piece`, the bytes at `offset` of a payload announced by [`push_header`], masked.
pub(crate) fn mask_piece(out: &mut Vec<u8>, piece: &[u8], mask: [u8; 4], offset: u64) {
    let start = out.len();
    out.extend_from_slice(piece);
    apply_mask(&mut out[start..], mask, (offset % 4) as usize);
}

/// Appends a masked Close frame with `code` (no reason).
pub(crate) fn push_close(out: &mut Vec<u8>, keys: &mut Keys, code: u16) {
    push_frame(out, keys, true, 0, OpCode::Close, &code.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use c10k::proto::frame::decode_header;

    use super::*;

    #[test]
    fn a_frame_sent_in_pieces_unmasks_to_its_payload() {
        let mut keys = Keys::new(7);
        let payload: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        let mask = push_header(&mut out, &mut keys, true, OpCode::Binary, payload.len() as u64);
        for (i, piece) in payload.chunks(7).enumerate() {
            mask_piece(&mut out, piece, mask, (i * 7) as u64);
        }
        let (h, hl) = decode_header(&out).unwrap().unwrap();
        assert_eq!((h.len, h.mask), (1000, Some(mask)));
        let mut body = out[hl..].to_vec();
        apply_mask(&mut body, mask, 0);
        assert_eq!(body, payload);
    }

    #[test]
    fn a_header_may_announce_what_no_frame_may_carry() {
        let mut out = Vec::new();
        push_header(&mut out, &mut Keys::new(1), true, OpCode::Binary, 1 << 63);
        assert_eq!(&out[1..10], &[0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert!(decode_header(&out).is_err());
    }
}
