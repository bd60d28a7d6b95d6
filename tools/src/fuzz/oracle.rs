//! The oracle: what RFC 6455 and RFC 7692 require an echo server to do with a sequence,
//! computed by the core itself.
//!
//! The frames are fed, one at a time, to a [`Connection`] of the core in the role of the peer
//! under test (a server, or a client for `c10k fuzz --serve`), configured as the peer was said
//! to be (its message limit) and as the handshake turned out (was permessage-deflate agreed?). What the core does is what the RFC requires: each message it
//! delivers must come back as an echo, each ping as a pong, a Close frame as a Close answer,
//! and the first protocol error as a Close frame with the error's code. Bytes after the Close or
//! the error are not sent at all (a server that closes at once would otherwise answer them with
//! a reset that may destroy its Close frame).
//!
//! Where the RFCs allow more than one answer the oracle gives each ([`Expectation::alternatives`]):
//! a length written in more bytes than needed is a sender's MUST NOT that the receiver is not
//! told to reject (echo, or fail with 1002); a text message (or a compressed or over-long
//! one) may be found invalid at the fragment that makes it so or at its end (the rest of the
//! message is then sent, and the pings in it may be answered or not).

use c10k::proto::HandshakeError;
use c10k::proto::deflate::{DeflatePool, Negotiated};
use c10k::proto::error::Error;
use c10k::proto::handshake::{HeadLimits, parse_request};
use c10k::proto::{Config, Connection, Event, Message, Role};

use super::sequence::{Frame, Len, encode_frames};

/// What the server must do after the handshake: one or more allowed expectations, and how many
/// bytes of the frame stream to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The bytes of the frames that are written.
    pub bytes: Vec<u8>,
    /// How many frames those bytes hold (the rest is not sent).
    pub send_frames: usize,
    /// The allowed outcomes: the first is the core's own, the others are answers the RFC allows too.
    pub alternatives: Vec<Expect>,
}

/// One allowed outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The messages to be echoed, in order: (text, payload).
    pub echoes: Vec<(bool, Vec<u8>)>,
    /// The pongs to be sent, in order (one may stand for earlier ones, RFC 6455 section 5.5.3).
    pub pongs: Vec<Vec<u8>>,
    /// Pings sent after the error in a message that may be found invalid only at its end: their
    /// pongs are allowed, not required.
    pub optional_pongs: Vec<Vec<u8>>,
    /// How the connection must end.
    pub end: End,
    /// Why this alternative is allowed when it is not the core's own answer.
    pub note: Option<&'static str>,
    /// Silence until the time bound is allowed, not ideal (NON-STRICT), for this reason.
    pub may_stall: Option<&'static str>,
}

/// How the connection must end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Nothing ends it: the server keeps it open (the client closes after the last answer).
    Open,
    /// The client's Close frame (with this code, `None` if empty) must be answered.
    Close {
        /// The code the client sent.
        sent: Option<u16>,
    },
    /// The server must fail the connection with `code`.
    Fail {
        /// The close code (1002, 1007, 1009).
        code: u16,
        /// The core's short reason for the error ("reserved bits set").
        why: &'static str,
        /// The code of the offending Close frame, when it was one.
        sent_close: Option<u16>,
    },
}

impl End {
    /// The kind of ending, for grouping findings: `echo`, `Close answer`, `fail 1007 (invalid
    /// UTF-8)`.
    pub fn class(&self) -> String {
        match self {
            End::Open => "echo".to_owned(),
            End::Close { .. } => "Close answer".to_owned(),
            End::Fail { code, why, .. } => format!("fail {code} ({why})"),
        }
    }

    /// A few words for reports: `echo`, `close 1000`, `fail 1002: reserved bits set`.
    pub fn describe(&self) -> String {
        match self {
            End::Open => "answers only".to_owned(),
            End::Close { sent: Some(c) } => format!("Close answered ({c} sent)"),
            End::Close { sent: None } => "Close answered (empty Close sent)".to_owned(),
            End::Fail { code, why, .. } => format!("fail with {code}: {why}"),
        }
    }
}

