//! The grammar: how a sequence is drawn. A sequence is an opening handshake (one in twelve
//! mutated), then one to five items, each a few frames on one theme (a message, a fragmented
//! message with control frames between its fragments, pings, a Close, an invalid frame, text
//! split inside UTF-8 characters, a length at an edge, compressed data), then usually a Close;
//! the stream is cut into writes at random byte positions with random pauses.
//!
//! Pure: the same [`Rng`] state gives the same sequence. Whether a sequence is valid is not the
//! grammar's business: the oracle decides that from the bytes.

use super::rng::Rng;
use super::sequence::{Cut, Frame, Len, Mutation, Opening, Sequence, encode_frames, request};

/// What the grammar knows about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grammar {
    /// The server's message size limit, if known: lengths around it are drawn, and lengths
    /// over it are announced without being sent. Unknown: messages stay under 128 KiB.
    pub max_message: Option<usize>,
}

/// Messages of the limit's size are sent only when it is at most this (each costs its size).
const MAX_SENT_LIMIT: usize = 2 << 20;

/// Text pieces: ASCII and characters of 2, 3 and 4 bytes, so that random cuts fall inside them.
const TEXT: [&str; 8] = ["a", "hello ", "é", "€", "𝄞", "κόσμε", "\u{10ffff}", "\u{7f}"];

/// Byte strings that are not UTF-8 wherever they appear (the truncated ones also at the end).
const BAD_UTF8: [&[u8]; 8] = [
    &[0xff],
    &[0xc0, 0xaf],
    &[0xed, 0xa0, 0x80],
    &[0xf4, 0x90, 0x80, 0x80],
    &[0x80],
    &[0xf8, 0x88, 0x80, 0x80, 0x80],
    &[0xe2, 0x82, 0x28],
    &[0xf0, 0x9d],
];

/// Close codes a Close frame may carry (RFC 6455 section 7.4 and the IANA registry).
const GOOD_CODES: [u16; 14] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4500, 4999,
];

/// Close codes that may not be sent.
const BAD_CODES: [u16; 12] = [
    0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
];

impl Grammar {
    /// Draws one sequence.
    pub fn sequence(&self, rng: &mut Rng) -> Sequence {
        let mutation = if rng.chance(8) {
            *rng.pick(&Mutation::ALL[1..])
        } else {
            Mutation::None
        };
        let deflate = cfg!(feature = "deflate") && rng.chance(25);
        let opening = Opening {
            deflate,
            pipelined: !deflate && rng.chance(50),
            mutation,
        };
        let mut frames = Vec::new();
        let (head, _) = request(&opening, "127.0.0.1", "/");
        if !matches!(
            mutation,
            Mutation::Version8 | Mutation::ShortKey | Mutation::NoKey | Mutation::Post | Mutation::Http10
        ) && mutation != Mutation::NoConnectionUpgrade
        {
            frames = self.frames(rng, deflate);
        }
        let (bytes, ends) = encode_frames(&frames);
        let starts: Vec<usize> = std::iter::once(0).chain(ends).map(|e| head.len() + e).collect();
        let cuts = cuts(rng, head.len() + bytes.len(), &starts);
        Sequence {
            opening,
            frames,
            cuts,
        }
    }

    /// Draws one sequence for a client under test (`c10k fuzz --serve`): the same frames turned
    /// into a server's (a frame that a client writes masked is written unmasked, and one that
    /// a client writes unmasked, which a server must refuse, is written masked: a client must
    /// refuse it), cut into writes. The request is the client's, so nothing of it is drawn;
    /// `opening.deflate` says whether permessage-deflate is agreed when the client offers it.
    pub fn served(&self, rng: &mut Rng) -> Sequence {
        let deflate = cfg!(feature = "deflate") && rng.chance(25);
        let opening = Opening {
            deflate,
            pipelined: false,
            mutation: Mutation::None,
        };
        let mut frames = self.frames(rng, deflate);
        for f in &mut frames {
            f.mask = match f.mask {
                Some(_) => None,
                None => Some(mask(rng)),
            };
        }
        let (bytes, ends) = encode_frames(&frames);
        let starts: Vec<usize> = std::iter::once(0).chain(ends).collect();
        let cuts = cuts(rng, bytes.len(), &starts);
        Sequence {
            opening,
            frames,
            cuts,
        }
    }

