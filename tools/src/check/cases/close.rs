//! The closing handshake (RFC 6455 5.5.1, 7.1, 7.4): a valid Close frame is answered with a
//! Close frame (the same code, or 1000) and then the TCP connection closes; a Close frame with a
//! code that may not be sent, a 1-byte payload or a reason that is not UTF-8 fails the
//! connection; nothing the client sends after its Close frame is answered.

use crate::check::case::{CloseWant, Registry, Script, Want, show_bytes, wire};

/// Whether a close code may be sent: 1000-1003, 1007-1014 (1012-1014 from the registry of RFC
/// 6455 section 11.7), 3000-4999.
fn valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn want_for(code: u16) -> CloseWant {
    if valid(code) {
        CloseWant::Echo(Some(code))
    } else {
        CloseWant::Fail {
            code: 1002,
            sent: Some(code),
        }
    }
}

fn close_script(code: u16) -> Script {
    Script::new()
        .label(format!("code {code}"))
        .write(wire::close(code, b""))
        .closed(want_for(code))
}

pub(super) fn add(reg: &mut Registry) {
    reg.sub();
    let individual = [
        0u16, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        1015, 1016, 2999, 3000, 3999, 4000, 4999, 5000, 65535,
    ];
    for code in individual {
        let description = if valid(code) {
            format!("close code {code} is answered with {code} or 1000")
        } else {
            format!("close code {code} may not be sent: fails with 1002")
        };
        reg.one(
            "7.4.1",
            description,
            format!("Close frame with code {code}"),
            move || close_script(code),
        );
    }

    reg.sub();
    let ranges: [(u16, u16, u16); 8] = [
        (0, 999, 1),
        (1000, 1003, 1),
        (1004, 1006, 1),
        (1007, 1014, 1),
        (1016, 2999, 1),
        (3000, 3999, 1),
        (4000, 4999, 1),
        (5000, 65535, 61),
    ];
    for (lo, hi, step) in ranges {
        let kind = if valid(lo) {
            "each answered with the same code or 1000"
        } else {
            "each fails with 1002"
        };
        let which = if step == 1 {
            format!("every close code {lo}-{hi}")
        } else {
            format!("close codes {lo}-{hi} in steps of {step} (and {hi})")
        };
        reg.one_multi(
            "7.4",
            format!("{which}, one connection each: {kind}"),
            format!("Close frames with codes {lo}-{hi}"),
            move || {
                let mut codes: Vec<u16> = (lo..=hi).step_by(usize::from(step)).collect();
                if codes.last() != Some(&hi) {
                    codes.push(hi);
                }
                codes.into_iter().map(close_script).collect()
            },
        );
    }

    reg.sub();
    reg.one(
        "5.5.1",
        "an empty Close frame is answered with an empty Close frame or 1000",
        "Close frame with no payload",
        || {
            Script::new()
                .write(wire::frame(true, 0, wire::CLOSE, b""))
                .closed(CloseWant::Echo(None))
        },
    );
    reg.one(
        "5.5.1",
        "a Close frame with a 1-byte payload fails with 1002",
        "Close frame with payload [03]",
        || {
            Script::new()
                .write(wire::frame(true, 0, wire::CLOSE, &[0x03]))
                .closed(CloseWant::Fail {
                    code: 1002,
                    sent: None,
                })
        },
    );
    for (reason, what) in [
        (b"bye".to_vec(), "a short reason"),
        (vec![b'r'; 123], "a reason of 123 bytes (the most that fits)"),
        (wire::text_payload(123), "a 123-byte reason of multibyte UTF-8"),
    ] {
        let shown = show_bytes(&reason);
        reg.one(
            "5.5.1",
            format!("Close 1000 with {what} is answered"),
            format!("Close frame 1000 + {shown}"),
            move || {
                Script::new()
                    .write(wire::close(1000, &reason))
                    .closed(CloseWant::Echo(Some(1000)))
            },
        );
    }
    for (reason, what) in [
        (&[0xff][..], "byte FF"),
        (&[0xed, 0xa0, 0x80][..], "surrogate U+D800"),
        (&[b'o', b'k', 0xe2, 0x82][..], "a truncated sequence"),
        (&[0xc0, 0xaf][..], "an overlong '/'"),
    ] {
        reg.one(
            "7.1.6",
            format!("a close reason that is not UTF-8 ({what}) fails with 1007"),
            format!("Close frame 1000 + {}", show_bytes(reason)),
            move || {
                Script::new()
                    .write(wire::close(1000, reason))
                    .closed(CloseWant::Fail {
                        code: 1007,
                        sent: Some(1000),
                    })
            },
        );
    }
    reg.one(
        "5.5",
        "a Close frame with 126 bytes of payload (control frames carry at most 125) fails with 1002",
        "Close frame 1000 + a reason of 124 bytes",
        || {
            Script::new()
                .write(wire::close(1000, &[b'x'; 124]))
                .closed(CloseWant::Fail {
                    code: 1002,
                    sent: Some(1000),
                })
        },
    );
    reg.one(
        "5.5.1",
        "a Close frame written 1 byte at a time is answered",
        "Close frame 1000 + \"bye\", 1 byte per write",
        || {
            Script::new()
                .chunked(wire::close(1000, b"bye"), 1)
                .closed(CloseWant::Echo(Some(1000)))
        },
    );
    reg.one(
        "5.5.1",
        "a message, then Close: the message is echoed, then the Close frame answered",
        "text \"Hello\", then Close 1000",
        || {
            Script::new()
                .write(wire::text(b"Hello"))
                .expect(vec![Want::Text(b"Hello".to_vec())])
                .close()
        },
    );
    reg.one(
        "5.5.1",
        "a message and Close in one write: echo, then the Close answer",
        "text \"Hello\" and Close 1000 in one write",
        || {
            Script::new()
                .write(wire::concat(&[wire::text(b"Hello"), wire::close(1000, b"")]))
                .expect(vec![Want::Text(b"Hello".to_vec())])
                .closed(CloseWant::Echo(Some(1000)))
        },
    );

    reg.one(
        "5.5.1",
        "a 256 KiB message and Close in one write: the whole echo comes before the Close answer",
        "binary message of 256 KiB and Close 1000 in one write",
        || {
            let p = wire::binary_payload(256 << 10);
            Script::new()
                .write(wire::concat(&[wire::binary(&p), wire::close(1000, b"")]))
                .expect(vec![Want::Binary(p)])
                .closed(CloseWant::Echo(Some(1000)))
        },
    );
    reg.one(
        "5.5.1",
        "20 messages of 16 KiB and Close in one write: every echo comes before the Close answer",
        "20 text frames of 16 KiB and Close 1000 in one write",
        || {
            let msgs: Vec<Vec<u8>> = (0..20).map(|i| wire::text_payload((16 << 10) + i)).collect();
            let mut frames: Vec<Vec<u8>> = msgs.iter().map(|m| wire::text(m)).collect();
            frames.push(wire::close(1000, b""));
            Script::new()
                .write(wire::concat(&frames))
                .expect(msgs.into_iter().map(Want::Text).collect())
                .closed(CloseWant::Echo(Some(1000)))
        },
    );

    reg.sub();
    reg.one(
        "5.5.1",
        "a text message after the Close frame is not echoed",
        "Close 1000 and text \"after\" in one write",
        || {
            Script::new()
                .write(wire::concat(&[wire::close(1000, b""), wire::text(b"after")]))
                .closed(CloseWant::Echo(Some(1000)))
        },
    );
    reg.one(
        "5.5.1",
        "a ping after the Close frame is not answered",
        "Close 1000 and ping \"after\" in one write",
        || {
            Script::new()
                .write(wire::concat(&[wire::close(1000, b""), wire::ping(b"after")]))
                .closed(CloseWant::Echo(Some(1000)))
        },
    );
    reg.one(
        "5.5.1",
        "a second Close frame gets no second answer",
        "Close 1000 twice in one write",
        || {
            Script::new()
                .write(wire::concat(&[wire::close(1000, b""), wire::close(1001, b"")]))
                .closed(CloseWant::Echo(Some(1000)))
        },
    );
    reg.one(
        "5.5.1",
        "bytes that are not a frame after the Close frame are ignored",
        "Close 1000 and 16 bytes of FF in one write",
        || {
            let mut bytes = wire::close(1000, b"");
            bytes.extend_from_slice(&[0xff; 16]);
            Script::new().write(bytes).closed(CloseWant::Echo(Some(1000)))
        },
    );

    reg.sub();
    reg.one(
        "5.4",
        "Close in the middle of a fragmented text message: answered, the message dropped",
        "text fragment \"frag\", then Close 1000",
        || {
            Script::new()
                .write(wire::frame(false, 0, wire::TEXT, b"frag"))
                .write(wire::close(1000, b""))
                .closed(CloseWant::Echo(Some(1000)))
        },
    );
    reg.one(
        "5.4",
        "Close after two fragments of a binary message: answered, the message dropped",
        "binary fragment, continuation, then Close 1001",
        || {
            Script::new()
                .write(wire::frame(false, 0, wire::BINARY, &[1, 2, 3]))
                .write(wire::frame(false, 0, wire::CONT, &[4, 5, 6]))
                .write(wire::close(1001, b""))
                .closed(CloseWant::Echo(Some(1001)))
        },
    );
    reg.one(
        "5.4",
        "a ping, then Close, inside a fragmented message: pong, then the Close answer",
        "text fragment, ping \"p\", Close 1000",
        || {
            Script::new()
                .write(wire::frame(false, 0, wire::TEXT, b"frag"))
                .write(wire::ping(b"p"))
                .expect(vec![Want::Pong(b"p".to_vec())])
                .write(wire::close(1000, b""))
                .closed(CloseWant::Echo(Some(1000)))
        },
    );
}
