//! permessage-deflate (RFC 7692), for a client that offers it (else SKIPPED): compressed
//! messages are echoed; answers it must refuse; frames it must reject once it is agreed.

use super::super::super::case::wire::{binary_payload, text_payload};
use super::super::super::case::{Group, size};
use super::super::case::{Answer, Bad, CLIENT_BOUND, Registry, Script, Step, Want, sframe, stext};
use super::PROBE;

fn agreed(takeover: bool) -> Script {
    Script::new().answer(Answer::Deflate { takeover })
}

pub(super) fn add(r: &mut Registry) {
    r.group(Group::Deflate);
    r.sub();
    for (opcode, n, frames, takeover) in [
        (1u8, 5usize, 1usize, false),
        (2, 64 << 10, 1, false),
        (1, 1 << 20, 1, false),
        (1, 3000, 3, false),
        (2, 0, 1, false),
        (1, 0, 1, true),
    ] {
        let kind = if opcode == 1 { "text" } else { "binary" };
        let how = if frames > 1 {
            format!(" in {frames} fragments")
        } else {
            String::new()
        };
        let ctx = if takeover {
            "context takeover"
        } else {
            "no context takeover"
        };
        // Compressing and inflating a mebibyte takes a while in a debug build.
        let bound = if n >= 1 << 20 {
            CLIENT_BOUND * 4
        } else {
            CLIENT_BOUND
        };
        r.add_bounded(
            "rfc7692.7.2",
            format!(
                "a compressed {kind} message of {}{how} ({ctx}) is echoed",
                size(n)
            ),
            format!("{kind}, {}, compressed{how}", size(n)),
            bound,
            move || {
                let p = if opcode == 1 {
                    text_payload(n)
                } else {
                    binary_payload(n)
                };
                let want = if opcode == 1 {
                    Want::Text(p.clone())
                } else {
                    Want::Binary(p.clone())
                };
                agreed(takeover).compressed(opcode, p, frames).expect(vec![want])
            },
        );
    }
    r.add(
        "rfc7692.7.2.3",
        "three similar texts compressed with context takeover are echoed",
        "3 texts sharing one compression context",
        || {
            let mut s = agreed(true);
            let mut wants = Vec::new();
            for i in 0..3 {
                let p = format!("the same words again and again, number {i}").into_bytes();
                s = s.compressed(1, p.clone(), 1);
                wants.push(Want::Text(p));
            }
            s.expect(wants)
        },
    );
    r.add(
        "rfc7692.6",
        "an uncompressed text (RSV1 clear) on a connection with permessage-deflate is echoed",
        "text \"plain\", not compressed",
        || {
            agreed(false)
                .write(stext(b"plain"))
                .expect(vec![Want::Text(b"plain".to_vec())])
        },
    );
    r.sub();
    let bad: [(&str, &'static str, bool); 8] = [
        ("an unknown parameter", "permessage-deflate; x=1", false),
        (
            "server_max_window_bits=7 (below 8)",
            "permessage-deflate; server_max_window_bits=7",
            false,
        ),
        (
            "server_max_window_bits=16 (above 15)",
            "permessage-deflate; server_max_window_bits=16",
            false,
        ),
        (
            "server_max_window_bits without a number",
            "permessage-deflate; server_max_window_bits=abc",
            false,
        ),
        (
            "a parameter given twice",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            false,
        ),
        (
            "client_max_window_bits, which the client did not offer",
            "permessage-deflate; client_max_window_bits=10",
            true,
        ),
        (
            "server_no_context_takeover with a value",
            "permessage-deflate; server_no_context_takeover=1",
            false,
        ),
        (
            "two permessage-deflate answers",
            "permessage-deflate, permessage-deflate",
            false,
        ),
    ];
    for (what, value, unless_client_bits) in bad {
        r.add(
            "rfc7692.7.1",
            format!("a 101 agreeing with {what}: the client refuses it"),
            format!("101, Sec-WebSocket-Extensions: {value}; then text \"after\""),
            move || {
                Script::new()
                    .answer(Answer::Bad(Bad::DeflateValue {
                        value,
                        unless_client_bits,
                    }))
                    .write(stext(PROBE))
                    .step(Step::Refused)
            },
        );
    }
    r.sub();
    r.add(
        "rfc7692.6.1",
        "RSV1 on a ping once permessage-deflate is agreed: fail with 1002",
        "ping \"z\" with RSV1",
        || {
            agreed(false)
                .write(sframe(true, 4, 0x9, b"z"))
                .write(stext(PROBE))
                .fail(&[1002])
        },
    );
    r.add(
        "rfc7692.6.1",
        "RSV1 on a continuation frame: fail with 1002",
        "text \"one\" (FIN clear), continuation \"two\" with RSV1",
        || {
            let mut bad = sframe(false, 0, 0x1, b"one");
            bad.extend_from_slice(&sframe(true, 4, 0x0, b"two"));
            agreed(false).write(bad).write(stext(PROBE)).fail(&[1002])
        },
    );
    r.add(
        "rfc7692.8",
        "a compressed text that does not inflate: fail with 1007 (or 1002)",
        "text with RSV1, payload [ff ff ff ff]",
        || {
            agreed(false)
                .write(sframe(true, 4, 0x1, &[0xff; 4]))
                .write(stext(PROBE))
                .fail(&[1007, 1002])
        },
    );
    r.add(
        "5.2",
        "RSV2 on a text even with permessage-deflate agreed: fail with 1002",
        "text \"rsv2\" with RSV2",
        || {
            agreed(false)
                .write(sframe(true, 2, 0x1, b"rsv2"))
                .write(stext(PROBE))
                .fail(&[1002])
        },
    );
}