/// What the server must answer to a request head: 101, or an HTTP error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeWant {
    /// A valid upgrade request: 101.
    Accept,
    /// An invalid one: this status (another error status is allowed, not ideal).
    Reject(u16),
    /// A version other than 13: 426, or 101 from a server that also speaks that version
    /// (RFC 6455 section 4.4 lets a server support several).
    OtherVersion,
}

impl HandshakeWant {
    /// The HTTP error status that refuses the request; `None` for a valid one.
    pub fn status(self) -> Option<u16> {
        match self {
            HandshakeWant::Accept => None,
            HandshakeWant::Reject(s) => Some(s),
            HandshakeWant::OtherVersion => Some(426),
        }
    }
}

/// What the core answers to `head`.
pub fn handshake(head: &[u8]) -> HandshakeWant {
    match parse_request(head, &HeadLimits::default()) {
        Ok(Some(r)) if r.is_websocket() => HandshakeWant::Accept,
        Ok(_) => HandshakeWant::Reject(400),
        Err(HandshakeError::UnsupportedVersion) => HandshakeWant::OtherVersion,
        Err(e) => HandshakeWant::Reject(e.status().unwrap_or(400)),
    }
}

/// The expectation for `frames`, sent to a server with the message limit `max_message`
/// (`None`: unknown, taken as the core's default) and permessage-deflate as `deflate` says.
pub fn expect(frames: &[Frame], max_message: Option<usize>, deflate: Option<Negotiated>) -> Expectation {
    expect_of(Role::Server, frames, max_message, deflate)
}

/// The expectation for `frames` sent to an echo peer in `role`: a server (the frames are a
/// client's, masked) or a client (`c10k fuzz --serve`: the frames are a server's, unmasked, and a
/// masked one must fail the connection). `deflate` is what was agreed, for that role.
pub fn expect_of(
    role: Role,
    frames: &[Frame],
    max_message: Option<usize>,
    deflate: Option<Negotiated>,
) -> Expectation {
    let (mut bytes, ends) = encode_frames(frames);
    let (strict, stop) = run(role, frames, &bytes, &ends, max_message, deflate);
    let send_frames = stop.map_or(frames.len(), |i| i + 1);
    let mut send_frames = send_frames;
    if let End::Fail { why, .. } = &strict.end {
        // A message found invalid only at its end: send the rest of it.
        if stop.is_some_and(|i| is_message_fault(why) && frames[i].opcode & 8 == 0 && !frames[i].fin) {
            let end = frames[send_frames..]
                .iter()
                .position(|f| f.opcode == 0 && f.fin || matches!(f.opcode, 1 | 2))
                .map_or(frames.len(), |p| send_frames + p + 1);
            send_frames = end;
        }
    }
    let mut strict = strict;
    if let Some(i) = stop {
        strict.optional_pongs = frames[i + 1..send_frames]
            .iter()
            .filter(|f| {
                f.opcode == 9
                    && f.fin
                    && f.rsv == 0
                    && f.mask.is_some() == (role == Role::Server)
                    && f.payload.len() <= 125
            })
            .map(|f| f.payload.clone())
            .collect();
    }
    let sent = &frames[..send_frames];
    bytes.truncate(send_frames.checked_sub(1).map_or(0, |i| ends[i]));
    let mut alternatives = vec![strict];
    if sent.iter().any(Frame::non_minimal) {
        let minimal: Vec<Frame> = sent
            .iter()
            .map(|f| {
                let mut f = f.clone();
                if f.non_minimal() {
                    f.len = Len::Minimal;
                }
                f
            })
            .collect();
        let (minimal_bytes, minimal_ends) = encode_frames(&minimal);
        let (mut lenient, _) = run(
            role,
            &minimal,
            &minimal_bytes,
            &minimal_ends,
            max_message,
            deflate,
        );
        lenient.note =
            Some("a non-minimal length taken as its value (RFC 6455 5.2 forbids it to senders only)");
        if !alternatives.contains(&lenient) {
            alternatives.push(lenient);
        }
    }
    if let End::Fail { why, .. } = &alternatives[0].end
        && *why == Error::LengthOverflow.reason()
    {
        // RFC 6455 5.2 says the top bit MUST be 0 without telling the receiver what to do: a
        // server may take the length as it is and wait for 2^63 bytes (or refuse it as too big).
        let mut waits = alternatives[0].clone();
        waits.note = Some("a 64-bit length with its top bit set taken as a length");
        waits.may_stall = Some("waits for the payload of a 64-bit length with its top bit set");
        alternatives.push(waits);
    }
    Expectation {
        bytes,
        send_frames,
        alternatives,
    }
}

