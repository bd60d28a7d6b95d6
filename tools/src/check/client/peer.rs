//! The checker's end of one client connection in a case: writing with transcript lines, and
//! reading what the client sends as messages, pongs and Close frames, where every frame a client
//! must not send (unmasked, reserved bits, out of place, past the bound) is named; and the
//! verdict being built.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::super::Verdict;
use super::case::sframe;
use super::conn::{self, Ev, MAX_FRAME, Transcript, describe, describe_written, show};
use super::deflate::Agreement;

/// At most this many observations make the case's `observed` text.
const MAX_OBSERVED: usize = 8;

pub(crate) fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// The worst verdict so far, its reason, and what was seen.
#[derive(Debug)]
pub(crate) struct Judge {
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
    pub(crate) observed: Vec<String>,
}

impl Judge {
    pub(crate) fn set(&mut self, verdict: Verdict, reason: impl Into<String>) {
        if verdict > self.verdict {
            self.verdict = verdict;
            self.reason = reason.into();
        }
    }

    pub(crate) fn saw(&mut self, what: impl Into<String>) {
        if self.observed.len() < MAX_OBSERVED {
            self.observed.push(what.into());
        }
    }
}

/// What the client sent, as the interpreter sees it.
#[derive(Debug)]
pub(crate) enum In {
    Msg {
        opcode: u8,
        payload: Vec<u8>,
    },
    Pong(Vec<u8>),
    Close(Vec<u8>),
    /// The client closed TCP or reset it.
    Ended(String),
    /// A frame a client must not send (unmasked, broken, out of place).
    Wrong(String),
    Timeout,
}

/// The checker's end of the connection.
pub(crate) struct Peer {
    stream: TcpStream,
    rx: Receiver<conn::Event>,
    pub(crate) t: Transcript,
    pub(crate) deflate: Option<Agreement>,
    /// A fragmented message being received: opcode, compressed, payload so far.
    partial: Option<(u8, bool, Vec<u8>)>,
    pub(crate) bound: Duration,
    /// The client closed or reset TCP.
    ended: bool,
    /// A Close frame went each way.
    closed: bool,
}

