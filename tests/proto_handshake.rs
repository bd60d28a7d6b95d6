//! The opening handshake (RFC 6455 section 4) through the public API, both roles.
//!
//! Server side: `parse_request` on requests that arrive whole, byte by byte, or followed by frame
//! bytes; every rejection with its HTTP status and the error response that goes with it; the
//! accessors; `write_accept` and `write_response`. Client side: `write_request`, then
//! `parse_response` on good and bad answers.

use c10k::proto::handshake::{
    Accept, ClientRequest, Expected, HeadLimits, Request, ResponseError, parse_request, parse_response,
    write_accept, write_error_response, write_request, write_response,
};
use c10k::proto::{Config, Connection, Event, HandshakeError, Message};

/// The key of RFC 6455 section 1.3 and the accept value it calls for.
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The 16 bytes whose base64 encoding is `SAMPLE_KEY`.
const SAMPLE_NONCE: [u8; 16] = *b"the sample nonce";

// ---- request builder ----

/// A request head built from its parts, so each case below differs from a valid upgrade by one edit.
#[derive(Debug, Clone)]
struct Head {
    method: &'static str,
    target: &'static str,
    version: &'static str,
    headers: Vec<(String, String)>,
}

impl Head {
    /// The request of RFC 6455 section 1.2, with a query added to the target.
    fn upgrade() -> Self {
        Self {
            method: "GET",
            target: "/chat?room=1&x=y",
            version: "HTTP/1.1",
            headers: [
                ("Host", "server.example.com"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", SAMPLE_KEY),
                ("Origin", "http://example.com"),
                ("Sec-WebSocket-Protocol", "chat, superchat"),
                ("Sec-WebSocket-Version", "13"),
            ]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        }
    }

    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    /// Removes every field named `name` (case-insensitive).
    fn remove(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Replaces the value of every field named `name`, or adds the field.
    fn set(mut self, name: &str, value: &str) -> Self {
        let mut found = false;
        for (n, v) in &mut self.headers {
            if n.eq_ignore_ascii_case(name) {
                *v = value.to_owned();
                found = true;
            }
        }
        if !found {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Adds a field, even if one with the same name exists.
    fn add(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The head without its final blank line.
    fn unterminated(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.unterminated();
        out.extend_from_slice(b"\r\n");
        out
    }
}

fn parse(buf: &[u8]) -> Result<Option<Request<'_>>, HandshakeError> {
    parse_request(buf, &HeadLimits::default())
}

fn parse_complete(buf: &[u8]) -> Request<'_> {
    match parse(buf) {
        Ok(Some(req)) => req,
        other => panic!("expected a complete request, got {other:?}"),
    }
}

/// A parsed HTTP response: status, header fields, body.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn parse(bytes: &[u8]) -> Self {
        let mut storage = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut storage);
        let len = match resp.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "not a complete response ({other:?}): {:?}",
                String::from_utf8_lossy(bytes)
            ),
        };
        assert_eq!(resp.version, Some(1), "responses are HTTP/1.1");
        Self {
            status: resp.code.unwrap_or_default(),
            reason: resp.reason.unwrap_or_default().to_owned(),
            headers: resp
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), String::from_utf8(h.value.to_vec()).unwrap()))
                .collect(),
            body: bytes[len..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

// ---- server side: accepted requests ----

#[test]
fn server_computes_rfc_1_3_accept_key() {
    let head = Head::upgrade().bytes();
    let req = parse_complete(&head);
    assert!(req.is_websocket());
    assert_eq!(req.accept_key(), Some(SAMPLE_ACCEPT));
    assert_eq!(req.head_len(), head.len());
}

#[test]
fn server_rfc_1_3_accept_key_function() {
    let accept = c10k::proto::handshake::accept_key(SAMPLE_KEY.as_bytes());
    assert_eq!(&accept, SAMPLE_ACCEPT.as_bytes());
}

#[test]
fn server_waits_for_a_request_arriving_byte_by_byte() {
    let head = Head::upgrade().bytes();
    for end in 0..head.len() {
        assert!(
            matches!(parse(&head[..end]), Ok(None)),
            "prefix of {end} bytes must be incomplete, not invalid"
        );
    }
    let req = parse_complete(&head);
    assert_eq!(req.accept_key(), Some(SAMPLE_ACCEPT));
}

#[test]
fn server_reports_head_len_when_frames_follow_the_request() {
    let head = Head::upgrade().bytes();
    // RFC 6455 section 5.7: a masked "Hello" sent right behind the request.
    let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    let mut buf = head.clone();
    buf.extend_from_slice(&frame);
    let head_len = {
        let req = parse_complete(&buf);
        assert!(req.is_websocket());
        req.head_len()
    };
    assert_eq!(head_len, head.len());

    let mut conn = Connection::server(Config::default());
    let mut out = Vec::new();
    let read = conn.read(&mut buf[head_len..], &mut out).unwrap();
    assert_eq!(read.consumed, frame.len());
    match read.event {
        Some(Event::Message(Message::Text(text))) => assert_eq!(text, "Hello"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(out.is_empty());
}

#[test]
fn server_accepts_token_lists_in_any_case() {
    let cases = [
        Head::upgrade().set("Connection", "keep-alive, Upgrade"),
        Head::upgrade().set("Connection", "keep-alive,upgrade"),
        Head::upgrade().set("Connection", "UPGRADE"),
        Head::upgrade().set("Upgrade", "WebSocket"),
        Head::upgrade().set("Upgrade", "WEBSOCKET"),
        Head::upgrade().set("Upgrade", "h2c, websocket"),
        Head::upgrade()
            .remove("Connection")
            .add("Connection", "keep-alive")
            .add("Connection", "Upgrade"),
        Head::upgrade()
            .remove("Sec-WebSocket-Key")
            .add("sec-websocket-key", SAMPLE_KEY),
        Head::upgrade().remove("Upgrade").add("UPGRADE", "websocket"),
        Head::upgrade().set("Sec-WebSocket-Key", &format!("  {SAMPLE_KEY}  ")),
        Head::upgrade().set("Sec-WebSocket-Version", " 13 "),
    ];
    for head in cases {
        let bytes = head.bytes();
        let req = match parse(&bytes) {
            Ok(Some(req)) => req,
            other => panic!("{head:?}: {other:?}"),
        };
        assert!(req.is_websocket(), "{head:?}");
        assert_eq!(req.accept_key(), Some(SAMPLE_ACCEPT), "{head:?}");
    }
}

#[test]
fn server_recognises_plain_http_requests() {
    let cases: [&[u8]; 5] = [
        b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: example.com\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ];
    for bytes in cases {
        let req = parse_complete(bytes);
        assert!(!req.is_websocket(), "{:?}", String::from_utf8_lossy(bytes));
        assert_eq!(req.accept_key(), None);
        assert_eq!(req.head_len(), bytes.len());
        let mut out = Vec::new();
        assert_eq!(
            write_accept(&req, &Accept::default(), &mut out),
            Err(ResponseError::InvalidStatus(101)),
            "a plain request cannot be accepted as a WebSocket"
        );
        assert!(out.is_empty());
    }
    let req = parse_complete(cases[1]);
    assert_eq!(req.method(), "POST");
    assert_eq!(req.path(), "/form");
    assert_eq!(req.query(), None);
}

#[test]
fn server_exposes_path_query_origin_protocols_and_extensions() {
    let head = Head::upgrade()
        .add("Sec-WebSocket-Protocol", "v2.mqtt")
        .add(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits, x-foo",
        )
        .add("Sec-WebSocket-Extensions", "x-bar")
        .add("X-Custom", "value")
        .bytes();
    let req = parse_complete(&head);
    assert_eq!(req.method(), "GET");
    assert_eq!(req.target(), "/chat?room=1&x=y");
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), Some("room=1&x=y"));
    assert_eq!(req.host(), Some("server.example.com"));
    assert_eq!(req.origin(), Some("http://example.com"));
    assert_eq!(
        req.protocols().collect::<Vec<_>>(),
        ["chat", "superchat", "v2.mqtt"]
    );
    assert_eq!(
        req.extensions().collect::<Vec<_>>(),
        ["permessage-deflate; client_max_window_bits", "x-foo", "x-bar"]
    );
    assert_eq!(req.header("x-custom"), Some(b"value".as_slice()));
    assert_eq!(req.header("SEC-WEBSOCKET-KEY"), Some(SAMPLE_KEY.as_bytes()));
    assert_eq!(req.header("absent"), None);
    // Every field's raw value, in order, without splitting the lists.
    assert_eq!(
        req.header_values("SEC-WEBSOCKET-EXTENSIONS").collect::<Vec<_>>(),
        [
            b"permessage-deflate; client_max_window_bits, x-foo".as_slice(),
            b"x-bar".as_slice()
        ]
    );
    assert_eq!(req.header_values("absent").count(), 0);
    assert_eq!(req.headers().len(), 11);
    assert_eq!(req.headers()[0].name, "Host");

    let bare = Head::upgrade()
        .remove("Origin")
        .remove("Sec-WebSocket-Protocol")
        .bytes();
    let req = parse_complete(&bare);
    assert!(req.is_websocket());
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.origin(), None);
    assert_eq!(req.protocols().count(), 0);
    assert_eq!(req.extensions().count(), 0);

    let no_query = Head {
        target: "/",
        ..Head::upgrade()
    }
    .bytes();
    let req = parse_complete(&no_query);
    assert_eq!((req.path(), req.query()), ("/", None));
}

