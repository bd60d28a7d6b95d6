//! Frame headers (RFC 6455 section 5.2): decoding with every structural check, and encoding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! [`decode_header`] checks what the header alone can tell (opcode, control frame rules, minimal
//! length encoding); the rules that depend on the connection (role, extensions, fragmentation,
//! size limits) are checked by [`Connection`](super::Connection).

use super::error::Error;

/// The longest frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// The longest payload of a control frame (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame opcode (RFC 6455 section 5.2). Reserved values are rejected at decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation = 0x0,
    /// 0x1: a text message (UTF-8).
    Text = 0x1,
    /// 0x2: a binary message.
    Binary = 0x2,
    /// 0x8: starts or answers the closing handshake.
    Close = 0x8,
    /// 0x9: a ping, to be answered with a pong.
    Ping = 0x9,
    /// 0xA: a pong, answer to a ping or unsolicited heartbeat.
    Pong = 0xa,
}

impl OpCode {
    /// Decodes the 4-bit opcode; reserved values (0x3-0x7, 0xB-0xF) are an error.
    pub fn from_u8(op: u8) -> Result<Self, Error> {
        Ok(match op {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xa => Self::Pong,
            _ => return Err(Error::ReservedOpcode(op)),
        })
    }

    /// Whether this is a control opcode (Close, Ping, Pong).
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as a 3-bit value (RSV1 is 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub len: u64,
}

/// Decodes a frame header from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` is a valid prefix of a header that is not complete yet, and
/// `Ok(Some((header, header_len)))` once it is. Fails on a reserved opcode, a fragmented or
/// oversized control frame, a non-minimal length or a 64-bit length with its top bit set.
#[inline]
pub fn decode_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, Error> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    let opcode = OpCode::from_u8(b0 & 0x0f)?;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    if opcode.is_control() && !fin {
        return Err(Error::FragmentedControlFrame);
    }
    let (len, ext) = match len7 {
        126 => {
            let Some(b) = rest.first_chunk::<2>() else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes(*b));
            if len < 126 {
                return Err(Error::NonMinimalLength);
            }
            (len, 2)
        }
        127 => {
            let Some(b) = rest.first_chunk::<8>() else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(*b);
            if len >> 63 != 0 {
                return Err(Error::LengthOverflow);
            }
            if len <= u64::from(u16::MAX) {
                return Err(Error::NonMinimalLength);
            }
            (len, 8)
        }
        n => (u64::from(n), 0),
    };
    // Checked once the whole length is known, so that the error is the same however the header
    // arrives (a prefix would otherwise report a different length).
    if opcode.is_control() && len > MAX_CONTROL_PAYLOAD as u64 {
        return Err(Error::ControlFrameTooLong(len));
    }
    let mask = if masked {
        let Some(k) = rest[ext..].first_chunk::<4>() else {
            return Ok(None);
        };
        Some(*k)
    } else {
        None
    };
    let header_len = 2 + ext + if masked { 4 } else { 0 };
    Ok(Some((
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len,
        },
        header_len,
    )))
}

/// An encoded frame header: up to [`MAX_HEADER_LEN`] bytes, kept inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBuf {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl HeaderBuf {
    /// The header bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for HeaderBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Encodes a frame header with the minimal length encoding.
