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

/// The kind of a data message: the opcode of its first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

impl MessageKind {
    /// The opcode of a message's first frame ([`OpCode::Text`] or [`OpCode::Binary`]).
    pub fn opcode(self) -> OpCode {
        match self {
            Self::Text => OpCode::Text,
            Self::Binary => OpCode::Binary,
        }
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

/// The complete encoding of a whole message in one unmasked frame (FIN set, RSV clear): the
/// header, then the payload, as bytes. This is what a server sends, and what a broadcast shares
/// between its subscribers.
///
/// The iterator's length is exact and known up front (`size_hint` is `(n, Some(n))`), and it is
/// built only from standard adapters over an owned header array and the payload slice, whose
/// lengths the standard library trusts (`TrustedLen`). Collecting it into a reference-counted
/// slice (`collect::<Arc<[u8]>>()`) therefore allocates once, at the final size, and writes the
/// bytes in place: no intermediate `Vec`, no second copy. Into a `Vec`, `extend` reserves once.
pub fn message_frame(kind: MessageKind, payload: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let header = encode_header(true, 0, kind.opcode(), payload.len() as u64, None);
    header
        .bytes
        .into_iter()
        .take(usize::from(header.len))
        .chain(payload.iter().copied())
}

/// The opcode and payload of `frame` if it is exactly one complete unmasked frame with FIN set
/// and RSV clear (what [`message_frame`] makes, or a control frame); `None` if the header is
/// invalid or incomplete, the frame is masked, fragmented or uses an RSV bit, or the bytes are
/// fewer or more than the header announces.
pub fn split_frame(frame: &[u8]) -> Option<(OpCode, &[u8])> {
    let (header, header_len) = decode_header(frame).ok()??;
    if !header.fin || header.rsv != 0 || header.mask.is_some() {
        return None;
    }
    let payload = &frame[header_len..];
    (payload.len() as u64 == header.len).then_some((header.opcode, payload))
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

    #[test]
    fn message_frame_decodes_back_at_every_length_encoding() {
        for (len, header_len) in [
            (0usize, 2usize),
            (1, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            for kind in [MessageKind::Text, MessageKind::Binary] {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let frame = message_frame(kind, &payload);
                assert_eq!(frame.size_hint(), (header_len + len, Some(header_len + len)));
                let frame: Vec<u8> = frame.collect();
                assert_eq!(frame.len(), header_len + len);
                let (h, n) = decode(&frame);
                assert_eq!(
                    (h, n),
                    (
                        FrameHeader {
                            fin: true,
                            rsv: 0,
                            opcode: kind.opcode(),
                            mask: None,
                            len: len as u64
                        },
                        header_len
                    )
                );
                assert_eq!(&frame[n..], &payload[..]);
                assert_eq!(
                    frame[..n],
                    *encode_header(true, 0, kind.opcode(), len as u64, None).as_bytes()
                );
                assert_eq!(
                    split_frame(&frame),
                    Some((kind.opcode(), &payload[..])),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn split_frame_takes_exactly_one_whole_unmasked_final_frame() {
        let frame: Vec<u8> = message_frame(MessageKind::Text, b"Hello").collect();
        assert_eq!(frame, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
        assert_eq!(split_frame(&frame), Some((OpCode::Text, &b"Hello"[..])));
        // A control frame is one frame too.
        assert_eq!(split_frame(&[0x89, 0x01, b'p']), Some((OpCode::Ping, &b"p"[..])));
        // Incomplete: every proper prefix.
        for cut in 0..frame.len() {
            assert_eq!(split_frame(&frame[..cut]), None, "cut {cut}");
        }
        // Trailing bytes.
        let mut longer = frame.clone();
        longer.push(0x81);
        assert_eq!(split_frame(&longer), None);
        // Masked (RFC 6455 section 5.7), fragmented, RSV1, invalid header.
        let masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(split_frame(&masked), None);
        assert_eq!(split_frame(&[0x01, 0x01, b'a']), None);
        assert_eq!(split_frame(&[0xc1, 0x01, b'a']), None);
        assert_eq!(split_frame(&[0x83, 0x00]), None);
        assert_eq!(split_frame(&[0x82, 0x7e, 0x00, 0x05, 1, 2, 3, 4, 5]), None);
    }
}