#[test]
fn server_accepts_heads_at_the_limits() {
    // Exactly 64 header fields.
    let mut head = Head::upgrade();
    let mut i = 0;
    while head.headers.len() < 64 {
        head = head.add(&format!("X-Filler-{i}"), "1");
        i += 1;
    }
    let bytes = head.bytes();
    assert!(parse_complete(&bytes).is_websocket());

    // Exactly 8 KiB of head.
    let bytes = padded_to(8 * 1024);
    assert_eq!(bytes.len(), 8 * 1024);
    assert!(parse_complete(&bytes).is_websocket());
    // One byte less than the limit and not finished yet: still waiting.
    let unfinished = Head::upgrade().unterminated();
    assert!(matches!(parse(&unfinished), Ok(None)));
}

/// A valid upgrade padded with an `X-Pad` field to exactly `len` bytes.
fn padded_to(len: usize) -> Vec<u8> {
    let base = Head::upgrade().set("X-Pad", "").bytes().len();
    let bytes = Head::upgrade().set("X-Pad", &"a".repeat(len - base)).bytes();
    assert_eq!(bytes.len(), len);
    bytes
}

// ---- server side: rejections ----

/// Checks the error, its status, and the response `write_error_response` writes for it.
fn assert_rejected(name: &str, bytes: &[u8], limits: &HeadLimits, expected: &HandshakeError, status: u16) {
    let err = match parse_request(bytes, limits) {
        Err(e) => e,
        Ok(r) => panic!("{name}: expected {expected:?}, got {r:?}"),
    };
    assert_eq!(&err, expected, "{name}");
    assert_eq!(err.status(), Some(status), "{name}");

    let mut out = Vec::new();
    write_error_response(&err, &mut out);
    let resp = HttpResponse::parse(&out);
    assert_eq!(resp.status, status, "{name}");
    assert_eq!(
        resp.reason,
        c10k::proto::handshake::reason_phrase(status),
        "{name}"
    );
    assert!(
        !resp.reason.is_empty(),
        "{name}: status {status} has a reason phrase"
    );
    assert_eq!(resp.header("Connection"), Some("close"), "{name}");
    assert_eq!(
        resp.header("Content-Length"),
        Some(resp.body.len().to_string().as_str()),
        "{name}"
    );
    assert_eq!(resp.body, format!("{err}\n").into_bytes(), "{name}");
    match status {
        426 => assert_eq!(resp.header("Sec-WebSocket-Version"), Some("13"), "{name}"),
        405 => assert_eq!(resp.header("Allow"), Some("GET"), "{name}"),
        _ => {
            assert_eq!(resp.header("Sec-WebSocket-Version"), None, "{name}");
            assert_eq!(resp.header("Allow"), None, "{name}");
        }
    }
}

