//! Ping and pong (RFC 6455 5.5, 5.5.2, 5.5.3): every ping is answered by a pong with the same
//! payload; pongs need no answer; control frames are at most 125 bytes and may come between the
//! fragments of a message.

use crate::check::case::{Registry, Script, Want, size, wire};

pub(super) fn add(reg: &mut Registry) {
    reg.sub();
    for n in [0usize, 1, 2, 10, 64, 124, 125] {
        reg.one(
            "5.5.2",
            format!(
                "a ping of {} is answered by a pong with the same payload",
                size(n)
            ),
            format!("ping of {}", size(n)),
            move || {
                let p = wire::binary_payload(n);
                Script::new()
                    .write(wire::ping(&p))
                    .expect(vec![Want::Pong(p)])
                    .close()
            },
        );
    }
    reg.one(
        "5.5.2",
        "a ping with a text payload is answered with the same payload",
        "ping \"Hello, κόσμε\"",
        || {
            let p = "Hello, κόσμε".as_bytes().to_vec();
            Script::new()
                .write(wire::ping(&p))
                .expect(vec![Want::Pong(p)])
                .close()
        },
    );
    for n in [0usize, 125] {
        reg.one(
            "5.5.2",
            format!("a ping of {} written 1 byte at a time is answered", size(n)),
            format!("ping of {}, 1 byte per write", size(n)),
            move || {
                let p = wire::binary_payload(n);
                Script::new()
                    .chunked(wire::ping(&p), 1)
                    .expect(vec![Want::Pong(p)])
                    .close()
            },
        );
    }

    reg.sub();
    for (opcode, what) in [(wire::PING, "ping"), (wire::PONG, "pong")] {
        for n in [126usize, 127, 65535, 65536] {
            reg.one(
                "5.5",
                format!(
                    "a {what} of {} (control frames carry at most 125) fails with 1002",
                    size(n)
                ),
                format!("{what} of {}", size(n)),
                move || {
                    Script::new()
                        .write(wire::frame(true, 0, opcode, &wire::binary_payload(n)))
                        .fail(1002)
                },
            );
        }
    }
    reg.one(
        "5.5",
        "a ping header announcing 65536 bytes fails the connection before the payload is sent",
        "ping header with length 65536, then (later) its payload",
        || {
            let f = wire::frame(true, 0, wire::PING, &wire::binary_payload(65536));
            let (head, rest) = f.split_at(14);
            Script::new().write(head.to_vec()).fail_fast(1002, rest.to_vec())
        },
    );

    reg.sub();
    for n in [0usize, 125] {
        reg.one(
            "5.5.3",
            format!(
                "an unsolicited pong of {} is ignored; the next message is echoed",
                size(n)
            ),
            format!("pong of {}, then text \"Hello\"", size(n)),
            move || {
                let p = wire::binary_payload(n);
                Script::new()
                    .write(wire::pong(&p))
                    .write(wire::text(b"Hello"))
                    .expect(vec![Want::Text(b"Hello".to_vec())])
                    .close()
            },
        );
    }
    reg.one(
        "5.5.3",
        "10 unsolicited pongs in one write are ignored; the next message is echoed",
        "10 pongs and text \"Hello\" in one write",
        || {
            let mut frames: Vec<Vec<u8>> = (0..10u8).map(|i| wire::pong(&[i; 3])).collect();
            frames.push(wire::text(b"Hello"));
            Script::new()
                .write(wire::concat(&frames))
                .expect(vec![Want::Text(b"Hello".to_vec())])
                .close()
        },
    );
    reg.one(
        "5.5.3",
        "an unsolicited pong written 1 byte at a time is ignored",
        "pong \"heartbeat\", 1 byte per write, then text \"Hello\"",
        || {
            Script::new()
                .chunked(wire::pong(b"heartbeat"), 1)
                .write(wire::text(b"Hello"))
                .expect(vec![Want::Text(b"Hello".to_vec())])
                .close()
        },
    );

    reg.sub();
    reg.one(
        "5.5.2",
        "10 pings in one write get 10 pongs with the same payloads, in order",
        "10 pings \"ping 0\" .. \"ping 9\" in one write",
        || {
            let ps: Vec<Vec<u8>> = (0..10).map(|i| format!("ping {i}").into_bytes()).collect();
            let frames: Vec<Vec<u8>> = ps.iter().map(|p| wire::ping(p)).collect();
            Script::new()
                .write(wire::concat(&frames))
                .expect(ps.into_iter().map(Want::Pong).collect())
                .close()
        },
    );
    reg.one(
        "5.5.2",
        "10 pings in separate writes get 10 pongs with the same payloads, in order",
        "10 pings of 0-125 bytes, one write each",
        || {
            let ps: Vec<Vec<u8>> = (0..10).map(|i| wire::binary_payload(i * 13 + 8)).collect();
            Script::new()
                .frames(ps.iter().map(|p| wire::ping(p)).collect())
                .expect(ps.into_iter().map(Want::Pong).collect())
                .close()
        },
    );
    reg.one(
        "5.5.2",
        "100 pings in one write get 100 pongs, in order",
        "100 pings of 4 bytes in one write",
        || {
            let ps: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_be_bytes().to_vec()).collect();
            let frames: Vec<Vec<u8>> = ps.iter().map(|p| wire::ping(p)).collect();
            Script::new()
                .write(wire::concat(&frames))
                .expect(ps.into_iter().map(Want::Pong).collect())
                .close()
        },
    );
    reg.one(
        "5.5.2",
        "pings and messages interleaved: every ping answered, every message echoed",
        "ping, text, ping, binary, ping in one write",
        || {
            let frames = [
                wire::ping(b"a"),
                wire::text(b"one"),
                wire::ping(b"b"),
                wire::binary(&[2, 2]),
                wire::ping(b"c"),
            ];
            Script::new()
                .write(wire::concat(&frames))
                .expect(vec![
                    Want::Pong(b"a".to_vec()),
                    Want::Text(b"one".to_vec()),
                    Want::Pong(b"b".to_vec()),
                    Want::Binary(vec![2, 2]),
                    Want::Pong(b"c".to_vec()),
                ])
                .close()
        },
    );

    reg.sub();
    for (what, opcode) in [("text", wire::TEXT), ("binary", wire::BINARY)] {
        reg.one(
            "5.4",
            format!(
                "a ping between the fragments of a {what} message is answered; the message is echoed whole"
            ),
            format!("{what} fragment, ping, final fragment (separate writes)"),
            move || {
                let p = wire::text_payload(20);
                let mut frames = wire::fragments(opcode, &p, &[10]);
                frames.insert(1, wire::ping(b"between"));
                Script::new()
                    .frames(frames)
                    .expect(vec![Want::Pong(b"between".to_vec()), super::want(opcode, &p)])
                    .close()
            },
        );
    }
    reg.one(
        "5.4",
        "a ping between every two of 10 fragments is answered each time",
        "10 text fragments with 9 pings between them, one write each",
        || {
            let p = wire::text_payload(100);
            let cuts: Vec<usize> = (1..10).map(|i| i * 10).collect();
            let mut frames = Vec::new();
            let mut wants = Vec::new();
            for (i, f) in wire::fragments(wire::TEXT, &p, &cuts).into_iter().enumerate() {
                if i > 0 {
                    let ping = format!("ping {i}").into_bytes();
                    frames.push(wire::ping(&ping));
                    wants.push(Want::Pong(ping));
                }
                frames.push(f);
            }
            wants.push(Want::Text(p));
            Script::new().frames(frames).expect(wants).close()
        },
    );
    reg.one(
        "5.4",
        "a 125-byte ping between fragments, all in one write",
        "text fragment, ping of 125 bytes, final fragment in one write",
        || {
            let p = wire::text_payload(300);
            let ping = wire::binary_payload(125);
            let mut frames = wire::fragments(wire::TEXT, &p, &[150]);
            frames.insert(1, wire::ping(&ping));
            Script::new()
                .write(wire::concat(&frames))
                .expect(vec![Want::Pong(ping), Want::Text(p)])
                .close()
        },
    );
    reg.one(
        "5.4",
        "pings between 4 fragments of 64 KiB, all written in 1000-byte pieces",
        "binary message of 256 KiB in 4 frames with a ping after each of the first 3, in 1000-byte writes",
        || {
            let p = wire::binary_payload(256 << 10);
            let mut frames = Vec::new();
            let mut wants = Vec::new();
            for (i, f) in wire::fragments(wire::BINARY, &p, &[64 << 10, 128 << 10, 192 << 10])
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    let ping = wire::binary_payload(100 + i);
                    frames.push(wire::ping(&ping));
                    wants.push(Want::Pong(ping));
                }
                frames.push(f);
            }
            wants.push(Want::Binary(p));
            Script::new()
                .chunked(wire::concat(&frames), 1000)
                .expect(wants)
                .close()
        },
    );
    reg.one(
        "5.4",
        "pings between fragments, all written 1 byte at a time",
        "text message of 30 bytes in 3 frames with 2 pings between, 1 byte per write",
        || {
            let p = wire::text_payload(30);
            let mut frames = wire::fragments(wire::TEXT, &p, &[10, 20]);
            frames.insert(2, wire::ping(b"second"));
            frames.insert(1, wire::ping(b"first"));
            Script::new()
                .chunked(wire::concat(&frames), 1)
                .expect(vec![
                    Want::Pong(b"first".to_vec()),
                    Want::Pong(b"second".to_vec()),
                    Want::Text(p),
                ])
                .close()
        },
    );
}
