//! The client suite's HTTP side: reading a request head (bounded, with a deadline), routing its
//! URL (`/cases`, `/case/ID?agent=NAME`, `/done?agent=NAME`), checking that a case's request is a
//! valid client handshake, and writing the plain answers and the 101 (valid or, on purpose,
//! not).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use c10k::proto::handshake::{HeadLimits, accept_key, parse_request};

use super::case::{Bad, Odd};

/// The largest request head the checker reads: past it, 431.
pub const MAX_HEAD: usize = 8 << 10;

/// The longest agent name, in bytes once percent-decoded.
pub const MAX_AGENT: usize = 64;

/// A request head and the bytes read after it.
#[derive(Debug)]
pub(crate) struct Head {
    pub bytes: Vec<u8>,
    pub leftover: Vec<u8>,
}

/// Reads a request head before `deadline`. `Err((status, why))` when it is too large, or the
/// client closed or stayed silent first (status 0: nothing to answer).
pub(crate) fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Head, (u16, String)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let leftover = buf.split_off(end + 4);
            return Ok(Head { bytes: buf, leftover });
        }
        if buf.len() >= MAX_HEAD {
            return Err((431, format!("a request head past {} KiB", MAX_HEAD >> 10)));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err((0, "no complete request head in time".to_owned()));
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return Err((0, "closed before a complete request head".to_owned())),
            // At most MAX_HEAD plus one chunk is held.
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((0, format!("reading the request head: {e}"))),
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/cases`: the selected ids.
    Cases,
    /// `/case/ID?agent=NAME`.
    Case { id: String, agent: String },
    /// `/done?agent=NAME`.
    Done { agent: String },
    /// Anything else: 404.
    Unknown(String),
}

/// Routes a request target. `Err` (answered 400) for a case or done URL without a valid agent.
pub(crate) fn route(target: &str) -> Result<Route, String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let agent = || -> Result<String, String> {
        let raw = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("agent="))
            .ok_or("the URL has no agent=NAME")?;
        let name = percent_decode(raw).ok_or("agent= is not valid percent-encoded UTF-8")?;
        if name.is_empty() || name.len() > MAX_AGENT {
            return Err(format!("agent= must have 1 to {MAX_AGENT} bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err("agent= has control characters".to_owned());
        }
        Ok(name)
    };
    if path == "/cases" {
        return Ok(Route::Cases);
    }
    if path == "/done" {
        return Ok(Route::Done { agent: agent()? });
    }
    if let Some(id) = path.strip_prefix("/case/") {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Ok(Route::Unknown(format!("{id:?} is not a case id")));
        }
        return Ok(Route::Case {
            id: id.to_owned(),
            agent: agent()?,
        });
    }
    Ok(Route::Unknown(format!("no route {path:?}")))
}

/// `%XX` and `+` decoded; `None` when an escape is broken or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The request target and whether the request asks for a WebSocket upgrade at all, read
/// leniently (so that a broken upgrade to a case URL can be routed and judged).
pub(crate) fn target_of(head: &[u8]) -> Result<(String, bool), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("an incomplete request head".to_owned()),
        Err(e) => return Err(format!("a malformed request head ({e})")),
    }
    let target = req.path.ok_or("no request target")?.to_owned();
    let upgrade = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("websocket")
    });
    Ok((target, upgrade))
}

/// What a valid client handshake offered.
#[derive(Debug, Clone, Default)]
pub(crate) struct Offer {
    /// The request line.
    pub request: String,
    /// The `Sec-WebSocket-Accept` value its key calls for.
    pub accept: String,
    /// The raw `Sec-WebSocket-Extensions` values, one per field.
    pub extensions: Vec<String>,
    /// The subprotocols offered.
    pub protocols: Vec<String>,
}

impl Offer {
    /// The request line, and the extensions and subprotocols offered, for a transcript.
    pub fn summary(&self) -> String {
        let mut s = self.request.clone();
        if !self.extensions.is_empty() {
            s.push_str(&format!("; extensions: {}", self.extensions.join(", ")));
        }
        if !self.protocols.is_empty() {
            s.push_str(&format!("; subprotocols: {}", self.protocols.join(", ")));
        }
        s
    }

    /// Whether a permessage-deflate element is among the extension offers.
    pub fn offers_deflate(&self) -> bool {
        self.extensions.iter().any(|v| {
            v.split(',').any(|el| {
                el.split(';')
                    .next()
                    .is_some_and(|n| n.trim().eq_ignore_ascii_case("permessage-deflate"))
            })
        })
    }

    /// Whether a permessage-deflate offer has `client_max_window_bits`.
    pub fn offers_client_bits(&self) -> bool {
        self.extensions
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("client_max_window_bits"))
    }
}

/// Checks a case's request as a client handshake (RFC 6455 4.1: GET, HTTP/1.1, Host, `Upgrade:
/// websocket`, `Connection: Upgrade`, a 16-byte base64 key, version 13), with the core's parser.
pub(crate) fn check_handshake(head: &[u8]) -> Result<Offer, String> {
    let req = match parse_request(head, &HeadLimits::default()) {
        Ok(Some(req)) => req,
        Ok(None) => return Err("an incomplete request head".to_owned()),
        Err(e) => return Err(format!("not a valid WebSocket upgrade request: {e}")),
    };
    let Some(accept) = req.accept_key() else {
        return Err("not a WebSocket upgrade request (no Upgrade: websocket)".to_owned());
    };
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    Ok(Offer {
        request: String::from_utf8_lossy(line).into_owned(),
        accept: accept.to_owned(),
        extensions: req
            .header_values("sec-websocket-extensions")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect(),
        protocols: req.protocols().map(str::to_owned).collect(),
    })
}

/// A plain HTTP answer with a one-line body; the connection closes after it.
pub(crate) fn plain(stream: &mut TcpStream, status: u16, reason: &str, body: &str) {
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(answer.as_bytes());
}

/// The reason phrase of the statuses the checker answers with.
pub(crate) fn phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A valid 101 for `offer`, with this extension answer, if any.
pub(crate) fn accept(offer: &Offer, extension: Option<&str>) -> Vec<u8> {
    let mut s = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        offer.accept
    );
    if let Some(e) = extension {
        s.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A valid 101 written in an unusual way (the way it is written, byte by byte or with a frame,
/// is the interpreter's part).
pub(crate) fn accept_odd(offer: &Offer, odd: Odd) -> Vec<u8> {
    match odd {
        Odd::MixedCase => format!(
            "HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WebSocket\r\nconnection: upgrade\r\n\
             sec-websocket-accept: {}\r\n\r\n",
            offer.accept
        )
        .into_bytes(),
        Odd::TokenList => format!(
            "HTTP/1.1 101 Switching Protocols\r\nServer: c10k-check\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nX-Extra: one, two\r\n\
             Sec-WebSocket-Accept: {}\r\nCache-Control: no-cache\r\n\r\n",
            offer.accept
        )
        .into_bytes(),
        Odd::ByteByByte | Odd::WithFrame => accept(offer, None),
    }
}

/// An answer the client must refuse; `None` when the case cannot apply to this offer (and why).
pub(crate) fn bad_answer(offer: &Offer, bad: Bad) -> Result<Vec<u8>, String> {
    let ok = &offer.accept;
    let with = |extra: &str| {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ok}\r\n{extra}\r\n"
        )
    };
    let s = match bad {
        Bad::WrongAccept => {
            let wrong = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
            let wrong = String::from_utf8_lossy(&wrong).into_owned();
            // The RFC's sample key, unless the client happened to send it.
            let wrong = if &wrong == ok {
                String::from_utf8_lossy(&accept_key(b"AAAAAAAAAAAAAAAAAAAAAA==")).into_owned()
            } else {
                wrong
            };
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {wrong}\r\n\r\n"
            )
        }
        Bad::MissingAccept => {
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_owned()
        }
        Bad::Status200 => format!(
            "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ok}\r\nContent-Length: 0\r\n\r\n"
        ),
        Bad::NoUpgrade => format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ok}\r\n\r\n"
        ),
        Bad::NoConnection => format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {ok}\r\n\r\n"
        ),
        Bad::UnofferedExtension => {
            if offer.extensions.iter().any(|e| e.contains("x-unknown")) {
                return Err("the client offered x-unknown".to_owned());
            }
            with("Sec-WebSocket-Extensions: x-unknown\r\n")
        }
        Bad::UnofferedProtocol => {
            let name = (0..)
                .map(|i| format!("c10k-unoffered-{i}"))
                .find(|n| !offer.protocols.contains(n))
                .unwrap_or_default();
            with(&format!("Sec-WebSocket-Protocol: {name}\r\n"))
        }
        Bad::DeflateUnoffered => {
            if offer.offers_deflate() {
                return Err(
                    "the client offered permessage-deflate (the case needs a client that does \
                     not)"
                        .to_owned(),
                );
            }
            with("Sec-WebSocket-Extensions: permessage-deflate\r\n")
        }
        Bad::DeflateValue {
            value,
            unless_client_bits,
        } => {
            if !offer.offers_deflate() {
                return Err("the client did not offer permessage-deflate".to_owned());
            }
            if unless_client_bits && offer.offers_client_bits() {
                return Err(
                    "the client offered client_max_window_bits, which makes this answer valid".to_owned(),
                );
            }
            with(&format!("Sec-WebSocket-Extensions: {value}\r\n"))
        }
    };
    Ok(s.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cases_done_and_case_urls() {
        assert_eq!(route("/cases"), Ok(Route::Cases));
        assert_eq!(
            route("/case/utf8.3.2?agent=py%20websockets"),
            Ok(Route::Case {
                id: "utf8.3.2".to_owned(),
                agent: "py websockets".to_owned()
            })
        );
        assert_eq!(
            route("/done?x=1&agent=a"),
            Ok(Route::Done {
                agent: "a".to_owned()
            })
        );
        assert!(route("/case/framing.1.1").is_err());
        assert!(route(&format!("/done?agent={}", "a".repeat(65))).is_err());
        assert!(route("/done?agent=%zz").is_err());
        assert!(matches!(route("/nope"), Ok(Route::Unknown(_))));
        assert!(matches!(route("/case/a%2fb?agent=x"), Ok(Route::Unknown(_))));
    }

    #[test]
    fn a_valid_request_gives_its_offer_and_a_broken_one_the_reason() {
        let good = b"GET /case/x?agent=a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; \
            client_max_window_bits\r\n\r\n";
        let offer = check_handshake(good).unwrap();
        assert_eq!(offer.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(offer.offers_deflate() && offer.offers_client_bits());
        let old = String::from_utf8_lossy(good).replace("Version: 13", "Version: 8");
        let why = check_handshake(old.as_bytes()).unwrap_err();
        assert!(why.contains("version") || why.contains("Version"), "{why}");
    }
}
