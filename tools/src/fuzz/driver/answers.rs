//! The server's answers, to the judges: its response to the request (the 101, checked by the
//! core's client side, or an HTTP status), and its frames, decoded whole by a client-role core.

use c10k::proto::frame::{OpCode, decode_header};
use c10k::proto::handshake::{self, HeadLimits};
use c10k::proto::mask::apply_mask;
use c10k::proto::{Config, Connection, Event, Message, Role};

use super::{Conn, Settings, prepare_frames, pump};
use crate::check::Verdict;
use crate::fuzz::judge::{Judges, Outcome};
use crate::fuzz::oracle::HandshakeWant;
use crate::fuzz::sequence::Mutation;

/// The server's answer to the request.
pub(super) fn opening(c: &mut Conn, settings: &Settings) {
    let offered: &[&str] = if c.seq.opening.mutation == Mutation::Subprotocol {
        &["chat"]
    } else {
        &[]
    };
    match c.want {
        HandshakeWant::Accept => {
            match handshake::parse_response(&c.inbuf, &c.expected, offered, &HeadLimits::default()) {
                Ok(None) => {}
                Ok(Some(resp)) => {
                    let head = resp.head_len();
                    let deflate = resp.deflate();
                    c.inbuf.drain(..head);
                    c.opened = true;
                    let config = Config {
                        auto_pong: false,
                        ..Config::default()
                    };
                    let client = Connection::client(config, Box::new(|| [0; 4]));
                    #[cfg(feature = "deflate")]
                    let client = match deflate {
                        Some(p) => client.with_deflate(p.negotiated(
                            c10k::proto::Role::Client,
                            &crate::fuzz::sequence::deflate_policy(),
                        )),
                        None => client,
                    };
                    c.client = Some(client);
                    if !c.frames_ready {
                        prepare_frames(c, settings, deflate);
                    }
                    pump(c);
                }
                Err(e) => {
                    let (kind, reason) = match e {
                        c10k::proto::HandshakeError::UnexpectedStatus(s) => (
                            "refused-valid-handshake",
                            format!("answered a valid upgrade request with {s}"),
                        ),
                        e => (
                            "bad-handshake-response",
                            format!("answered with an invalid 101 response: {e}"),
                        ),
                    };
                    c.outcome = Some(Outcome::new(
                        Verdict::Fail,
                        kind,
                        "handshake 101".to_owned(),
                        "101".to_owned(),
                        reason,
                    ));
                }
            }
        }
        other => {
            let want = other.status().unwrap_or(400);
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            let cause = format!("handshake {want}");
            let expected = format!("HTTP {want}");
            c.outcome = match resp.parse(&c.inbuf) {
                Ok(httparse::Status::Partial) => None,
                Ok(httparse::Status::Complete(_)) => Some(match resp.code.unwrap_or(0) {
                    101 if other == HandshakeWant::OtherVersion => Outcome::pass(cause, expected),
                    101 => Outcome::new(
                        Verdict::Fail,
                        "accepted-invalid-handshake",
                        cause,
                        expected,
                        "answered an invalid upgrade request with 101",
                    ),
                    s if s == want => Outcome::pass(cause, expected),
                    s if s >= 400 => Outcome::new(
                        Verdict::NonStrict,
                        "other-http-status",
                        cause,
                        expected,
                        format!("answered with {s}"),
                    ),
                    s => Outcome::new(
                        Verdict::Fail,
                        "accepted-invalid-handshake",
                        cause,
                        expected,
                        format!("answered an invalid upgrade request with {s}"),
                    ),
                }),
                Err(e) => Some(Outcome::new(
                    Verdict::Fail,
                    "bad-handshake-response",
                    cause,
                    expected,
                    format!("answered with a malformed HTTP response: {e}"),
                )),
            };
        }
    }
}

/// The longest frame taken from the peer: the fuzzer's messages stay far below it (2 MiB at
/// most, `grammar.rs`), so a longer one is judged invalid at its header, never buffered.
pub(crate) const MAX_PEER_FRAME: u64 = 16 << 20;

