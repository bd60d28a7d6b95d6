//! The server role end to end: `parse_request` on the input, then, for a WebSocket upgrade, a
//! server `Connection` reads the bytes after the head by the documented driving rule, once whole
//! and once in fuzzer-chosen pieces. Both runs see the same events, the same error and write the
//! same bytes; the bytes written are frames a client accepts.
//!
//! Input layout: see `c10k_fuzz::ConnInput` (config bit 7 skips the handshake).
#![no_main]

use c10k::proto::Connection;
use c10k::proto::Role;
use c10k::proto::handshake::{HeadLimits, parse_request};
use c10k_fuzz::{ConnInput, check_output, drive, pieces};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = ConnInput::parse(data) else {
        return;
    };
    let frames = if input.skip_handshake {
        input.stream
    } else {
        match parse_request(input.stream, &HeadLimits::default()) {
            Ok(Some(req)) if req.is_websocket() => &input.stream[req.head_len()..],
            _ => return,
        }
    };
    let whole = drive(&mut Connection::server(input.config), std::iter::once(frames));
    let split = drive(&mut Connection::server(input.config), pieces(frames, input.sizes));
    assert_eq!(whole, split);
    check_output(Role::Server, &whole.out);
});