#[test]
fn server_rejects_bad_upgrades_with_their_status() {
    use HandshakeError as E;
    let cases: Vec<(&str, Vec<u8>, E, u16)> = vec![
        (
            "host missing",
            Head::upgrade().remove("Host").bytes(),
            E::MissingHost,
            400,
        ),
        (
            "host repeated",
            Head::upgrade().add("Host", "other.example.com").bytes(),
            E::MissingHost,
            400,
        ),
        (
            "connection without upgrade",
            Head::upgrade().set("Connection", "keep-alive").bytes(),
            E::MissingConnectionUpgrade,
            400,
        ),
        (
            "connection missing",
            Head::upgrade().remove("Connection").bytes(),
            E::MissingConnectionUpgrade,
            400,
        ),
        (
            "connection upgrade as a substring only",
            Head::upgrade().set("Connection", "upgraded").bytes(),
            E::MissingConnectionUpgrade,
            400,
        ),
        (
            "key of 15 bytes",
            Head::upgrade()
                .set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j")
                .bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "key of 17 bytes",
            Head::upgrade()
                .set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZSE=")
                .bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "key of 18 bytes",
            Head::upgrade()
                .set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZTEy")
                .bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "key much too long",
            Head::upgrade()
                .set(
                    "Sec-WebSocket-Key",
                    "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
                )
                .bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "key with a bad character",
            Head::upgrade()
                .set("Sec-WebSocket-Key", "dGhl*HNhbXBsZSBub25jZQ==")
                .bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "key without padding",
            Head::upgrade()
                .set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ")
                .bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "key empty",
            Head::upgrade().set("Sec-WebSocket-Key", "").bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "key missing",
            Head::upgrade().remove("Sec-WebSocket-Key").bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "key repeated",
            Head::upgrade().add("Sec-WebSocket-Key", SAMPLE_KEY).bytes(),
            E::InvalidKey,
            400,
        ),
        (
            "method POST",
            Head::upgrade().method("POST").bytes(),
            E::MethodNotGet,
            405,
        ),
        (
            "method get in lower case",
            Head::upgrade().method("get").bytes(),
            E::MethodNotGet,
            405,
        ),
        (
            "HTTP/1.0",
            Head::upgrade().version("HTTP/1.0").bytes(),
            E::HttpVersion,
            505,
        ),
        (
            "version missing",
            Head::upgrade().remove("Sec-WebSocket-Version").bytes(),
            E::UnsupportedVersion,
            426,
        ),
        (
            "version 8",
            Head::upgrade().set("Sec-WebSocket-Version", "8").bytes(),
            E::UnsupportedVersion,
            426,
        ),
        (
            "version 14",
            Head::upgrade().set("Sec-WebSocket-Version", "14").bytes(),
            E::UnsupportedVersion,
            426,
        ),
        (
            "version repeated",
            Head::upgrade().add("Sec-WebSocket-Version", "13").bytes(),
            E::UnsupportedVersion,
            426,
        ),
        (
            "version as a list",
            Head::upgrade().set("Sec-WebSocket-Version", "13, 8").bytes(),
            E::UnsupportedVersion,
            426,
        ),
    ];
    for (name, bytes, expected, status) in &cases {
        assert_rejected(name, bytes, &HeadLimits::default(), expected, *status);
    }
}