///
/// `rsv` is the 3-bit RSV1-RSV3 value. The caller writes `len` payload bytes after it, masked with
/// `mask` when one is given.
#[inline]
pub fn encode_header(fin: bool, rsv: u8, opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> HeaderBuf {
    let mut bytes = [0u8; MAX_HEADER_LEN];
    bytes[0] = (u8::from(fin) << 7) | ((rsv & 0x7) << 4) | opcode as u8;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = match len {
        0..=125 => {
            bytes[1] = mask_bit | len as u8;
            2
        }
        126..=0xffff => {
            bytes[1] = mask_bit | 126;
            bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            bytes[1] = mask_bit | 127;
            bytes[2..10].copy_from_slice(&len.to_be_bytes());
            10
        }
    };
    if let Some(key) = mask {
        bytes[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    HeaderBuf { bytes, len: n as u8 }
}

/// The complete encoding of a message as one unmasked frame (a server's), header then
/// payload, as an iterator of exact length: collecting it into a shared buffer
/// (`collect::<Arc<[u8]>>()`) allocates once and copies the payload once.
pub fn message_frame(kind: super::MessageKind, payload: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let opcode = match kind {
        super::MessageKind::Text => OpCode::Text,
        super::MessageKind::Binary => OpCode::Binary,
    };
    let header = encode_header(true, 0, opcode, payload.len() as u64, None);
    header
        .bytes
        .into_iter()
        .take(usize::from(header.len))
        .chain(payload.iter().copied())
}

/// The opcode and payload of one complete, unmasked frame (as made by [`message_frame`]);
/// `None` if `frame` is not one.
pub fn split_frame(frame: &[u8]) -> Option<(OpCode, &[u8])> {
    match decode_header(frame) {
        Ok(Some((h, n))) if h.mask.is_none() => {
            Some((h.opcode, frame.get(n..n + usize::try_from(h.len).ok()?)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(buf: &[u8]) -> (FrameHeader, usize) {
        decode_header(buf).unwrap().unwrap()
    }

    #[test]
    fn rfc_5_7_unmasked_text_hello() {
        let (h, n) = decode(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(n, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.len, 5);
        assert_eq!(h.mask, None);
    }

    #[test]
    fn rfc_5_7_masked_text_hello() {
        let (h, n) = decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.len, 5);
    }

    #[test]
    fn rfc_5_7_fragmented_text() {
        let (h, _) = decode(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert!(!h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        let (h, _) = decode(&[0x80, 0x02, 0x6c, 0x6f]);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Continuation);
    }

    #[test]
    fn rfc_5_7_ping_and_pong() {
        let (h, _) = decode(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(h.opcode, OpCode::Ping);
        let (h, _) = decode(&[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
        assert_eq!(h.opcode, OpCode::Pong);
    }

    #[test]
    fn rfc_5_7_256_bytes_and_64_kib_binary() {
        let (h, n) = decode(&[0x82, 0x7e, 0x01, 0x00]);
        assert_eq!((h.len, n), (256, 4));
        let (h, n) = decode(&[0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]);
        assert_eq!((h.len, n), (65536, 10));
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete_not_invalid() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(decode_header(&full[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(decode(&full).1, 14);
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for op in (0x3..=0x7).chain(0xb..=0xf) {
            assert_eq!(decode_header(&[0x80 | op, 0x00]), Err(Error::ReservedOpcode(op)));
        }
    }

    #[test]
    fn control_frames_must_be_final_and_short() {
        assert_eq!(decode_header(&[0x09, 0x00]), Err(Error::FragmentedControlFrame));
        assert_eq!(
            decode_header(&[0x89, 0x7e, 0x00, 0x7e]),
            Err(Error::ControlFrameTooLong(126))
        );
        assert_eq!(decode(&[0x88, 0x7d]).0.len, 125);
    }

    #[test]
    fn non_minimal_lengths_are_rejected() {
        assert_eq!(
            decode_header(&[0x82, 0x7e, 0x00, 0x7d]),
            Err(Error::NonMinimalLength)
        );
        assert_eq!(
            decode_header(&[0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff]),
            Err(Error::NonMinimalLength)
        );
    }

    #[test]
    fn oversized_control_frame_error_is_the_same_whole_or_in_pieces() {
        // Found by the `frame` fuzz target: the reported length depended on how many bytes of
        // the extended length had arrived (127 on a 2-byte prefix, the real length on the whole).
        let full = [0x8a, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
        for cut in 0..full.len() {
            assert_eq!(decode_header(&full[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(decode_header(&full), Err(Error::ControlFrameTooLong(0x1_0000)));
        assert_eq!(decode_header(&[0x89, 0x7e, 0x01]), Ok(None));
        assert_eq!(
            decode_header(&[0x89, 0x7e, 0x01, 0x00]),
            Err(Error::ControlFrameTooLong(256))
        );
    }

    #[test]
    fn length_with_msb_is_rejected() {
        assert_eq!(
            decode_header(&[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(Error::LengthOverflow)
        );
    }

    #[test]
    fn encode_decode_round_trip_at_length_boundaries() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = encode_header(true, 0b100, OpCode::Binary, len, mask);
                let (d, n) = decode(h.as_bytes());
                assert_eq!(n, h.as_bytes().len());
                assert_eq!(
                    d,
                    FrameHeader {
                        fin: true,
                        rsv: 0b100,
                        opcode: OpCode::Binary,
                        mask,
                        len
                    }
                );
            }
        }
    }
}
