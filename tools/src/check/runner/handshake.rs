//! The opening handshake: a standard upgrade, a raw request written in chunks, or an upgrade
//! that offers permessage-deflate; and the verdicts on the server's HTTP answer, which need the
//! parsed head they read.

use std::time::{Duration, Instant};

use c10k::proto::handshake::{self, ClientRequest, HeadLimits};

use super::transcript::{MAX_SHOWN, escape};
use super::wire::{Wire, is_timeout};
use super::{Run, ms};
use crate::check::Target;
use crate::check::Verdict;
use crate::check::case::{HttpWant, Open, wire};
use crate::check::deflate::{self, Codec};

/// The most bytes of an HTTP header line a transcript shows.
const MAX_HEADER_SHOWN: usize = 160;

/// The largest HTTP response head read.
const MAX_HEAD: usize = 64 << 10;

/// Performs the opening handshake; returns the bytes that followed the response head, and the
/// permessage-deflate state if it was agreed, when the connection is open for the steps; `None`
/// when the script ends with the handshake.
pub(super) fn open(
    target: &Target,
    how: &Open,
    stream: &Wire,
    deadline: Instant,
    run: &mut Run,
) -> Option<(Vec<u8>, Option<Codec>)> {
    match how {
        Open::Standard => {
            let mut key = [0u8; 16];
            for chunk in key.chunks_mut(4) {
                chunk.copy_from_slice(&wire::key());
            }
            let req = ClientRequest {
                host: &target.host,
                target: &target.path,
                ..ClientRequest::default()
            };
            let mut out = Vec::new();
            let expected = match handshake::write_request(&req, key, &mut out) {
                Ok(e) => e,
                Err(e) => {
                    run.fail(format!("cannot build the upgrade request: {e}"));
                    return None;
                }
            };
            let started = Instant::now();
            note_request(run, started, &out);
            if let Err(e) = stream.write_until(&out, deadline) {
                run.fail(format!("cannot send the upgrade request: {e}"));
                return None;
            }
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match handshake::parse_response(&buf, &expected, &[], &HeadLimits::default()) {
                    Ok(Some(resp)) => {
                        note_answer(run, &buf);
                        let n = resp.head_len();
                        return Some((buf.split_off(n), None));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        note_answer(run, &buf);
                        run.saw(format!("did not accept the upgrade: {e}"));
                        run.fail(format!("the standard upgrade request failed: {e}"));
                        return None;
                    }
                }
                match stream.read_until(&mut chunk, deadline) {
                    Ok(0) => {
                        run.transcript
                            .note(Instant::now(), || "server closed TCP".to_owned());
                        run.saw("dropped the connection during the handshake");
                        run.fail("the server closed the connection instead of answering the upgrade");
                        return None;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if is_timeout(&e) => {
                        run.transcript
                            .note(Instant::now(), || "no answer by the deadline".to_owned());
                        run.saw(format!(
                            "did not answer the upgrade within {}",
                            ms(started.elapsed())
                        ));
                        run.fail("the upgrade request got no answer");
                        return None;
                    }
                    Err(e) => {
                        run.transcript
                            .note(Instant::now(), || format!("server reset TCP ({})", e.kind()));
                        run.saw(format!(
                            "reset the connection during the handshake ({})",
                            e.kind()
                        ));
                        run.fail("the server reset the connection instead of answering the upgrade");
                        return None;
                    }
                }
            }
        }
        Open::Raw { request, chunk, want } => {
            let started = Instant::now();
            note_request(run, started, request);
            if *chunk < request.len() {
                run.transcript
                    .note(started, || format!("> (in pieces of {chunk} B)"));
            }
            for piece in request.chunks((*chunk).max(1)) {
                if let Err(e) = stream.write_until(piece, deadline) {
                    // The server may have answered and closed already; read what it said.
                    run.saw(format!("write failed: {}", e.kind()));
                    break;
                }
            }
            let (head, leftover) = read_head(stream, deadline, want, started, run)?;
            run.saw(format!("answered HTTP {}", head.status));
            judge_answer(want, &head, run).then_some((leftover, None))
        }
        Open::Deflate { offers, .. } => open_deflate(target, offers, stream, deadline, run),
    }
}

