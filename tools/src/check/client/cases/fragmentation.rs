//! Fragmentation (RFC 6455 5.4): fragmented messages are echoed whole; frames out of place make
//! the client fail the connection.

use super::super::super::case::wire::{binary_payload, text_payload};
use super::super::super::case::{Group, size};
use super::super::case::{Registry, Want, sfragments, sframe, stext};
use super::{echoes, rejects};

pub(super) fn add(r: &mut Registry) {
    r.group(Group::Fragmentation);
    r.sub();
    let texts: [(&str, usize, Vec<usize>); 6] = [
        ("2 fragments", 20, vec![10]),
        ("3 fragments", 300, vec![100, 200]),
        ("one byte per fragment", 24, (1..24).collect()),
        ("an empty first fragment", 16, vec![0]),
        ("an empty middle fragment", 16, vec![8, 8]),
        ("an empty last fragment", 16, vec![16]),
    ];
    for (how, n, cuts) in texts {
        r.add(
            "5.4",
            format!("a text message of {} in {how} is echoed whole", size(n)),
            format!("text, {}, {how}", size(n)),
            move || {
                let p = text_payload(n);
                echoes(sfragments(0x1, &p, &cuts), Want::Text(p))
            },
        );
    }
    for (n, parts) in [(64 << 10, 4), (1 << 20, 16)] {
        r.add_bounded(
            "5.4",
            format!(
                "a binary message of {} in {parts} fragments is echoed whole",
                size(n)
            ),
            format!("binary, {}, {parts} fragments", size(n)),
            super::super::case::CLIENT_BOUND * 4,
            move || {
                let p = binary_payload(n);
                let cuts: Vec<usize> = (1..parts).map(|i| i * n / parts).collect();
                echoes(sfragments(0x2, &p, &cuts), Want::Binary(p))
            },
        );
    }
    r.add(
        "5.4",
        "an empty message in two empty fragments is echoed",
        "text, empty, 2 empty fragments",
        || echoes(sfragments(0x1, b"", &[0]), Want::Text(Vec::new())),
    );
    r.sub();
    r.add(
        "5.4",
        "a continuation frame with no message to continue: fail with 1002",
        "continuation \"orphan\" (FIN set)",
        || rejects(sframe(true, 0, 0x0, b"orphan"), &[1002]),
    );
    r.add(
        "5.4",
        "a continuation frame with FIN clear and no message: fail with 1002",
        "continuation \"orphan\" (FIN clear), continuation \"end\"",
        || {
            let mut bad = sframe(false, 0, 0x0, b"orphan");
            bad.extend_from_slice(&sframe(true, 0, 0x0, b"end"));
            rejects(bad, &[1002])
        },
    );
    r.add(
        "5.4",
        "a new text frame inside a fragmented text message: fail with 1002",
        "text \"one\" (FIN clear), text \"two\"",
        || {
            let mut bad = sframe(false, 0, 0x1, b"one");
            bad.extend_from_slice(&stext(b"two"));
            rejects(bad, &[1002])
        },
    );
    r.add(
        "5.4",
        "a new binary frame inside a fragmented text message: fail with 1002",
        "text \"one\" (FIN clear), binary [02]",
        || {
            let mut bad = sframe(false, 0, 0x1, b"one");
            bad.extend_from_slice(&sframe(true, 0, 0x2, &[2]));
            rejects(bad, &[1002])
        },
    );
    r.add(
        "5.5",
        "a Close frame with FIN clear: fail with 1002",
        "close 1000 with FIN clear",
        || rejects(sframe(false, 0, 0x8, &1000u16.to_be_bytes()), &[1002]),
    );
    r.add(
        "5.5",
        "a pong with FIN clear: fail with 1002",
        "pong \"frag\" with FIN clear",
        || rejects(sframe(false, 0, 0xa, b"frag"), &[1002]),
    );
}
