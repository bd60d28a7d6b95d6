//! The payloads: what the echo, rate and hold scenarios send (a stamped pattern or JSON-like
//! text) and what the fan-out publisher puts in a message (its sequence number and publish time).

use std::time::Duration;

use crate::loadgen::{Options, PayloadKind};

/// The payload of message `seq` as the options ask for it.
pub(super) fn body(buf: &mut Vec<u8>, opts: &Options, seq: u64) {
    match opts.payload_kind {
        PayloadKind::Pattern => payload(buf, opts.payload, opts.binary, seq),
        PayloadKind::Json => json_payload(buf, opts.payload, seq),
    }
}

/// `len` bytes of JSON-like text for message `seq`: records whose ids, names and numbers vary
/// (xorshift of the sequence number and the record), cut at `len`.
fn json_payload(buf: &mut Vec<u8>, len: usize, seq: u64) {
    use std::fmt::Write as _;
    const NAMES: [&str; 8] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    buf.clear();
    let mut s = format!("{{\"seq\":{seq},\"items\":[");
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut i = 0u64;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = write!(
            s,
            "{{\"id\":{},\"user\":\"{}-{}\",\"score\":{}.{:02},\"active\":{},\"tags\":[\"{}\"]}},",
            seq * 64 + i,
            NAMES[(x % 8) as usize],
            x % 1000,
            (x >> 10) % 10_000,
            (x >> 30) % 100,
            x & 1 == 0,
            NAMES[((x >> 3) % 8) as usize]
        );
        i += 1;
    }
    buf.extend_from_slice(&s.as_bytes()[..len]);
}

/// Expected payload of message `seq`: a pattern with the sequence number stamped at the start.
fn payload(buf: &mut Vec<u8>, len: usize, binary: bool, seq: u64) {
    // A buffer of the right length holds the pattern from the last call (a run uses one payload
    // kind and size): only the stamp changes.
    if buf.len() != len {
        buf.clear();
        buf.extend((0..len).map(|i| b'a' + (i % 26) as u8));
    }
    if binary {
        let s = seq.to_le_bytes();
        let n = len.min(8);
        buf[..n].copy_from_slice(&s[..n]);
    } else {
        // 16 hex digits, without formatting machinery: this runs for every message sent and
        // every echo checked.
        let n = len.min(16);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let nibble = (seq >> (60 - 4 * i)) & 0xf;
            *b = b"0123456789abcdef"[nibble as usize];
        }
    }
}

/// A fan-out payload of `len` bytes (at least 34): `SEQ TIME ` in hex, then padding.
pub(super) fn fanout_body(len: usize, seq: u64, since_epoch: Duration) -> Vec<u8> {
    let mut b = format!("{seq:016x} {:016x} ", since_epoch.as_nanos() as u64).into_bytes();
    b.resize(len.max(b.len()), b'.');
    b
}

/// The sequence number and publish time (ns since the epoch) of a fan-out payload.
pub(super) fn parse_fanout_body(b: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(b.get(..33)?).ok()?;
    let seq = u64::from_str_radix(&s[..16], 16).ok()?;
    let t = u64::from_str_radix(&s[17..33], 16).ok()?;
    Some((seq, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_have_the_length_asked_differ_by_message_and_compress_about_3_to_1() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        json_payload(&mut a, 1024, 7);
        json_payload(&mut b, 1024, 8);
        assert_eq!((a.len(), b.len()), (1024, 1024));
        assert_ne!(a, b);
        assert!(std::str::from_utf8(&a).is_ok());
        json_payload(&mut b, 10, 123_456);
        assert_eq!(b, b"{\"seq\":123");
        #[cfg(feature = "deflate")]
        {
            let mut c = c10k::proto::deflate::Compressor::new(15, 6);
            let mut z = Vec::new();
            c.compress_message(&a, &mut z);
            let ratio = a.len() as f64 / z.len() as f64;
            assert!(
                (2.0..5.0).contains(&ratio),
                "1 KiB compressed to {} bytes",
                z.len()
            );
        }
    }
}
