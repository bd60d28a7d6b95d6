//! `parse_request` and `parse_response` on arbitrary bytes: the same answer whether the input is
//! given whole or grown one byte at a time (the first prefix that is not "need more" answers like
//! the whole), and for an accepted upgrade, `write_accept` writes a response that the client side
//! (`parse_response`) accepts.
#![no_main]

use std::fmt::Debug;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use c10k::proto::handshake::{
    Accept, ClientRequest, Expected, HeadLimits, parse_request, parse_response, write_accept, write_request,
};
use libfuzzer_sys::fuzz_target;

/// Small limits, so that the fuzzer reaches them.
const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 512,
    max_headers: 16,
};

/// The key of the RFC 6455 section 1.3 example ("the sample nonce").
const RFC_KEY: [u8; 16] = *b"the sample nonce";

/// The subprotocols the RFC example offers.
const OFFERED: &[&str] = &["chat", "superchat"];

fuzz_target!(|data: &[u8]| {
    same_whole_and_grown(data, |b| answer(parse_request(b, &LIMITS)));
    let expected = expected_for(RFC_KEY);
    same_whole_and_grown(data, |b| answer(parse_response(b, &expected, OFFERED, &LIMITS)));

    if let Ok(Some(req)) = parse_request(data, &LIMITS)
        && req.is_websocket()
    {
        let key = req.header("sec-websocket-key").unwrap_or_default().trim_ascii();
        let mut raw = [0u8; 16];
        assert_eq!(BASE64.decode_slice(key, &mut raw), Ok(16), "accepted key {key:?}");
        let offered: Vec<&str> = req.protocols().collect();
        let accept = Accept {
            protocol: offered.first().copied(),
            headers: &[("X-Fuzz", "1")],
        };
        let mut out = Vec::new();
        write_accept(&req, &accept, &mut out).expect("write_accept refused an accepted upgrade");
        let limits = HeadLimits {
            max_bytes: out.len(),
            max_headers: 8,
        };
        let resp = parse_response(&out, &expected_for(raw), &offered, &limits)
            .expect("client rejects the server's 101")
            .expect("101 response incomplete");
        assert_eq!(resp.head_len(), out.len());
        assert_eq!(resp.protocol(), accept.protocol);
    }
});

/// What a client that sent `key` expects back.
fn expected_for(key: [u8; 16]) -> Expected {
    let req = ClientRequest {
        host: "server.example.com",
        target: "/chat",
        ..ClientRequest::default()
    };
    write_request(&req, key, &mut Vec::new()).expect("valid client request")
}

/// A parser's answer as text; `None` for "need more".
fn answer<T: Debug, E: Debug>(r: Result<Option<T>, E>) -> Option<String> {
    (!matches!(r, Ok(None))).then(|| format!("{r:?}"))
}

/// The first prefix of `data` that is not "need more" answers like the whole of `data`.
fn same_whole_and_grown(data: &[u8], parse: impl Fn(&[u8]) -> Option<String>) {
    let whole = parse(data);
    for n in 0..=data.len() {
        if let Some(grown) = parse(&data[..n]) {
            assert_eq!(Some(grown), whole, "first answer at {n} of {} bytes", data.len());
            return;
        }
    }
}