/// Errors that a server may find at the end of the message rather than at the frame.
fn is_message_fault(why: &str) -> bool {
    [
        Error::InvalidUtf8 { offset: 0 }.reason(),
        Error::MessageTooLarge { len: 0, max: 0 }.reason(),
        Error::InvalidCompressedData.reason(),
    ]
    .contains(&why)
}

/// Feeds the frames to a connection in `role`; returns the expectation and the index of the
/// frame at which the connection ended (Close or error), if it did.
fn run(
    role: Role,
    frames: &[Frame],
    bytes: &[u8],
    ends: &[usize],
    max_message: Option<usize>,
    deflate: Option<Negotiated>,
) -> (Expect, Option<usize>) {
    let limit = max_message.unwrap_or(c10k::proto::conn::DEFAULT_MAX_MESSAGE_SIZE);
    let config = Config {
        max_frame_size: limit,
        max_message_size: limit,
        auto_pong: false,
        allowed_rsv: 0,
    };
    let conn = if role == Role::Server {
        Connection::server(config)
    } else {
        Connection::client(config, Box::new(|| [0; 4]))
    };
    #[cfg(feature = "deflate")]
    let conn = match deflate {
        Some(n) => conn.with_deflate(n),
        None => conn,
    };
    #[cfg(not(feature = "deflate"))]
    let _ = deflate;
    let mut conn = conn;
    let mut pool = DeflatePool::new();
    let mut expect = Expect {
        echoes: Vec::new(),
        pongs: Vec::new(),
        optional_pongs: Vec::new(),
        end: End::Open,
        note: None,
        may_stall: None,
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        pending.extend_from_slice(&bytes[start..ends[i]]);
        let mut pos = 0;
        loop {
            out.clear();
            match conn.read_with(&mut pending[pos..], &mut out, &mut pool) {
                Ok(r) => {
                    let consumed = r.consumed;
                    let Some(event) = r.event else {
                        pos += consumed;
                        if consumed == 0 {
                            break;
                        }
                        continue;
                    };
                    match event {
                        Event::Message(Message::Text(t)) => expect.echoes.push((true, t.as_bytes().to_vec())),
                        Event::Message(Message::Binary(b)) => expect.echoes.push((false, b.to_vec())),
                        Event::Ping(p) => expect.pongs.push(p.to_vec()),
                        Event::Pong(_) => {}
                        Event::Close(c) => {
                            let code = c.code.as_u16();
                            expect.end = End::Close {
                                sent: (code != 1005).then_some(code),
                            };
                            return (expect, Some(i));
                        }
                    }
                    pos += consumed;
                }
                Err(e) => {
                    let sent_close = (frame.opcode == 8 && frame.payload.len() >= 2)
                        .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                    expect.end = End::Fail {
                        code: e.close_code().as_u16(),
                        why: e.reason(),
                        sent_close,
                    };
                    return (expect, Some(i));
                }
            }
        }
        pending.drain(..pos);
    }
    (expect, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Frame {
        Frame::new(1, s.as_bytes().to_vec(), [1, 2, 3, 4])
    }

    fn close(code: u16) -> Frame {
        Frame::new(8, code.to_be_bytes().to_vec(), [9, 9, 9, 9])
    }

    #[test]
    fn messages_are_echoed_and_a_close_is_answered() {
        let e = expect(
            &[text("hi"), Frame::new(9, b"p".to_vec(), [0; 4]), close(1000)],
            None,
            None,
        );
        assert_eq!(e.alternatives.len(), 1);
        let a = &e.alternatives[0];
        assert_eq!(a.echoes, vec![(true, b"hi".to_vec())]);
        assert_eq!(a.pongs, vec![b"p".to_vec()]);
        assert_eq!(a.end, End::Close { sent: Some(1000) });
        assert_eq!(e.send_frames, 3);
    }

    #[test]
    fn nothing_is_sent_after_the_frame_that_fails_the_connection() {
        let mut bad = text("x");
        bad.rsv = 2;
        let e = expect(&[text("a"), bad, text("b"), close(1000)], None, None);
        assert_eq!(e.send_frames, 2);
        let a = &e.alternatives[0];
        assert_eq!(a.echoes.len(), 1);
        assert!(matches!(a.end, End::Fail { code: 1002, .. }));
    }

    #[test]
    fn a_text_message_invalid_in_its_first_fragment_is_sent_to_its_end() {
        let mut first = Frame::new(1, vec![b'a', 0xff], [1; 4]);
        first.fin = false;
        let ping = Frame::new(9, b"mid".to_vec(), [2; 4]);
        let last = Frame::new(0, b"z".to_vec(), [3; 4]);
        let e = expect(&[first, ping, last, close(1000)], None, None);
        assert_eq!(e.send_frames, 3);
        let a = &e.alternatives[0];
        assert!(matches!(a.end, End::Fail { code: 1007, .. }));
        assert_eq!(a.optional_pongs, vec![b"mid".to_vec()]);
    }

    #[test]
    fn a_non_minimal_length_may_be_echoed_or_refused() {
        let mut f = text("hey");
        f.len = Len::Ext64;
        let e = expect(&[f, close(1000)], None, None);
        assert_eq!(e.alternatives.len(), 2);
        assert!(matches!(e.alternatives[0].end, End::Fail { code: 1002, .. }));
        assert_eq!(e.alternatives[1].echoes, vec![(true, b"hey".to_vec())]);
    }

    #[test]
    fn a_length_over_the_limit_is_1009_and_bad_close_codes_are_1002() {
        let mut f = text("tiny");
        f.len = Len::Declared((1 << 32) + 4);
        let e = expect(&[f], Some(1 << 20), None);
        assert!(matches!(e.alternatives[0].end, End::Fail { code: 1009, .. }));
        let e = expect(&[close(1005)], None, None);
        assert!(matches!(
            e.alternatives[0].end,
            End::Fail {
                code: 1002,
                sent_close: Some(1005),
                ..
            }
        ));
    }

    #[test]
    fn a_client_echoes_a_servers_frames_and_fails_a_masked_one() {
        let mut hi = text("hi");
        hi.mask = None;
        let mut bye = close(1000);
        bye.mask = None;
        let e = expect_of(Role::Client, &[hi.clone(), bye], None, None);
        assert_eq!(e.alternatives[0].echoes, vec![(true, b"hi".to_vec())]);
        assert_eq!(e.alternatives[0].end, End::Close { sent: Some(1000) });
        let e = expect_of(Role::Client, &[hi, text("masked")], None, None);
        assert_eq!(e.send_frames, 2);
        assert!(matches!(e.alternatives[0].end, End::Fail { code: 1002, .. }));
    }

    #[test]
    fn handshakes_are_judged_by_the_core() {
        let ok = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(handshake(ok), HandshakeWant::Accept);
        let v8 = String::from_utf8_lossy(ok).replace("Version: 13", "Version: 8");
        assert_eq!(handshake(v8.as_bytes()), HandshakeWant::OtherVersion);
        let post = String::from_utf8_lossy(ok).replace("GET", "POST");
        assert_eq!(handshake(post.as_bytes()), HandshakeWant::Reject(405));
    }
}
