//! The server's size limits (RFC 6455 10.4): given the server's message limit L, messages of L
//! bytes are echoed and anything larger, in one frame or many, fails with 1009 — at best as soon
//! as a frame header announces it, before the payload arrives.

use crate::check::Options;
use crate::check::case::{BIG_BOUND, Registry, Script, Want, size, wire};

/// Limits up to this size are checked with payloads; above it, only with frame headers.
const MAX_PAYLOAD_LIMIT: usize = 64 << 20;

pub(super) fn add(reg: &mut Registry, options: &Options, notes: &mut Vec<String>) {
    let Some(limit) = options.max_message else {
        notes.push(
            "limits: the size limit cases were left out; give the server's message limit with \
             --max-message BYTES to run them"
                .to_owned(),
        );
        return;
    };
    let bound = if limit > 1 << 20 { BIG_BOUND } else { reg.bound };
    let l = size(limit);

    reg.sub();
    if limit <= MAX_PAYLOAD_LIMIT {
        for opcode in [wire::TEXT, wire::BINARY] {
            let kind = super::kind_name(opcode);
            reg.add_bounded(
                "10.4",
                format!("a {kind} message of exactly the limit ({l}) is echoed"),
                format!("{kind} frame of {l}"),
                bound,
                move |_| {
                    let (p, w) = super::payload(opcode, limit);
                    vec![
                        Script::new()
                            .write(wire::frame(true, 0, opcode, &p))
                            .expect(vec![w])
                            .close(),
                    ]
                },
            );
            reg.add_bounded(
                "10.4",
                format!("a {kind} frame of the limit + 1 byte fails with 1009"),
                format!("{kind} frame of {}", size(limit + 1)),
                bound,
                move |_| {
                    let (p, _) = super::payload(opcode, limit + 1);
                    vec![Script::new().write(wire::frame(true, 0, opcode, &p)).fail(1009)]
                },
            );
        }
        reg.add_bounded(
            "10.4",
            format!("a binary message of exactly the limit ({l}) in 2 fragments is echoed"),
            format!("2 binary frames totalling {l}"),
            bound,
            move |_| {
                let p = wire::binary_payload(limit);
                let frames = wire::fragments(wire::BINARY, &p, &[limit / 2]);
                vec![Script::new().frames(frames).expect(vec![Want::Binary(p)]).close()]
            },
        );
        for parts in [2usize, 16] {
            reg.add_bounded(
                "10.4",
                format!("a binary message of the limit + 1 byte in {parts} fragments fails with 1009"),
                format!("{parts} binary frames totalling {}", size(limit + 1)),
                bound,
                move |_| {
                    let p = wire::binary_payload(limit + 1);
                    let cuts: Vec<usize> = (1..parts).map(|i| i * (limit + 1) / parts).collect();
                    vec![
                        Script::new()
                            .frames(wire::fragments(wire::BINARY, &p, &cuts))
                            .fail(1009),
                    ]
                },
            );
        }
        reg.add_bounded(
            "10.4",
            "a text message of the limit + 1 byte in 2 fragments fails with 1009",
            format!("2 text frames totalling {}", size(limit + 1)),
            bound,
            move |_| {
                let p = wire::text_payload(limit + 1);
                vec![
                    Script::new()
                        .frames(wire::fragments(wire::TEXT, &p, &[limit / 2]))
                        .fail(1009),
                ]
            },
        );
    } else {
        notes.push(format!(
            "limits: the limit {l} is above {}: only the cases that send frame headers ran",
            size(MAX_PAYLOAD_LIMIT)
        ));
    }

    // Fail fast: the header alone says the frame is too big.
    reg.sub();
    for (announced, what) in [
        (limit as u64 + 1, "the limit + 1 byte"),
        (1 << 31, "2 GiB"),
        (1 << 62, "2^62 bytes"),
    ] {
        if announced <= limit as u64 {
            continue;
        }
        reg.add_bounded(
            "10.4",
            format!("a binary frame header announcing {what} fails with 1009 before the payload"),
            format!("binary frame header with length {announced}, no payload yet"),
            bound,
            move |_| {
                let head = wire::header(true, 0, wire::BINARY, announced, Some(wire::key()));
                let rest = vec![0u8; 4096];
                vec![Script::new().write(head).fail_fast(1009, rest)]
            },
        );
    }
    reg.add_bounded(
        "10.4",
        "a first fragment header announcing the limit + 1 byte fails with 1009 before the payload",
        format!("non-final text frame header with length {}", limit + 1),
        bound,
        move |_| {
            let head = wire::header(false, 0, wire::TEXT, limit as u64 + 1, Some(wire::key()));
            vec![Script::new().write(head).fail_fast(1009, vec![b'a'; 4096])]
        },
    );
    if limit <= MAX_PAYLOAD_LIMIT {
        reg.add_bounded(
            "10.4",
            "a continuation header that takes the message past the limit fails with 1009 before its payload",
            format!(
                "binary fragment of {}, then a continuation header of {}",
                size(limit / 2),
                size(limit / 2 + 1)
            ),
            bound,
            move |_| {
                let first = wire::frame(false, 0, wire::BINARY, &wire::binary_payload(limit / 2));
                let head = wire::header(
                    true,
                    0,
                    wire::CONT,
                    (limit - limit / 2 + 1) as u64,
                    Some(wire::key()),
                );
                vec![
                    Script::new()
                        .write(first)
                        .write(head)
                        .fail_fast(1009, vec![0; 4096]),
                ]
            },
        );
    }
}
