//! Fragmentation (RFC 6455 5.4): a message may come in any number of frames, empty ones
//! included, with control frames between them; it is echoed as one message. Continuations
//! without a message, new messages inside one, and fragmented control frames fail with 1002.

use super::{echo_or_limit, fit, hello, kind_name, limit_note, want};
use crate::check::Options;
use crate::check::case::{BIG_BOUND, Registry, Script, Want, size, wire};

/// Builds the frames of an illegal sequence.
type Frames = fn() -> Vec<Vec<u8>>;

pub(super) fn add(reg: &mut Registry, options: &Options) {
    for opcode in [wire::TEXT, wire::BINARY] {
        reg.sub();
        let kind = kind_name(opcode);
        let patterns: [(&str, usize, Vec<usize>); 8] = [
            ("2 fragments", 60, vec![30]),
            ("3 fragments", 60, vec![20, 40]),
            ("10 fragments", 60, (1..10).map(|i| i * 6).collect()),
            ("1 byte per fragment", 60, (1..60).collect()),
            ("an empty first fragment", 60, vec![0, 30]),
            ("an empty last fragment", 60, vec![60]),
            ("an empty middle fragment", 60, vec![30, 30]),
            ("3 empty fragments (an empty message)", 0, vec![0, 0]),
        ];
        for (what, len, cuts) in patterns {
            reg.one(
                "5.4",
                format!("a {kind} message in {what} is echoed as one message"),
                format!(
                    "{kind} message of {} in {} frames, one write each",
                    size(len),
                    cuts.len() + 1
                ),
                move || {
                    let p = super::payload(opcode, len).0;
                    Script::new()
                        .frames(wire::fragments(opcode, &p, &cuts))
                        .expect(vec![want(opcode, &p)])
                        .close()
                },
            );
        }
        reg.one(
            "5.4",
            format!("a {kind} message in 3 fragments written together is echoed as one message"),
            format!("{kind} message of 60 bytes in 3 frames, one write"),
            move || {
                let p = super::payload(opcode, 60).0;
                Script::new()
                    .write(wire::concat(&wire::fragments(opcode, &p, &[20, 40])))
                    .expect(vec![want(opcode, &p)])
                    .close()
            },
        );
        reg.one(
            "5.4",
            format!("a {kind} message in 10 fragments written 1 byte at a time is echoed"),
            format!("{kind} message of 60 bytes in 10 frames, 1 byte per write"),
            move || {
                let p = super::payload(opcode, 60).0;
                let cuts: Vec<usize> = (1..10).map(|i| i * 6).collect();
                Script::new()
                    .chunked(wire::concat(&wire::fragments(opcode, &p, &cuts)), 1)
                    .expect(vec![want(opcode, &p)])
                    .close()
            },
        );
    }

    for opcode in [wire::TEXT, wire::BINARY] {
        reg.sub();
        let kind = kind_name(opcode);
        // (description, the control frames to put after fragment i, pongs expected)
        type Between = fn(usize) -> Vec<(u8, Vec<u8>)>;
        let patterns: [(&str, Between, bool); 6] = [
            (
                "a ping after the first fragment",
                |i| {
                    if i == 0 {
                        vec![(wire::PING, b"p".to_vec())]
                    } else {
                        vec![]
                    }
                },
                false,
            ),
            (
                "a pong after the first fragment",
                |i| {
                    if i == 0 {
                        vec![(wire::PONG, b"q".to_vec())]
                    } else {
                        vec![]
                    }
                },
                false,
            ),
            (
                "a ping after every fragment",
                |i| vec![(wire::PING, vec![i as u8])],
                false,
            ),
            (
                "a ping and a pong after every fragment",
                |i| vec![(wire::PING, vec![i as u8]), (wire::PONG, vec![0xee])],
                false,
            ),
            (
                "pings of 0 and 125 bytes between fragments",
                |i| {
                    if i == 1 {
                        vec![(wire::PING, vec![]), (wire::PING, wire::binary_payload(125))]
                    } else {
                        vec![]
                    }
                },
                false,
            ),
            (
                "pings between fragments, all in one write",
                |i| vec![(wire::PING, vec![i as u8; 3])],
                true,
            ),
        ];
        for (what, between, one_write) in patterns {
            reg.one(
                "5.4",
                format!("a {kind} message with {what}: pings answered, message echoed whole"),
                format!("{kind} message of 40 bytes in 4 frames with control frames between"),
                move || {
                    let p = super::payload(opcode, 40).0;
                    let fragments = wire::fragments(opcode, &p, &[10, 20, 30]);
                    let last = fragments.len() - 1;
                    let mut frames = Vec::new();
                    let mut wants = Vec::new();
                    for (i, f) in fragments.into_iter().enumerate() {
                        frames.push(f);
                        if i == last {
                            break;
                        }
                        for (op, payload) in between(i) {
                            frames.push(wire::frame(true, 0, op, &payload));
                            if op == wire::PING {
                                wants.push(Want::Pong(payload));
                            }
                        }
                    }
                    wants.push(want(opcode, &p));
                    let script = if one_write {
                        Script::new().write(wire::concat(&frames))
                    } else {
                        Script::new().frames(frames)
                    };
                    script.expect(wants).close()
                },
            );
        }
    }

    reg.sub();
    reg.one(
        "5.4",
        "two fragmented messages in a row are echoed as two messages",
        "text in 3 frames, then binary in 2 frames",
        || {
            let a = wire::text_payload(30);
            let b = wire::binary_payload(30);
            let mut frames = wire::fragments(wire::TEXT, &a, &[10, 20]);
            frames.extend(wire::fragments(wire::BINARY, &b, &[15]));
            Script::new()
                .frames(frames)
                .expect(vec![Want::Text(a), Want::Binary(b)])
                .close()
        },
    );
    reg.one(
        "5.4",
        "fragmented, whole, fragmented: three messages echoed in order",
        "text in 2 frames, binary in 1, text in 2",
        || {
            let a = wire::text_payload(20);
            let b = wire::binary_payload(7);
            let c = wire::text_payload(9);
            let mut frames = wire::fragments(wire::TEXT, &a, &[10]);
            frames.push(wire::binary(&b));
            frames.extend(wire::fragments(wire::TEXT, &c, &[4]));
            Script::new()
                .frames(frames)
                .expect(vec![Want::Text(a), Want::Binary(b), Want::Text(c)])
                .close()
        },
    );
    for (opcode, len, parts) in [
        (wire::TEXT, 64usize << 10, 16usize),
        (wire::BINARY, 256 << 10, 4),
        (wire::BINARY, 1 << 20, 64),
    ] {
        let f = fit(options.max_message, len);
        reg.add_bounded(
            "5.4",
            format!(
                "a {} message of {} in {parts} fragments is echoed whole{}",
                kind_name(opcode),
                size(len),
                limit_note(f)
            ),
            format!("{} message of {} in {parts} frames", kind_name(opcode), size(len)),
            BIG_BOUND,
            move |_| {
                let (p, w) = super::payload(opcode, len);
                let cuts: Vec<usize> = (1..parts).map(|i| i * len / parts).collect();
                let frames = wire::fragments(opcode, &p, &cuts);
                vec![echo_or_limit(Script::new().frames(frames), w, f)]
            },
        );
    }

    reg.sub();
    let illegal: [(&str, Frames); 8] = [
        ("a continuation frame with FIN and no message to continue", || {
            vec![wire::frame(true, 0, wire::CONT, b"orphan")]
        }),
        (
            "a continuation frame without FIN and no message to continue",
            || vec![wire::frame(false, 0, wire::CONT, b"orphan")],
        ),
        ("a new text frame inside a fragmented text message", || {
            vec![
                wire::frame(false, 0, wire::TEXT, b"one"),
                wire::frame(true, 0, wire::TEXT, b"two"),
            ]
        }),
        (
            "a new non-final text frame inside a fragmented text message",
            || {
                vec![
                    wire::frame(false, 0, wire::TEXT, b"one"),
                    wire::frame(false, 0, wire::TEXT, b"two"),
                ]
            },
        ),
        ("a binary frame inside a fragmented text message", || {
            vec![
                wire::frame(false, 0, wire::TEXT, b"one"),
                wire::frame(true, 0, wire::BINARY, b"two"),
            ]
        }),
        ("a binary frame inside a fragmented binary message", || {
            vec![
                wire::frame(false, 0, wire::BINARY, b"one"),
                wire::frame(true, 0, wire::BINARY, b"two"),
            ]
        }),
        ("a text frame inside a fragmented binary message", || {
            vec![
                wire::frame(false, 0, wire::BINARY, b"one"),
                wire::frame(false, 0, wire::TEXT, b"two"),
            ]
        }),
        ("a new text frame after two fragments of a message", || {
            vec![
                wire::frame(false, 0, wire::TEXT, b"one"),
                wire::frame(false, 0, wire::CONT, b"two"),
                wire::frame(true, 0, wire::TEXT, b"three"),
            ]
        }),
    ];
    for (what, frames) in illegal {
        reg.one(
            "5.4",
            format!("{what} fails with 1002"),
            what.to_owned(),
            move || Script::new().frames(frames()).fail(1002),
        );
    }
    reg.one(
        "5.4",
        "a continuation frame after a complete message fails with 1002",
        "text \"Hello\", then a final continuation frame",
        || {
            let (good, echo) = hello();
            Script::new()
                .write(good)
                .expect(vec![echo])
                .write(wire::frame(true, 0, wire::CONT, b"more"))
                .fail(1002)
        },
    );

    reg.sub();
    let fragmented_control: [(&str, Frames); 6] = [
        ("a ping without FIN", || {
            vec![wire::frame(false, 0, wire::PING, b"half")]
        }),
        ("a ping without FIN, then a continuation with FIN", || {
            vec![
                wire::frame(false, 0, wire::PING, b"half"),
                wire::frame(true, 0, wire::CONT, b"ping"),
            ]
        }),
        ("a pong without FIN", || {
            vec![wire::frame(false, 0, wire::PONG, b"half")]
        }),
        ("a close frame without FIN", || {
            vec![wire::frame(false, 0, wire::CLOSE, &[0x03, 0xe8])]
        }),
        ("a ping without FIN inside a fragmented message", || {
            vec![
                wire::frame(false, 0, wire::TEXT, b"one"),
                wire::frame(false, 0, wire::PING, b"half"),
            ]
        }),
        ("an empty ping without FIN", || {
            vec![wire::frame(false, 0, wire::PING, b"")]
        }),
    ];
    for (what, frames) in fragmented_control {
        reg.one(
            "5.5",
            format!("{what} (control frames must not be fragmented) fails with 1002"),
            what.to_owned(),
            move || Script::new().frames(frames()).fail(1002),
        );
    }
}
