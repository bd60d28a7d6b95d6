//! permessage-deflate inside a connection (RFC 7692 sections 6 to 8), through the public API:
//! messages compressed and inflated both ways with and without context takeover, fragmented
//! compressed messages, the RFC's example frames, the limits (a decompression bomb fails with
//! 1009 without holding more than the limit), invalid data (1007), RSV1 rules (1002), and the
//! zlib state a connection gives back to its pool.

#![cfg(feature = "deflate")]

use c10k::proto::conn::MAX_INFLATE_PER_READ;
use c10k::proto::deflate::{self, Compressor, DeflateConfig, DeflateParams, DeflatePool};
use c10k::proto::frame::{OpCode, decode_header, encode_header};
use c10k::proto::mask::apply_mask;
use c10k::proto::{CloseCode, Config, Connection, Error, Event, MessageKind, Role};

/// RSV1, "compressed", in the 3-bit RSV1 RSV2 RSV3 value of a frame header.
const RSV1: u8 = 0b100;

/// JSON-like text of exactly `len` bytes: compressible, as chat and market data are.
fn json(len: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user{}\",\"active\":{}}},",
            i % 17,
            i % 2 == 0
        ));
        i += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

/// Owned events, and the error that ended the run if any.
#[derive(Debug, Default)]
struct Got {
    messages: Vec<(MessageKind, Vec<u8>, bool)>,
    pings: usize,
    error: Option<Error>,
    out: Vec<u8>,
    max_buffered: usize,
}

/// Feeds `bytes` in chunks of `chunk` by the documented driving rule.
fn feed(conn: &mut Connection, pool: &mut DeflatePool, bytes: &[u8], chunk: usize) -> Got {
    let mut got = Got::default();
    let mut pending = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        pending.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            match conn.read_with(&mut pending[pos..], &mut got.out, pool) {
                Ok(r) => {
                    pos += r.consumed;
                    match r.event {
                        Some(Event::Message(m)) => {
                            let borrowed = m.is_borrowed();
                            got.messages.push((m.kind(), m.as_bytes().to_vec(), borrowed));
                        }
                        Some(Event::Ping(_)) => got.pings += 1,
                        Some(_) => {}
                        None if r.consumed == 0 => break,
                        None => {}
                    }
                }
                Err(e) => {
                    got.error = Some(e);
                    return got;
                }
            }
            got.max_buffered = got.max_buffered.max(conn.buffered());
        }
        pending.drain(..pos);
    }
    got
}

fn params(takeover: bool) -> (DeflateParams, DeflateConfig) {
    let config = DeflateConfig {
        compress_context_takeover: takeover,
        decompress_context_takeover: takeover,
        ..DeflateConfig::default()
    };
    let offer = config.offer();
    let params = deflate::negotiate([offer.as_bytes()], &config).unwrap();
    (params, config)
}

fn pair_with(takeover: bool, limits: Config) -> (Connection, Connection) {
    let (p, c) = params(takeover);
    let mut n = 0u8;
    let server = Connection::server(limits).with_deflate(p.negotiated(Role::Server, &c));
    let client = Connection::client(
        limits,
        Box::new(move || {
            n = n.wrapping_add(1);
            [n, 0x5a, 0xa5, n ^ 0x33]
        }),
    )
    .with_deflate(p.negotiated(Role::Client, &c));
    (server, client)
}

fn pair(takeover: bool) -> (Connection, Connection) {
    pair_with(takeover, Config::default())
}

/// The close code of the Close frame a failed connection wrote.
fn close_code(out: &[u8]) -> u16 {
    let (h, n) = decode_header(out).unwrap().unwrap();
    assert_eq!(h.opcode, OpCode::Close);
    let mut p = out[n..n + 2].to_vec();
    if let Some(k) = h.mask {
        apply_mask(&mut p, k, 0);
    }
    u16::from_be_bytes([p[0], p[1]])
}