#[test]
fn server_rejects_malformed_requests_with_400() {
    let cases: [(&str, &[u8]); 6] = [
        (
            "header without colon",
            b"GET / HTTP/1.1\r\nHost example.com\r\n\r\n",
        ),
        ("binary garbage", b"\x00\x01\x02\x03\r\n\r\n"),
        ("bad version", b"GET / HTTP/2.0\r\nHost: example.com\r\n\r\n"),
        (
            "space in header name",
            b"GET / HTTP/1.1\r\nHo st: example.com\r\n\r\n",
        ),
        ("bare LF then garbage", b"GET / HTTP/1.1\n\x7f: x\r\n\r\n"),
        (
            "control byte in header value",
            b"GET / HTTP/1.1\r\nHost: exa\x01mple.com\r\n\r\n",
        ),
    ];
    for (name, bytes) in cases {
        let err = match parse(bytes) {
            Err(e) => e,
            Ok(r) => panic!("{name}: expected a malformed request, got {r:?}"),
        };
        assert!(
            matches!(err, HandshakeError::MalformedRequest(_)),
            "{name}: {err:?}"
        );
        assert_rejected(name, bytes, &HeadLimits::default(), &err, 400);
    }
}

#[test]
fn server_rejects_a_head_over_8_kib_with_431() {
    let too_large = HandshakeError::HeadersTooLarge { max: 8 * 1024 };
    // Complete, one byte over.
    let bytes = padded_to(8 * 1024 + 1);
    assert_rejected(
        "complete head of 8 KiB + 1",
        &bytes,
        &HeadLimits::default(),
        &too_large,
        431,
    );
    // Complete and far over.
    let bytes = padded_to(20_000);
    assert_rejected(
        "complete head of 20000",
        &bytes,
        &HeadLimits::default(),
        &too_large,
        431,
    );
    // Not finished, and already at the limit: no point in waiting for more.
    let unfinished = Head::upgrade().set("X-Pad", &"a".repeat(9000)).unterminated();
    assert_rejected(
        "unfinished head of 8 KiB",
        &unfinished[..8 * 1024],
        &HeadLimits::default(),
        &too_large,
        431,
    );
    assert!(matches!(parse(&unfinished[..8 * 1024 - 1]), Ok(None)));
    // A custom limit.
    let limits = HeadLimits {
        max_bytes: 100,
        ..HeadLimits::default()
    };
    assert_rejected(
        "custom limit",
        &Head::upgrade().bytes(),
        &limits,
        &HandshakeError::HeadersTooLarge { max: 100 },
        431,
    );
}