    /// The frames of a sequence: one to four items, then (usually) a Close.
    fn frames(&self, rng: &mut Rng, deflate: bool) -> Vec<Frame> {
        let mut frames = Vec::new();
        let items = rng.range(1, 5);
        let mut closed = false;
        for _ in 0..items {
            closed = self.item(rng, deflate, &mut frames);
            if closed {
                break;
            }
        }
        if !closed && rng.chance(85) {
            frames.push(close_frame(rng, 1000, b""));
        }
        frames
    }

    /// Appends one item's frames; true when it ended with a Close frame.
    fn item(&self, rng: &mut Rng, deflate: bool, out: &mut Vec<Frame>) -> bool {
        let theme = rng.below(if deflate { 110 } else { 95 });
        match theme {
            0..=24 => {
                let (op, payload) = self.message(rng);
                out.push(Frame::new(op, payload, mask(rng)));
            }
            25..=44 => {
                let (op, payload) = self.message(rng);
                fragments(rng, op, 0, &payload, out);
            }
            45..=52 => {
                let op = if rng.chance(70) { 9 } else { 10 };
                let n = *rng.pick(&[0, 1, 2, 10, 64, 124, 125]);
                out.push(Frame::new(op, rng.bytes(n), mask(rng)));
            }
            53..=59 => {
                close(rng, out);
                return true;
            }
            60..=77 => invalid(self, rng, out),
            78..=86 => utf8(rng, out),
            87..=94 => self.length_edge(rng, out),
            _ => compressed(rng, out),
        }
        false
    }

    /// A message's opcode and payload, at a size the grammar likes.
    fn message(&self, rng: &mut Rng) -> (u8, Vec<u8>) {
        let n = self.size(rng);
        if rng.chance(50) {
            (1, text(rng, n))
        } else {
            (2, binary(rng, n))
        }
    }

    /// A payload size: small, around the length encodings' edges, or around the limit.
    fn size(&self, rng: &mut Rng) -> usize {
        match rng.below(200) {
            0..=59 => rng.below(16),
            60..=111 => rng.range(16, 300),
            112..=141 => *rng.pick(&[124, 125, 126, 127, 128]),
            142..=173 => rng.range(300, 5000),
            174..=197 => *rng.pick(&[65534, 65535, 65536, 65537]),
            _ => match self.max_message {
                Some(m) if m <= MAX_SENT_LIMIT => m - rng.below(2.min(m)),
                _ => rng.range(65538, 128 << 10),
            },
        }
    }

    /// A frame whose length is at an edge: non-minimal, announced past the limit, or with the
    /// top bit of the 64-bit length set.
    fn length_edge(&self, rng: &mut Rng, out: &mut Vec<Frame>) {
        let op = *rng.pick(&[1, 2]);
        let n = rng.below(200);
        let mut f = Frame::new(op, if op == 1 { text(rng, n) } else { binary(rng, n) }, mask(rng));
        f.len = match rng.below(6) {
            0 => Len::Ext16,
            1 => Len::Ext64,
            2 => Len::Declared((1 << 63) | rng.below(1 << 20) as u64),
            3 => Len::Declared(u64::MAX),
            _ => match self.max_message {
                Some(m) => Len::Declared(*rng.pick(&[
                    m as u64 + 1,
                    (1 << 32) + f.payload.len() as u64,
                    1 << 62,
                    (1 << 63) - 1,
                ])),
                None => Len::Declared(1 << 63),
            },
        };
        out.push(f);
    }
}

/// A random masking key (zero now and then: masking with it changes nothing).
fn mask(rng: &mut Rng) -> [u8; 4] {
    if rng.chance(5) { [0; 4] } else { rng.key() }
}