/// The server's frames, to the judges (see [`peer_frames`]).
pub(super) fn frames(c: &mut Conn) {
    let (Some(client), Some(judges)) = (&mut c.client, &mut c.judges) else {
        return;
    };
    c.outcome = peer_frames(client, &mut c.inbuf, judges, c.outcome.take());
}

/// The peer's frames in `inbuf`, decoded by `decoder` (a connection in the other role: a
/// client-role core for a server's frames, a server-role one for a client's), to the judges;
/// the outcome once decided. What was taken is drained from `inbuf`.
///
/// Only whole frames go to the core, so that every frame starts at a boundary known here: a
/// Close frame, and a one-frame text message that is not UTF-8, are judged from their raw bytes
/// (an invalid close code or an echo of invalid text is the peer's fault to report, not an error
/// that hides what it sent); anything else goes through the core, which reassembles fragments,
/// inflates, and rejects what the peer's peer must reject (a server's masked frame, a client's
/// unmasked one).
pub(crate) fn peer_frames(
    decoder: &mut Connection,
    inbuf: &mut Vec<u8>,
    judges: &mut Judges,
    mut outcome: Option<Outcome>,
) -> Option<Outcome> {
    let from_client = decoder.role() == Role::Server;
    let mut pos = 0;
    let mut out = Vec::new();
    while outcome.is_none() {
        let rest = &inbuf[pos..];
        let end = match decode_header(rest) {
            Ok(None) => break,
            Ok(Some((h, hl))) => {
                if h.len > MAX_PEER_FRAME {
                    // Nothing the fuzzer sends comes back this big; buffering it would let the
                    // peer make the fuzzer hold what it likes.
                    let why = format!(
                        "a frame of {} bytes, more than anything sent could make ({} MiB at most)",
                        h.len,
                        MAX_PEER_FRAME >> 20
                    );
                    judges.each(|j| j.invalid_frame(&why));
                    outcome = judges.outcome();
                    break;
                }
                let Some(end) = usize::try_from(h.len).ok().and_then(|n| n.checked_add(hl)) else {
                    judges.each(|j| j.invalid_frame("a frame longer than the address space"));
                    outcome = judges.outcome();
                    break;
                };
                if rest.len() < end {
                    break;
                }
                let raw = h.mask.is_some() == from_client && h.rsv == 0 && h.fin;
                let mut payload = rest[hl..end].to_vec();
                if let Some(key) = h.mask.filter(|_| from_client) {
                    apply_mask(&mut payload, key, 0);
                }
                if raw && h.opcode == OpCode::Close {
                    judges.each(|j| j.close(&payload));
                    outcome = judges.outcome();
                    break;
                }
                if raw
                    && h.opcode == OpCode::Text
                    && decoder.buffered() == 0
                    && std::str::from_utf8(&payload).is_err()
                {
                    judges.each(|j| j.message(true, &payload));
                    pos += end;
                    outcome = judges.outcome();
                    if outcome.is_none() {
                        judges.each(|j| j.invalid_frame("a text message that is not UTF-8"));
                        outcome = judges.outcome();
                    }
                    continue;
                }
                end
            }
            // The core reports what is wrong with the header.
            Err(_) => rest.len(),
        };
        let frame = &mut inbuf[pos..pos + end];
        let mut at = 0;
        while outcome.is_none() {
            out.clear();
            match decoder.read(&mut frame[at..], &mut out) {
                Ok(r) => {
                    let consumed = r.consumed;
                    match r.event {
                        Some(Event::Message(Message::Text(t))) => {
                            judges.each(|j| j.message(true, t.as_bytes()))
                        }
                        Some(Event::Message(Message::Binary(b))) => judges.each(|j| j.message(false, &b)),
                        Some(Event::Pong(p)) => judges.each(|j| j.pong(p)),
                        Some(Event::Ping(_)) | Some(Event::Close(_)) => {}
                        None if consumed == 0 => break,
                        None => {}
                    }
                    at += consumed;
                    outcome = judges.outcome();
                }
                Err(e) => {
                    let why = e.to_string();
                    judges.each(|j| j.invalid_frame(&why));
                    outcome = judges.outcome();
                }
            }
        }
        pos += end;
    }
    inbuf.drain(..pos.min(inbuf.len()));
    outcome
}