#[test]
fn server_rejects_more_than_64_headers_with_431() {
    let mut head = Head::upgrade();
    let mut i = 0;
    while head.headers.len() < 65 {
        head = head.add(&format!("X-Filler-{i}"), "1");
        i += 1;
    }
    let expected = HandshakeError::TooManyHeaders { max: 64 };
    assert_rejected(
        "65 headers",
        &head.bytes(),
        &HeadLimits::default(),
        &expected,
        431,
    );
    // Too many header fields is known before the head is complete.
    assert_rejected(
        "65 headers, unfinished",
        &head.unterminated(),
        &HeadLimits::default(),
        &expected,
        431,
    );
    let limits = HeadLimits {
        max_headers: 3,
        ..HeadLimits::default()
    };
    assert_rejected(
        "custom limit",
        &Head::upgrade().bytes(),
        &limits,
        &HandshakeError::TooManyHeaders { max: 3 },
        431,
    );
}

// ---- server side: responses ----

#[test]
fn server_writes_the_101_response() {
    let head = Head::upgrade().bytes();
    let req = parse_complete(&head);
    let mut out = Vec::new();
    write_accept(&req, &Accept::default(), &mut out).unwrap();
    assert_eq!(
        out,
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
        )
        .into_bytes()
    );
}

#[test]
fn server_accepts_with_an_offered_subprotocol_and_extra_headers() {
    let head = Head::upgrade().bytes();
    let req = parse_complete(&head);
    let mut out = b"already queued|".to_vec();
    let accept = Accept {
        protocol: Some("superchat"),
        headers: &[("X-Server", "c10k"), ("Set-Cookie", "a=b; Path=/")],
    };
    write_accept(&req, &accept, &mut out).unwrap();
    let (queued, response) = out.split_at(15);
    assert_eq!(queued, b"already queued|", "write_accept appends");
    let resp = HttpResponse::parse(response);
    assert_eq!(resp.status, 101);
    assert_eq!(resp.header("Upgrade"), Some("websocket"));
    assert_eq!(resp.header("Connection"), Some("Upgrade"));
    assert_eq!(resp.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    assert_eq!(resp.header("Sec-WebSocket-Protocol"), Some("superchat"));
    assert_eq!(resp.header("X-Server"), Some("c10k"));
    assert_eq!(resp.header("Set-Cookie"), Some("a=b; Path=/"));
    assert!(resp.body.is_empty());
}

#[test]
fn server_refuses_to_select_an_unoffered_subprotocol() {
    let head = Head::upgrade().bytes();
    let req = parse_complete(&head);
    for protocol in ["mqtt", "Chat", "chat, superchat", ""] {
        let mut out = Vec::new();
        let accept = Accept {
            protocol: Some(protocol),
            headers: &[],
        };
        assert_eq!(
            write_accept(&req, &accept, &mut out),
            Err(ResponseError::UnofferedProtocol(protocol.to_owned()))
        );
        assert!(out.is_empty(), "nothing is written on failure");
    }
}

#[test]
fn server_refuses_header_injection() {
    let head = Head::upgrade().bytes();
    let req = parse_complete(&head);
    let bad: [(&str, &str); 8] = [
        ("X-Evil", "a\r\nSet-Cookie: x=y"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "a\rb"),
        ("X-Evil", "a\0b"),
        ("X Evil", "v"),
        ("X-Evil:", "v"),
        ("", "v"),
        ("X-Evil\r\nY", "v"),
    ];
    for (name, value) in bad {
        let headers = [("X-Good", "ok"), (name, value)];
        let expected = Err(ResponseError::InvalidHeader(name.to_owned()));

        let mut out = Vec::new();
        let accept = Accept {
            protocol: None,
            headers: &headers,
        };
        assert_eq!(
            write_accept(&req, &accept, &mut out),
            expected,
            "{name:?}: {value:?}"
        );
        assert!(out.is_empty());

        assert_eq!(
            write_response(403, &headers, b"", &mut out),
            expected,
            "{name:?}: {value:?}"
        );
        assert!(out.is_empty());

        let client = ClientRequest {
            host: "example.com",
            target: "/",
            headers: &headers,
            ..ClientRequest::default()
        };
        assert_eq!(
            write_request(&client, SAMPLE_NONCE, &mut out).map(|_| ()),
            expected,
            "{name:?}: {value:?}"
        );
        assert!(out.is_empty());
    }
}

#[test]
fn server_writes_401_and_403_with_a_body() {
    let mut out = Vec::new();
    write_response(
        401,
        &[("WWW-Authenticate", "Bearer realm=\"c10k\"")],
        b"token required",
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out,
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"c10k\"\r\n\
          Content-Length: 14\r\nConnection: close\r\n\r\ntoken required"
    );

    let mut out = Vec::new();
    write_response(
        403,
        &[("Content-Type", "text/plain")],
        b"origin not allowed\n",
        &mut out,
    )
    .unwrap();
    let resp = HttpResponse::parse(&out);
    assert_eq!(resp.status, 403);
    assert_eq!(resp.reason, "Forbidden");
    assert_eq!(resp.header("Content-Type"), Some("text/plain"));
    assert_eq!(resp.header("Content-Length"), Some("19"));
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(resp.body, b"origin not allowed\n");

    let mut out = Vec::new();
    write_response(204, &[], b"", &mut out).unwrap();
    assert_eq!(
        out,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn server_refuses_invalid_statuses() {
    for status in [0, 99, 101, 1000, u16::MAX] {
        let mut out = Vec::new();
        assert_eq!(
            write_response(status, &[], b"", &mut out),
            Err(ResponseError::InvalidStatus(status))
        );
        assert!(out.is_empty());
    }
}

// ---- client side ----

const OFFERED: &[&str] = &["chat", "superchat"];

/// Writes the client request of RFC 6455 section 1.2 with the section 1.3 nonce.
fn client_request(out: &mut Vec<u8>) -> Expected {
    let req = ClientRequest {
        host: "server.example.com",
        target: "/chat?room=1",
        origin: Some("http://example.com"),
        protocols: OFFERED,
        headers: &[("Authorization", "Bearer abc")],
        deflate: None,
    };
    write_request(&req, SAMPLE_NONCE, out).unwrap()
}

fn response(extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn parse_resp<'a>(
    buf: &'a [u8],
    expected: &Expected,
) -> Result<Option<c10k::proto::Response<'a>>, HandshakeError> {
    parse_response(buf, expected, OFFERED, &HeadLimits::default())
}

#[test]
fn client_writes_a_request_the_server_accepts() {
    let mut out = Vec::new();
    let expected = client_request(&mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("GET /chat?room=1 HTTP/1.1\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    assert!(
        text.contains(&format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n")),
        "{text}"
    );

    let req = parse_complete(&out);
    assert!(req.is_websocket());
    assert_eq!(req.accept_key(), Some(SAMPLE_ACCEPT));
    assert_eq!(req.host(), Some("server.example.com"));
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), Some("room=1"));
    assert_eq!(req.origin(), Some("http://example.com"));
    assert_eq!(req.protocols().collect::<Vec<_>>(), OFFERED);
    assert_eq!(req.header("authorization"), Some(b"Bearer abc".as_slice()));

    let mut answer = Vec::new();
    let accept = Accept {
        protocol: Some("chat"),
        headers: &[],
    };
    write_accept(&req, &accept, &mut answer).unwrap();
    let resp = parse_resp(&answer, &expected).unwrap().unwrap();
    assert_eq!(resp.protocol(), Some("chat"));
    assert_eq!(resp.head_len(), answer.len());
}

#[test]
fn client_accepts_a_good_101() {
    let mut out = Vec::new();
    let expected = client_request(&mut out);
    let cases = [
        (response(""), None),
        (
            response("Sec-WebSocket-Protocol: superchat\r\n"),
            Some("superchat"),
        ),
        (
            response("X-Other: 1\r\nSec-WebSocket-Protocol:  chat \r\n"),
            Some("chat"),
        ),
        (
            b"HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
              sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .to_vec(),
            None,
        ),
    ];
    for (bytes, protocol) in cases {
        let resp = match parse_resp(&bytes, &expected) {
            Ok(Some(r)) => r,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&bytes)),
        };
        assert_eq!(resp.protocol(), protocol);
        assert_eq!(resp.head_len(), bytes.len());
        assert!(resp.header("sec-websocket-accept").is_some());
        assert!(resp.headers().len() >= 3);
    }
}

