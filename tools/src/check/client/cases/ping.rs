//! Ping and pong (RFC 6455 5.5.2, 5.5.3), and reserved bits and opcodes (5.2).

use super::super::super::case::wire::{binary_payload, text_payload};
use super::super::super::case::{Group, show_bytes};
use super::super::case::{Registry, Script, Want, sfragments, sframe, stext};
use super::rejects;

const PING: u8 = 0x9;
const PONG: u8 = 0xa;

pub(super) fn add(r: &mut Registry) {
    r.group(Group::Ping);
    r.sub();
    for (what, payload) in [
        ("an empty ping", Vec::new()),
        ("a ping of 125 bytes", text_payload(125)),
        ("a ping with every kind of byte", binary_payload(125)),
        ("a ping with a short text", b"Hello".to_vec()),
    ] {
        let sent = format!("ping {}", show_bytes(&payload));
        r.add(
            "5.5.2",
            format!("{what} is answered with a masked pong of the same payload"),
            sent,
            move || {
                Script::new()
                    .write(sframe(true, 0, PING, &payload))
                    .expect(vec![Want::Pong(payload.clone())])
            },
        );
    }
    r.add(
        "5.5.2",
        "a ping written one byte per write is answered",
        "ping \"slow\", one byte per write",
        || {
            Script::new()
                .chunked(sframe(true, 0, PING, b"slow"), 1)
                .expect(vec![Want::Pong(b"slow".to_vec())])
        },
    );
    r.sub();
    r.add(
        "5.5",
        "a ping of 126 bytes (control frames carry at most 125) makes the client fail the \
         connection with 1002",
        "ping, 126 bytes",
        || rejects(sframe(true, 0, PING, &[b'x'; 126]), &[1002]),
    );
    r.add(
        "5.5",
        "a fragmented ping (FIN clear) makes the client fail the connection with 1002",
        "ping with FIN clear, then a continuation",
        || {
            let mut bad = sframe(false, 0, PING, b"part");
            bad.extend_from_slice(&sframe(true, 0, 0x0, b"rest"));
            rejects(bad, &[1002])
        },
    );
    r.sub();
    r.add(
        "5.5.3",
        "an unsolicited pong is ignored: the next message is echoed",
        "pong \"unasked\", then text \"next\"",
        || {
            let mut bytes = sframe(true, 0, PONG, b"unasked");
            bytes.extend_from_slice(&stext(b"next"));
            Script::new()
                .write(bytes)
                .expect(vec![Want::Text(b"next".to_vec())])
        },
    );
    r.add(
        "5.5.3",
        "an unsolicited empty pong is ignored: the next message is echoed",
        "empty pong, then binary [01 02]",
        || {
            let mut bytes = sframe(true, 0, PONG, b"");
            bytes.extend_from_slice(&super::super::case::sbinary(&[1, 2]));
            Script::new().write(bytes).expect(vec![Want::Binary(vec![1, 2])])
        },
    );
    r.sub();
    r.add(
        "5.4",
        "a ping between the fragments of a text message is answered, and the message echoed whole",
        "text \"Hello, \", ping \"mid\", continuation \"world\"",
        || {
            let mut frames = sfragments(0x1, b"Hello, world", &[7]);
            frames.insert(1, sframe(true, 0, PING, b"mid"));
            Script::new().frames(frames).expect(vec![
                Want::Pong(b"mid".to_vec()),
                Want::Text(b"Hello, world".to_vec()),
            ])
        },
    );
    r.add(
        "5.4",
        "pings between each of three fragments of a binary message are answered",
        "binary in 3 fragments with a ping after the first and the second",
        || {
            let p = binary_payload(30);
            let mut frames = sfragments(0x2, &p, &[10, 20]);
            frames.insert(2, sframe(true, 0, PING, b"two"));
            frames.insert(1, sframe(true, 0, PING, b"one"));
            Script::new().frames(frames).expect(vec![
                Want::Pong(b"one".to_vec()),
                Want::Pong(b"two".to_vec()),
                Want::Binary(p),
            ])
        },
    );
}

/// Reserved bits and opcodes (RFC 6455 5.2): the client must fail the connection with 1002.
pub(super) fn reserved(r: &mut Registry) {
    r.group(Group::Reserved);
    r.sub();
    for (rsv, name) in [(4, "RSV1"), (2, "RSV2"), (1, "RSV3"), (7, "RSV1, RSV2 and RSV3")] {
        r.add(
            "5.2",
            format!("a text frame with {name} set and no extension agreed: fail with 1002"),
            format!("text \"rsv\" with {name}"),
            move || rejects(sframe(true, rsv, 0x1, b"rsv"), &[1002]),
        );
    }
    r.add(
        "5.2",
        "a ping with RSV2 set: fail with 1002",
        "ping \"rsv\" with RSV2",
        || rejects(sframe(true, 2, PING, b"rsv"), &[1002]),
    );
    r.sub();
    for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        let kind = if op < 8 { "data" } else { "control" };
        r.add(
            "5.2",
            format!("a frame with the reserved {kind} opcode {op}: fail with 1002"),
            format!("opcode {op}, payload \"op\""),
            move || rejects(sframe(true, 0, op, b"op"), &[1002]),
        );
    }
}
