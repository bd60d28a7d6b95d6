//! The opening handshake (RFC 6455 4.1, 4.2.1, 4.2.2, 4.4): the server accepts every request
//! that follows section 4.1, whatever the case of header names and tokens, and rejects the others
//! with an HTTP error status: 426 with `Sec-WebSocket-Version: 13` for a version it does not
//! speak, 400 for a bad key or a missing Host. Where the RFC only asks for "an appropriate error
//! code", any 4xx passes.

use crate::check::Target;
use crate::check::case::{HttpWant, Registry, Script, Want, wire};

/// The key of the RFC's example (section 1.3).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// An upgrade request, as a list of header fields that cases change.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    version: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    /// Raw lines after the header fields.
    lines: Vec<String>,
}

impl Req {
    fn new(t: &Target) -> Self {
        Self {
            method: "GET",
            version: "HTTP/1.1",
            target: t.path.clone(),
            headers: vec![
                ("Host".into(), t.host.clone()),
                ("Upgrade".into(), "websocket".into()),
                ("Connection".into(), "Upgrade".into()),
                ("Sec-WebSocket-Key".into(), KEY.into()),
                ("Sec-WebSocket-Version".into(), "13".into()),
            ],
            lines: Vec::new(),
        }
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(h) => h.1 = value.to_owned(),
            None => self.headers.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    fn add(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn line(mut self, line: &str) -> Self {
        self.lines.push(line.to_owned());
        self
    }

    fn names(mut self, f: fn(&str) -> String) -> Self {
        for h in &mut self.headers {
            h.0 = f(&h.0);
        }
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version);
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        for l in &self.lines {
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn accept() -> HttpWant {
    HttpWant::Accept {
        key: KEY.to_owned(),
        offered: Vec::new(),
    }
}

/// After an accepted handshake: one echo and the closing handshake.
fn conversation(s: Script) -> Script {
    s.write(wire::text(b"Hello"))
        .expect(vec![Want::Text(b"Hello".to_vec())])
        .close()
}

fn reject(best: Option<u16>, header: Option<(&'static str, &'static str)>) -> HttpWant {
    HttpWant::Reject {
        best,
        server_errors: false,
        header,
    }
}

const VERSION_13: Option<(&str, &str)> = Some(("Sec-WebSocket-Version", "13"));

type Change = fn(Req) -> Req;

pub(super) fn add(reg: &mut Registry) {
    reg.sub();
    let accepted: [(&str, Change); 14] = [
        ("the request of RFC 6455 section 1.3", |r| r),
        ("header names in lower case", |r| {
            r.names(|n| n.to_ascii_lowercase())
        }),
        ("header names in upper case", |r| {
            r.names(|n| n.to_ascii_uppercase())
        }),
        ("header names in mixed case", |r| {
            r.names(|n| {
                n.chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i % 2 == 0 {
                            c.to_ascii_lowercase()
                        } else {
                            c.to_ascii_uppercase()
                        }
                    })
                    .collect()
            })
        }),
        ("Upgrade: WebSocket", |r| r.set("Upgrade", "WebSocket")),
        ("Upgrade: WEBSOCKET", |r| r.set("Upgrade", "WEBSOCKET")),
        ("Connection: upgrade", |r| r.set("Connection", "upgrade")),
        ("Connection: keep-alive, Upgrade", |r| {
            r.set("Connection", "keep-alive, Upgrade")
        }),
        ("Connection: Upgrade, keep-alive", |r| {
            r.set("Connection", "Upgrade, keep-alive")
        }),
        ("spaces around header values", |r| {
            r.set("Upgrade", "  websocket  ")
                .set("Sec-WebSocket-Version", " 13 ")
                .set("Sec-WebSocket-Key", &format!(" {KEY} "))
        }),
        ("the header fields a browser adds", |r| {
            r.add("User-Agent", "c10k-check/1")
                .add("Accept-Encoding", "gzip, deflate")
                .add("Cache-Control", "no-cache")
                .add("Pragma", "no-cache")
        }),
        ("an Origin header field", |r| {
            r.add("Origin", "http://example.com")
        }),
        (
            "an unknown extension offered (the server must not select it)",
            |r| r.add("Sec-WebSocket-Extensions", "x-c10k-unknown; param=1"),
        ),
        ("a query string in the request target", |mut r| {
            r.target.push(if r.target.contains('?') { '&' } else { '?' });
            r.target.push_str("check=1&x=%20");
            r
        }),
    ];
    for (what, change) in accepted {
        reg.add(
            "4.2.1",
            format!("an upgrade request with {what} is accepted"),
            format!("upgrade request with {what}"),
            move |t| vec![conversation(Script::raw(change(Req::new(t)).bytes(), accept()))],
        );
    }
    reg.add(
        "4.2.2",
        "subprotocols offered: the server selects none or one of them",
        "upgrade request with Sec-WebSocket-Protocol: chat, superchat",
        |t| {
            let req = Req::new(t)
                .add("Sec-WebSocket-Protocol", "chat, superchat")
                .bytes();
            let want = HttpWant::Accept {
                key: KEY.to_owned(),
                offered: vec!["chat".into(), "superchat".into()],
            };
            vec![conversation(Script::raw(req, want))]
        },
    );
    reg.add(
        "4.2.1",
        "an upgrade request written 1 byte at a time is accepted",
        "upgrade request, 1 byte per write",
        |t| {
            vec![conversation(
                Script::raw(Req::new(t).bytes(), accept()).request_chunk(1),
            )]
        },
    );
    reg.add(
        "4.2.1",
        "the request and a text frame written together 1 byte at a time: echoed after the 101",
        "upgrade request + text \"pipelined\", 1 byte per write",
        |t| {
            let mut bytes = Req::new(t).bytes();
            bytes.extend_from_slice(&wire::text(b"pipelined"));
            vec![
                Script::raw(bytes, accept())
                    .request_chunk(1)
                    .expect(vec![Want::Text(b"pipelined".to_vec())])
                    .close(),
            ]
        },
    );
    reg.add(
        "4.2.1",
        "a text frame in the same write as the request is echoed after the 101",
        "upgrade request + text \"pipelined\" in one write",
        |t| {
            let mut bytes = Req::new(t).bytes();
            bytes.extend_from_slice(&wire::text(b"pipelined"));
            vec![
                Script::raw(bytes, accept())
                    .expect(vec![Want::Text(b"pipelined".to_vec())])
                    .close(),
            ]
        },
    );
    reg.add(
        "4.2.1",
        "a ping, a text and a binary frame in the same write as the request are all answered",
        "upgrade request + ping + text + binary in one write",
        |t| {
            let mut bytes = Req::new(t).bytes();
            bytes.extend_from_slice(&wire::concat(&[
                wire::ping(b"p"),
                wire::text(b"t"),
                wire::binary(&[0, 1]),
            ]));
            vec![
                Script::raw(bytes, accept())
                    .expect(vec![
                        Want::Pong(b"p".to_vec()),
                        Want::Text(b"t".to_vec()),
                        Want::Binary(vec![0, 1]),
                    ])
                    .close(),
            ]
        },
    );
    reg.add(
        "4.2.1",
        "a text and a Close frame in the same write as the request: echo, then the Close answer",
        "upgrade request + text + Close 1000 in one write",
        |t| {
            let mut bytes = Req::new(t).bytes();
            bytes.extend_from_slice(&wire::concat(&[wire::text(b"bye"), wire::close(1000, b"")]));
            vec![
                Script::raw(bytes, accept())
                    .expect(vec![Want::Text(b"bye".to_vec())])
                    .closed(crate::check::case::CloseWant::Echo(Some(1000))),
            ]
        },
    );

    reg.sub();
    let rejected: [(&str, &str, &str, Change, HttpWant); 24] = [
        (
            "4.2.1",
            "no Host header field",
            "400",
            |r| r.without("Host"),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "two Host header fields",
            "400",
            |r| r.add("Host", "example.com"),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "no Upgrade header field",
            "not upgraded",
            |r| r.without("Upgrade"),
            HttpWant::NotUpgraded,
        ),
        (
            "4.2.1",
            "Upgrade: h2c",
            "not upgraded",
            |r| r.set("Upgrade", "h2c"),
            HttpWant::NotUpgraded,
        ),
        (
            "4.2.1",
            "no Connection header field",
            "400",
            |r| r.without("Connection"),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "Connection: keep-alive (no upgrade)",
            "400",
            |r| r.set("Connection", "keep-alive"),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "Connection: close",
            "400",
            |r| r.set("Connection", "close"),
            reject(Some(400), None),
        ),
        (
            "4.4",
            "Sec-WebSocket-Version: 8",
            "426 with Sec-WebSocket-Version: 13",
            |r| r.set("Sec-WebSocket-Version", "8"),
            reject(Some(426), VERSION_13),
        ),
        (
            "4.4",
            "Sec-WebSocket-Version: 7",
            "426 with Sec-WebSocket-Version: 13",
            |r| r.set("Sec-WebSocket-Version", "7"),
            reject(Some(426), VERSION_13),
        ),
        (
            "4.4",
            "Sec-WebSocket-Version: 12",
            "426 with Sec-WebSocket-Version: 13",
            |r| r.set("Sec-WebSocket-Version", "12"),
            reject(Some(426), VERSION_13),
        ),
        (
            "4.4",
            "Sec-WebSocket-Version: 14",
            "426 with Sec-WebSocket-Version: 13",
            |r| r.set("Sec-WebSocket-Version", "14"),
            reject(Some(426), VERSION_13),
        ),
        (
            "4.4",
            "Sec-WebSocket-Version: abc",
            "426 with Sec-WebSocket-Version: 13",
            |r| r.set("Sec-WebSocket-Version", "abc"),
            reject(Some(426), VERSION_13),
        ),
        (
            "4.4",
            "an empty Sec-WebSocket-Version",
            "426 with Sec-WebSocket-Version: 13",
            |r| r.set("Sec-WebSocket-Version", ""),
            reject(Some(426), VERSION_13),
        ),
        (
            "4.4",
            "no Sec-WebSocket-Version",
            "426 with Sec-WebSocket-Version: 13",
            |r| r.without("Sec-WebSocket-Version"),
            reject(Some(426), VERSION_13),
        ),
        (
            "4.2.1",
            "a key of 15 bytes",
            "400",
            |r| r.set("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4P"),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "a key of 17 bytes",
            "400",
            |r| r.set("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEBE="),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "a key that is not base64",
            "400",
            |r| r.set("Sec-WebSocket-Key", "not*base64*at*all*!!!!=="),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "an empty key",
            "400",
            |r| r.set("Sec-WebSocket-Key", ""),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "no Sec-WebSocket-Key",
            "400",
            |r| r.without("Sec-WebSocket-Key"),
            reject(Some(400), None),
        ),
        (
            "4.2.1",
            "two Sec-WebSocket-Key fields",
            "400",
            |r| r.add("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="),
            reject(Some(400), None),
        ),
        (
            "4.1",
            "method POST",
            "a 4xx status",
            |mut r| {
                r.method = "POST";
                r
            },
            reject(None, None),
        ),
        (
            "4.1",
            "method PUT",
            "a 4xx status",
            |mut r| {
                r.method = "PUT";
                r
            },
            reject(None, None),
        ),
        (
            "4.1",
            "HTTP/1.0",
            "a 4xx or 5xx status",
            |mut r| {
                r.version = "HTTP/1.0";
                r
            },
            HttpWant::Reject {
                best: None,
                server_errors: true,
                header: None,
            },
        ),
        (
            "4.2.1",
            "a header line without a colon",
            "a 4xx status",
            |r| r.line("Not a header line"),
            reject(None, None),
        ),
    ];
    for (section, what, outcome, change, want) in rejected {
        reg.add(
            section,
            format!("an upgrade request with {what}: {outcome}"),
            format!("upgrade request with {what}"),
            move |t| vec![Script::raw(change(Req::new(t)).bytes(), want.clone())],
        );
    }
    reg.add(
        "4.2.1",
        "bytes that are not HTTP at all: a 4xx status",
        "\"hello\\r\\n\\r\\n\"",
        |_| vec![Script::raw(b"hello\r\n\r\n".to_vec(), reject(None, None))],
    );
}