/// UTF-8 text of exactly `n` bytes.
fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(n);
    if n > 512 {
        s.resize(n - 64, b'a');
    }
    while s.len() + 8 < n {
        s.extend_from_slice(rng.pick(&TEXT).as_bytes());
    }
    s.truncate(s.len().min(n));
    while std::str::from_utf8(&s).is_err() {
        s.pop();
    }
    s.resize(n, b'b');
    s
}

/// Binary of `n` bytes: random when short, a repeated byte with a random tail when long (so
/// that replay files of long frames stay short).
fn binary(rng: &mut Rng, n: usize) -> Vec<u8> {
    if n <= 256 {
        return rng.bytes(n);
    }
    let mut v = vec![rng.below(256) as u8; n - 32];
    v.extend_from_slice(&rng.bytes(32));
    v
}

/// A message of `op` in fragments (RSV `rsv` on the first), with control frames between them.
fn fragments(rng: &mut Rng, op: u8, rsv: u8, payload: &[u8], out: &mut Vec<Frame>) {
    let k = rng.range(2, 5);
    let mut points: Vec<usize> = (0..k - 1).map(|_| rng.below(payload.len() + 1)).collect();
    points.sort_unstable();
    points.push(payload.len());
    let mut start = 0;
    for (i, &end) in points.iter().enumerate() {
        let mut f = Frame::new(
            if i == 0 { op } else { 0 },
            payload[start..end].to_vec(),
            mask(rng),
        );
        f.fin = i == points.len() - 1;
        f.rsv = if i == 0 { rsv } else { 0 };
        out.push(f);
        start = end;
        if !f_is_last(i, &points) && rng.chance(35) {
            let op = if rng.chance(75) { 9 } else { 10 };
            let n = rng.below(126);
            out.push(Frame::new(op, rng.bytes(n), mask(rng)));
        }
    }
}

fn f_is_last(i: usize, points: &[usize]) -> bool {
    i + 1 == points.len()
}

/// A Close frame with `code` (0: empty payload) and `reason`.
fn close_frame(rng: &mut Rng, code: u16, reason: &[u8]) -> Frame {
    let mut payload = Vec::new();
    if code != 0 || !reason.is_empty() {
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason);
    }
    Frame::new(8, payload, mask(rng))
}

/// A Close frame: empty, a valid code, an invalid one, with a reason valid or not, long or not.
fn close(rng: &mut Rng, out: &mut Vec<Frame>) {
    let reason_len: usize = *rng.pick(&[0, 0, 1, 10, 60, 123, 124]);
    let bad_reason = rng.chance(15);
    let reason = if bad_reason {
        let mut r = text(rng, reason_len.saturating_sub(4));
        let at = rng.below(r.len() + 1);
        let bad = rng.pick(&BAD_UTF8);
        r.splice(at..at, bad.iter().copied());
        r
    } else {
        text(rng, reason_len)
    };
    let f = match rng.below(10) {
        0 => close_frame(rng, 0, b""),
        1 => Frame::new(8, vec![0x03], mask(rng)),
        // One fault at a time: a bad code with a good reason (with both, either code is right).
        2 | 3 if !bad_reason => {
            let code = *rng.pick(&BAD_CODES);
            close_frame(rng, code, &reason)
        }
        4 => {
            let code = rng.range(1012, 1014) as u16;
            close_frame(rng, code, &reason)
        }
        _ => {
            let code = *rng.pick(&GOOD_CODES);
            close_frame(rng, code, &reason)
        }
    };
    out.push(f);
}