#[test]
fn client_rejects_bad_responses() {
    use HandshakeError as E;
    let mut out = Vec::new();
    let expected = client_request(&mut out);
    let cases: Vec<(&str, Vec<u8>, E)> = vec![
        (
            "status 200",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            E::UnexpectedStatus(200),
        ),
        (
            "status 403",
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec(),
            E::UnexpectedStatus(403),
        ),
        (
            "status 426",
            b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec(),
            E::UnexpectedStatus(426),
        ),
        (
            "bad accept",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
                .to_vec(),
            E::BadAccept,
        ),
        (
            "accept missing",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec(),
            E::BadAccept,
        ),
        (
            "accept repeated",
            response(&format!("Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n")),
            E::BadAccept,
        ),
        (
            "accept of the key itself",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {SAMPLE_KEY}\r\n\r\n"
            )
            .into_bytes(),
            E::BadAccept,
        ),
        (
            "upgrade missing",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
            )
            .into_bytes(),
            E::MissingUpgrade,
        ),
        (
            "upgrade to something else",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
            )
            .into_bytes(),
            E::MissingUpgrade,
        ),
        (
            "connection missing",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
            )
            .into_bytes(),
            E::ResponseMissingConnectionUpgrade,
        ),
        (
            "connection without upgrade",
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
                 Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
            )
            .into_bytes(),
            E::ResponseMissingConnectionUpgrade,
        ),
        (
            "unoffered subprotocol",
            response("Sec-WebSocket-Protocol: mqtt\r\n"),
            E::UnofferedSubprotocol,
        ),
        (
            "two subprotocols in one field",
            response("Sec-WebSocket-Protocol: chat, superchat\r\n"),
            E::UnofferedSubprotocol,
        ),
        (
            "two subprotocol fields",
            response("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"),
            E::UnofferedSubprotocol,
        ),
        (
            "an extension",
            response("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            E::UnofferedExtension,
        ),
        (
            "an unknown extension",
            response("Sec-WebSocket-Extensions: x-foo; a=1\r\n"),
            E::UnofferedExtension,
        ),
        (
            "HTTP/1.0 101",
            format!(
                "HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n"
            )
            .into_bytes(),
            E::MalformedResponse("101 response must be HTTP/1.1"),
        ),
    ];
    for (name, bytes, want) in &cases {
        match parse_resp(bytes, &expected) {
            Err(e) => {
                assert_eq!(&e, want, "{name}");
                assert_eq!(e.status(), None, "{name}: client-side errors have no status");
            }
            Ok(r) => panic!("{name}: expected {want:?}, got {r:?}"),
        }
    }

    // A subprotocol is refused when none was offered.
    let bytes = response("Sec-WebSocket-Protocol: chat\r\n");
    assert_eq!(
        parse_response(&bytes, &expected, &[], &HeadLimits::default()).map(|r| r.is_some()),
        Err(E::UnofferedSubprotocol)
    );
}

