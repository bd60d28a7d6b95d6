//! permessage-deflate (RFC 7692): the negotiation (valid offers, several offers, malformed offers
//! that must be declined, offers the server may refine), compressed messages of many sizes whole
//! and fragmented with and without context takeover in each direction, the RFC's example
//! encodings, decompression bombs (1009), invalid compressed data (1007) and RSV1 where it does
//! not belong (1002).
//!
//! Declining the extension is always allowed. A case whose steps need it (`requires`) then passes
//! as skipped; the negotiation cases go on without it, and the cases without any offer or with an
//! offer the server must decline check that RSV1 is still reserved.

#[cfg(feature = "deflate")]
use super::{Fit, fit, kind_name, limit_note, want};
use crate::check::Options;
#[cfg(feature = "deflate")]
use crate::check::case::{BIG_BOUND, Msg, Want, size};
use crate::check::case::{Registry, Script, wire};
#[cfg(feature = "deflate")]
use crate::check::deflate::{Encoding, bomb, compress_alone, compress_pieces};

/// RSV1: "this message is compressed".
const RSV1: u8 = 0b100;

/// "Hello" compressed (RFC 7692 7.2.3.1).
const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

/// Neither side keeps its context.
#[cfg(feature = "deflate")]
const NO_TAKEOVER: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits";
/// Both sides may keep their context (the server may still refuse).
#[cfg(feature = "deflate")]
const TAKEOVER: &str = "permessage-deflate; client_max_window_bits";
/// The server may keep its context; the client resets.
#[cfg(feature = "deflate")]
const SERVER_TAKEOVER: &str = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
/// The client may keep its context; the server resets.
#[cfg(feature = "deflate")]
const CLIENT_TAKEOVER: &str = "permessage-deflate; server_no_context_takeover; client_max_window_bits";

pub(super) fn add(reg: &mut Registry, options: &Options, notes: &mut Vec<String>) {
    #[cfg(feature = "deflate")]
    {
        negotiation(reg);
        several_offers(reg);
        malformed_offers(reg);
        refined_offers(reg);
        messages(reg, options);
        encodings(reg, options);
        bombs(reg, options, notes);
        invalid_data(reg);
        rsv_with_deflate(reg);
    }
    #[cfg(not(feature = "deflate"))]
    {
        let _ = options;
        notes.push(
            "deflate: this build has no deflate feature: only the cases without an agreement ran".to_owned(),
        );
    }
    rsv_without_deflate(reg);
}

/// JSON-like ASCII text of `n` bytes: what compression is for.
#[cfg(feature = "deflate")]
fn json(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 96);
    let mut i = 0u32;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"user\":\"user-{}\",\"event\":\"update\",\"value\":{},\"ok\":true}},",
                i % 97,
                i.wrapping_mul(7919) % 10_000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

/// `n` bytes that do not compress (xorshift).
#[cfg(feature = "deflate")]
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(feature = "deflate")]
fn msg(opcode: u8, payload: Vec<u8>, frames: usize, encoding: Encoding) -> Msg {
    Msg {
        opcode,
        payload,
        frames,
        encoding,
        ping_inside: false,
    }
}

/// One whole message compressed as agreed.
#[cfg(feature = "deflate")]
fn sync(opcode: u8, payload: Vec<u8>) -> Msg {
    msg(opcode, payload, 1, Encoding::Sync)
}

/// After the handshake: text twice (the second may use the first's context), binary once, then
/// the closing handshake. Compressed when agreed, plain otherwise.
#[cfg(feature = "deflate")]
fn conversation(s: Script) -> Script {
    let t = json(300);
    let b = wire::binary_payload(300);
    s.send(sync(wire::TEXT, t.clone()))
        .expect(vec![Want::Text(t.clone())])
        .send(sync(wire::TEXT, t.clone()))
        .expect(vec![Want::Text(t)])
        .send(sync(wire::BINARY, b.clone()))
        .expect(vec![Want::Binary(b)])
        .close()
}