/// Reads and parses the response head; the bytes after it come back with it.
fn read_head(
    stream: &Wire,
    deadline: Instant,
    want: &HttpWant,
    started: Instant,
    run: &mut Run,
) -> Option<(Head, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head = loop {
        if let Some(end) = find_head_end(&buf) {
            break Ok(end);
        }
        if buf.len() > MAX_HEAD {
            break Err("a response head over 64 KiB".to_owned());
        }
        match stream.read_until(&mut chunk, deadline) {
            Ok(0) => break Err("dropped".to_owned()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => break Err("timeout".to_owned()),
            Err(e) => break Err(format!("reset ({e})")),
        }
    };
    run.took = started.elapsed();
    let head_len = match head {
        Ok(n) => {
            note_answer(run, &buf);
            n
        }
        Err(why) => {
            run.transcript.note(Instant::now(), || match why.as_str() {
                "dropped" => "server closed TCP before an HTTP answer".to_owned(),
                "timeout" => "no HTTP answer by the deadline".to_owned(),
                other => format!("no HTTP answer: {other}"),
            });
            judge_no_answer(want, &why, started.elapsed(), run);
            return None;
        }
    };
    match parse_head(&buf[..head_len]) {
        Ok(h) => Some((h, buf.split_off(head_len))),
        Err(e) => {
            run.saw(format!("answered something that is not HTTP: {e}"));
            run.fail(format!("the answer is not an HTTP response: {e}"));
            None
        }
    }
}

/// A standard upgrade with permessage-deflate offers: the answer is judged against them.
fn open_deflate(
    target: &Target,
    offers: &[String],
    stream: &Wire,
    deadline: Instant,
    run: &mut Run,
) -> Option<(Vec<u8>, Option<Codec>)> {
    let mut key = [0u8; 16];
    for chunk in key.chunks_mut(4) {
        chunk.copy_from_slice(&wire::key());
    }
    let headers: Vec<(&str, &str)> = offers
        .iter()
        .map(|o| ("Sec-WebSocket-Extensions", o.as_str()))
        .collect();
    let req = ClientRequest {
        host: &target.host,
        target: &target.path,
        headers: &headers,
        ..ClientRequest::default()
    };
    let mut out = Vec::new();
    if let Err(e) = handshake::write_request(&req, key, &mut out) {
        run.fail(format!("cannot build the upgrade request: {e}"));
        return None;
    }
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(key)
    };
    let want = HttpWant::Accept {
        key: encoded.clone(),
        offered: Vec::new(),
    };
    let started = Instant::now();
    note_request(run, started, &out);
    if let Err(e) = stream.write_until(&out, deadline) {
        run.fail(format!("cannot send the upgrade request: {e}"));
        return None;
    }
    let (head, leftover) = read_head(stream, deadline, &want, started, run)?;
    let valid = deflate::valid_offers(offers);
    if head.status != 101 {
        run.saw(format!("answered HTTP {}", head.status));
        let client_error = (400..500).contains(&head.status);
        if client_error && !deflate::well_formed(offers) {
            // A header field outside the grammar of RFC 6455 9.1: a bad request (4.2.1).
            run.saw("rejected a Sec-WebSocket-Extensions field that breaks RFC 6455 9.1");
        } else if valid.is_empty() && client_error {
            run.non_strict(format!(
                "rejected the upgrade with {}; the answer to offers a server cannot accept is to \
                 decline them: 101 without the extension (RFC 7692 5)",
                head.status
            ));
        } else {
            run.fail(format!(
                "a valid upgrade request offering permessage-deflate was answered {}",
                head.status
            ));
        }
        return None;
    }
    if !judge_101(&head, &encoded, &[], run) {
        return None;
    }
    let answer: Vec<&[u8]> = head.values("sec-websocket-extensions").collect();
    match deflate::judge_answer(&answer, &valid) {
        Ok(None) => {
            run.saw("declined permessage-deflate");
            Some((leftover, None))
        }
        Ok(Some(agreed)) => {
            run.saw(format!("agreed {agreed}"));
            Some((leftover, Some(Codec::new(&agreed, &valid))))
        }
        Err(why) => {
            let shown: Vec<String> = answer
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            run.saw(format!("answered Sec-WebSocket-Extensions: {}", shown.join(", ")));
            run.fail(why);
            None
        }
    }
}

fn judge_no_answer(want: &HttpWant, why: &str, took: Duration, run: &mut Run) {
    let timed_out = why == "timeout";
    if timed_out {
        run.saw(format!("did not answer within {}", ms(took)));
    } else {
        run.saw(format!("{why} without an HTTP answer"));
    }
    match want {
        HttpWant::Accept { .. } => run.fail("a valid upgrade request was not answered"),
        _ if timed_out => run.fail("the request got no answer: the RFC asks for an HTTP error status"),
        _ => run.non_strict("the connection was closed without an HTTP error status"),
    }
}

