//! Base framing (RFC 6455 5.1-5.3): every length encoding, whole and in chunks, and masking.

use super::{echo_or_limit, fit, hello, kind_name, limit_note, payload};
use crate::check::Options;
use crate::check::case::{BIG_BOUND, Registry, Script, Want, size, wire};

/// The lengths at the edges of the 7-bit, 16-bit and 64-bit encodings, and 16 MiB.
const LENGTHS: [usize; 8] = [0, 125, 126, 127, 128, 65535, 65536, 16 << 20];

/// How the frame is written: whole, or in writes of so many bytes.
fn chunkings(len: usize) -> &'static [usize] {
    match len {
        0..=128 => &[usize::MAX, 1, 2, 7],
        129..=65536 => &[usize::MAX, 7, 997, 4096],
        _ => &[usize::MAX, 4093, 1 << 20],
    }
}

fn how(chunk: usize) -> String {
    match chunk {
        usize::MAX => "in one write".to_owned(),
        1 => "1 byte per write".to_owned(),
        n => format!("in writes of {}", size(n)),
    }
}

pub(super) fn add(reg: &mut Registry, options: &Options) {
    for opcode in [wire::TEXT, wire::BINARY] {
        reg.sub();
        for len in LENGTHS {
            for &chunk in chunkings(len) {
                let fit = fit(options.max_message, len);
                let bound = if len > 4096 { BIG_BOUND } else { reg.bound };
                reg.add_bounded(
                    "5.2",
                    format!(
                        "{} message of {} in one frame, {}{}",
                        kind_name(opcode),
                        size(len),
                        how(chunk),
                        limit_note(fit)
                    ),
                    format!("1 masked {} frame of {}", kind_name(opcode), size(len)),
                    bound,
                    move |_| {
                        let (p, want) = payload(opcode, len);
                        let frame = wire::frame(true, 0, opcode, &p);
                        drop(p);
                        vec![echo_or_limit(Script::new().chunked(frame, chunk), want, fit)]
                    },
                );
            }
        }
    }

    reg.sub();
    reg.one(
        "5.2",
        "10 text messages in one write are echoed in order",
        "10 text frames of 1-10 bytes in one write",
        || {
            let msgs: Vec<Vec<u8>> = (1..=10).map(wire::text_payload).collect();
            let frames: Vec<Vec<u8>> = msgs.iter().map(|m| wire::text(m)).collect();
            let wants = msgs.into_iter().map(Want::Text).collect();
            Script::new().write(wire::concat(&frames)).expect(wants).close()
        },
    );
    reg.one(
        "5.2",
        "100 text and binary messages of 0-990 bytes in one write are echoed in order",
        "100 frames, alternating text and binary, in one write",
        || {
            let mut frames = Vec::new();
            let mut wants = Vec::new();
            for i in 0..100usize {
                let n = (i * 10) % 991;
                if i % 2 == 0 {
                    let p = wire::text_payload(n);
                    frames.push(wire::text(&p));
                    wants.push(Want::Text(p));
                } else {
                    let p = wire::binary_payload(n);
                    frames.push(wire::binary(&p));
                    wants.push(Want::Binary(p));
                }
            }
            Script::new().write(wire::concat(&frames)).expect(wants).close()
        },
    );
    reg.one(
        "5.2",
        "3 messages of 126, 65536 and 125 bytes in writes that cut their headers",
        "3 binary frames in writes of 3 bytes, then 1000",
        || {
            let sizes = [126usize, 65536, 125];
            let payloads: Vec<Vec<u8>> = sizes.iter().map(|&n| wire::binary_payload(n)).collect();
            let frames: Vec<Vec<u8>> = payloads.iter().map(|p| wire::binary(p)).collect();
            let bytes = wire::concat(&frames);
            let (head, tail) = bytes.split_at(200);
            Script::new()
                .chunked(head.to_vec(), 3)
                .chunked(tail.to_vec(), 1000)
                .expect(payloads.into_iter().map(Want::Binary).collect())
                .close()
        },
    );
    reg.one(
        "5.3",
        "a frame masked with the all-zero key is still a masked frame: echoed",
        "text \"zero key\" with mask 00 00 00 00",
        || {
            let mut f = wire::header(true, 0, wire::TEXT, 8, Some([0; 4]));
            f.extend_from_slice(b"zero key");
            Script::new()
                .write(f)
                .expect(vec![Want::Text(b"zero key".to_vec())])
                .close()
        },
    );
    reg.one(
        "5.3",
        "every frame of a conversation has its own masking key",
        "20 text frames, each with a fresh key, in separate writes",
        || {
            let msgs: Vec<Vec<u8>> = (0..20).map(|i| format!("message {i}").into_bytes()).collect();
            Script::new()
                .frames(msgs.iter().map(|m| wire::text(m)).collect())
                .expect(msgs.into_iter().map(Want::Text).collect())
                .close()
        },
    );

    reg.sub();
    for (what, opcode, payload) in [
        ("text", wire::TEXT, &b"unmasked"[..]),
        ("binary", wire::BINARY, &b"unmasked"[..]),
        ("ping", wire::PING, &b"unmasked"[..]),
        ("close", wire::CLOSE, &[0x03, 0xe8][..]),
        ("empty text", wire::TEXT, &b""[..]),
    ] {
        reg.one(
            "5.1",
            format!("an unmasked {what} frame from a client fails the connection with 1002"),
            format!("unmasked {what} frame"),
            move || {
                Script::new()
                    .write(wire::unmasked(true, opcode, payload))
                    .fail(1002)
            },
        );
    }
    reg.one(
        "5.1",
        "an unmasked frame after a good message fails the connection with 1002",
        "text \"Hello\" (masked), then an unmasked text frame",
        || {
            let (good, echo) = hello();
            Script::new()
                .write(good)
                .expect(vec![echo])
                .write(wire::unmasked(true, wire::TEXT, b"unmasked"))
                .fail(1002)
        },
    );
    reg.one(
        "5.2",
        "a 64-bit payload length with its most significant bit set fails the connection (1002)",
        "binary frame header with length 0x8000000000000000",
        || {
            let mut f = wire::header(true, 0, wire::BINARY, 0, Some(wire::key()));
            f.truncate(2);
            f[1] = 0x80 | 127;
            f.extend_from_slice(&0x8000_0000_0000_0000u64.to_be_bytes());
            f.extend_from_slice(&wire::key());
            f.extend_from_slice(&[0; 16]);
            Script::new().write(f).fail(1002)
        },
    );
}