#[test]
fn client_rejects_malformed_and_oversized_responses() {
    let mut out = Vec::new();
    let expected = client_request(&mut out);
    for bytes in [
        b"HTTP/1.1 abc OK\r\n\r\n".as_slice(),
        b"\x00\x01\r\n\r\n",
        b"HTTP/1.1 101 X\r\nUp grade: websocket\r\n\r\n",
    ] {
        let err = parse_resp(bytes, &expected).map(|r| r.is_some()).unwrap_err();
        assert!(matches!(err, HandshakeError::MalformedResponse(_)), "{err:?}");
    }
    let limits = HeadLimits {
        max_bytes: 64,
        ..HeadLimits::default()
    };
    let bytes = response("");
    assert_eq!(
        parse_response(&bytes, &expected, OFFERED, &limits).map(|r| r.is_some()),
        Err(HandshakeError::ResponseTooLarge { max: 64 })
    );
    assert_eq!(
        parse_response(&bytes[..64], &expected, OFFERED, &limits).map(|r| r.is_some()),
        Err(HandshakeError::ResponseTooLarge { max: 64 })
    );
}

#[test]
fn client_waits_for_a_response_arriving_in_pieces() {
    let mut out = Vec::new();
    let expected = client_request(&mut out);
    let bytes = response("Sec-WebSocket-Protocol: chat\r\n");
    for end in 0..bytes.len() {
        assert!(
            matches!(parse_resp(&bytes[..end], &expected), Ok(None)),
            "prefix of {end} bytes must be incomplete"
        );
    }
    let resp = parse_resp(&bytes, &expected).unwrap().unwrap();
    assert_eq!(resp.protocol(), Some("chat"));
}