/// Judges an HTTP answer; true when the connection is open for the script's steps.
fn judge_answer(want: &HttpWant, head: &Head, run: &mut Run) -> bool {
    let status = head.status;
    match want {
        HttpWant::Accept { key, offered } => {
            if status != 101 {
                run.fail(format!("a valid upgrade request was rejected with {status}"));
                return false;
            }
            if judge_101(head, key, offered, run) && head.values("sec-websocket-extensions").next().is_some()
            {
                run.fail("the server selected an extension that was not offered (RFC 6455 9.1)");
            }
            run.verdict != Verdict::Fail
        }
        HttpWant::NotUpgraded => {
            if status == 101 {
                run.fail("a request that is not a WebSocket upgrade was upgraded");
            }
            false
        }
        HttpWant::Reject {
            best,
            server_errors,
            header,
        } => {
            let allowed = (400..500).contains(&status) || (*server_errors && (500..600).contains(&status));
            let header_ok = header.is_none_or(|(name, token)| head.lists(name, token));
            match best {
                _ if status == 101 => run.fail("an invalid upgrade request was accepted"),
                _ if !(400..600).contains(&status) => {
                    run.fail(format!(
                        "an invalid upgrade request was answered {status}, not an error"
                    ));
                }
                Some(b) if status != *b => run.non_strict(format!(
                    "answered {status}; the status for this error is {b}{}",
                    header.map_or(String::new(), |(n, v)| format!(" with {n}: {v}"))
                )),
                None if !allowed => run.non_strict(format!(
                    "answered {status}; expected {}",
                    if *server_errors {
                        "a 4xx or 5xx status"
                    } else {
                        "a 4xx status"
                    }
                )),
                _ if !header_ok => {
                    if let Some((n, v)) = header {
                        run.non_strict(format!("answered {status} without {n}: {v} (RFC 6455 4.4)"));
                    }
                }
                _ => {}
            }
            false
        }
    }
}

/// Judges the fields of a 101 answer but the extensions; true when they are right.
fn judge_101(head: &Head, key: &str, offered: &[String], run: &mut Run) -> bool {
    let accept = handshake::accept_key(key.as_bytes());
    if !head.lists("upgrade", "websocket") {
        run.fail("the 101 answer lacks Upgrade: websocket");
    } else if !head.lists("connection", "upgrade") {
        run.fail("the 101 answer's Connection field does not list upgrade");
    } else if head.values("sec-websocket-accept").ne([accept.as_slice()]) {
        run.fail("Sec-WebSocket-Accept is missing or wrong (RFC 6455 4.2.2)");
    } else if head
        .values("sec-websocket-protocol")
        .any(|p| !offered.iter().any(|o| o.as_bytes() == p))
        || head.values("sec-websocket-protocol").count() > 1
    {
        run.fail("the server selected a subprotocol that was not offered, or several (RFC 6455 4.2.2)");
    }
    run.verdict != Verdict::Fail
}

/// A parsed response head.
struct Head {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_ascii())
    }

    /// Whether the comma-separated values of `name` list `token` (case-insensitive).
    fn lists(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// Records an HTTP request written at `at`: its first line, its size, and the extensions it
/// offers.
fn note_request(run: &mut Run, at: Instant, request: &[u8]) {
    run.transcript.note(at, || {
        let first = request.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        let shown = &first[..first.len().min(MAX_SHOWN)];
        format!(
            "> HTTP request {} ({} B)",
            escape(shown, first.len()),
            request.len()
        )
    });
    for line in request.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 25 && line[..25].eq_ignore_ascii_case(b"sec-websocket-extensions:") {
            run.transcript.note(at, || {
                let shown = &line[..line.len().min(MAX_HEADER_SHOWN)];
                format!(">   {}", escape(shown, line.len()))
            });
        }
    }
}

/// Records the server's HTTP answer (the head so far in `buf`): its status line, and the
/// extensions it agreed.
fn note_answer(run: &mut Run, buf: &[u8]) {
    let now = Instant::now();
    let end = find_head_end(buf).unwrap_or(buf.len());
    for (i, line) in buf[..end].split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let extensions = line.len() > 25 && line[..25].eq_ignore_ascii_case(b"sec-websocket-extensions:");
        if i == 0 || extensions {
            run.transcript.note(now, || {
                let shown = &line[..line.len().min(MAX_HEADER_SHOWN)];
                format!(
                    "<{}{}",
                    if i == 0 { " " } else { "   " },
                    escape(shown, line.len())
                )
            });
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_head(buf: &[u8]) -> Result<Head, String> {
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut storage);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete head".to_owned()),
        Err(e) => return Err(e.to_string()),
    }
    Ok(Head {
        status: resp.code.unwrap_or(0),
        headers: resp
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
    })
}
