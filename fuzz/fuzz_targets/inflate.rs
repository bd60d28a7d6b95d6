//! The permessage-deflate inflate path under a size cap, in two layers.
//!
//! 1. `Decompressor::inflate` on the data (and the `00 00 ff ff` tail), whole and in
//!    fuzzer-chosen pieces: both runs give the same answer, which is the output, `Invalid` or
//!    `TooLarge` at exactly one byte over the cap; the output buffer never holds nor reserves
//!    more than the cap; and the answer agrees with an uncapped run (the same bytes when they fit,
//!    `TooLarge` when they do not).
//! 2. A server `Connection` with permessage-deflate reads the data as a compressed message (RSV1,
//!    masked, cut into fragments), whole and in pieces, by the documented driving rule: the same
//!    transcript both times, `buffered()` within `max_message_size` throughout, and either the
//!    message the decompressor produced or one of the documented errors (1007 invalid data or
//!    UTF-8, 1009 too large).
//!
//! Input layout: `[config][k][k piece sizes][data]`. Config bits 0-1: the cap (16 B, 256 B,
//! 4 KiB, 64 KiB); bit 2: text (else binary); bit 3: context takeover; bits 4-7: fragment size
//! (0: one frame, else 16 * n bytes).
#![no_main]

use c10k::proto::deflate::{Decompressor, DeflateConfig, DeflateParams, InflateError, TAIL};
use c10k::proto::frame::{OpCode, encode_header};
use c10k::proto::mask::apply_mask;
use c10k::proto::{Config, Connection, Error, Role};
use c10k_fuzz::{OwnedEvent, drive, pieces};
use libfuzzer_sys::fuzz_target;

const CAPS: [usize; 4] = [16, 256, 4 << 10, 64 << 10];
/// The uncapped reference run stops here (well above every cap).
const REFERENCE_CAP: usize = 1 << 20;

fuzz_target!(|input: &[u8]| {
    let Some((&cfg, rest)) = input.split_first() else {
        return;
    };
    let Some((&k, rest)) = rest.split_first() else {
        return;
    };
    let k = usize::from(k % 32);
    if rest.len() < k {
        return;
    }
    let (sizes, data) = rest.split_at(k);
    let cap = CAPS[usize::from(cfg & 0x3)];
    let text = cfg & 0x4 != 0;
    let takeover = cfg & 0x8 != 0;
    let fragment = usize::from(cfg >> 4) * 16;

    // 1. The decompressor alone.
    let mut stream = data.to_vec();
    stream.extend_from_slice(&TAIL);
    let whole = inflate(std::iter::once(stream.as_slice()), cap);
    let split = inflate(pieces(&stream, sizes), cap);
    assert_eq!(whole, split, "whole and split runs differ");
    let reference = inflate(std::iter::once(stream.as_slice()), REFERENCE_CAP);
    match (&whole, &reference) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(InflateError::TooLarge { len }), Ok(b)) => {
            assert_eq!(*len, cap as u64 + 1);
            assert!(b.len() > cap);
        }
        (Err(InflateError::TooLarge { .. }), Err(InflateError::TooLarge { .. })) => {}
        // Past the cap the uncapped run may still find the data invalid.
        (Err(InflateError::TooLarge { .. }), Err(InflateError::Invalid)) => {}
        (Err(InflateError::Invalid), Err(InflateError::Invalid)) => {}
        (a, b) => panic!("capped {a:?} against uncapped {b:?}"),
    }

    // 2. The same data as a compressed message read by a server connection.
    let frames = frames(data, text, fragment);
    let config = Config {
        max_frame_size: 1 << 20,
        max_message_size: cap,
        ..Config::default()
    };
    let policy = DeflateConfig {
        compress_context_takeover: takeover,
        decompress_context_takeover: takeover,
        ..DeflateConfig::default()
    };
    let params = DeflateParams {
        client_no_context_takeover: !takeover,
        server_no_context_takeover: !takeover,
        ..DeflateParams::default()
    };
    let server = || Connection::server(config).with_deflate(params.negotiated(Role::Server, &policy));
    let t_whole = drive(&mut server(), std::iter::once(frames.as_slice()));
    let t_split = drive(&mut server(), pieces(&frames, sizes));
    assert_eq!(t_whole, t_split, "connection: whole and split runs differ");
    match (&t_whole.error, &whole) {
        (None, Ok(bytes)) => {
            let got = match t_whole.events.as_slice() {
                [OwnedEvent::Text(s)] => s.as_bytes(),
                [OwnedEvent::Binary(b)] => b.as_slice(),
                other => panic!("expected one message, got {other:?}"),
            };
            assert_eq!(got, bytes.as_slice());
        }
        (Some(Error::InvalidUtf8 { .. }), Ok(_)) => assert!(text),
        (Some(Error::MessageTooLarge { len, max }), Err(InflateError::TooLarge { .. })) => {
            assert_eq!((*len, *max), (cap as u64 + 1, cap));
        }
        (Some(Error::InvalidCompressedData), Err(InflateError::Invalid)) => {}
        // Text may fail on its UTF-8 before the decompressor reaches the cap or the bad data.
        (Some(Error::InvalidUtf8 { .. }), Err(_)) => assert!(text),
        (e, d) => panic!("connection {e:?} against decompressor {d:?}"),
    }
});

/// Inflates `chunks` with a fresh decompressor under `cap`, checking the buffer on the way.
fn inflate<'a>(chunks: impl Iterator<Item = &'a [u8]>, cap: usize) -> Result<Vec<u8>, InflateError> {
    let mut d = Decompressor::new(15);
    let mut buf = Vec::new();
    for chunk in chunks {
        let before = buf.len();
        let mut seen = 0;
        let r = d.inflate::<InflateError>(chunk, &mut buf, cap, &mut |piece| {
            seen += piece.len();
            Ok(())
        });
        assert!(buf.len() <= cap, "output {} over the cap {cap}", buf.len());
        assert!(
            buf.capacity() <= cap,
            "reserved {} over the cap {cap}",
            buf.capacity()
        );
        r?;
        assert_eq!(seen, buf.len() - before, "every inflated byte is shown once");
    }
    Ok(buf)
}

/// `data` as one compressed message from a client: RSV1 on the first frame, frames of
/// `fragment` bytes (0: one frame), each masked with a fixed key.
fn frames(data: &[u8], text: bool, fragment: usize) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let parts: Vec<&[u8]> = if fragment == 0 || data.is_empty() {
        vec![data]
    } else {
        data.chunks(fragment).collect()
    };
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let (opcode, rsv) = match (i, text) {
            (0, true) => (OpCode::Text, 0b100),
            (0, false) => (OpCode::Binary, 0b100),
            _ => (OpCode::Continuation, 0),
        };
        let fin = i + 1 == parts.len();
        out.extend_from_slice(encode_header(fin, rsv, opcode, part.len() as u64, Some(key)).as_bytes());
        let start = out.len();
        out.extend_from_slice(part);
        apply_mask(&mut out[start..], key, 0);
    }
    out
}
