//! Reserved bits and opcodes (RFC 6455 5.2): with no extension negotiated, a frame with a
//! nonzero RSV bit or a reserved opcode fails the connection, wherever it comes.

use super::hello;
use crate::check::case::{Registry, Script, wire};

/// Where in a conversation the bad frame comes.
#[derive(Debug, Clone, Copy)]
enum Position {
    First,
    AfterMessage,
    InsideFragmented,
}

impl Position {
    const ALL: [Position; 3] = [
        Position::First,
        Position::AfterMessage,
        Position::InsideFragmented,
    ];

    fn describe(self) -> &'static str {
        match self {
            Position::First => "as the first frame",
            Position::AfterMessage => "after a good message",
            Position::InsideFragmented => "inside a fragmented message",
        }
    }

    /// The script up to the bad frame, which is then written and must fail the connection.
    fn script(self, bad: Vec<u8>) -> Script {
        match self {
            Position::First => Script::new().write(bad).fail(1002),
            Position::AfterMessage => {
                let (good, echo) = hello();
                Script::new().write(good).expect(vec![echo]).write(bad).fail(1002)
            }
            Position::InsideFragmented => Script::new()
                .write(wire::frame(false, 0, wire::TEXT, b"frag"))
                .write(bad)
                .fail(1002),
        }
    }
}

fn rsv_name(rsv: u8) -> String {
    let bits: Vec<String> = (0..3)
        .filter(|b| rsv & (0b100 >> b) != 0)
        .map(|b| format!("RSV{}", b + 1))
        .collect();
    bits.join("+")
}

pub(super) fn add(reg: &mut Registry) {
    reg.sub();
    for rsv in 1..=7u8 {
        for pos in Position::ALL {
            // Inside a fragmented message the bad frame is the continuation.
            let (opcode, what) = match pos {
                Position::InsideFragmented => (wire::CONT, "continuation"),
                _ => (wire::TEXT, "text"),
            };
            reg.one(
                "5.2",
                format!(
                    "{} set on a {what} frame {} fails with 1002",
                    rsv_name(rsv),
                    pos.describe()
                ),
                format!("{what} frame with {}", rsv_name(rsv)),
                move || pos.script(wire::frame(true, rsv, opcode, b"reserved")),
            );
        }
    }

    reg.sub();
    for (opcode, what, payload) in [
        (wire::BINARY, "binary", &[0xde, 0xad][..]),
        (wire::PING, "ping", &b"ping"[..]),
        (wire::CLOSE, "close", &[0x03, 0xe8][..]),
    ] {
        for rsv in 1..=7u8 {
            reg.one(
                "5.2",
                format!("{} set on a {what} frame fails with 1002", rsv_name(rsv)),
                format!("{what} frame with {}", rsv_name(rsv)),
                move || {
                    Script::new()
                        .write(wire::frame(true, rsv, opcode, payload))
                        .fail(1002)
                },
            );
        }
    }

    reg.sub();
    for opcode in (0x3..=0x7).chain(0xb..=0xf) {
        for pos in Position::ALL {
            reg.one(
                "5.2",
                format!("reserved opcode {opcode:#x} {} fails with 1002", pos.describe()),
                format!("frame with opcode {opcode:#x}"),
                move || pos.script(wire::frame(true, 0, opcode, b"reserved")),
            );
        }
    }

    reg.sub();
    for opcode in (0x3..=0x7).chain(0xb..=0xf) {
        reg.one(
            "5.2",
            format!("reserved opcode {opcode:#x} without FIN and with a 125-byte payload fails with 1002"),
            format!("non-final frame with opcode {opcode:#x}, 125 bytes"),
            move || {
                Script::new()
                    .write(wire::frame(false, 0, opcode, &wire::binary_payload(125)))
                    .fail(1002)
            },
        );
    }
}