impl Peer {
    pub(crate) fn open(
        stream: TcpStream,
        leftover: Vec<u8>,
        t: Transcript,
        deflate: Option<Agreement>,
        bound: Duration,
    ) -> Result<Self, (Transcript, String)> {
        let reader = match stream.try_clone() {
            Ok(r) => r,
            Err(e) => return Err((t, format!("the checker could not read the socket: {e}"))),
        };
        Ok(Self {
            stream,
            rx: conn::spawn_reader(reader, leftover),
            t,
            deflate,
            partial: None,
            bound,
            ended: false,
            closed: false,
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.ended && !self.closed
    }

    /// Writes bytes (in writes of `chunk` bytes) with their transcript lines. A failed write is
    /// noted: the next wait sees the end of the connection.
    pub(crate) fn write(&mut self, bytes: &[u8], chunk: Option<usize>) {
        let how = match chunk {
            Some(1) => Some("one byte per write".to_owned()),
            Some(n) => Some(format!("in writes of {n} bytes")),
            None => None,
        };
        if bytes.starts_with(b"HTTP/") {
            let how = how.as_deref().unwrap_or("in one write");
            self.t.note(format!("  (the head is written {how})"));
        } else {
            let how = how.map_or(String::new(), |h| format!(" ({h})"));
            for line in describe_written(bytes) {
                self.t.note(format!("> {line}{how}"));
            }
        }
        match chunk {
            Some(n) => {
                for piece in bytes.chunks(n.max(1)) {
                    if !self.write_quiet(piece) {
                        break;
                    }
                }
            }
            None => {
                self.write_quiet(bytes);
            }
        }
    }

    pub(crate) fn write_quiet(&mut self, bytes: &[u8]) -> bool {
        match self.stream.write_all(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.t.note(format!("write failed: {e}"));
                false
            }
        }
    }

    /// The next thing the client sent, before `deadline`. Pings are answered here.
    pub(crate) fn next(&mut self, deadline: Instant) -> In {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = match self.rx.recv_timeout(left) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => return In::Timeout,
                Err(RecvTimeoutError::Disconnected) => {
                    self.ended = true;
                    return In::Ended("ended the connection".to_owned());
                }
            };
            let at = event.at;
            let frame = match event.ev {
                Ev::Eof => {
                    self.ended = true;
                    self.t.push(at, "client closed TCP");
                    return In::Ended(format!("closed TCP after {}", since(&self.t, at)));
                }
                Ev::Error(e) => {
                    self.ended = true;
                    self.t.push(at, format!("connection error: {e}"));
                    return In::Ended(format!("reset the connection ({e})"));
                }
                Ev::Bad(why) => {
                    self.ended = true;
                    self.t.push(at, format!("< {why}"));
                    return In::Wrong(why);
                }
                Ev::Frame(f) => f,
            };
            let note = if frame.masked {
                " (masked)"
            } else {
                " (NOT masked)"
            };
            self.t.push(
                at,
                format!(
                    "< {}",
                    describe(frame.fin, frame.rsv, frame.opcode, &frame.payload, note)
                ),
            );
            let kind = conn::opcode_name(frame.opcode);
            if !frame.masked {
                return In::Wrong(format!(
                    "sent an unmasked {kind} frame: a client masks every frame it sends (RFC \
                     6455 5.1, 5.3)"
                ));
            }
            let allowed_rsv = if self.deflate.is_some() && matches!(frame.opcode, 1 | 2) {
                4
            } else {
                0
            };
            if frame.rsv & !allowed_rsv != 0 {
                return In::Wrong(format!(
                    "sent a {kind} frame with reserved bits set ({:03b}) that no extension allows \
                     (RFC 6455 5.2)",
                    frame.rsv
                ));
            }
            match frame.opcode {
                0x9 => {
                    let pong = sframe(true, 0, 0xa, &frame.payload);
                    self.write(&pong, None);
                }
                0xa => return In::Pong(frame.payload),
                0x8 => return In::Close(frame.payload),
                0x1 | 0x2 => {
                    if self.partial.is_some() {
                        return In::Wrong(format!(
                            "sent a new {kind} frame inside a fragmented message (RFC 6455 5.4)"
                        ));
                    }
                    let compressed = frame.rsv & 4 != 0;
                    if frame.fin {
                        return self.message(frame.opcode, compressed, frame.payload);
                    }
                    self.partial = Some((frame.opcode, compressed, frame.payload));
                }
                _ => {
                    let Some((opcode, compressed, mut payload)) = self.partial.take() else {
                        return In::Wrong(
                            "sent a continuation frame with no message to continue (RFC 6455 \
                             5.4)"
                                .to_owned(),
                        );
                    };
                    if payload.len() + frame.payload.len() > MAX_FRAME {
                        return In::Wrong(format!(
                            "sent a message past the checker's bound of {} MiB",
                            MAX_FRAME >> 20
                        ));
                    }
                    payload.extend_from_slice(&frame.payload);
                    if frame.fin {
                        return self.message(opcode, compressed, payload);
                    }
                    self.partial = Some((opcode, compressed, payload));
                }
            }
        }
    }

    fn message(&mut self, opcode: u8, compressed: bool, payload: Vec<u8>) -> In {
        if !compressed {
            return In::Msg { opcode, payload };
        }
        let Some(d) = self.deflate.as_mut() else {
            return In::Wrong("sent RSV1 without permessage-deflate".to_owned());
        };
        match d.inflate(&payload) {
            Ok(payload) => {
                self.t
                    .note(format!("  (inflated: {} B {})", payload.len(), show(&payload)));
                In::Msg { opcode, payload }
            }
            Err(e) => In::Wrong(format!("sent {e} (RFC 7692 8)")),
        }
    }

    /// Answers the client's Close (echoing its code) and closes TCP, as a server does.
    pub(crate) fn answer_close(&mut self, payload: &[u8]) {
        let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        let echo = match code {
            Some(c) if is_valid_code(c) => close_payload(c, b""),
            Some(_) => close_payload(1002, b""),
            None => Vec::new(),
        };
        self.write(&sframe(true, 0, 0x8, &echo), None);
        self.close_tcp();
    }

    pub(crate) fn close_tcp(&mut self) {
        self.closed = true;
        let _ = self.stream.shutdown(Shutdown::Both);
        self.t.note("checker closed TCP");
    }

    /// Ends the connection: a Close 1000 if none went each way yet (the client's answer is
    /// looked at only for frames a client must not send), then TCP.
    pub(crate) fn finish(&mut self, judge: &mut Judge) {
        if self.is_open() && judge.verdict != Verdict::Fail {
            self.write(&sframe(true, 0, 0x8, &close_payload(1000, b"")), None);
            let deadline = Instant::now() + self.bound.min(Duration::from_secs(1));
            loop {
                match self.next(deadline) {
                    In::Wrong(why) => {
                        judge.set(Verdict::Fail, why);
                        break;
                    }
                    In::Close(_) | In::Ended(_) => break,
                    In::Timeout => {
                        self.t
                            .note("(no Close answer to the final Close: not judged here)");
                        break;
                    }
                    In::Msg { .. } | In::Pong(_) => {}
                }
            }
        }
        if !self.closed {
            self.close_tcp();
        }
    }
}

fn since(t: &Transcript, at: Instant) -> String {
    ms(at.saturating_duration_since(t.start()))
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Whether a client may send this close code (RFC 6455 7.4).
pub(crate) fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