#[test]
fn client_reports_head_len_when_frames_follow_the_response() {
    let mut out = Vec::new();
    let expected = client_request(&mut out);
    let head = response("");
    // RFC 6455 section 5.7: an unmasked "Hello" right behind the response.
    let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let mut buf = head.clone();
    buf.extend_from_slice(&frame);
    let head_len = parse_resp(&buf, &expected).unwrap().unwrap().head_len();
    assert_eq!(head_len, head.len());

    let mut conn = Connection::client(Config::default(), Box::new(|| [1, 2, 3, 4]));
    let mut out = Vec::new();
    let read = conn.read(&mut buf[head_len..], &mut out).unwrap();
    assert_eq!(read.consumed, frame.len());
    match read.event {
        Some(Event::Message(Message::Text(text))) => assert_eq!(text, "Hello"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn client_refuses_invalid_request_parts_and_writes_nothing() {
    let cases = [
        ClientRequest {
            host: "example.com\r\nX-Evil: 1",
            target: "/",
            ..ClientRequest::default()
        },
        ClientRequest {
            host: "example.com",
            target: "no-slash",
            ..ClientRequest::default()
        },
        ClientRequest {
            host: "example.com",
            target: "/a b",
            ..ClientRequest::default()
        },
        ClientRequest {
            host: "example.com",
            target: "/\r\nX: y",
            ..ClientRequest::default()
        },
        ClientRequest {
            host: "example.com",
            target: "/",
            origin: Some("http://example.com\r\nX-Evil: 1"),
            ..ClientRequest::default()
        },
        ClientRequest {
            host: "example.com",
            target: "/",
            protocols: &["chat", "bad protocol"],
            ..ClientRequest::default()
        },
        ClientRequest {
            host: "example.com",
            target: "/",
            protocols: &["chat\r\nX-Evil: 1"],
            ..ClientRequest::default()
        },
        ClientRequest {
            host: "example.com",
            target: "/",
            protocols: &[""],
            ..ClientRequest::default()
        },
    ];
    for req in cases {
        let mut out = Vec::new();
        let result = write_request(&req, SAMPLE_NONCE, &mut out);
        assert!(
            matches!(result, Err(ResponseError::InvalidHeader(_))),
            "{req:?}: {result:?}"
        );
        assert!(
            out.is_empty(),
            "{req:?}: nothing may be written, got {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn server_response_refuses_framing_header_fields_from_the_caller() {
    for name in ["Content-Length", "connection", "Transfer-Encoding"] {
        let mut out = Vec::new();
        let err =
            c10k::proto::handshake::write_response(200, &[(name, "5")], b"hello", &mut out).unwrap_err();
        assert_eq!(
            err,
            c10k::proto::handshake::ResponseError::InvalidHeader(name.to_owned())
        );
        assert!(out.is_empty());
    }
}