/// One invalid (or nearly valid) frame, or a short invalid series.
fn invalid(g: &Grammar, rng: &mut Rng, out: &mut Vec<Frame>) {
    let (op, payload) = g.message(rng);
    let payload: Vec<u8> = payload.into_iter().take(300).collect();
    let mut f = Frame::new(op, payload.clone(), mask(rng));
    match rng.below(9) {
        0 => f.opcode = *rng.pick(&[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]),
        1 => f.rsv = rng.range(1, 7) as u8,
        2 => f.mask = None,
        3 => f.opcode = 0,
        4 => {
            // A new data message inside a fragmented one.
            let mut first = Frame::new(op, payload, mask(rng));
            first.fin = false;
            out.push(first);
        }
        5 => {
            // A fragmented control frame.
            f = Frame::new(
                *rng.pick(&[8, 9, 10]),
                {
                    let n = rng.below(10);
                    rng.bytes(n)
                },
                mask(rng),
            );
            if f.opcode == 8 {
                f.payload = 1000u16.to_be_bytes().to_vec();
            }
            f.fin = false;
        }
        6 => {
            // A control frame over 125 bytes.
            let n = *rng.pick(&[126, 127, 200, 65536]);
            let op = *rng.pick(&[8, 9, 10]);
            let mut p = rng.bytes(n);
            if op == 8 {
                p[..2].copy_from_slice(&1000u16.to_be_bytes());
            }
            f = Frame::new(op, p, mask(rng));
        }
        7 => {
            // A continuation after a complete message.
            out.push(f.clone());
            f.opcode = 0;
        }
        _ => {
            // Control frames with RSV bits, and pings of every size with RSV bits.
            f = Frame::new(
                *rng.pick(&[9, 10]),
                {
                    let n = rng.below(126);
                    rng.bytes(n)
                },
                mask(rng),
            );
            f.rsv = rng.range(1, 7) as u8;
        }
    }
    out.push(f);
}

/// Text split inside UTF-8 characters over fragments, valid or with an invalid sequence
/// (inside, at the very end, or cut short at the end).
fn utf8(rng: &mut Rng, out: &mut Vec<Frame>) {
    let n = *rng.pick(&[1, 4, 20, 125, 130, 1000]);
    let mut t = text(rng, n);
    if rng.chance(70) {
        let bad = rng.pick(&BAD_UTF8);
        let at = match rng.below(3) {
            0 => 0,
            1 => t.len(),
            _ => rng.below(t.len() + 1),
        };
        // Inserted between characters, never inside one: the bad bytes are the only fault.
        let at = (0..=at)
            .rev()
            .find(|&i| t.get(i).is_none_or(|b| b & 0xc0 != 0x80))
            .unwrap_or(0);
        t.splice(at..at, bad.iter().copied());
    }
    if rng.chance(60) {
        fragments(rng, 1, 0, &t, out);
    } else {
        out.push(Frame::new(1, t, mask(rng)));
    }
}

/// A permessage-deflate item: compressed messages (whole or fragmented), and the frames the
/// extension forbids (RSV1 on a continuation or a control frame, data that does not inflate).
fn compressed(rng: &mut Rng, out: &mut Vec<Frame>) {
    let (op, plain) = Grammar { max_message: None }.message(rng);
    let plain = if rng.chance(10) {
        let mut t = plain;
        let bad: &[u8] = BAD_UTF8[rng.below(BAD_UTF8.len())];
        t.extend_from_slice(bad);
        t
    } else {
        plain
    };
    let data = deflate(&plain);
    match rng.below(8) {
        0..=2 => {
            let mut f = Frame::new(op, data, mask(rng));
            f.rsv = 4;
            out.push(f);
        }
        3 | 4 => fragments(rng, op, 4, &data, out),
        5 => {
            let mut first = Frame::new(op, data, mask(rng));
            first.rsv = 4;
            first.fin = false;
            let mut next = Frame::new(0, deflate(b"more"), mask(rng));
            next.rsv = 4;
            out.extend([first, next]);
        }
        6 => {
            let mut f = Frame::new(
                *rng.pick(&[8, 9, 10]),
                {
                    let n = rng.below(20);
                    rng.bytes(n)
                },
                mask(rng),
            );
            if f.opcode == 8 {
                f.payload = 1000u16.to_be_bytes().to_vec();
            }
            f.rsv = 4;
            out.push(f);
        }
        _ => {
            let n = rng.range(1, 64);
            let mut f = Frame::new(op, rng.bytes(n), mask(rng));
            f.rsv = 4;
            out.push(f);
        }
    }
}

/// `plain` compressed as one message (RFC 7692 section 7.2.1), with a 512-byte window so that
/// it inflates under any window the server may have asked for.
#[cfg(feature = "deflate")]
fn deflate(plain: &[u8]) -> Vec<u8> {
    let mut c = c10k::proto::deflate::Compressor::new(8, 6);
    let mut out = Vec::new();
    c.compress_message(plain, &mut out);
    out
}

