//! The client role end to end: `parse_response` on the input (for the request of RFC 6455 section
//! 1.3), then, for an accepted 101, a client `Connection` reads the bytes after the head by the
//! documented driving rule, once whole and once in fuzzer-chosen pieces. Both runs see the same
//! events, the same error and write the same bytes; the bytes written are frames a server accepts.
//!
//! Input layout: see `c10k_fuzz::ConnInput` (config bit 7 skips the handshake).
#![no_main]

use c10k::proto::Connection;
use c10k::proto::Role;
use c10k::proto::handshake::{ClientRequest, HeadLimits, parse_response, write_request};
use c10k_fuzz::{ConnInput, check_output, counter_keys, drive, pieces};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = ConnInput::parse(data) else {
        return;
    };
    let frames = if input.skip_handshake {
        input.stream
    } else {
        let req = ClientRequest {
            host: "server.example.com",
            target: "/chat",
            protocols: &["chat", "superchat"],
            ..ClientRequest::default()
        };
        let expected = write_request(&req, *b"the sample nonce", &mut Vec::new()).expect("valid request");
        match parse_response(input.stream, &expected, req.protocols, &HeadLimits::default()) {
            Ok(Some(resp)) => &input.stream[resp.head_len()..],
            _ => return,
        }
    };
    let whole = drive(
        &mut Connection::client(input.config, counter_keys()),
        std::iter::once(frames),
    );
    let split = drive(
        &mut Connection::client(input.config, counter_keys()),
        pieces(frames, input.sizes),
    );
    assert_eq!(whole, split);
    check_output(Role::Client, &whole.out);
});
