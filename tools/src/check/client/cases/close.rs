//! The closing handshake (RFC 6455 5.5.1, 7): the client answers the checker's Close with a
//! masked Close; invalid Close frames make it fail the connection; after its answer it leaves
//! closing TCP to the server (`close.tcp`, the only cases that judge this).

use super::super::super::case::Group;
use super::super::super::case::wire::text_payload;
use super::super::case::{AfterClose, Registry, Script, Step, sbinary, sclose, sframe, stext};

/// The codes a server may send (RFC 6455 7.4.1, 7.4.2).
const VALID: [u16; 11] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999];

/// Codes no endpoint may send.
const INVALID: [u16; 9] = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000];

fn answered(close: Vec<u8>) -> Script {
    Script::new().write(close).step(Step::Closed(AfterClose::Answer))
}

fn refused(close: Vec<u8>, codes: &'static [u16]) -> Script {
    Script::new().write(close).step(Step::CloseRejected(codes))
}

pub(super) fn add(r: &mut Registry) {
    r.group(Group::Close);
    r.sub();
    r.add(
        "5.5.1",
        "a Close without a code is answered with a masked Close",
        "close (empty payload)",
        || answered(sframe(true, 0, 0x8, b"")),
    );
    r.add(
        "5.5.1",
        "a Close 1000 with a reason is answered with a masked Close",
        "close 1000 \"bye\"",
        || answered(sclose(1000, b"bye")),
    );
    r.add(
        "5.5.1",
        "a Close 1000 with a reason of 123 bytes (the most that fits) is answered",
        "close 1000, 123-byte reason",
        || answered(sclose(1000, &text_payload(123))),
    );
    for code in VALID {
        r.add(
            "7.4.1",
            format!("a Close {code} is answered with a masked Close"),
            format!("close {code}"),
            move || answered(sclose(code, b"")),
        );
    }
    r.sub();
    for code in INVALID {
        r.add(
            "7.4.1",
            format!("a Close with the invalid code {code}: fail with 1002"),
            format!("close {code}"),
            move || refused(sclose(code, b""), &[1002]),
        );
    }
    r.add(
        "5.5.1",
        "a Close with a 1-byte payload: fail with 1002",
        "close, payload [03]",
        || refused(sframe(true, 0, 0x8, &[3]), &[1002]),
    );
    r.add(
        "8.1",
        "a Close whose reason is not UTF-8 (a surrogate): fail with 1007 (or 1002)",
        "close 1000, reason [ed a0 80]",
        || refused(sclose(1000, b"\xed\xa0\x80"), &[1007, 1002]),
    );
    r.add(
        "8.1",
        "a Close whose reason is cut inside a character: fail with 1007 (or 1002)",
        "close 1000, reason \"bye\" [ce]",
        || refused(sclose(1000, b"bye\xce"), &[1007, 1002]),
    );
    r.sub();
    r.add(
        "5.5.1",
        "a text after the checker's Close is not echoed; the Close is answered",
        "close 1000, then text \"late\"",
        || {
            let mut bytes = sclose(1000, b"");
            bytes.extend_from_slice(&stext(b"late"));
            Script::new().write(bytes).step(Step::Closed(AfterClose::Answer))
        },
    );
    r.add(
        "5.5.1",
        "a binary after the checker's Close is not echoed; the Close is answered",
        "close 1001, then binary [01 02 03]",
        || {
            let mut bytes = sclose(1001, b"");
            bytes.extend_from_slice(&sbinary(&[1, 2, 3]));
            Script::new().write(bytes).step(Step::Closed(AfterClose::Answer))
        },
    );
    r.sub_named("tcp");
    r.add(
        "7.1.1",
        "after answering a Close 1000 the client waits for the server to close TCP (the \
         checker waits 1 s first)",
        "close 1000, then TCP kept open 1 s",
        || {
            Script::new()
                .write(sclose(1000, b""))
                .step(Step::Closed(AfterClose::AnswerAndWait))
        },
    );
    r.add(
        "7.1.1",
        "after an echo and a Close 1001 with a reason the client waits for the server to close \
         TCP",
        "text \"hi\", close 1001 \"going away\", then TCP kept open 1 s",
        || {
            Script::new()
                .write(stext(b"hi"))
                .expect(vec![super::Want::Text(b"hi".to_vec())])
                .write(sclose(1001, b"going away"))
                .step(Step::Closed(AfterClose::AnswerAndWait))
        },
    );
    r.add_bounded(
        "7.1.1",
        "the server never closes TCP after the closing handshake: how long the client waits \
         before closing it itself (INFO)",
        "close 1000, then TCP left open",
        super::super::case::CLIENT_BOUND * 3,
        || {
            Script::new()
                .write(sclose(1000, b""))
                .step(Step::Closed(AfterClose::AnswerAndLinger))
        },
    );
}