#[cfg(not(feature = "deflate"))]
fn deflate(plain: &[u8]) -> Vec<u8> {
    plain.to_vec()
}

/// Bytes written one at a time around a frame boundary, in the "every byte" cuts.
const BYTE_WINDOW: usize = 16;

/// Where a stream of `len` bytes is cut into writes: not at all, at a few random positions, or
/// at every byte of a window around one of the `starts` of the frames (and of the request): a
/// header read one byte at a time.
fn cuts(rng: &mut Rng, len: usize, starts: &[usize]) -> Vec<Cut> {
    let mut at: Vec<usize> = match rng.below(100) {
        0..=44 => Vec::new(),
        45..=89 => (0..rng.range(1, 6)).map(|_| rng.range(1, len.max(1))).collect(),
        _ => {
            let from = starts
                .get(rng.below(starts.len()))
                .copied()
                .unwrap_or(0)
                .saturating_sub(2);
            (from.max(1)..(from + BYTE_WINDOW).min(len)).collect()
        }
    };
    at.sort_unstable();
    at.dedup();
    at.into_iter()
        .filter(|&a| a < len)
        .map(|at| Cut {
            at,
            pause_us: if rng.chance(8) {
                rng.range(100, 3000) as u32
            } else {
                0
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_sequences() {
        let g = Grammar {
            max_message: Some(1 << 20),
        };
        for i in 0..200 {
            let a = g.sequence(&mut Rng::for_sequence(5, i));
            let b = g.sequence(&mut Rng::for_sequence(5, i));
            assert_eq!(a, b);
        }
    }

    #[test]
    fn text_is_utf8_of_the_exact_length() {
        let mut rng = Rng::new(3);
        for n in [0, 1, 2, 3, 4, 7, 125, 126, 1000, 65536] {
            let t = text(&mut rng, n);
            assert_eq!(t.len(), n);
            assert!(std::str::from_utf8(&t).is_ok());
        }
    }

    #[test]
    fn served_sequences_are_a_servers_frames() {
        let g = Grammar { max_message: None };
        let (mut masked, mut unmasked) = (0, 0);
        for i in 0..2000 {
            let mut a = Rng::for_sequence(5, i);
            let s = g.served(&mut a);
            assert_eq!(s.opening.mutation, Mutation::None);
            assert!(!s.opening.pipelined);
            let (bytes, _) = encode_frames(&s.frames);
            assert!(s.cuts.iter().all(|c| c.at > 0 && c.at < bytes.len().max(1)));
            for f in &s.frames {
                if f.mask.is_some() {
                    masked += 1;
                } else {
                    unmasked += 1;
                }
            }
        }
        // Mostly unmasked; now and then a masked frame that the client must refuse.
        assert!(
            masked > 0 && unmasked > 20 * masked,
            "{masked} masked, {unmasked} unmasked"
        );
    }

    #[test]
    fn cuts_stay_inside_the_stream_in_order() {
        let mut rng = Rng::new(9);
        for len in [1, 2, 50, 1000] {
            for _ in 0..100 {
                let c = cuts(&mut rng, len, &[0, len / 2, len]);
                assert!(c.windows(2).all(|w| w[0].at < w[1].at));
                assert!(c.iter().all(|c| c.at > 0 && c.at < len));
            }
        }
    }

    #[test]
    fn every_theme_is_drawn() {
        let g = Grammar {
            max_message: Some(1 << 20),
        };
        let (mut ops, mut rsv, mut unmasked, mut declared) = ([false; 16], false, false, false);
        for i in 0..3000 {
            let s = g.sequence(&mut Rng::for_sequence(1, i));
            for f in &s.frames {
                ops[f.opcode as usize] = true;
                rsv |= f.rsv != 0;
                unmasked |= f.mask.is_none();
                declared |= matches!(f.len, Len::Declared(_));
            }
        }
        assert!(ops.iter().all(|&o| o), "{ops:?}");
        assert!(rsv && unmasked && declared);
    }
}
