//! The opening handshake from the client's side (RFC 6455 4.1, 4.2.2, 5.1): answers the client
//! must refuse, valid answers written unusually that it must accept, and a masked frame from the
//! server.

use super::super::super::case::Group;
use super::super::case::{Answer, Bad, Odd, Registry, Script, Step, Want, stext};
use super::PROBE;

/// After an answer it must refuse, the client is sent a text: echoing it (or sending any frame)
/// FAILS; closing, or silence until the bound, PASSES.
fn refuse(bad: Bad) -> Script {
    Script::new()
        .answer(Answer::Bad(bad))
        .write(stext(PROBE))
        .step(Step::Refused)
}

pub(super) fn add(r: &mut Registry) {
    r.group(Group::Handshake);
    r.sub();
    let bad: [(&'static str, &'static str, &'static str, Bad); 8] = [
        (
            "4.1",
            "a 101 whose Sec-WebSocket-Accept belongs to another key",
            "101, Sec-WebSocket-Accept of the RFC's sample key",
            Bad::WrongAccept,
        ),
        (
            "4.1",
            "a 101 without Sec-WebSocket-Accept",
            "101 without Sec-WebSocket-Accept",
            Bad::MissingAccept,
        ),
        (
            "4.1",
            "200 OK instead of 101",
            "200 OK with the upgrade headers",
            Bad::Status200,
        ),
        (
            "4.1",
            "a 101 without Upgrade: websocket",
            "101 without Upgrade",
            Bad::NoUpgrade,
        ),
        (
            "4.1",
            "a 101 without Connection: Upgrade",
            "101 without Connection",
            Bad::NoConnection,
        ),
        (
            "4.1",
            "a 101 with an extension the client did not offer",
            "101, Sec-WebSocket-Extensions: x-unknown",
            Bad::UnofferedExtension,
        ),
        (
            "4.1",
            "a 101 with a subprotocol the client did not offer",
            "101, Sec-WebSocket-Protocol: c10k-unoffered-0",
            Bad::UnofferedProtocol,
        ),
        (
            "rfc7692.5",
            "a 101 with permessage-deflate to a client that did not offer it",
            "101, Sec-WebSocket-Extensions: permessage-deflate",
            Bad::DeflateUnoffered,
        ),
    ];
    for (section, what, sent, b) in bad {
        r.add(
            section,
            format!("{what}: the client refuses it (sends no frame)"),
            format!("{sent}; then text \"after\""),
            move || refuse(b),
        );
    }
    r.sub();
    r.add(
        "5.1",
        "a masked frame from the server: the client fails the connection with 1002",
        "masked text \"masked\"",
        || {
            super::rejects(
                super::super::super::case::wire::frame(true, 0, 0x1, b"masked"),
                &[1002],
            )
        },
    );
    r.sub();
    for (odd, what, sent) in [
        (
            Odd::MixedCase,
            "header names and tokens in other cases",
            "101, UPGRADE: WebSocket, connection: upgrade",
        ),
        (
            Odd::TokenList,
            "Connection as a token list, and extra header fields",
            "101, Connection: keep-alive, Upgrade, and 3 more fields",
        ),
        (
            Odd::ByteByByte,
            "the head one byte per write",
            "101, one byte per write",
        ),
        (
            Odd::WithFrame,
            "the head and the first frame in one write",
            "101 and text \"first\" in one write",
        ),
    ] {
        r.add(
            "4.1",
            format!("a valid 101 with {what} is accepted: the next message is echoed"),
            format!("{sent}; text \"first\""),
            move || {
                Script::new()
                    .answer(Answer::Odd(odd))
                    .write(stext(b"first"))
                    .expect(vec![Want::Text(b"first".to_vec())])
            },
        );
    }
}
