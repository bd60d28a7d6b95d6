//! Framing (RFC 6455 5.2): messages of every length class, whole and in small writes; and the
//! limits (10.4): a 16 MiB message.

use super::super::super::case::wire::{binary_payload, text_payload};
use super::super::super::case::{Group, size};
use super::super::case::{CLIENT_BIG_BOUND, CLIENT_BOUND, Registry, Script, Step, Want, sbinary, stext};

/// The payload lengths: each side of the 7-bit, 16-bit and 64-bit length forms, and 1 MiB.
const LENGTHS: [usize; 9] = [0, 1, 125, 126, 127, 128, 65535, 65536, 1 << 20];

fn bound(n: usize) -> std::time::Duration {
    if n >= 1 << 20 {
        CLIENT_BOUND * 4
    } else {
        CLIENT_BOUND
    }
}

pub(super) fn add(r: &mut Registry) {
    r.group(Group::Framing);
    r.sub();
    for n in LENGTHS {
        r.add_bounded(
            "5.2",
            format!("a text message of {} is echoed", size(n)),
            format!("text, {}", size(n)),
            bound(n),
            move || {
                let p = text_payload(n);
                Script::new().write(stext(&p)).expect(vec![Want::Text(p)])
            },
        );
    }
    r.sub();
    for n in LENGTHS {
        r.add_bounded(
            "5.2",
            format!("a binary message of {} is echoed", size(n)),
            format!("binary, {}", size(n)),
            bound(n),
            move || {
                let p = binary_payload(n);
                Script::new().write(sbinary(&p)).expect(vec![Want::Binary(p)])
            },
        );
    }
    r.sub();
    for (text, n, chunk) in [
        (true, 125, 1),
        (true, 65536, 997),
        (false, 128, 1),
        (false, 65535, 1000),
        (false, 1 << 20, 4096),
    ] {
        let kind = if text { "text" } else { "binary" };
        let how = if chunk == 1 {
            "one byte per write".to_owned()
        } else {
            format!("writes of {chunk} bytes")
        };
        r.add_bounded(
            "5.2",
            format!("a {kind} message of {} written in {how} is echoed", size(n)),
            format!("{kind}, {}, {how}", size(n)),
            bound(n),
            move || {
                let (frame, want) = if text {
                    let p = text_payload(n);
                    (stext(&p), Want::Text(p))
                } else {
                    let p = binary_payload(n);
                    (sbinary(&p), Want::Binary(p))
                };
                Script::new().chunked(frame, chunk).expect(vec![want])
            },
        );
    }
    r.sub();
    r.add(
        "5.2",
        "five messages in one write are echoed in order",
        "3 texts and 2 binaries in one write",
        || {
            let msgs: Vec<(bool, Vec<u8>)> = vec![
                (true, b"one".to_vec()),
                (false, vec![1, 2, 3]),
                (true, text_payload(200)),
                (false, binary_payload(300)),
                (true, Vec::new()),
            ];
            let bytes: Vec<u8> = msgs
                .iter()
                .flat_map(|(t, p)| if *t { stext(p) } else { sbinary(p) })
                .collect();
            let wants = msgs
                .into_iter()
                .map(|(t, p)| if t { Want::Text(p) } else { Want::Binary(p) })
                .collect();
            Script::new().write(bytes).expect(wants)
        },
    );
}

/// The limits: a 16 MiB message, echoed or refused with 1009 (INFO either way).
pub(super) fn limits(r: &mut Registry) {
    r.group(Group::Limits);
    r.sub();
    const BIG: usize = 16 << 20;
    r.add_bounded(
        "10.4",
        "a 16 MiB text message: echoed, or refused with 1009 (INFO: which, and how long it took)",
        "text, 16 MiB",
        CLIENT_BIG_BOUND,
        || {
            let p = text_payload(BIG);
            Script::new().write(stext(&p)).step(Step::Big(Want::Text(p)))
        },
    );
    r.add_bounded(
        "10.4",
        "a 16 MiB binary message: echoed, or refused with 1009 (INFO: which, and how long it took)",
        "binary, 16 MiB",
        CLIENT_BIG_BOUND,
        || {
            let p = binary_payload(BIG);
            Script::new().write(sbinary(&p)).step(Step::Big(Want::Binary(p)))
        },
    );
}