#[test]
fn messages_round_trip_both_ways_at_many_sizes_with_and_without_takeover() {
    for takeover in [false, true] {
        let (mut server, mut client) = pair(takeover);
        let (mut spool, mut cpool) = (DeflatePool::new(), DeflatePool::new());
        for (i, len) in [0, 1, 63, 64, 65, 200, 1000, 4096, 65_535, 65_536, 200_000]
            .into_iter()
            .enumerate()
        {
            let data = json(len);
            let kind = if i % 2 == 0 {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            for chunk in [usize::MAX, 7, 1000] {
                let mut wire = Vec::new();
                client.send_with(kind, &data, &mut wire, &mut cpool).unwrap();
                assert_eq!(
                    wire[0] & 0x40 != 0,
                    len >= deflate::DEFAULT_THRESHOLD,
                    "RSV1 at {len}"
                );
                let got = feed(&mut server, &mut spool, &wire, chunk);
                assert_eq!(got.error, None);
                assert_eq!(got.messages.len(), 1);
                assert_eq!(
                    (got.messages[0].0, &got.messages[0].1),
                    (kind, &data),
                    "len {len}"
                );
                // Compressed messages are owned; plain ones borrowed when whole.
                if wire[0] & 0x40 != 0 {
                    assert!(!got.messages[0].2);
                } else if chunk == usize::MAX {
                    assert!(got.messages[0].2);
                }
                assert_eq!(server.holds_deflate_state(), takeover && len >= 64);
                let mut wire = Vec::new();
                server.send_with(kind, &data, &mut wire, &mut spool).unwrap();
                let got = feed(&mut client, &mut cpool, &wire, chunk);
                assert_eq!(got.error, None);
                assert_eq!(got.messages[0].1, data);
            }
        }
        if !takeover {
            assert!(!server.holds_deflate_state() && !client.holds_deflate_state());
            assert_eq!(spool.idle(), (1, 1));
        }
    }
}

#[test]
fn fragmented_compressed_messages_arrive_whole_with_pings_between_fragments() {
    for takeover in [false, true] {
        let (mut server, mut client) = pair(takeover);
        let (mut spool, mut cpool) = (DeflatePool::new(), DeflatePool::new());
        for len in [64, 1000, 50_000] {
            let data = json(len);
            for fragment in [1, 3, 100, 10_000] {
                let mut wire = Vec::new();
                client
                    .send_fragmented(MessageKind::Text, &data, fragment, &mut wire, &mut cpool)
                    .unwrap();
                // A ping after the first frame.
                let (h, n) = decode_header(&wire).unwrap().unwrap();
                assert_eq!(h.rsv, RSV1);
                let first = n + h.len as usize;
                let mut with_ping = wire[..first].to_vec();
                client.ping(b"p", &mut with_ping).unwrap();
                with_ping.extend_from_slice(&wire[first..]);
                let got = feed(&mut server, &mut spool, &with_ping, 13);
                assert_eq!(got.error, None, "len {len} fragment {fragment}");
                assert_eq!(got.pings, 1);
                assert_eq!(got.messages.len(), 1);
                assert_eq!(got.messages[0].1, data);
            }
        }
    }
}

#[test]
fn rfc_7692_example_frames_are_read() {
    let (_, mut client) = pair(true);
    let mut pool = DeflatePool::new();
    // Section 7.2.3 (examples): "Hello" in one compressed frame, then in two fragments.
    let one = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let got = feed(&mut client, &mut pool, &one, usize::MAX);
    assert_eq!(got.messages[0].1, b"Hello");
    let (_, mut client) = pair(false);
    let two = [0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00];
    let got = feed(&mut client, &mut pool, &two, usize::MAX);
    assert_eq!(got.messages[0].1, b"Hello");
    // With takeover, the second message refers to the first.
    let (_, mut client) = pair(true);
    let mut both = one.to_vec();
    both.extend_from_slice(&[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    let got = feed(&mut client, &mut pool, &both, usize::MAX);
    assert_eq!(got.error, None);
    assert_eq!(got.messages.len(), 2);
    assert_eq!(got.messages[1].1, b"Hello");
    // A final block (BFINAL), then nothing.
    let (_, mut client) = pair(false);
    let fin = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let got = feed(&mut client, &mut pool, &fin, 1);
    assert_eq!(got.error, None);
    assert_eq!(got.messages[0].1, b"Hello");
}

/// A compressed frame for a server: `data` compressed whole, one frame, masked.
fn masked_compressed(opcode: OpCode, data: &[u8]) -> Vec<u8> {
    let mut z = Vec::new();
    Compressor::new(15, 9).compress_message(data, &mut z);
    let key = [1, 2, 3, 4];
    let mut out = encode_header(true, RSV1, opcode, z.len() as u64, Some(key))
        .as_bytes()
        .to_vec();
    let start = out.len();
    out.extend_from_slice(&z);
    apply_mask(&mut out[start..], key, 0);
    out
}

#[test]
fn server_fails_a_decompression_bomb_with_1009_without_holding_more_than_the_limit() {
    let limits = Config {
        max_message_size: 64 << 10,
        ..Config::default()
    };
    let bomb = vec![0u8; 16 << 20];
    let wire = masked_compressed(OpCode::Binary, &bomb);
    assert!(wire.len() < 20_000, "16 MiB of zeros in {} bytes", wire.len());
    for chunk in [usize::MAX, 1, 1000] {
        for takeover in [false, true] {
            let (mut server, _) = pair_with(takeover, limits);
            let got = feed(&mut server, &mut DeflatePool::new(), &wire, chunk);
            match got.error {
                Some(Error::MessageTooLarge { len, max }) => {
                    assert_eq!((len, max), ((64 << 10) + 1, 64 << 10));
                }
                other => panic!("expected 1009, got {other:?}"),
            }
            assert_eq!(close_code(&got.out), 1009);
            assert!(got.max_buffered <= 64 << 10);
            assert!(!server.holds_deflate_state());
        }
    }
    // Exactly at the limit is accepted.
    let (mut server, _) = pair_with(false, limits);
    let wire = masked_compressed(OpCode::Binary, &vec![7u8; 64 << 10]);
    let got = feed(&mut server, &mut DeflatePool::new(), &wire, usize::MAX);
    assert_eq!(got.error, None);
    assert_eq!(got.messages[0].1.len(), 64 << 10);
}

#[test]
fn one_read_inflates_about_a_mebibyte_at_most_and_the_rest_comes_on_the_next_calls() {
    // 16 MiB of zeros, compressed to a few KiB: each call inflates about a mebibyte, consumes
    // only the input it inflated, and is called again on the rest, masked as it came.
    let data: Vec<u8> = (0..16 << 20).map(|i| (i / 100_000) as u8).collect();
    let wire = masked_compressed(OpCode::Binary, &data);
    let (mut server, _) = pair(false);
    let mut pool = DeflatePool::new();
    let mut out = Vec::new();
    let mut input = wire.clone();
    let (mut pos, mut calls, mut before) = (0, 0, 0);
    let message = loop {
        let r = server.read_with(&mut input[pos..], &mut out, &mut pool).unwrap();
        calls += 1;
        assert!(r.consumed > 0, "every call makes progress");
        pos += r.consumed;
        if let Some(Event::Message(m)) = r.event {
            break m.as_bytes().to_vec();
        }
        let grown = server.buffered() - before;
        before = server.buffered();
        assert!(
            grown <= MAX_INFLATE_PER_READ + (2 << 20),
            "one call inflated {grown} bytes"
        );
        assert!(
            pos < wire.len(),
            "stopped before the end only when the allowance ran out"
        );
    };
    assert!(message == data, "the message arrives whole and unchanged");
    assert!(calls >= 8, "{calls} calls for 16 MiB");
    assert_eq!(pos, wire.len());
}

#[test]
fn server_fails_invalid_compressed_data_with_1007() {
    for payload in [
        &[0xff, 0xff, 0xff, 0xff][..],
        &[0x06],
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
    ] {
        for chunk in [usize::MAX, 1] {
            let (mut server, _) = pair(false);
            let mut wire = encode_header(
                true,
                RSV1,
                OpCode::Binary,
                payload.len() as u64,
                Some([9, 8, 7, 6]),
            )
            .as_bytes()
            .to_vec();
            let start = wire.len();
            wire.extend_from_slice(payload);
            apply_mask(&mut wire[start..], [9, 8, 7, 6], 0);
            let got = feed(&mut server, &mut DeflatePool::new(), &wire, chunk);
            assert_eq!(got.error, Some(Error::InvalidCompressedData), "{payload:x?}");
            assert_eq!(close_code(&got.out), 1007);
            assert_eq!(
                Error::InvalidCompressedData.close_code(),
                CloseCode::InvalidPayload
            );
        }
    }
}

#[test]
fn server_fails_invalid_utf8_in_compressed_text_with_1007_before_the_message_ends() {
    let mut bad = b"valid prefix ".repeat(10);
    bad.extend_from_slice(&[0xc0, 0xaf]);
    bad.extend_from_slice(&json(100_000));
    let mut c = Compressor::new(15, 6);
    let mut z = Vec::new();
    c.compress_message(&bad, &mut z);
    // Sent in fragments: the error comes with the fragment that inflates the bad byte.
    let (mut server, _) = pair(false);
    let first = &z[..z.len() / 4];
    let key = [1, 1, 1, 1];
    let mut wire = encode_header(false, RSV1, OpCode::Text, first.len() as u64, Some(key))
        .as_bytes()
        .to_vec();
    let start = wire.len();
    wire.extend_from_slice(first);
    apply_mask(&mut wire[start..], key, 0);
    let got = feed(&mut server, &mut DeflatePool::new(), &wire, usize::MAX);
    assert_eq!(got.error, Some(Error::InvalidUtf8 { offset: 130 }));
    assert_eq!(close_code(&got.out), 1007);
}

#[test]
fn rsv1_on_continuation_or_control_frames_or_without_deflate_is_1002() {
    let mut pool = DeflatePool::new();
    let key = Some([0, 0, 0, 0]);
    let hdr = |fin, rsv, op, len| encode_header(fin, rsv, op, len, key).as_bytes().to_vec();
    // RSV1 on a continuation of a compressed message.
    let (mut server, _) = pair(false);
    let mut wire = hdr(false, RSV1, OpCode::Text, 1);
    wire.push(0x00);
    wire.extend(hdr(true, RSV1, OpCode::Continuation, 1));
    wire.push(0x00);
    let got = feed(&mut server, &mut pool, &wire, usize::MAX);
    assert_eq!(got.error, Some(Error::CompressedContinuation));
    assert_eq!(close_code(&got.out), 1002);
    // RSV1 on a continuation of an uncompressed message.
    let (mut server, _) = pair(false);
    let mut wire = hdr(false, 0, OpCode::Text, 1);
    wire.push(b'a');
    wire.extend(hdr(true, RSV1, OpCode::Continuation, 1));
    wire.push(b'b');
    let got = feed(&mut server, &mut pool, &wire, usize::MAX);
    assert_eq!(got.error, Some(Error::CompressedContinuation));
    // RSV1 on control frames.
    for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        let (mut server, _) = pair(false);
        let got = feed(&mut server, &mut pool, &hdr(true, RSV1, op, 0), usize::MAX);
        assert_eq!(got.error, Some(Error::ReservedBits(RSV1)), "{op:?}");
        assert_eq!(close_code(&got.out), 1002);
    }
    // RSV2 and RSV3 stay reserved.
    for rsv in [0b010, 0b001, 0b110] {
        let (mut server, _) = pair(false);
        let mut wire = hdr(true, rsv, OpCode::Text, 1);
        wire.push(b'a');
        let got = feed(&mut server, &mut pool, &wire, usize::MAX);
        assert_eq!(got.error, Some(Error::ReservedBits(rsv)));
    }
    // RSV1 without deflate negotiated.
    let mut plain = Connection::server(Config::default());
    let mut wire = hdr(true, RSV1, OpCode::Text, 1);
    wire.push(0x00);
    let got = feed(&mut plain, &mut pool, &wire, usize::MAX);
    assert_eq!(got.error, Some(Error::ReservedBits(RSV1)));
}

#[test]
fn incompressible_messages_are_sent_plain_without_takeover() {
    let (mut server, _) = pair(false);
    let mut pool = DeflatePool::new();
    let mut x = 0x1234_5678u32;
    let noise: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut wire = Vec::new();
    server
        .send_with(MessageKind::Binary, &noise, &mut wire, &mut pool)
        .unwrap();
    assert_eq!(wire[0], 0x82, "RSV1 clear");
    assert_eq!(&wire[4..], &noise[..]);
}

#[test]
fn a_failed_or_closed_connection_gives_its_state_back() {
    for (takeover, close) in [(false, false), (true, false), (false, true), (true, true)] {
        let (mut server, mut client) = pair(takeover);
        let (mut spool, mut cpool) = (DeflatePool::new(), DeflatePool::new());
        let mut wire = Vec::new();
        client
            .send_fragmented(MessageKind::Text, &json(500), 20, &mut wire, &mut cpool)
            .unwrap();
        // The first frame of the message, then a reserved opcode or a Close frame.
        let first = 2 + 4 + 20;
        let got = feed(&mut server, &mut spool, &wire[..first], usize::MAX);
        assert!(got.error.is_none() && server.holds_deflate_state());
        let end: &[u8] = if close {
            &[0x88, 0x80, 0, 0, 0, 0]
        } else {
            &[0x8f, 0x80, 0, 0, 0, 0]
        };
        let got = feed(&mut server, &mut spool, end, usize::MAX);
        assert_eq!(got.error.is_some(), !close);
        assert!(!server.holds_deflate_state());
        // A borrowed decompressor goes back; one of the connection's own is dropped.
        assert_eq!(spool.idle().1, usize::from(!takeover));
    }
}