#[cfg(feature = "deflate")]
fn negotiation(reg: &mut Registry) {
    reg.sub();
    let offers: [(&'static str, &'static str, &'static str); 19] = [
        ("rfc7692.7", "no parameters", "permessage-deflate"),
        (
            "rfc7692.7.1.1.1",
            "server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
        ),
        (
            "rfc7692.7.1.1.2",
            "client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
        ),
        (
            "rfc7692.7.1.1",
            "both no_context_takeover parameters",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        (
            "rfc7692.7.1.2.1",
            "server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=8",
        ),
        (
            "rfc7692.7.1.2.1",
            "server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10",
        ),
        (
            "rfc7692.7.1.2.1",
            "server_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=15",
        ),
        (
            "rfc7692.7.1.2.1",
            "server_max_window_bits with a quoted value",
            "permessage-deflate; server_max_window_bits=\"12\"",
        ),
        (
            "rfc7692.7.1.2.2",
            "client_max_window_bits without a value",
            "permessage-deflate; client_max_window_bits",
        ),
        (
            "rfc7692.7.1.2.2",
            "client_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=8",
        ),
        (
            "rfc7692.7.1.2.2",
            "client_max_window_bits=11",
            "permessage-deflate; client_max_window_bits=11",
        ),
        (
            "rfc7692.7.1.2.2",
            "client_max_window_bits=15",
            "permessage-deflate; client_max_window_bits=15",
        ),
        (
            "rfc7692.7.1.2.2",
            "client_max_window_bits with a quoted value",
            "permessage-deflate; client_max_window_bits=\"10\"",
        ),
        (
            "rfc7692.7.1",
            "every parameter, with values",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12",
        ),
        (
            "rfc7692.7.1",
            "every parameter, window sizes without a value where allowed",
            "permessage-deflate; client_max_window_bits; server_max_window_bits=9; \
             client_no_context_takeover; server_no_context_takeover",
        ),
        (
            "rfc7692.5",
            "the name in mixed case",
            "PerMessage-Deflate; client_max_window_bits",
        ),
        (
            "rfc7692.7.1",
            "spaces around the separators",
            "permessage-deflate ;client_max_window_bits ; server_no_context_takeover",
        ),
        (
            "rfc7692.5",
            "an unknown extension before it in the same field",
            "x-c10k-unknown; a=1, permessage-deflate; client_max_window_bits",
        ),
        (
            "rfc7692.5",
            "a quoted parameter value in an unknown extension before it",
            "x-c10k-unknown; a=\"b\", permessage-deflate",
        ),
    ];
    for (section, what, offer) in offers {
        reg.one(
            section,
            format!("an offer with {what}: declined, or accepted with a valid answer; messages then flow as agreed"),
            format!("Sec-WebSocket-Extensions: {offer}; 2 texts and a binary of 300 bytes"),
            move || conversation(Script::deflate(&[offer], false)),
        );
    }
    reg.one(
        "rfc7692.5",
        "offers in two header fields, an unknown extension first: declined, or the second accepted",
        "Sec-WebSocket-Extensions: x-c10k-unknown / Sec-WebSocket-Extensions: permessage-deflate",
        || conversation(Script::deflate(&["x-c10k-unknown", "permessage-deflate"], false)),
    );
}

#[cfg(feature = "deflate")]
fn several_offers(reg: &mut Registry) {
    reg.sub();
    let lists: [(&'static str, &'static [&'static str]); 9] = [
        (
            "server_max_window_bits=7, then a plain offer",
            &["permessage-deflate; server_max_window_bits=7, permessage-deflate"],
        ),
        (
            "an unknown parameter, then client_max_window_bits",
            &["permessage-deflate; x-unknown, permessage-deflate; client_max_window_bits"],
        ),
        (
            "a repeated parameter, then the same offer without the repetition",
            &[
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover, \
                 permessage-deflate; server_no_context_takeover",
            ],
        ),
        (
            "client_max_window_bits=16, then client_max_window_bits=10",
            &["permessage-deflate; client_max_window_bits=16, permessage-deflate; client_max_window_bits=10"],
        ),
        (
            "server_max_window_bits without a value, then with 10",
            &["permessage-deflate; server_max_window_bits, permessage-deflate; server_max_window_bits=10"],
        ),
        (
            "a flag with a value in one field, the valid offer in a second field",
            &[
                "permessage-deflate; client_no_context_takeover=1",
                "permessage-deflate; client_no_context_takeover",
            ],
        ),
        (
            "two invalid offers, then server_max_window_bits=12",
            &[
                "permessage-deflate; server_max_window_bits=08, permessage-deflate; client_max_window_bits=x, \
                 permessage-deflate; server_max_window_bits=12",
            ],
        ),
        (
            "an unknown extension and a bad value, then small windows in a second field",
            &[
                "x-c10k-unknown, permessage-deflate; bogus=1",
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
            ],
        ),
        (
            "two valid offers (the server picks one)",
            &["permessage-deflate; server_max_window_bits=10; client_max_window_bits=10, permessage-deflate"],
        ),
    ];
    for (what, offers) in lists {
        reg.one(
            "rfc7692.5",
            format!("several offers, {what}: declined, or answered as a valid offer"),
            format!("Sec-WebSocket-Extensions: {}", offers.join(" / ")),
            move || conversation(Script::deflate(offers, false)),
        );
    }
}

#[cfg(feature = "deflate")]
fn malformed_offers(reg: &mut Registry) {
    reg.sub();
    let offers: [(&'static str, &'static str); 26] = [
        ("rfc7692.7.1.2.1", "permessage-deflate; server_max_window_bits"),
        ("rfc7692.7.1.2.1", "permessage-deflate; server_max_window_bits=7"),
        ("rfc7692.7.1.2.1", "permessage-deflate; server_max_window_bits=16"),
        ("rfc7692.7.1.2.1", "permessage-deflate; server_max_window_bits=0"),
        ("rfc7692.7.1.2.1", "permessage-deflate; server_max_window_bits=08"),
        (
            "rfc7692.7.1.2.1",
            "permessage-deflate; server_max_window_bits=abc",
        ),
        (
            "rfc7692.7.1.2.1",
            "permessage-deflate; server_max_window_bits=1.5",
        ),
        (
            "rfc7692.7.1.2.1",
            "permessage-deflate; server_max_window_bits=\"\"",
        ),
        ("rfc7692.7.1.2.2", "permessage-deflate; client_max_window_bits=7"),
        ("rfc7692.7.1.2.2", "permessage-deflate; client_max_window_bits=16"),
        (
            "rfc7692.7.1.2.2",
            "permessage-deflate; client_max_window_bits=abc",
        ),
        (
            "rfc7692.7.1.1.1",
            "permessage-deflate; server_no_context_takeover=1",
        ),
        (
            "rfc7692.7.1.1.2",
            "permessage-deflate; client_no_context_takeover=\"x\"",
        ),
        (
            "rfc7692.7",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ),
        (
            "rfc7692.7",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        ),
        (
            "rfc7692.7",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
        ),
        (
            "rfc7692.7",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        ),
        ("rfc7692.7", "permessage-deflate; foo"),
        ("rfc7692.7", "permessage-deflate; foo=1"),
        ("rfc7692.7", "permessage-deflate; server_no_context_takeover; mux"),
        ("rfc7692.7", "permessage-deflate;"),
        ("rfc7692.7", "permessage-deflate; ; client_max_window_bits"),
        ("rfc7692.7", "permessage-deflate; =10"),
        ("rfc7692.5", "x-webkit-deflate-frame"),
        ("rfc7692.5", "deflate-frame; no_context_takeover"),
        ("rfc7692.5", "permessage-deflate-x"),
    ];
    for (section, offer) in offers {
        reg.one(
            section,
            format!(
                "an offer that must be declined ({offer}): 101 without the extension, messages uncompressed \
                 (or 400 where the field breaks RFC 6455 9.1)"
            ),
            format!("Sec-WebSocket-Extensions: {offer}; 2 texts and a binary"),
            move || conversation(Script::deflate(&[offer], false)),
        );
    }
}

#[cfg(feature = "deflate")]
fn refined_offers(reg: &mut Registry) {
    reg.sub();
    let offers: [(&'static str, &'static str, &'static str); 6] = [
        (
            "rfc7692.7.1.2.2",
            "the server may choose the client's window",
            "permessage-deflate; client_max_window_bits",
        ),
        (
            "rfc7692.7.1.2.1",
            "the server may lower its own window",
            "permessage-deflate; server_max_window_bits=15",
        ),
        (
            "rfc7692.7.1.1",
            "the server may add either no_context_takeover and a window",
            "permessage-deflate",
        ),
        (
            "rfc7692.7.1.2",
            "the server may lower both windows",
            "permessage-deflate; client_max_window_bits=15; server_max_window_bits=15",
        ),
        (
            "rfc7692.7.1.2.2",
            "the client compresses with a 512-byte window",
            "permessage-deflate; client_max_window_bits=9",
        ),
        (
            "rfc7692.7.1.2.1",
            "the server compresses with a 256-byte window",
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits",
        ),
    ];
    for (section, what, offer) in offers {
        reg.one(
            section,
            format!("{what}: 3 texts of 4 KiB and one of 64 KiB, sent and echoed as agreed"),
            format!("Sec-WebSocket-Extensions: {offer}; 4 compressed texts"),
            move || {
                let small = json(4096);
                let big = json(64 << 10);
                let mut s = Script::deflate(&[offer], true);
                for _ in 0..3 {
                    s = s
                        .send(sync(wire::TEXT, small.clone()))
                        .expect(vec![Want::Text(small.clone())]);
                }
                s.send(sync(wire::TEXT, big.clone()))
                    .expect(vec![Want::Text(big)])
                    .close()
            },
        );
    }
}

/// The message sizes of the echo cases.
#[cfg(feature = "deflate")]
const SIZES: [usize; 6] = [0, 1, 125, 126, 64 << 10, 1 << 20];

#[cfg(feature = "deflate")]
fn messages(reg: &mut Registry, options: &Options) {
    let modes: [(&'static str, &'static str); 4] = [
        (NO_TAKEOVER, "without context takeover"),
        (TAKEOVER, "with context takeover both ways (as agreed)"),
        (
            SERVER_TAKEOVER,
            "with the server's context takeover only (as agreed)",
        ),
        (
            CLIENT_TAKEOVER,
            "with the client's context takeover only (as agreed)",
        ),
    ];
    for (frames, modes) in [(1usize, &modes[..]), (3, &modes[..2])] {
        for &(offer, takeover) in modes {
            reg.sub();
            for opcode in [wire::TEXT, wire::BINARY] {
                for len in SIZES {
                    let fit = fit(options.max_message, len);
                    let bound = if len > 4096 { BIG_BOUND } else { reg.bound };
                    let how = if frames == 1 {
                        "in one frame".to_owned()
                    } else {
                        format!("in {frames} frames (RSV1 on the first)")
                    };
                    reg.add_bounded(
                        if frames == 1 {
                            "rfc7692.7.2.1"
                        } else {
                            "rfc7692.7.2.2"
                        },
                        format!(
                            "a compressed {} message of {} {how}, {takeover}, twice: echoed byte for byte{}",
                            kind_name(opcode),
                            size(len),
                            limit_note(fit)
                        ),
                        format!(
                            "Sec-WebSocket-Extensions: {offer}; 2 compressed {} messages",
                            kind_name(opcode)
                        ),
                        bound,
                        move |_| {
                            let p = if opcode == wire::TEXT {
                                wire::text_payload(len)
                            } else {
                                wire::binary_payload(len)
                            };
                            let w = want(opcode, &p);
                            let s = Script::deflate(&[offer], true).send(msg(
                                opcode,
                                p.clone(),
                                frames,
                                Encoding::Sync,
                            ));
                            vec![match fit {
                                Fit::TooBig => s.fail(1009),
                                Fit::Echo { too_big_ok } => s
                                    .expect_big(vec![w.clone()], too_big_ok)
                                    .send(msg(opcode, p, frames, Encoding::Sync))
                                    .expect_big(vec![w], too_big_ok)
                                    .close(),
                            }]
                        },
                    );
                }
            }
        }
    }
}

/// A script that offers `offer`, needs the extension, writes `frames`, expects `echo`, closes.
#[cfg(feature = "deflate")]
fn raw_echo(offer: &str, frames: Vec<Vec<u8>>, echo: Want) -> Script {
    Script::deflate(&[offer], true)
        .frames(frames)
        .expect(vec![echo])
        .close()
}

#[cfg(feature = "deflate")]
fn encodings(reg: &mut Registry, options: &Options) {
    let hello = || Want::Text(b"Hello".to_vec());
    reg.sub();
    reg.one(
        "rfc7692.7.2.3.1",
        "\"Hello\" compressed as in the RFC's example is echoed",
        "text frame, RSV1, f2 48 cd c9 c9 07 00",
        move || {
            raw_echo(
                NO_TAKEOVER,
                vec![wire::frame(true, RSV1, wire::TEXT, &HELLO)],
                hello(),
            )
        },
    );
    reg.one(
        "rfc7692.7.2.3.1",
        "\"Hello\" compressed and fragmented as in the RFC's example is echoed",
        "text frame f2 48 cd (RSV1), continuation c9 c9 07 00",
        move || {
            raw_echo(
                NO_TAKEOVER,
                vec![
                    wire::frame(false, RSV1, wire::TEXT, &HELLO[..3]),
                    wire::frame(true, 0, wire::CONT, &HELLO[3..]),
                ],
                hello(),
            )
        },
    );
    reg.one(
        "rfc7692.7.2.3.3",
        "\"Hello\" in a stored block (no compression) is echoed",
        "text frame, RSV1, 00 05 00 fa ff 48 65 6c 6c 6f 00",
        move || {
            raw_echo(
                NO_TAKEOVER,
                vec![wire::frame(
                    true,
                    RSV1,
                    wire::TEXT,
                    &[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00],
                )],
                hello(),
            )
        },
    );
    reg.one(
        "rfc7692.7.2.3.4",
        "\"Hello\" in a final block (BFINAL) is echoed",
        "text frame, RSV1, f3 48 cd c9 c9 07 00 00",
        move || {
            raw_echo(
                NO_TAKEOVER,
                vec![wire::frame(
                    true,
                    RSV1,
                    wire::TEXT,
                    &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
                )],
                hello(),
            )
        },
    );
    reg.one(
        "rfc7692.7.2.3.5",
        "\"Hello\" in two DEFLATE blocks in one message is echoed",
        "text frame, RSV1, \"Hel\" and \"lo\" each with a sync flush",
        move || {
            let z = compress_pieces(&[b"Hel", b"lo"]).concat();
            raw_echo(
                NO_TAKEOVER,
                vec![wire::frame(true, RSV1, wire::TEXT, &z)],
                hello(),
            )
        },
    );
    reg.one(
        "rfc7692.7.2.3.6",
        "a compressed message ended by a frame holding only an empty block is echoed",
        "text frame, RSV1, \"Hello\" with its sync flush; continuation 00",
        move || {
            let z = compress_pieces(&[b"Hello", b""]);
            raw_echo(
                NO_TAKEOVER,
                vec![
                    wire::frame(false, RSV1, wire::TEXT, &z[0]),
                    wire::frame(true, 0, wire::CONT, &z[1]),
                ],
                hello(),
            )
        },
    );
    reg.one(
        "rfc7692.7.2.3.6",
        "an empty message compressed (a sync flush alone: 00) is echoed",
        "binary frame, RSV1, 00",
        move || {
            raw_echo(
                NO_TAKEOVER,
                vec![wire::frame(true, RSV1, wire::BINARY, &[0x00])],
                Want::Binary(Vec::new()),
            )
        },
    );
    reg.one(
        "rfc7692.7.2.1",
        "a compressed message of 3 fragments with an empty first fragment is echoed",
        "text frame, RSV1, empty; 2 continuations",
        move || {
            let z = compress_alone(b"Hello, fragments");
            raw_echo(
                NO_TAKEOVER,
                vec![
                    wire::frame(false, RSV1, wire::TEXT, &[]),
                    wire::frame(false, 0, wire::CONT, &z[..z.len() / 2]),
                    wire::frame(true, 0, wire::CONT, &z[z.len() / 2..]),
                ],
                Want::Text(b"Hello, fragments".to_vec()),
            )
        },
    );

    reg.sub();
    let shapes: [(&'static str, &'static str, Encoding, usize); 4] = [
        (
            "rfc7692.7.2.3.4",
            "10 KiB of text in a final block (BFINAL)",
            Encoding::Final,
            10 << 10,
        ),
        (
            "rfc7692.7.2.3.3",
            "100 KiB of text in stored blocks",
            Encoding::Stored,
            100 << 10,
        ),
        (
            "rfc7692.6",
            "4 KiB of text sent uncompressed (RSV1 clear) after the agreement",
            Encoding::Plain,
            4 << 10,
        ),
        (
            "rfc7692.7.2.1",
            "4 KiB of text compressed",
            Encoding::Sync,
            4 << 10,
        ),
    ];
    for (section, what, encoding, len) in shapes {
        reg.one(
            section,
            format!("{what} is echoed"),
            format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; {what}"),
            move || {
                let p = json(len);
                Script::deflate(&[NO_TAKEOVER], true)
                    .send(msg(wire::TEXT, p.clone(), 1, encoding))
                    .expect(vec![Want::Text(p)])
                    .close()
            },
        );
    }
    reg.one(
        "rfc7692.6",
        "compressed, uncompressed and final-block messages in turn, with context takeover: all echoed",
        format!("Sec-WebSocket-Extensions: {TAKEOVER}; 6 texts of 2 KiB"),
        || {
            let mut s = Script::deflate(&[TAKEOVER], true);
            for (i, encoding) in [
                Encoding::Sync,
                Encoding::Plain,
                Encoding::Sync,
                Encoding::Final,
                Encoding::Sync,
                Encoding::Stored,
            ]
            .into_iter()
            .enumerate()
            {
                let mut p = json(2048);
                p[8] = b'0' + i as u8;
                s = s
                    .send(msg(wire::TEXT, p.clone(), 1, encoding))
                    .expect(vec![Want::Text(p)]);
            }
            s.close()
        },
    );
    reg.one(
        "rfc7692.6.1",
        "a ping between the fragments of a compressed message is answered, then the message echoed",
        format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; 2 KiB text in 3 frames, a ping after the first"),
        || {
            let p = json(2048);
            let mut m = msg(wire::TEXT, p.clone(), 3, Encoding::Sync);
            m.ping_inside = true;
            Script::deflate(&[NO_TAKEOVER], true)
                .send(m)
                .expect(vec![Want::Pong(b"ping".to_vec()), Want::Text(p)])
                .close()
        },
    );
    reg.one(
        "rfc7692.7.2.2",
        "a compressed message with one compressed byte per frame is echoed",
        format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; 1 KiB text, 1 byte per frame"),
        || {
            let p = wire::text_payload(1024);
            Script::deflate(&[NO_TAKEOVER], true)
                .send(msg(wire::TEXT, p.clone(), usize::MAX, Encoding::Sync))
                .expect(vec![Want::Text(p)])
                .close()
        },
    );
    for (offer, takeover) in [(NO_TAKEOVER, "without"), (TAKEOVER, "with")] {
        reg.one(
            "rfc7692.7.2.1",
            format!(
                "100 small compressed messages {takeover} context takeover, back to back: echoed in order"
            ),
            format!("Sec-WebSocket-Extensions: {offer}; 100 texts of about 100 bytes"),
            move || {
                let mut s = Script::deflate(&[offer], true);
                let mut wants = Vec::new();
                for i in 0..100 {
                    let p =
                        format!("{{\"seq\":{i},\"text\":\"a small compressed message, again and again\"}}")
                            .into_bytes();
                    s = s.send(sync(wire::TEXT, p.clone()));
                    wants.push(Want::Text(p));
                }
                s.expect(wants).close()
            },
        );
    }
    reg.one(
        "rfc7692.6",
        "64 KiB of data that does not compress, compressed: echoed (compressed or not)",
        format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; 64 KiB of noise"),
        || {
            let p = noise(64 << 10);
            Script::deflate(&[NO_TAKEOVER], true)
                .send(sync(wire::BINARY, p.clone()))
                .expect(vec![Want::Binary(p)])
                .close()
        },
    );
    let mib = 1 << 20;
    let fit_mib = fit(options.max_message, mib);
    reg.add_bounded(
        "rfc7692.7.2.1",
        format!(
            "1 MiB of one byte value (about 1000:1) compressed: echoed{}",
            limit_note(fit_mib)
        ),
        format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; 1 MiB of 0x61 as 1 KiB"),
        BIG_BOUND,
        move |_| {
            let s = Script::deflate(&[NO_TAKEOVER], true).send(sync(wire::BINARY, vec![b'a'; mib]));
            vec![match fit_mib {
                Fit::TooBig => s.fail(1009),
                Fit::Echo { too_big_ok } => s
                    .expect_big(vec![Want::Binary(vec![b'a'; mib])], too_big_ok)
                    .close(),
            }]
        },
    );
}

#[cfg(feature = "deflate")]
fn bombs(reg: &mut Registry, options: &Options, notes: &mut Vec<String>) {
    // The subgroup is numbered even when it is left out, so that the ids after it stay the same.
    reg.sub();
    let Some(limit) = options.max_message else {
        notes.push(
            "deflate: the decompression bomb cases were left out; give the server's message limit with \
             --max-message BYTES to run them"
                .to_owned(),
        );
        return;
    };
    let l = size(limit);
    let bound = BIG_BOUND;
    for opcode in [wire::TEXT, wire::BINARY] {
        let kind = kind_name(opcode);
        reg.add_bounded(
            "rfc7692.8",
            format!("a compressed {kind} message inflating to exactly the limit ({l}) is echoed"),
            format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; {kind} frame inflating to {l}"),
            bound,
            move |_| {
                let z = bomb(b'a', limit);
                vec![raw_echo(
                    NO_TAKEOVER,
                    vec![wire::frame(true, RSV1, opcode, &z)],
                    want(opcode, &vec![b'a'; limit]),
                )]
            },
        );
        reg.add_bounded(
            "rfc7692.8",
            format!("a compressed {kind} message inflating to the limit + 1 byte fails with 1009"),
            format!(
                "Sec-WebSocket-Extensions: {NO_TAKEOVER}; {kind} frame inflating to {}",
                size(limit + 1)
            ),
            bound,
            move |_| {
                let z = bomb(b'a', limit + 1);
                vec![
                    Script::deflate(&[NO_TAKEOVER], true)
                        .write(wire::frame(true, RSV1, opcode, &z))
                        .fail(1009),
                ]
            },
        );
    }
    let huge = limit.saturating_mul(64).min(1 << 30).max(limit + 1);
    reg.add_bounded(
        "rfc7692.8",
        format!(
            "a decompression bomb: a binary message inflating to {} fails with 1009",
            size(huge)
        ),
        format!(
            "Sec-WebSocket-Extensions: {NO_TAKEOVER}; binary frame of about {} inflating to {}",
            size(huge / 1000),
            size(huge)
        ),
        bound,
        move |_| {
            let z = bomb(0, huge);
            vec![
                Script::deflate(&[NO_TAKEOVER], true)
                    .write(wire::frame(true, RSV1, wire::BINARY, &z))
                    .fail(1009),
            ]
        },
    );
    reg.add_bounded(
        "rfc7692.8",
        "a compressed binary message in 8 fragments inflating past the limit fails with 1009",
        format!(
            "Sec-WebSocket-Extensions: {NO_TAKEOVER}; 8 frames inflating to {}",
            size(limit * 2)
        ),
        bound,
        move |_| {
            let z = bomb(0, limit * 2);
            let n = z.len();
            let frames = (0..8)
                .map(|i| {
                    let (a, b) = (i * n / 8, (i + 1) * n / 8);
                    let (op, rsv) = if i == 0 {
                        (wire::BINARY, RSV1)
                    } else {
                        (wire::CONT, 0)
                    };
                    wire::frame(i == 7, rsv, op, &z[a..b])
                })
                .collect();
            vec![Script::deflate(&[NO_TAKEOVER], true).frames(frames).fail(1009)]
        },
    );
}

#[cfg(feature = "deflate")]
fn invalid_data(reg: &mut Registry) {
    reg.sub();
    let bad: [(&'static str, &'static [u8]); 4] = [
        ("a reserved block type (BTYPE 11)", &[0xff, 0xff, 0xff, 0xff]),
        (
            "a stored block whose length check fails",
            &[0x00, 0x05, 0x00, 0x00, 0x00, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00],
        ),
        (
            "a distance too far back (the RFC's second \"Hello\" with no first)",
            &[0xf2, 0x00, 0x11, 0x00, 0x00],
        ),
        (
            "an invalid distance code (30, in a fixed-code block)",
            &[0x03, 0x3e, 0x00, 0x00],
        ),
    ];
    for (what, data) in bad {
        reg.one(
            "rfc7692.8",
            format!("compressed data with {what} fails with 1007"),
            format!(
                "Sec-WebSocket-Extensions: {TAKEOVER}; binary frame, RSV1, {} bytes",
                data.len()
            ),
            move || {
                Script::deflate(&[TAKEOVER], true)
                    .write(wire::frame(true, RSV1, wire::BINARY, data))
                    .fail(1007)
            },
        );
    }
    reg.one(
        "rfc7692.8",
        "invalid compressed data in the continuation of a good first fragment fails with 1007",
        format!(
            "Sec-WebSocket-Extensions: {NO_TAKEOVER}; text frame, RSV1, \"Hello, \"; continuation ff ff ff"
        ),
        || {
            let z = compress_pieces(&[b"Hello, ", b""]).concat();
            Script::deflate(&[NO_TAKEOVER], true)
                .write(wire::frame(false, RSV1, wire::TEXT, &z))
                .write(wire::frame(true, 0, wire::CONT, &[0xff, 0xff, 0xff]))
                .fail(1007)
        },
    );
    reg.one(
        "rfc7692.8",
        "invalid compressed data after a good compressed message fails with 1007",
        format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; \"Hello\", then a binary frame ff ff ff ff"),
        || {
            Script::deflate(&[NO_TAKEOVER], true)
                .write(wire::frame(true, RSV1, wire::TEXT, &HELLO))
                .expect(vec![Want::Text(b"Hello".to_vec())])
                .write(wire::frame(true, RSV1, wire::BINARY, &[0xff, 0xff, 0xff, 0xff]))
                .fail(1007)
        },
    );
    // Text that inflates to invalid UTF-8 (RFC 6455 8.1 applies to the inflated message).
    let bad_text: [(&'static str, &'static [u8]); 3] = [
        (
            "a surrogate (ed a0 80)",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        ),
        ("a truncated sequence at its end", b"Hello, \xe2\x82"),
        ("a byte 0xff", b"Hello \xff world, Hello world"),
    ];
    for (what, text) in bad_text {
        reg.one(
            "rfc7692.6",
            format!("compressed text that inflates to invalid UTF-8 ({what}) fails with 1007"),
            format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; text frame, RSV1"),
            move || {
                Script::deflate(&[NO_TAKEOVER], true)
                    .write(wire::frame(true, RSV1, wire::TEXT, &compress_alone(text)))
                    .fail(1007)
            },
        );
    }
    reg.one(
        "rfc7692.6",
        "compressed text in 2 fragments, the second inflating to invalid UTF-8, fails with 1007",
        format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; text frame, RSV1; continuation"),
        || {
            let z = compress_pieces(&[b"Hello, ", b"\xed\xa0\x80 world"]);
            Script::deflate(&[NO_TAKEOVER], true)
                .write(wire::frame(false, RSV1, wire::TEXT, &z[0]))
                .write(wire::frame(true, 0, wire::CONT, &z[1]))
                .fail(1007)
        },
    );
}

/// Builds a frame when the case runs (a fresh masking key each time).
#[cfg(feature = "deflate")]
type BuildFrame = fn() -> Vec<u8>;

/// Builds frames when the case runs.
#[cfg(feature = "deflate")]
type BuildFrames = fn() -> Vec<Vec<u8>>;

#[cfg(feature = "deflate")]
fn rsv_with_deflate(reg: &mut Registry) {
    reg.sub();
    let control: [(&'static str, BuildFrame); 5] = [
        ("a ping", || wire::frame(true, RSV1, wire::PING, b"ping")),
        ("a ping with a compressed payload", || {
            wire::frame(true, RSV1, wire::PING, &HELLO)
        }),
        ("a pong", || wire::frame(true, RSV1, wire::PONG, b"pong")),
        ("a close frame (1000)", || {
            wire::frame(true, RSV1, wire::CLOSE, &[0x03, 0xe8])
        }),
        ("a close frame with a compressed reason", || {
            wire::frame(
                true,
                RSV1,
                wire::CLOSE,
                &[[0x03, 0xe8].as_slice(), &HELLO].concat(),
            )
        }),
    ];
    for (what, frame) in control {
        reg.one(
            "rfc7692.6.1",
            format!("RSV1 on {what} with permessage-deflate agreed fails with 1002"),
            format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; {what} with RSV1"),
            move || Script::deflate(&[NO_TAKEOVER], true).write(frame()).fail(1002),
        );
    }
    reg.one(
        "rfc7692.6.1",
        "RSV1 on a ping between the fragments of a compressed message fails with 1002",
        format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; text frame, RSV1, no FIN; ping with RSV1"),
        || {
            Script::deflate(&[NO_TAKEOVER], true)
                .write(wire::frame(false, RSV1, wire::TEXT, &HELLO[..3]))
                .write(wire::frame(true, RSV1, wire::PING, b"ping"))
                .fail(1002)
        },
    );

    reg.sub();
    let continuations: [(&'static str, BuildFrames); 3] = [
        ("after a compressed first frame", || {
            vec![
                wire::frame(false, RSV1, wire::TEXT, &HELLO[..3]),
                wire::frame(true, RSV1, wire::CONT, &HELLO[3..]),
            ]
        }),
        ("after an uncompressed first frame", || {
            vec![
                wire::frame(false, 0, wire::TEXT, b"Hel"),
                wire::frame(true, RSV1, wire::CONT, b"lo"),
            ]
        }),
        ("in the middle of three frames", || {
            vec![
                wire::frame(false, RSV1, wire::BINARY, &HELLO[..2]),
                wire::frame(false, RSV1, wire::CONT, &HELLO[2..4]),
                wire::frame(true, 0, wire::CONT, &HELLO[4..]),
            ]
        }),
    ];
    for (what, frames) in continuations {
        reg.one(
            "rfc7692.6.1",
            format!("RSV1 on a continuation frame {what} fails with 1002"),
            format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; fragments, RSV1 on a continuation"),
            move || Script::deflate(&[NO_TAKEOVER], true).frames(frames()).fail(1002),
        );
    }

    reg.sub();
    let others: [(&'static str, u8, u8); 4] = [
        ("RSV2 on a text frame", 0b010, wire::TEXT),
        ("RSV3 on a binary frame", 0b001, wire::BINARY),
        ("RSV1 and RSV2 on a compressed text frame", 0b110, wire::TEXT),
        ("RSV1 and RSV3 on a compressed binary frame", 0b101, wire::BINARY),
    ];
    for (what, rsv, opcode) in others {
        reg.one(
            "rfc7692.6",
            format!("{what} with permessage-deflate agreed fails with 1002 (only RSV1 is defined)"),
            format!("Sec-WebSocket-Extensions: {NO_TAKEOVER}; {what}"),
            move || {
                Script::deflate(&[NO_TAKEOVER], true)
                    .write(wire::frame(true, rsv, opcode, &HELLO))
                    .fail(1002)
            },
        );
    }
}

/// RSV1 without an agreement: no offer, or an offer the server must decline.
fn rsv_without_deflate(reg: &mut Registry) {
    reg.sub();
    reg.one(
        "rfc7692.6",
        "a compressed text frame (RSV1) without permessage-deflate offered fails with 1002",
        "text frame, RSV1, f2 48 cd c9 c9 07 00",
        || {
            Script::new()
                .write(wire::frame(true, RSV1, wire::TEXT, &HELLO))
                .fail(1002)
        },
    );
    reg.one(
        "rfc7692.6",
        "a compressed binary frame (RSV1) without permessage-deflate offered fails with 1002",
        "binary frame, RSV1, f2 48 cd c9 c9 07 00",
        || {
            Script::new()
                .write(wire::frame(true, RSV1, wire::BINARY, &HELLO))
                .fail(1002)
        },
    );
    reg.one(
        "rfc7692.6",
        "RSV1 on the first fragment without permessage-deflate offered fails with 1002",
        "text frame, RSV1, no FIN",
        || {
            Script::new()
                .write(wire::frame(false, RSV1, wire::TEXT, &HELLO[..3]))
                .fail(1002)
        },
    );
    reg.one(
        "rfc7692.6",
        "a compressed frame after a good message without permessage-deflate offered fails with 1002",
        "\"Hello\"; text frame, RSV1",
        || {
            let (good, echo) = super::hello();
            Script::new()
                .write(good)
                .expect(vec![echo])
                .write(wire::frame(true, RSV1, wire::TEXT, &HELLO))
                .fail(1002)
        },
    );
    for offer in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; foo",
        "x-webkit-deflate-frame",
    ] {
        reg.one(
            "rfc7692.6",
            format!("after an offer that must be declined ({offer}), a compressed frame fails with 1002"),
            format!("Sec-WebSocket-Extensions: {offer}; text frame, RSV1"),
            move || {
                Script::deflate(&[offer], false)
                    .write(wire::frame(true, RSV1, wire::TEXT, &HELLO))
                    .fail(1002)
            },
        );
    }
}
